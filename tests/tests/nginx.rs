//! examples/nginx/floodgate.conf, run by a real nginx on free loopback
//! ports in front of a small upstream, with floodgate answering its
//! auth_request subrequests (also with the shipped
//! examples/nginx/floodgate.toml).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use floodgate_e2e::{free_port, http_request, repo_root, Floodgate, TextUpstream, FREE_PORTS};

/// nginx, started in the foreground; stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    /// SIGTERM first: nginx's master then stops its workers (a SIGKILLed
    /// master would leave them running, holding the port). SIGKILL only if
    /// it has not exited within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(String::from)
}

/// nginx running examples/nginx/floodgate.conf in front of an upstream,
/// asking `fg`; everything stops when dropped.
struct Front {
    addr: std::net::SocketAddr,
    upstream: TextUpstream,
    _nginx: Nginx,
    _dir: tempfile::TempDir,
}

fn nginx_in_front(fg: &Floodgate) -> Front {
    let Some(nginx) = nginx_binary() else {
        panic!("nginx is not installed: scripts/test installs it");
    };
    let upstream = TextUpstream::start("hello from the app");
    let port = free_port();
    let example =
        std::fs::read_to_string(repo_root().join("examples/nginx/floodgate.conf")).unwrap();
    let server = example
        .replace("127.0.0.1:3000", &upstream.addr.to_string())
        .replace("127.0.0.1:9720", &fg.http.to_string())
        .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    std::fs::write(dir.path().join("floodgate.conf"), server).unwrap();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let main = format!(
        "{user}daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n  include {root}/floodgate.conf;\n}}\n",
        user = if is_root { "user root;\n" } else { "" },
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let child = Command::new(&nginx)
        .args(["-p", &root, "-c", &format!("{root}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let nginx = Nginx(child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Front {
        addr,
        upstream,
        _nginx: nginx,
        _dir: dir,
    }
}

#[test]
fn nginx_auth_request_example_limits_and_copies_headers() {
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[endpoint]]\nname = \"api\"\npath = \"/api/*\"\n\n[[policy]]\nname = \"api-per-user\"\nmatch = {{ endpoint = \"api\" }}\nkey = [\"user\"]\nlimit = 3\nwindow = \"1m\"\n"
    ));
    let front = nginx_in_front(&fg);
    let (addr, upstream) = (front.addr, &front.upstream);

    let get = |user: &str| {
        http_request(
            addr,
            "GET",
            "/api/items?page=2",
            &[("x-user-id", user)],
            None,
        )
    };
    for remaining in (0..3).rev() {
        let r = get("u1");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "hello from the app");
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("\"api-per-user\";q=3;w=60")
        );
        assert!(r
            .header("ratelimit")
            .unwrap()
            .starts_with(&format!("\"api-per-user\";r={remaining};t=")));
    }
    let denied = get("u1");
    assert_eq!(denied.status, 429, "{}", denied.text());
    let retry: u64 = denied.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert!(denied.header("ratelimit").unwrap().contains("r=0"));
    assert_eq!(upstream.hits(), 3, "denied requests never reach the app");
    // Another user still passes; paths outside /api are not limited.
    assert_eq!(get("u2").status, 200);
    let other = http_request(addr, "GET", "/static/x.css", &[("x-user-id", "u1")], None);
    assert_eq!(other.status, 200);
}

/// nginx has no "request finished" callback to floodgate: a lease taken on
/// `/v1/auth` could never be released. A `concurrency` policy is therefore
/// not applied there (a startup warning names it, a metric counts the
/// skips); finished requests are never capped by it.
#[test]
fn a_concurrency_policy_never_caps_finished_requests_through_nginx() {
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[endpoint]]\nname = \"api\"\npath = \"/api/*\"\n\n[[policy]]\nname = \"in-flight\"\nmatch = {{ endpoint = \"api\" }}\nkey = [\"user\"]\nalgorithm = \"concurrency\"\nlimit = 2\nlease_timeout = \"60s\"\n"
    ));
    let front = nginx_in_front(&fg);
    for i in 0..4 {
        let r = http_request(
            front.addr,
            "GET",
            "/api/items",
            &[("x-user-id", "u1")],
            None,
        );
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(front.upstream.hits(), 4);
    // The same through /v1/auth directly: 204 each time.
    for i in 0..4 {
        let r = http_request(
            fg.http,
            "GET",
            "/v1/auth",
            &[("x-original-uri", "/api/items"), ("x-user-id", "u2")],
            None,
        );
        assert_eq!(r.status, 204, "auth {i}: {}", r.text());
    }
    let log = fg.log.lock().unwrap().clone();
    assert!(
        log.contains("concurrency policies are not applied") && log.contains("in-flight"),
        "{log}"
    );
    let metrics = fg.http("GET", "/metrics", None).text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("floodgate_concurrency_skipped_total")
                && l.contains("transport=\"nginx\"")
                && l.contains("policy=\"in-flight\"")
                && l.ends_with(" 8")),
        "{metrics}"
    );
}

/// The status of `GET path` with `headers`, sent to `addr` from the
/// loopback address `source` (127.0.0.2 is loopback too, and another
/// client address as nginx sees it).
fn status_from(source: &str, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        let source: IpAddr = source.parse().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    });
    let mut stream = stream;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The shipped pair, examples/nginx/floodgate.conf with
/// examples/nginx/floodgate.toml (`trusted_proxies = 1`): each client is
/// counted by the address nginx sees and sets as X-Real-IP; what a client
/// sends as X-Real-IP or X-Forwarded-For chooses no counter.
#[test]
fn the_shipped_nginx_pair_counts_each_client_by_the_address_nginx_sees() {
    let toml = std::fs::read_to_string(repo_root().join("examples/nginx/floodgate.toml"))
        .unwrap()
        .replace("127.0.0.1:9720", "127.0.0.1:0")
        .replace("127.0.0.1:9721", "127.0.0.1:0");
    // auth-per-ip: 3 a minute for the try.
    assert!(toml.contains("limit = 150"));
    let fg = Floodgate::start(&toml.replacen("limit = 150", "limit = 3", 1));
    let front = nginx_in_front(&fg);
    let path = "/auth/login";
    // One client forging a new address with every request: one counter.
    let forged: Vec<u16> = (0..4)
        .map(|i| {
            let real = format!("198.51.100.{i}");
            let xff = format!("203.0.113.{i}");
            status_from(
                "127.0.0.1",
                front.addr,
                path,
                &[("X-Real-IP", &real), ("X-Forwarded-For", &xff)],
            )
        })
        .collect();
    assert_eq!(forged, [200, 200, 200, 429]);
    // Another client, as nginx sees it, has its own counter, although
    // floodgate's peer (nginx) is the same for both.
    let other: Vec<u16> = (0..4)
        .map(|_| status_from("127.0.0.2", front.addr, path, &[]))
        .collect();
    assert_eq!(other, [200, 200, 200, 429]);
    assert_eq!(front.upstream.hits(), 6);
    // X-Real-IP is believed, so no hint about trusted_proxies.
    let log = fg.log.lock().unwrap().clone();
    assert!(!log.contains("trusted_proxies = 1 behind nginx"), "{log}");
}

/// The example turns floodgate's 403 into the deciding policy's
/// `deny_status`: 503 for a policy that says so, 429 otherwise, both with
/// `Retry-After`.
#[test]
fn nginx_example_answers_with_the_policys_deny_status() {
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[endpoint]]\nname = \"ai\"\npath = \"/ai/*\"\n\n[[endpoint]]\nname = \"api\"\npath = \"/api/*\"\n\n[[policy]]\nname = \"capacity\"\nmatch = {{ endpoint = \"ai\" }}\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\ndeny_status = 503\n\n[[policy]]\nname = \"plain\"\nmatch = {{ endpoint = \"api\" }}\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\n"
    ));
    let front = nginx_in_front(&fg);
    let get = |path: &str| http_request(front.addr, "GET", path, &[("x-user-id", "u1")], None);
    assert_eq!(get("/ai/x").status, 200);
    let denied = get("/ai/x");
    assert_eq!(denied.status, 503, "{}", denied.text());
    assert!(denied.header("retry-after").is_some());
    assert!(denied.header("ratelimit").unwrap().contains("r=0"));
    assert_eq!(get("/api/x").status, 200);
    let plain = get("/api/x");
    assert_eq!(plain.status, 429, "{}", plain.text());
    assert!(plain.header("retry-after").is_some());
    assert_eq!(front.upstream.hits(), 2);
}

/// A user header floodgate refuses (over 256 bytes, a control character)
/// is the client's 400 through the example, not nginx's 500 for an auth
/// subrequest that answered 400; such a request never reaches the app.
#[test]
fn a_refused_user_header_is_a_400_through_nginx() {
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"1m\"\n"
    ));
    let front = nginx_in_front(&fg);
    let long = "u".repeat(257);
    let refused = http_request(front.addr, "GET", "/x", &[("x-user-id", &long)], None);
    assert_eq!(refused.status, 400, "{}", refused.text());
    let tab = status_from("127.0.0.1", front.addr, "/x", &[("x-user-id", "a\tb")]);
    assert_eq!(tab, 400);
    let fine = http_request(front.addr, "GET", "/x", &[("x-user-id", "u1")], None);
    assert_eq!(fine.status, 200);
    assert_eq!(front.upstream.hits(), 1);
}
