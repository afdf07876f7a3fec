//! Real Redis processes for the tests of floodgate-redis and of the real
//! binary: a standalone server, a 3-master Cluster, a master with one
//! Sentinel, TLS and ACL servers. Each runs on
//! free loopback ports (never 6379) without persistence, in its own
//! temporary directory, and is killed when its guard drops. Each also runs
//! under `timeout`, in its own process group, so even a test process that
//! aborts (and never drops its guards) leaves no server behind for long.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Next port to try; spread by the process id so parallel test binaries
/// rarely collide, then checked by binding.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A free loopback port ≤ 55535 whose port + 10000 (the cluster bus) is free
/// too.
pub fn free_port() -> u16 {
    let _ = NEXT_PORT.compare_exchange(
        0,
        20_000 + (std::process::id() % 3_000) as u16 * 10,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 55_535, "no free port left");
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if port != 6379 && free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// Distinguishes the temporary directories of one process.
static NEXT_DIR: AtomicU16 = AtomicU16::new(0);

/// A fresh temporary directory, removed by its owner.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "floodgate-redis-{}-{name}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs a command to completion, panicking with its output on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not runnable: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `ready` holds, for at most 10 s.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Longest life of any server, should its test die without killing it.
const MAX_LIFETIME: &str = "600";

/// One `redis-server` (or Sentinel) process.
pub struct RedisServer {
    /// `timeout … redis-server`, leader of the process group killed on drop.
    child: Child,
    /// Its plain-text port (0 for a TLS-only server).
    pub port: u16,
    /// Its TLS port, if any.
    pub tls_port: Option<u16>,
    /// Its working directory, removed on drop.
    pub dir: PathBuf,
    /// The arguments it was started with beyond port and persistence, to
    /// start it again the same way ([`Self::restart`]).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a plain server and waits until it accepts connections.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with `extra` arguments and waits until it accepts
    /// connections.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_on(free_port(), extra)
    }

    /// Starts a server on `port` (to restart one that was stopped).
    pub fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        Self::spawn(port, None, extra, None)
    }

    /// Starts a TLS-only server with the certificates in `tls`.
    pub fn start_tls(tls: &TestCa) -> RedisServer {
        let tls_port = free_port();
        let (cert, key, ca) = (
            tls.server_cert.to_str().unwrap(),
            tls.server_key.to_str().unwrap(),
            tls.ca_cert.to_str().unwrap(),
        );
        let args = [
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "no",
        ];
        Self::spawn(0, Some(tls_port), &args, None)
    }

    /// Starts a Sentinel watching `master` as service `mymaster`.
    pub fn start_sentinel(master: &RedisServer) -> RedisServer {
        let port = free_port();
        let dir = temp_dir(&format!("sentinel-{port}"));
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 1\nsentinel down-after-milliseconds mymaster 5000\n",
                master.port
            ),
        )
        .unwrap();
        Self::spawn(port, None, &["--sentinel"], Some((dir, conf)))
    }

    fn spawn(
        port: u16,
        tls_port: Option<u16>,
        extra: &[&str],
        sentinel: Option<(PathBuf, PathBuf)>,
    ) -> RedisServer {
        let mut command = Command::new("timeout");
        command
            .args(["-s", "KILL", MAX_LIFETIME, "redis-server"])
            .process_group(0);
        let dir = match sentinel {
            Some((dir, conf)) => {
                command.arg(conf);
                dir
            }
            None => {
                let dir = temp_dir(&format!("server-{}", tls_port.unwrap_or(port)));
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(&dir);
                if let Some(tls_port) = tls_port {
                    command.args(["--tls-port", &tls_port.to_string()]);
                }
                dir
            }
        };
        let child = command
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = RedisServer {
            child,
            port,
            tls_port,
            dir,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        let probe = tls_port.unwrap_or(port);
        wait_until("redis-server to listen", || {
            TcpStream::connect(("127.0.0.1", probe)).is_ok()
        });
        server
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, `"KILL"`) to the server.
    pub fn signal(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        run("kill", &[&format!("-{signal}"), "--", &group]);
    }

    /// `SIGKILL`s the server (no clean shutdown) and reaps it.
    /// Killing a server that is already dead is a no-op.
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }

    /// Kills the server and starts a fresh, empty one on the same port with
    /// the same arguments. A plain (non-TLS, non-Sentinel) server only.
    pub fn restart(&mut self) {
        assert!(self.tls_port.is_none(), "restart is for plain servers");
        self.kill();
        let extra: Vec<String> = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        // Redis binds with SO_REUSEADDR: the port is free again at once.
        // The old value's drop removes its directory.
        *self = Self::spawn(self.port, None, &extra, None);
    }

    /// Runs `redis-cli` against the server: its stdout (empty on failure).
    pub fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A `redis` crate client: the independent inspector.
    pub fn inspector(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        let mut last = None;
        for _ in 0..100 {
            match client.get_connection() {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot connect to {}: {last:?}", self.url());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters, no replicas, slots split by `redis-cli --cluster create`.
pub struct Cluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts the nodes, creates the cluster and waits until every node
    /// agrees it is up.
    pub fn start() -> Cluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        run("redis-cli", &args);
        let cluster = Cluster { nodes };
        wait_until("the cluster to be ok", || {
            cluster.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.inspector())
                    .unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            })
        });
        cluster
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node serving `slot`, by index into `nodes`, as node 0 sees it.
    pub fn owner(&self, slot: u16) -> usize {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut self.nodes[0].inspector())
            .unwrap();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let serves = fields[8..].iter().filter(|r| !r.starts_with('[')).any(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                (a.parse().unwrap()..=b.parse().unwrap()).contains(&slot)
            });
            if serves {
                let port: u16 = fields[1].split([':', '@']).nth(1).unwrap().parse().unwrap();
                return self.nodes.iter().position(|n| n.port == port).unwrap();
            }
        }
        panic!("slot {slot} is not served");
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].inspector())
            .unwrap()
    }

    /// Moves `slot` and its keys to `nodes[to]` the way `redis-cli --cluster
    /// reshard` does: IMPORTING/MIGRATING, MIGRATE of every key, then
    /// SETSLOT NODE on every node. Clients see ASK while the keys move and
    /// MOVED afterwards.
    pub fn migrate_slot(&self, slot: u16, to: usize) {
        let migration = self.begin_migration(slot, to);
        migration.move_keys();
        migration.finish();
    }

    /// Marks `slot` IMPORTING on `nodes[to]` and MIGRATING on its owner;
    /// the returned migration moves the keys and hands the slot over.
    pub fn begin_migration(&self, slot: u16, to: usize) -> SlotMigration<'_> {
        let from = self.owner(slot);
        assert_ne!(from, to, "slot {slot} is already on node {to}");
        let migration = SlotMigration {
            cluster: self,
            slot,
            from,
            to,
            to_id: self.node_id(to),
        };
        let from_id = self.node_id(from);
        migration.setslot(to, "IMPORTING", &from_id);
        migration.setslot(from, "MIGRATING", &migration.to_id);
        migration
    }

    /// The node id of `nodes[i]`.
    pub fn node_id(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[i].inspector())
            .unwrap()
    }
}

/// A slot on its way from one master to another ([`Cluster::begin_migration`]).
pub struct SlotMigration<'a> {
    /// The cluster.
    cluster: &'a Cluster,
    /// The slot.
    pub slot: u16,
    /// Its owner when the migration began (index into `nodes`).
    pub from: usize,
    /// Where it goes.
    pub to: usize,
    /// The node id of `to`.
    to_id: String,
}

impl SlotMigration<'_> {
    fn setslot(&self, node: usize, state: &str, id: &str) {
        let () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(self.slot)
            .arg(state)
            .arg(id)
            .query(&mut self.cluster.nodes[node].inspector())
            .unwrap();
    }

    /// MIGRATEs every key of the slot to the target (clients now get ASK
    /// for them from the old owner).
    pub fn move_keys(&self) {
        let mut source = self.cluster.nodes[self.from].inspector();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(self.slot)
                .arg(100)
                .query(&mut source)
                .unwrap();
            if keys.is_empty() {
                return;
            }
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.cluster.nodes[self.to].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut source)
                .unwrap();
        }
    }

    /// Hands the slot to the target on every node (clients now get MOVED).
    pub fn finish(self) {
        for node in 0..self.cluster.nodes.len() {
            self.setslot(node, "NODE", &self.to_id);
        }
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1, made with the
/// `openssl` command.
pub struct TestCa {
    /// The CA certificate (what clients trust).
    pub ca_cert: PathBuf,
    /// The server certificate, for IP 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// Where the files live; removed on drop.
    dir: PathBuf,
}

impl TestCa {
    /// Makes the CA and the server certificate.
    pub fn generate() -> TestCa {
        let dir = temp_dir("tls");
        let p = |name: &str| dir.join(name);
        let s = |path: &Path| path.to_str().unwrap().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let (ca_key, ca_cert) = (p("ca.key"), p("ca.crt"));
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let (ca_key_s, ca_cert_s) = (s(&ca_key), s(&ca_cert));
        args.extend(["-keyout", &ca_key_s, "-out", &ca_cert_s, "-days", "1"]);
        args.extend(["-subj", "/CN=floodgate test CA"]);
        run("openssl", &args);
        let (key, csr, cert, ext) = (
            p("server.key"),
            p("server.csr"),
            p("server.crt"),
            p("san.ext"),
        );
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        let (key_s, csr_s, cert_s, ext_s) = (s(&key), s(&csr), s(&cert), s(&ext));
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", &key_s, "-out", &csr_s, "-subj", "/CN=localhost"]);
        run("openssl", &args);
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr_s,
                "-CA",
                &ca_cert_s,
                "-CAkey",
                &ca_key_s,
                "-CAcreateserial",
                "-out",
                &cert_s,
                "-days",
                "1",
                "-extfile",
                &ext_s,
            ],
        );
        TestCa {
            ca_cert,
            server_cert: cert,
            server_key: key,
            dir,
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
