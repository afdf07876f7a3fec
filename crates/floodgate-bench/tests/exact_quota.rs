//! Runs the bench library in-process against the real `floodgate` binary
//! (started on free loopback ports) and checks that a sliding-log policy of
//! 100 per minute admits exactly 100 of 500 checks on one hot key, over
//! gRPC, Envoy RLS and HTTP.
//!
//! The binary must be built first (`cargo build --bin floodgate`).

use std::net::SocketAddr;

use floodgate_bench::{run, Args, Report};

const CONFIG: &str = r#"
[server]
http = "127.0.0.1:0"
grpc = "127.0.0.1:0"

[[policy]]
name = "exact"
key = ["user"]
limit = 100
window = "1m"
algorithm = "sliding_log"
"#;

/// A sidecar on free loopback ports serving [`CONFIG`] (the shared
/// harness of the end-to-end tests).
fn start() -> floodgate_e2e::Floodgate {
    floodgate_e2e::Floodgate::start(CONFIG)
}

async fn bench(protocol: &str, target: SocketAddr) -> Report {
    let target = target.to_string();
    let args = args(&[
        "--protocol",
        protocol,
        "--target",
        &target,
        "--requests",
        "500",
        "--duration",
        "2m",
        "--timeout",
        "30s",
        "--keys",
        "hot",
        "--connections",
        "2",
        "--in-flight",
        "8",
        "--accuracy",
        "--limit",
        "100",
    ]);
    let config = args.into_config().expect("valid config");
    run(&config).await.expect("bench run")
}

/// Parses bench flags as the binary would.
fn args(flags: &[&str]) -> Args {
    use clap::Parser;
    Args::try_parse_from(std::iter::once("floodgate-bench").chain(flags.iter().copied()))
        .expect("flags parse")
}

fn assert_exact(protocol: &str, report: &Report) {
    let json = report.to_json();
    assert_eq!(report.errors.transport, 0, "{protocol}: {json}");
    assert_eq!(report.errors.status, 0, "{protocol}: {json}");
    assert_eq!(report.allowed, 100, "{protocol}: {json}");
    assert_eq!(report.denied, 400, "{protocol}: {json}");
    assert_eq!(report.checks, 500, "{protocol}: {json}");
    let accuracy = report.accuracy.as_ref().expect("accuracy report");
    assert_eq!(accuracy.keys, 1);
    assert_eq!(accuracy.max_admitted, 100);
    assert_eq!(accuracy.keys_over_quota, 0);
    assert_eq!(accuracy.over_admission, 0);
    assert!(report.latency_us.max > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_key_admits_exactly_the_quota() {
    // One sidecar per protocol, so each starts with an empty counter.
    let grpc = start();
    assert_exact("grpc", &bench("grpc", grpc.grpc).await);

    let envoy = start();
    assert_exact("envoy", &bench("envoy", envoy.grpc).await);

    let http = start();
    assert_exact("http", &bench("http", http.http).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_a_clear_error() {
    // A port nothing listens on: bind one, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let args = args(&[
        "--protocol",
        "http",
        "--target",
        &format!("127.0.0.1:{port}"),
        "-n",
        "1",
    ]);
    let error = run(&args.into_config().unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accuracy_mode_catches_independent_sidecars_over_admitting() {
    // Two sidecars with local stores do not share counters: spread
    // round-robin, each admits its own 100, and the report shows 100 over.
    let a = start();
    let b = start();
    let config = args(&[
        "--target",
        &a.grpc.to_string(),
        "--target",
        &b.grpc.to_string(),
        "-n",
        "500",
        "-d",
        "2m",
        "--keys",
        "hot",
        "-c",
        "1",
        "-m",
        "4",
        "--accuracy",
        "--limit",
        "100",
    ])
    .into_config()
    .unwrap();
    let report = run(&config).await.unwrap();
    let accuracy = report.accuracy.as_ref().unwrap();
    assert_eq!(
        (report.allowed, report.denied),
        (200, 300),
        "{}",
        report.to_json()
    );
    assert_eq!(accuracy.max_admitted, 200);
    assert_eq!(accuracy.keys_over_quota, 1);
    assert_eq!(accuracy.over_admission, 100);
    assert!(!accuracy.within_quota());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_the_scheduled_checks() {
    let fg = start();
    let config = args(&[
        "--target",
        &fg.http.to_string(),
        "--protocol",
        "http",
        "--rate",
        "1000",
        "-n",
        "300",
        "-d",
        "1m",
        "--keys",
        "uniform:50",
        "-c",
        "2",
        "-m",
        "4",
    ])
    .into_config()
    .unwrap();
    let report = run(&config).await.unwrap();
    assert_eq!(report.checks, 300, "{}", report.to_json());
    assert_eq!(report.unsent, Some(0));
    assert_eq!(report.errors.transport + report.errors.status, 0);
    // 300 checks at 1000/s take at least 0.299 s of schedule.
    assert!(report.elapsed_s >= 0.29, "{}", report.elapsed_s);
    assert!(report.service_us.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_checks_are_status_errors() {
    // A control character in an attribute value is invalid input.
    let fg = start();
    for (protocol, addr, status) in [
        ("http", fg.http, "400"),
        ("grpc", fg.grpc, "grpc:InvalidArgument"),
    ] {
        let config = args(&[
            "--protocol",
            protocol,
            "--target",
            &addr.to_string(),
            "-n",
            "20",
            "-c",
            "1",
            "-m",
            "2",
            "--attr",
            "endpoint=a\u{1}b",
        ])
        .into_config()
        .unwrap();
        let report = run(&config).await.unwrap();
        assert_eq!(report.errors.status, 20, "{}", report.to_json());
        assert_eq!(report.errors.statuses[status], 20, "{}", report.to_json());
        assert_eq!((report.checks, report.errors.transport), (0, 0));
    }
}
