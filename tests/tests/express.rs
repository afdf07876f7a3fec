//! examples/express: the middleware, run by a real Node.js against a real
//! floodgate. Skipped (with a message) where `node` is not installed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use floodgate_e2e::{http_request, repo_root, Floodgate, FREE_PORTS};

#[test]
fn express_middleware_limits_and_copies_headers() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("node is not installed: skipping the Express example");
        return;
    }
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[policy]]\nname = \"ai-per-user\"\nmatch = {{ endpoint = \"ai\" }}\nkey = [\"user\"]\nlimit = 2\nwindow = \"1h\"\n"
    ));
    let (mut node, addr) = start_demo(&fg, 0);
    let chat = |user: &str| {
        http_request(
            addr,
            "POST",
            "/api/chat/x",
            &[("x-user-id", user)],
            Some(b""),
        )
    };
    let statuses: Vec<u16> = (0..3).map(|_| chat("u1").status).collect();
    let denied = chat("u1");
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(denied.status, 429);
    assert!(denied.header("retry-after").is_some());
    assert!(denied.header("ratelimit").unwrap().contains("r=0"));
    assert_eq!(denied.json()["policy"], "ai-per-user");
}

/// Starts `examples/express/demo.js` against `fg`, waiting up to
/// `max_wait_ms`; returns the node process and the app's address.
fn start_demo(fg: &Floodgate, max_wait_ms: u64) -> (std::process::Child, std::net::SocketAddr) {
    let mut node = Command::new("node")
        .arg(repo_root().join("examples/express/demo.js"))
        .env("FLOODGATE_URL", format!("http://{}", fg.http))
        .env("FLOODGATE_MAX_WAIT_MS", max_wait_ms.to_string())
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut line = String::new();
    BufReader::new(node.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .trim_start_matches("listening on ")
        .parse()
        .unwrap();
    (node, format!("127.0.0.1:{port}").parse().unwrap())
}

#[test]
fn express_middleware_reserves_and_settles() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("node is not installed: skipping the Express example");
        return;
    }
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[policy]]\nname = \"tokens\"\nmatch = {{ endpoint = \"llm\" }}\nkey = [\"user\"]\nlimit = 1000\nwindow = \"1h\"\nalgorithm = \"fixed_window\"\nsettle = true\n"
    ));
    let (mut node, addr) = start_demo(&fg, 0);
    let call = |estimate: &str, actual: &str| {
        http_request(
            addr,
            "POST",
            "/api/llm/complete",
            &[
                ("x-user-id", "u1"),
                ("x-estimate", estimate),
                ("x-actual", actual),
            ],
            Some(b""),
        )
    };
    let left = || {
        fg.check(r#"{"attributes": {"user": "u1", "endpoint": "llm"}, "hits": 0}"#)
            .json()["remaining"]
            .as_u64()
            .unwrap()
    };
    let first = call("100", "700");
    let second = call("200", "50");
    let third = call("200", "900");
    let fourth = call("1", "1");
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["settled"], true, "{}", first.text());
    assert_eq!(first.json()["charged"], 600);
    assert_eq!(second.json()["charged"], -150);
    // 700 + 50 + 900 = 1650 of 1000: the overrun is recorded, and the next
    // call is refused.
    assert_eq!(third.json()["charged"], 700);
    assert_eq!(left(), 0);
    assert_eq!(fourth.status, 429);
}

/// The middleware answers with the policy's `deny_status` and waits for
/// its turn when the demo is told to (`FLOODGATE_MAX_WAIT_MS`).
#[test]
fn express_middleware_answers_deny_status_and_waits() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("node is not installed: skipping the Express example");
        return;
    }
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[policy]]\nname = \"ai-capacity\"\nmatch = {{ endpoint = \"ai\" }}\nkey = [\"user\"]\nlimit = 1\nwindow = \"1h\"\ndeny_status = 503\n\n[[policy]]\nname = \"api-paced\"\nmatch = {{ endpoint = \"api\" }}\nkey = [\"user\"]\nlimit = 1\nwindow = \"1s\"\nalgorithm = \"token_bucket\"\nmax_wait = \"3s\"\n"
    ));
    let (mut node, addr) = start_demo(&fg, 3_000);
    let call = |method: &str, path: &str| {
        http_request(addr, method, path, &[("x-user-id", "u1")], Some(b""))
    };
    let chat: Vec<u16> = (0..2).map(|_| call("POST", "/api/chat/x").status).collect();
    // The token comes back within the wait: served, not refused.
    let api: Vec<u16> = (0..2).map(|_| call("GET", "/api/items").status).collect();
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(chat, [200, 503]);
    assert_eq!(api, [200, 200]);
}
