//! The real `floodgate` binary under test: where it is, starting it on
//! free loopback ports (read back from its startup log), running its CLI,
//! and running other commands with a time bound.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http_client::{http_request, HttpResponse};

/// The `floodgate` binary next to the test executable's `deps/` folder.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("floodgate");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --bin floodgate`",
        bin.display()
    );
    bin
}

/// A running `floodgate serve`.
pub struct Floodgate {
    /// The child process.
    child: Child,
    /// Where its HTTP listener is.
    pub http: SocketAddr,
    /// Where its gRPC listener is.
    pub grpc: SocketAddr,
    /// Where its reverse proxy listens, when `[server] proxy` is set.
    pub proxy: Option<SocketAddr>,
    /// Where its health listener is, when `[server] health` is set.
    pub health: Option<SocketAddr>,
    /// Everything it logged so far (stderr), for assertions and failures.
    pub log: Arc<Mutex<String>>,
    /// The config file (kept alive with the process).
    pub dir: tempfile::TempDir,
}

/// The `[server]` lines that put both listeners on free loopback ports.
pub const FREE_PORTS: &str = "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n";

impl Floodgate {
    /// Writes `config` to a temporary file and starts `floodgate serve` on
    /// it, with `extra` arguments. Panics if it does not come up within 20 s.
    pub fn start_with(config: &str, extra: &[&str]) -> Floodgate {
        Self::start_env(config, extra, &[])
    }

    /// [`Floodgate::start_with`] with extra environment variables.
    pub fn start_env(config: &str, extra: &[&str], env: &[(&str, &str)]) -> Floodgate {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("floodgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn floodgate");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("floodgate listening") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("floodgate did not start; its log:\n{}", log.lock().unwrap());
            }
        };
        let field = |name: &str| -> SocketAddr {
            let start = line.find(&format!("{name}=")).expect("address in log") + name.len() + 1;
            let rest = &line[start..];
            let end = rest.find(' ').unwrap_or(rest.len());
            rest[..end].parse().expect("socket address")
        };
        let optional = |name: &str| -> Option<SocketAddr> {
            let key = format!(" {name}=");
            line.find(&key)
                .map(|start| &line[start + key.len()..])
                .and_then(|rest| rest.split(' ').next())
                .and_then(|addr| addr.parse().ok())
        };
        Floodgate {
            http: field("http"),
            grpc: field("grpc"),
            proxy: optional("proxy"),
            health: optional("health"),
            child,
            log,
            dir,
        }
    }

    /// Starts `floodgate serve` on `config` (which should use [`FREE_PORTS`]).
    pub fn start(config: &str) -> Floodgate {
        Self::start_with(config, &[])
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("floodgate.toml")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A plain HTTP/1.1 request to the HTTP listener.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        http_request(self.http, method, path, &[], body.map(str::as_bytes))
    }

    /// `POST /v1/check` with a JSON body.
    pub fn check(&self, body: &str) -> HttpResponse {
        self.http("POST", "/v1/check", Some(body))
    }

    /// A gRPC endpoint URI.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

impl Drop for Floodgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `floodgate <args>` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run floodgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Runs `command` (its output captured) to its end, killing it and failing
/// the test when it takes longer than `limit`: a stuck script fails the
/// suite instead of hanging it.
pub fn run_bounded(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}
