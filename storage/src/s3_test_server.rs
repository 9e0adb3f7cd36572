//! [`S3TestServer`]: a real S3-compatible server process (moto in server mode) for tests.
//!
//! `.ci/run` installs moto into `target/python` (a virtualenv). The server is found as
//! `$QUIVER_MOTO_SERVER`, then `target/python/bin/moto_server`, then `moto_server` on the
//! `PATH`. Where none exists, [`S3TestServer::start`] says so and returns `None` so the test
//! can skip — unless `QUIVER_REQUIRE_S3_SERVER=1` (set by `.ci/run`), which makes it panic.
//!
//! The server runs behind a shell that kills it when the test process's end of its stdin
//! closes, so it never outlives the tests, however they end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::StorageOptions;

/// A running moto S3 server on a loopback port.
pub struct S3TestServer {
    child: Child,
    address: SocketAddr,
}

/// Access key and secret the test server is given (moto accepts any).
const ACCESS_KEY: &str = "quiver-test-key";
const SECRET_KEY: &str = "quiver-test-secret";

impl S3TestServer {
    /// Starts a server, or returns `None` (after printing why) where moto is not installed.
    pub fn start() -> Option<S3TestServer> {
        let Some(binary) = find_moto() else {
            let message = "moto_server not found (set QUIVER_MOTO_SERVER, or run .ci/run, which \
                 installs it into target/python); skipping this S3 test";
            if std::env::var("QUIVER_REQUIRE_S3_SERVER").is_ok_and(|v| v == "1") {
                panic!("{message}");
            }
            eprintln!("{message}");
            return None;
        };
        let port = free_port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!; read _; kill $m"#)
            .arg(&binary)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let server = S3TestServer { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.request("GET", "/").is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not answer on {address} within 30 s",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        let status = self
            .request("PUT", &format!("/{name}"))
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
        assert!(status == 200, "creating bucket {name}: HTTP {status}");
    }

    /// Options that point a job's S3 access at this server.
    pub fn options(&self) -> StorageOptions {
        StorageOptions::from_pairs(self.env().into_iter().map(|(k, v)| (k.to_lowercase(), v)))
            .expect("the test server's options are known keys")
    }

    /// The same as environment variables, for processes started by a test.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Sends one unsigned HTTP/1.1 request (moto does not check signatures) and returns the
    /// status code.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.address
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        text.get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        // Closing stdin lets the shell kill the server; then reap the shell.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn find_moto() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUIVER_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/python/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback port")
}
