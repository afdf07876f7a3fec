//! `scripts/bench --quick` runs end to end on the debug binaries (its own
//! redis-server, floodgate processes and no-op baseline on free loopback
//! ports) and writes JSON with every row of the table. No figure is
//! asserted: targets are met in benchmarks, never in tests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use floodgate_e2e::{binary, http_request, repo_root, run_bounded, Floodgate, FREE_PORTS};
use floodgate_proto::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::Entry, RateLimitDescriptor,
};
use floodgate_proto::envoy::service::ratelimit::v3 as rls;
use floodgate_proto::floodgate::v1 as pb;
use rls::rate_limit_service_client::RateLimitServiceClient;
use serde_json::Value;

/// Every measured row, as (scenario, figure).
const MEASURED: [(&str, &str); 20] = [
    ("in-memory, floodgate.v1 gRPC", "server CPU per check"),
    ("in-memory, floodgate.v1 gRPC", "throughput"),
    ("in-memory, Envoy RLS", "server CPU per check"),
    ("in-memory, Envoy RLS", "throughput"),
    ("in-memory, HTTP /v1/check", "server CPU per check"),
    ("in-memory, HTTP /v1/check", "throughput"),
    ("Redis store, 1 policy", "server CPU per check"),
    (
        "Redis store, 1 policy",
        "server CPU per check, over Redis calls alone",
    ),
    ("Redis store, 1 policy", "EVALSHA per check"),
    ("Redis store, 1 policy", "Redis CPU per check"),
    ("Redis store, 3 policies", "server CPU per check"),
    ("Redis store, 3 policies", "EVALSHA per check"),
    (
        "hot key far over its limit (Redis store)",
        "server CPU per check",
    ),
    (POLICIES, "server CPU per check"),
    (POLICIES, "config load (spawn to listening)"),
    (POLICIES, "config reload (SIGHUP to reloaded)"),
    (KEYS, "server CPU per check"),
    (KEYS, "keys live (local store, last sweep)"),
    (KEYS, "RSS per live key (growth from 1 000 keys)"),
    (LATENCY, "p99"),
];
const POLICIES: &str = "10 000 policies (one per tenant), in-memory, floodgate.v1 gRPC";
const LATENCY: &str = "latency, floodgate.v1 gRPC at";
const KEYS: &str = "in-memory, floodgate.v1 gRPC, many live keys (1 million; --quick 20 000)";

#[test]
fn quick_mode_writes_every_row() {
    let bin_dir = binary().parent().expect("bin dir").to_path_buf();
    assert!(
        bin_dir.join("floodgate-bench").exists(),
        "build floodgate-bench first: `cargo build --workspace --bins`"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    // Bounded: quick mode takes under a minute; past five it is stuck.
    let out = run_bounded(
        Command::new(repo_root().join("scripts/bench"))
            .arg("--quick")
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--json")
            .arg(&json)
            .current_dir(repo_root()),
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/bench --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the --json file"))
            .expect("the --json file is JSON");
    assert!(report["failure"].is_null(), "{report:#}");
    let rows = report["rows"].as_array().expect("rows");
    for (scenario, figure) in MEASURED {
        let row = rows
            .iter()
            .find(|r| {
                r["scenario"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(scenario))
                    && r["figure"] == figure
            })
            .unwrap_or_else(|| panic!("no row {scenario}: {figure} in {report:#}"));
        let value = row["value"].as_f64().expect("a measured value");
        assert!(value > 0.0 || figure == "EVALSHA per check", "{row:#}");
        assert!(
            stdout.contains(scenario),
            "{scenario} not printed:\n{stdout}"
        );
        let verdict = row["verdict"].as_str().expect("verdict");
        if row["ratio"].is_null() {
            assert!(row["baseline"].is_null(), "{row:#}");
        } else {
            assert!(row["ratio"].as_f64().is_some_and(|r| r > 0.0), "{row:#}");
            assert!(["met", "missed"].contains(&verdict), "{row:#}");
        }
    }
    // What --quick does not run (criterion, callgrind) says so, with no figure.
    let unmeasured: Vec<&Value> = rows.iter().filter(|r| r["value"].is_null()).collect();
    assert!(!unmeasured.is_empty(), "{report:#}");
    for row in unmeasured {
        assert_eq!(row["verdict"], "not measured", "{row:#}");
    }
    // Each measured server ran alone on its CPU, Redis on the others (one
    // CPU: every process on it).
    let cpus = &report["cpus"];
    let processes = cpus["processes"].as_array().expect("processes placed");
    assert!(
        processes.iter().any(|p| p["role"] == "server")
            && processes.iter().any(|p| p["role"] == "other"),
        "{cpus:#}"
    );
    for process in processes {
        let side = if process["role"] == "server" {
            "servers"
        } else {
            "others"
        };
        assert_eq!(process["cpus"], cpus[side], "{cpus:#}");
    }
    if cpus["servers"] != cpus["others"] {
        let (servers, others) = (cpus["servers"].as_array(), cpus["others"].as_array());
        let (servers, others) = (servers.expect("servers"), others.expect("others"));
        assert_eq!(servers.len(), 1, "{cpus:#}");
        assert!(!others.contains(&servers[0]), "{cpus:#}");
    }
    // Every round answered checks, and the Redis ones went to Redis.
    // Each round says how busy the server's CPU and the generator's were;
    // the notes name any protocol whose no-op the generator held back.
    assert!(report["notes"].is_array(), "{report:#}");
    for run in report["runs"].as_array().expect("runs") {
        assert!(run["checks"].as_u64().is_some_and(|c| c > 0), "{run:#}");
        for busy in ["server_busy", "load_busy"] {
            assert!(run[busy].as_f64().is_some_and(|b| b > 0.0), "{run:#}");
        }
        if run["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("redis-"))
        {
            assert!(run["redis_cpu_us"].as_f64().is_some(), "{run:#}");
        }
    }
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    for (flags, message) in [
        (
            &["--bin-dir", "/nonexistent"][..],
            "no floodgate, floodgate-bench and examples/instructions there",
        ),
        (&["--rounds", "3"][..], "unrecognized arguments"),
        (
            &["--json", "/nonexistent/dir/x.json"][..],
            "its directory does not exist",
        ),
    ] {
        let out = Command::new(repo_root().join("scripts/bench"))
            .args(flags)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}

/// The no-op's constant answers are floodgate's answers for the bench's one
/// policy (same fields, same sizes), so that a ratio to it counts
/// floodgate's work, not fewer bytes on the wire. Only the time to the
/// window's reset may differ.
#[tokio::test]
async fn the_no_op_answers_what_floodgate_answers_for_the_bench_policy() {
    let policy = "[[policy]]\nname = \"bench\"\nkey = [\"user\"]\nlimit = 100000000\n\
                  window = \"1m\"\nalgorithm = \"sliding_window\"\n";
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[store]\nkind = \"local\"\n\n{policy}"
    ));
    let mut noop = Command::new(binary().with_file_name("floodgate-bench"))
        .args(["noop", "--for", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start floodgate-bench noop (cargo build --workspace --bins)");
    let mut line = String::new();
    BufReader::new(noop.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the no-op's first line");
    let (http, grpc) = line
        .trim()
        .strip_prefix("floodgate-bench noop listening http=")
        .and_then(|rest| rest.split_once(" grpc="))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let (noop_http, noop_grpc) = (http.parse().expect("http"), format!("http://{grpc}"));

    // HTTP: the same status, body bytes and rate-limit headers.
    let body = br#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let answers =
        [fg.http, noop_http].map(|to| http_request(to, "POST", "/v1/check", &[], Some(body)));
    let shown = answers.each_ref().map(|a| {
        let body = without_resets(&a.text());
        let mut headers: Vec<(String, String)> = (a.headers.iter())
            .filter(|(name, _)| !["date", "content-length"].contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), without_reset(value)))
            .collect();
        headers.sort();
        (a.status, body, headers)
    });
    assert_eq!(shown[0], shown[1]);

    // floodgate.v1 Check: the same message (each protocol's check is its
    // user's first, as the no-op's constant answer says).
    let request = pb::CheckRequest {
        attributes: [("user", "u2"), ("endpoint", "ai")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        ..pb::CheckRequest::default()
    };
    let mut checks = Vec::new();
    for uri in [fg.grpc_uri(), noop_grpc.clone()] {
        let mut client = pb::rate_limiter_client::RateLimiterClient::connect(uri)
            .await
            .expect("connect");
        let mut answer = client
            .check(request.clone())
            .await
            .expect("check")
            .into_inner();
        answer.reset_after_ms = 0;
        answer.statuses[0].reset_after_ms = 0;
        checks.push(answer);
    }
    assert_eq!(checks[0], checks[1]);

    // Envoy RLS: the same message.
    let request = rls::RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "user".into(),
                value: "u3".into(),
            }],
            ..RateLimitDescriptor::default()
        }],
        ..rls::RateLimitRequest::default()
    };
    let mut answers = Vec::new();
    for uri in [fg.grpc_uri(), noop_grpc] {
        let mut client = RateLimitServiceClient::connect(uri).await.expect("connect");
        let mut answer = (client.should_rate_limit(request.clone()).await)
            .expect("should_rate_limit")
            .into_inner();
        answer.statuses[0].duration_until_reset = None;
        for header in &mut answer.response_headers_to_add {
            header.value = without_reset(&header.value);
        }
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1]);
    let _ = noop.kill();
    let _ = noop.wait();
}

/// A JSON body with every `"reset_after_ms"` value blanked (the time to
/// the window's reset is the one field that differs between answers).
fn without_resets(body: &str) -> String {
    const FIELD: &str = "\"reset_after_ms\":";
    let mut parts = body.split(FIELD);
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        out.push_str(FIELD);
        out.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
    }
    out
}

/// A `RateLimit` header value without its seconds to the reset (`;t=N`).
fn without_reset(value: &str) -> String {
    value.split(";t=").next().unwrap_or(value).to_string()
}
