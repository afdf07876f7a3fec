//! `floodgate-bench noop`: the baseline server answers floodgate.v1 Check,
//! Envoy RLS ShouldRateLimit and HTTP `POST /v1/check` with a constant
//! allow, announces its listeners on one line, and refuses an address that
//! is not loopback. With `--redis`, each floodgate.v1 check makes one Redis
//! call first.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use floodgate_bench::{run, Args};

const BENCH: &str = env!("CARGO_BIN_EXE_floodgate-bench");

/// Starts the no-op server on free loopback ports: it and its (http, grpc)
/// addresses, from the line it prints once both are bound.
fn start() -> (Child, String, String) {
    start_with(&[])
}

/// [`start`] with extra flags.
fn start_with(extra: &[&str]) -> (Child, String, String) {
    let mut child = Command::new(BENCH)
        .args(["noop", "--for", "60"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start floodgate-bench noop");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its first line");
    let rest = line
        .trim()
        .strip_prefix("floodgate-bench noop listening http=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let (http, grpc) = rest.split_once(" grpc=").expect("both addresses");
    (child, http.to_string(), grpc.to_string())
}

/// `checks` checks of `protocol` against `target`, all answered allowed.
async fn all_allowed(protocol: &str, target: &str, checks: u64) {
    let args = <Args as clap::Parser>::try_parse_from([
        "floodgate-bench",
        "--protocol",
        protocol,
        "--target",
        target,
        "-n",
        &checks.to_string(),
        "-c",
        "2",
        "-m",
        "8",
        "--keys",
        "uniform:100",
    ])
    .expect("flags parse");
    let report = run(&args.into_config().expect("config"))
        .await
        .expect("run");
    assert_eq!(report.checks, checks, "{protocol}: {}", report.to_json());
    assert_eq!(report.allowed, checks, "{protocol}: {}", report.to_json());
    assert_eq!(
        report.errors.transport + report.errors.status,
        0,
        "{protocol}: {}",
        report.to_json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_each_check_makes_one_redis_call_first() {
    let redis = floodgate_e2e::RedisServer::start();
    let (mut noop, _, grpc) = start_with(&["--redis", &redis.url()]);
    all_allowed("grpc", &grpc, 300).await;
    assert_eq!(redis.cli(&["GET", "floodgate-bench:noop"]).trim(), "300");
    let _ = noop.kill();
    let _ = noop.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_group_concurrent_checks_share_calls() {
    let redis = floodgate_e2e::RedisServer::start();
    let (mut noop, _, grpc) = start_with(&["--redis", &redis.url(), "--redis-group"]);
    all_allowed("grpc", &grpc, 2000).await;
    // Every check counted once, in fewer calls than checks.
    assert_eq!(redis.cli(&["GET", "floodgate-bench:noop"]).trim(), "2000");
    let stats = redis.cli(&["INFO", "commandstats"]);
    let calls: u64 = stats
        .split("cmdstat_incrby:calls=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no INCRBY calls in {stats}"));
    assert!(calls < 2000, "{calls} calls for 2000 checks");
    let _ = noop.kill();
    let _ = noop.wait();
}

#[test]
fn redis_group_needs_redis() {
    let out = Command::new(BENCH)
        .args(["noop", "--for", "5", "--redis-group"])
        .output()
        .expect("run floodgate-bench noop");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_redis_that_is_not_loopback_or_not_there_is_refused() {
    let nobody = format!("redis://127.0.0.1:{}", floodgate_e2e::free_port());
    for (url, message) in [
        ("redis://192.0.2.1:6379", "expected a loopback Redis"),
        ("http://127.0.0.1:6379", "expected a loopback Redis"),
        // The part before @ is a user and password, not the host.
        (
            "redis://127.0.0.1:x@192.0.2.1:6379",
            "expected a loopback Redis",
        ),
        ("redis://localhost:6379", "expected a loopback Redis"),
        (nobody.as_str(), "cannot connect"),
    ] {
        let out = Command::new(BENCH)
            .args(["noop", "--for", "5", "--redis", url])
            .output()
            .expect("run floodgate-bench noop");
        assert!(out.stdout.is_empty(), "{url}: no listener was announced");
        assert_ne!(out.status.code(), Some(0), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{url}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_is_answered_with_an_allow() {
    let (mut noop, http, grpc) = start();
    for (protocol, target) in [("grpc", &grpc), ("envoy", &grpc), ("http", &http)] {
        all_allowed(protocol, target, 300).await;
    }
    // An HTTP body is decoded as floodgate decodes it: one that is not a
    // check is refused.
    for (body, status) in [
        (r#"{"attributes": {"user": "u1"}, "hits": 2}"#, "200"),
        (r#"{"attributes": {"user": 5}}"#, "400"),
        ("not json", "400"),
    ] {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&http).expect("connect");
        let head = format!(
            "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{body}: {answer}"
        );
    }
    let _ = noop.kill();
    let _ = noop.wait();
}

#[test]
fn an_address_that_is_not_loopback_is_refused() {
    for flag in ["--grpc", "--http"] {
        let out = Command::new(BENCH)
            .args(["noop", "--for", "5", flag, "192.0.2.1:9721"])
            .output()
            .expect("run floodgate-bench noop");
        assert!(out.stdout.is_empty(), "{flag}: no listener was announced");
        assert_ne!(out.status.code(), Some(0), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not a loopback address"),
            "{flag}: {stderr}"
        );
    }
}

#[test]
fn load_flags_and_the_noop_subcommand_do_not_mix() {
    let out = Command::new(BENCH)
        .args(["--protocol", "http", "noop"])
        .output()
        .expect("run floodgate-bench");
    assert_eq!(out.status.code(), Some(2));
}
