//! The deployment files (Dockerfile, deploy/docker-compose.yml, deploy/kubernetes/*.yaml) as
//! the real binaries see them: every command line and environment a file gives a Quiver binary
//! is run with `--check-config` (which parses flags and environment and reads the token and TLS
//! files), and every port a file names — EXPOSE, compose `ports`, `containerPort`, probe ports,
//! Service `targetPort`s — must be one the binary says it listens on.
//!
//! The files are read by a small line parser, not a YAML library: they keep `command`, `args`
//! and `ports` as one-line JSON-style lists (valid YAML), and that shape is what this test
//! relies on. Paths a file names under /etc/quiver, /run/secrets and /var/lib/quiver are
//! mapped to generated files (tokens, certificates) and scratch directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::binary;
use crate::tls::make_pki;

/// One Quiver process a file describes.
#[derive(Debug, Default)]
struct Container {
    /// Where it comes from, for messages.
    origin: String,
    /// The binary and its arguments.
    command: Vec<String>,
    env: Vec<(String, String)>,
    /// Ports the file expects it to listen on.
    ports: Vec<u16>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// The JSON list after `key:` on a line such as `command: ["a", "b"]`.
fn list_after(line: &str, key: &str) -> Option<Vec<String>> {
    let rest = line.trim().strip_prefix(key)?.trim();
    let rest = rest.strip_prefix('[').map(|_| rest)?;
    Some(
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("{line:?}: not a one-line list: {e}")),
    )
}

fn number_after(line: &str, key: &str) -> Option<u16> {
    let rest = line.trim().trim_start_matches("- ").strip_prefix(key)?;
    rest.trim().parse().ok()
}

fn unquote(v: &str) -> String {
    v.trim().trim_matches('"').to_string()
}

/// The Dockerfile's default command, with its `ENV` and its `EXPOSE`d ports (which any of the
/// files' processes may listen on: checked separately).
fn dockerfile(text: &str) -> (Container, Vec<u16>) {
    let mut c = Container {
        origin: "Dockerfile CMD".into(),
        ..Default::default()
    };
    let mut exposed = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = list_after(line, "CMD") {
            c.command = cmd;
        } else if let Some(env) = line.strip_prefix("ENV ") {
            for pair in env.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV K=V");
                c.env.push((k.into(), v.into()));
            }
        } else if let Some(ports) = line.strip_prefix("EXPOSE ") {
            exposed.extend(ports.split_whitespace().map(|p| p.parse::<u16>().unwrap()));
        }
    }
    // What `docker run -e QUIVER_TOKEN=...` adds: the default command refuses to serve without.
    c.env.push((
        "QUIVER_TOKEN".into(),
        "0123456789abcdef0123456789abcdef".into(),
    ));
    (c, exposed)
}

/// The compose services that run a Quiver binary.
fn compose(text: &str) -> Vec<Container> {
    let mut out: Vec<Container> = Vec::new();
    let mut in_services = false;
    let mut in_env = false;
    let mut current: Option<Container> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_services = trimmed == "services:";
            out.extend(current.take());
            continue;
        }
        if !in_services {
            continue;
        }
        if indent == 2 {
            out.extend(current.take());
            current = Some(Container {
                origin: format!("compose service {}", trimmed.trim_end_matches(':')),
                ..Default::default()
            });
            in_env = false;
            continue;
        }
        let Some(c) = current.as_mut() else { continue };
        if indent == 4 {
            in_env = trimmed == "environment:";
            if let Some(cmd) = list_after(trimmed, "command:") {
                c.command = cmd;
            } else if let Some(ports) = list_after(trimmed, "ports:") {
                for p in ports {
                    let container_port = p.rsplit(':').next().unwrap();
                    c.ports.push(container_port.parse().unwrap());
                }
            }
        } else if indent == 6 && in_env {
            let (k, v) = trimmed.split_once(':').expect("KEY: value");
            c.env.push((k.trim().into(), unquote(v)));
        }
    }
    out.extend(current);
    out.retain(|c| c.command.first().is_some_and(|b| b.starts_with("quiver")));
    out
}

/// The containers of a Kubernetes file, and the `targetPort`s of its Services.
fn kubernetes(name: &str, text: &str) -> (Vec<Container>, Vec<u16>) {
    let mut containers: Vec<Container> = Vec::new();
    let mut target_ports = Vec::new();
    for doc in text.split("\n---") {
        let mut current: Option<Container> = None;
        let mut env_name: Option<String> = None;
        let mut field_ref = false;
        for line in doc.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            if let Some(p) = number_after(trimmed, "targetPort:") {
                target_ports.push(p);
            }
            if let Some(cmd) = list_after(trimmed, "command:") {
                containers.extend(current.take());
                current = Some(Container {
                    origin: format!("{name} container {}", containers.len()),
                    command: cmd,
                    ..Default::default()
                });
                continue;
            }
            let Some(c) = current.as_mut() else { continue };
            if trimmed == "volumes:" {
                containers.extend(current.take());
                continue;
            }
            if let Some(args) = list_after(trimmed, "args:") {
                c.command.extend(args);
            } else if let Some(n) = trimmed.strip_prefix("- name: ") {
                env_name = Some(n.trim().to_string());
                field_ref = false;
            } else if let Some(v) = trimmed.strip_prefix("value: ") {
                if let Some(n) = env_name.take() {
                    c.env.push((n, unquote(v)));
                }
            } else if trimmed == "fieldRef:" {
                field_ref = true;
            } else if let Some(path) = trimmed.strip_prefix("fieldPath: ") {
                // What the kubelet would fill in.
                let value = match path.trim() {
                    "metadata.name" => "quiver-worker-0",
                    "status.podIP" => "10.1.2.3",
                    other => panic!("{name}: no test value for fieldPath {other}"),
                };
                if let (true, Some(n)) = (field_ref, env_name.take()) {
                    c.env.push((n, value.into()));
                }
            } else if let Some(p) =
                number_after(trimmed, "containerPort:").or_else(|| number_after(trimmed, "port:"))
            {
                c.ports.push(p);
            }
        }
        containers.extend(current);
    }
    // $(VAR) in args, as the kubelet expands it from the container's env.
    for c in &mut containers {
        for arg in &mut c.command {
            for (k, v) in &c.env {
                *arg = arg.replace(&format!("$({k})"), v);
            }
        }
    }
    (containers, target_ports)
}

/// Maps a path a file names inside the container to a generated file or directory here.
fn map_paths(value: &str, scratch: &Path, pki: &crate::tls::Pki) -> String {
    let inside = ["/etc/quiver/", "/run/secrets/", "/var/lib/quiver/"];
    if !inside.iter().any(|p| value.starts_with(p)) {
        return value.to_string();
    }
    let file = Path::new(value)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let source = match file.as_str() {
        "tls.crt" => pki.node_cert.clone(),
        "tls.key" => pki.node_key.clone(),
        "ca.crt" => pki.ca.clone(),
        "state" | "work" => scratch.join(file),
        // Anything else a file names there is a token.
        _ => {
            let token = scratch.join(format!("token-{file}"));
            std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            token
        }
    };
    source.display().to_string()
}

/// Runs `c` with `--check-config`; the ports it says it would listen on.
fn check(c: &Container, scratch: &Path, pki: &crate::tls::Pki) -> BTreeSet<u16> {
    let (program, args) = c.command.split_first().expect("a command");
    let mut cmd = Command::new(binary(program));
    cmd.env_clear()
        .arg("--check-config")
        .args(args.iter().map(|a| map_paths(a, scratch, pki)));
    for (k, v) in &c.env {
        cmd.env(k, map_paths(v, scratch, pki));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("configuration OK"),
        "{}: `{} --check-config` failed:\n{stdout}\n{}",
        c.origin,
        c.command.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("listen "))
        .map(|l| {
            let addr = l.rsplit(' ').next().unwrap();
            addr.parse::<std::net::SocketAddr>().unwrap().port()
        })
        .collect()
}

#[test]
fn every_deployment_file_passes_check_config_and_names_only_ports_its_binaries_listen_on() {
    let root = repo_root();
    let scratch = tempfile::tempdir().unwrap();
    let pki = make_pki(scratch.path(), "deploy");
    let mut all_listened = BTreeSet::new();
    let mut checked = Vec::new();

    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (docker_cmd, exposed) = dockerfile(&read("Dockerfile"));
    let mut containers = vec![docker_cmd];
    let compose = compose(&read("deploy/docker-compose.yml"));
    assert_eq!(compose.len(), 4, "coordinator, 2 workers, cli: {compose:?}");
    containers.extend(compose);
    let mut k8s_files: Vec<_> = std::fs::read_dir(root.join("deploy/kubernetes"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    k8s_files.sort();
    let mut k8s_containers = 0;
    for path in &k8s_files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (found, target_ports) = kubernetes(&name, &std::fs::read_to_string(path).unwrap());
        let mut listened_here = BTreeSet::new();
        for c in &found {
            let listened = check(c, scratch.path(), &pki);
            for p in &c.ports {
                assert!(
                    listened.contains(p),
                    "{}: port {p} is named, but the binary listens on {listened:?}",
                    c.origin
                );
            }
            listened_here.extend(listened);
            checked.push(c.origin.clone());
        }
        for p in target_ports {
            assert!(
                listened_here.contains(&p),
                "{name}: Service targetPort {p}, but its containers listen on {listened_here:?}"
            );
        }
        k8s_containers += found.len();
        all_listened.extend(listened_here);
    }
    assert_eq!(k8s_containers, 2, "coordinator and worker containers");
    for c in &containers {
        let listened = check(c, scratch.path(), &pki);
        for p in &c.ports {
            assert!(
                listened.contains(p),
                "{}: port {p} is published, but the binary listens on {listened:?}",
                c.origin
            );
        }
        all_listened.extend(listened);
        checked.push(c.origin.clone());
    }
    for p in exposed {
        assert!(
            all_listened.contains(&p),
            "Dockerfile EXPOSE {p}: no process of the deployment files listens there ({all_listened:?})"
        );
    }
    eprintln!("checked with --check-config: {checked:?}");
}

/// The parsers see what the files hold (a file whose shape changed must fail loudly here, not
/// be skipped by the test above).
#[test]
fn the_manifest_parsers_read_commands_env_and_ports() {
    let (containers, targets) = kubernetes(
        "t",
        "containers:\n  - name: w\n    command: [\"quiver-worker\"]\n    args: [\"--advertise-addr\", \"$(POD_NAME).x:7070\"]\n    env:\n      - name: POD_NAME\n        valueFrom:\n          fieldRef:\n            fieldPath: metadata.name\n      - name: A\n        value: \"b\"\n    ports:\n      - containerPort: 7070\n    livenessProbe:\n      httpGet:\n        port: 8081\nvolumes:\n---\nspec:\n  ports:\n    - port: 1\n      targetPort: 7070\n",
    );
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0].command,
        [
            "quiver-worker",
            "--advertise-addr",
            "quiver-worker-0.x:7070"
        ]
    );
    assert!(containers[0].env.contains(&("A".into(), "b".into())));
    assert_eq!(containers[0].ports, [7070, 8081]);
    assert_eq!(targets, [7070]);
    let services = compose(
        "services:\n  c:\n    command: [\"quiver-coordinator\"]\n    environment:\n      K: \"v\"\n    ports: [\"1:50050\"]\n  s3:\n    command: [\"server\"]\nvolumes:\n  x:\n",
    );
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].env, [("K".to_string(), "v".to_string())]);
    assert_eq!(services[0].ports, [50050]);
}
