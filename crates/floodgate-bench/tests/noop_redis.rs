//! `floodgate-noop --redis`: the reference server that makes one `PING`
//! round trip to Redis per gRPC Check (the floor `scripts/bench` prints
//! beside floodgate's Redis p99), or with `--redis-command counter` one
//! call of the least check script (TIME, GET, SET … PX on the check's own
//! key), through its minimal client or through fred. It answers checks
//! only through Redis, refuses an address that is not loopback, and stops
//! with a clear error when Redis is not there.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use floodgate_bench::{run, Args};
use floodgate_e2e::RedisServer;

const NOOP: &str = env!("CARGO_BIN_EXE_floodgate-noop");

/// `redis-cli -p PORT ARGS…` against `redis`: its output.
fn cli(redis: &RedisServer, args: &[&str]) -> String {
    let port = redis.port.to_string();
    let argv: Vec<&str> = ["-p", port.as_str()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    floodgate_e2e::redis_servers::run("redis-cli", &argv)
}

/// Redis's count of `command` calls so far (`ping`, `evalsha`).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    cli(redis, &["INFO", "commandstats"])
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a count"))
}

/// Starts the no-op server against `redis`, asking `command` (`ping`,
/// `counter`) through `client`; returns it and its gRPC address.
fn start(redis: &RedisServer, client: &str, command: &str) -> (Child, String) {
    let mut child = Command::new(NOOP)
        .args([
            "--for",
            "60",
            "--redis",
            &format!("127.0.0.1:{}", redis.port),
            "--redis-client",
            client,
            "--redis-command",
            command,
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

/// 300 checks over 100 users through the no-op server asking `command`
/// through `client`; returns the Redis they went to, and its count of
/// `counted` calls made by the checks.
async fn three_hundred_checks(client: &str, command: &str, counted: &str) -> (RedisServer, u64) {
    let redis = RedisServer::start();
    let (mut noop, grpc) = start(&redis, client, command);
    let before = calls(&redis, counted);
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
    let after = calls(&redis, counted);
    let _ = noop.kill();
    let _ = noop.wait();
    assert_eq!(report.checks, 300, "{client}: {}", report.to_json());
    assert_eq!(
        report.errors.transport + report.errors.status,
        0,
        "{client}"
    );
    assert_eq!(report.allowed, 300, "{client}");
    (redis, after - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_is_one_ping_round_trip() {
    for client in ["minimal", "fred"] {
        let (_redis, pings) = three_hundred_checks(client, "ping", "ping").await;
        assert_eq!(pings, 300, "{client}: one PING per check");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_is_one_call_of_the_least_script_on_its_own_counter() {
    for client in ["minimal", "fred"] {
        let (redis, scripts) = three_hundred_checks(client, "counter", "evalsha").await;
        assert_eq!(scripts, 300, "{client}: one EVALSHA per check");
        // Each of the 100 users has its counter, under floodgate's key
        // layout, with a TTL; together they counted every check.
        let keys = cli(&redis, &["--scan", "--pattern", "fg:{bench:*}:sw:60000"]);
        let keys: Vec<&str> = keys.lines().collect();
        assert!(!keys.is_empty() && keys.len() <= 100, "{client}: {keys:?}");
        let mut total = 0;
        for key in &keys {
            total += cli(&redis, &["GET", key])
                .trim()
                .parse::<u64>()
                .expect("a count");
            let ttl: i64 = cli(&redis, &["PTTL", key]).trim().parse().expect("a TTL");
            assert!(ttl > 0 && ttl <= 120_000, "{client}: {key} PTTL {ttl}");
        }
        assert_eq!(total, 300, "{client}: every check counted once");
    }
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
fn a_redis_client_or_command_without_a_redis_is_refused() {
    for flags in [["--redis-client", "fred"], ["--redis-command", "counter"]] {
        let (code, stderr) = refused(&flags);
        assert_eq!(code, Some(2), "{flags:?}");
        assert!(stderr.contains("--redis <ADDR>"), "{flags:?}: {stderr}");
    }
}

#[test]
fn an_unknown_redis_command_is_refused() {
    let (code, stderr) = refused(&["--redis", "127.0.0.1:1", "--redis-command", "flushall"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid value 'flushall'"), "{stderr}");
}

#[test]
fn a_redis_that_is_not_loopback_is_refused() {
    let (code, stderr) = refused(&["--redis", "192.0.2.1:6379"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
