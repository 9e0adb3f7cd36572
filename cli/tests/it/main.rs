//! The `quiver` binary's own checks. (Its commands against a live cluster are tested with the
//! real coordinator and worker processes in the SDK's tests.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn an_unreachable_coordinator_is_a_clear_error_and_a_failing_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["--coordinator", &url, "workers"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the coordinator") && err.contains(&url),
        "{err}"
    );
}

#[test]
fn help_lists_the_commands_and_the_default_coordinator() {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "workers",
        "jobs",
        "status",
        "cancel",
        "http://127.0.0.1:50050",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}
