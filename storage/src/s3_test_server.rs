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

use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt};

use crate::{Location, ObjectStores, StorageOptions, block_on};

/// A running moto S3 server on a loopback port.
pub struct S3TestServer {
    child: Child,
    address: SocketAddr,
    /// The server process's id (the shell that started it waits on stdin).
    pid: u32,
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
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!; echo $m; read _; kill -CONT $m; kill $m"#)
            .arg(&binary)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut child = child;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        }
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} did not start: {line:?}", binary.display()));
        let server = S3TestServer {
            child,
            address,
            pid,
        };
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

    /// Stops the server (SIGSTOP): requests hang until [`S3TestServer::resume`], as with a
    /// store that stalls.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.pid));
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
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

    /// Uploads `bytes` as the object at `url` (`s3://bucket/key`).
    pub fn put(&self, url: &str, bytes: impl Into<bytes::Bytes>) {
        let (store, path) = self.store_for(url);
        let payload = object_store::PutPayload::from_bytes(bytes.into());
        block_on(async move { store.put(&path, payload).await.map(|_| ()) })
            .unwrap_or_else(|e| panic!("uploading {url}: {e}"));
    }

    /// Uploads every file under the local directory `dir` (recursively) below the prefix
    /// `url` (`s3://bucket/prefix/`), keeping relative paths.
    pub fn upload_dir(&self, dir: &std::path::Path, url: &str) {
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path.strip_prefix(dir).expect("under dir");
                let key = relative.to_string_lossy().replace('\\', "/");
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                self.put(&format!("{}/{key}", url.trim_end_matches('/')), bytes);
            }
        }
    }

    /// Deletes the object at `url`.
    pub fn delete(&self, url: &str) {
        let (store, path) = self.store_for(url);
        block_on(async move { store.delete(&path).await })
            .unwrap_or_else(|e| panic!("deleting {url}: {e}"));
    }

    /// Every object under the prefix `url`, as (path below the bucket, bytes), sorted by path.
    pub fn objects(&self, url: &str) -> Vec<(String, bytes::Bytes)> {
        use futures::TryStreamExt;
        let (store, prefix) = self.store_for(url);
        block_on(async move {
            let mut metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
            metas.sort_by(|a, b| a.location.cmp(&b.location));
            let mut out = Vec::with_capacity(metas.len());
            for m in metas {
                let body = store.get(&m.location).await?.bytes().await?;
                out.push((m.location.to_string(), body));
            }
            Ok::<_, object_store::Error>(out)
        })
        .unwrap_or_else(|e| panic!("listing {url}: {e}"))
    }

    /// Downloads every object under the prefix `url` into the local directory `dir`, named by
    /// their paths below the prefix; returns the files written.
    pub fn download_dir(&self, url: &str, dir: &std::path::Path) -> Vec<PathBuf> {
        let prefix = Location::parse(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .object_path()
            .to_string();
        self.objects(url)
            .into_iter()
            .map(|(name, bytes)| {
                let relative = name
                    .strip_prefix(&prefix)
                    .unwrap_or(&name)
                    .trim_start_matches('/');
                let file = dir.join(relative);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).expect("creating a download directory");
                }
                std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                file
            })
            .collect()
    }

    /// A client for `url`'s bucket on this server, and the object path `url` names.
    fn store_for(&self, url: &str) -> (Arc<dyn ObjectStore>, object_store::path::Path) {
        let location = Location::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let store = ObjectStores::new()
            .store(&location, &self.options())
            .unwrap_or_else(|e| panic!("a client for {url}: {e}"));
        (store, location.object_path().clone())
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
