//! `floodgate-noop --redis`: the reference server that makes one `PING`
//! round trip to Redis per gRPC Check (the floor `scripts/bench` prints
//! beside floodgate's Redis p99), through its minimal client or through
//! fred. It answers checks only through Redis, refuses an address that is
//! not loopback, and stops with a clear error when Redis is not there.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use floodgate_bench::{run, Args};
use floodgate_e2e::RedisServer;

const NOOP: &str = env!("CARGO_BIN_EXE_floodgate-noop");

/// Redis's `PING` count so far.
fn pings(redis: &RedisServer) -> u64 {
    let port = redis.port.to_string();
    let stats =
        floodgate_e2e::redis_servers::run("redis-cli", &["-p", &port, "INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a count"))
}

/// Starts the no-op server against `redis`, PINGing through `client`;
/// returns it and its gRPC address.
fn start(redis: &RedisServer, client: &str) -> (Child, String) {
    let mut child = Command::new(NOOP)
        .args([
            "--for",
            "60",
            "--redis",
            &format!("127.0.0.1:{}", redis.port),
            "--redis-client",
            client,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start floodgate-noop");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its first line");
    let grpc = line
        .trim()
        .rsplit_once("grpc=")
        .map(|(_, addr)| addr.to_string())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, grpc)
}

/// 300 checks through the no-op server PINGing through `client`.
async fn three_hundred_checks(client: &str) {
    let redis = RedisServer::start();
    let (mut noop, grpc) = start(&redis, client);
    let before = pings(&redis);
    let args = <Args as clap::Parser>::try_parse_from([
        "floodgate-bench",
        "--protocol",
        "grpc",
        "--target",
        &grpc,
        "-n",
        "300",
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
    let after = pings(&redis);
    let _ = noop.kill();
    let _ = noop.wait();
    assert_eq!(report.checks, 300, "{client}: {}", report.to_json());
    assert_eq!(
        report.errors.transport + report.errors.status,
        0,
        "{client}"
    );
    assert_eq!(report.allowed, 300, "{client}");
    assert_eq!(after - before, 300, "{client}: one PING per check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_is_one_ping_round_trip() {
    three_hundred_checks("minimal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_is_one_ping_round_trip_through_fred() {
    three_hundred_checks("fred").await;
}

/// Runs the no-op server with `args` to its end: its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(NOOP)
        .args(["--for", "5"])
        .args(args)
        .output()
        .expect("run floodgate-noop");
    assert!(out.stdout.is_empty(), "{args:?}: no listener was announced");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_redis_there_is_a_clear_error() {
    // A port nothing listens on: bind one, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    for client in ["minimal", "fred"] {
        let (code, stderr) = refused(&["--redis", &addr, "--redis-client", client]);
        assert_ne!(code, Some(0), "{client}");
        assert!(
            stderr.contains("cannot connect to Redis"),
            "{client}: {stderr}"
        );
    }
}

#[test]
fn a_redis_client_without_a_redis_is_refused() {
    let (code, stderr) = refused(&["--redis-client", "fred"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--redis"), "{stderr}");
}

#[test]
fn a_redis_that_is_not_loopback_is_refused() {
    let (code, stderr) = refused(&["--redis", "192.0.2.1:6379"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
