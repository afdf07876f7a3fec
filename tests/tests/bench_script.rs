//! `scripts/bench --smoke`: the benchmark suite runs end to end on the debug
//! binaries (its own redis-server, floodgate processes and no-op server on
//! free loopback ports), prints every scenario row, and writes JSON in which
//! every run answered checks without errors. No figure is asserted: targets
//! are met in benchmarks, never in tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floodgate_e2e::{binary, repo_root};
use serde_json::Value;

/// Every row of the table, by id.
const ROWS: [&str; 23] = [
    "ceiling-grpc",
    "ceiling-http",
    "local-grpc",
    "local-grpc-p99",
    "echo-p99",
    "local-http",
    "ceiling-redis",
    "redis-1",
    "redis-1-bound",
    "ceiling-client",
    "redis-1-client-bound",
    "redis-1-p99",
    "ping-p99",
    "fred-ping-p99",
    "least-p99",
    "fred-least-p99",
    "echo-relay-p99",
    "redis-3",
    "redis-3-bound",
    "redis-3-roundtrips",
    "redis-hot",
    "redis-hot-transport",
    "redis-hot-calls",
];

/// Every load run behind the rows.
const RUNS: [&str; 17] = [
    "noop-grpc",
    "noop-http",
    "local-grpc",
    "local-grpc-open",
    "noop-grpc-open",
    "local-http",
    "redis-ceiling",
    "redis-1",
    "client-ceiling",
    "redis-1-open",
    "noop-grpc-open-redis",
    "noop-ping-open",
    "noop-fred-ping-open",
    "noop-least-open",
    "noop-fred-least-open",
    "redis-3",
    "redis-hot",
];

#[test]
fn smoke_mode_runs_every_scenario() {
    let bin_dir = binary().parent().expect("bin dir").to_path_buf();
    for bin in ["floodgate-bench", "floodgate-noop", "floodgate-echo"] {
        assert!(
            bin_dir.join(bin).exists(),
            "{} is missing: build it first with `cargo build --workspace --bins`",
            bin_dir.join(bin).display()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let mut child = Command::new(repo_root().join("scripts/bench"))
        .arg("--smoke")
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--json")
        .arg(&json)
        // In smoke mode: one quiet probe, whatever it finds, no waiting.
        .arg("--wait-quiet")
        .arg("1")
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/bench");
    // Bounded: the smoke mode takes seconds; past five minutes it is stuck.
    const LIMIT: Duration = Duration::from_secs(300);
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/bench --smoke did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/bench --smoke failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the --json file"))
            .expect("the --json file is JSON");
    assert!(report["failure"].is_null(), "{report:#}");
    assert!(
        report["machine"]["nproc"].as_u64().unwrap_or(0) >= 1,
        "{report:#}"
    );
    // The CPU probe before and after: (median, slowest) × the fastest.
    for at in ["steadiness_start", "steadiness_end"] {
        let probe = report["machine"][at].as_array().expect(at);
        let (median, slowest) = (probe[0].as_f64().unwrap(), probe[1].as_f64().unwrap());
        assert!(1.0 <= median && median <= slowest, "{at}: {probe:?}");
    }
    assert!(stdout.contains("CPU probe"), "{stdout}");
    // The CPU time the hypervisor took during the run (0 on bare metal).
    let steal = report["machine"]["steal_ms"].as_f64().expect("steal_ms");
    assert!(steal >= 0.0, "{report:#}");
    assert!(stdout.contains("Host steal:"), "{stdout}");
    // --wait-quiet: the no-op server's p99, probed once before the run.
    let probes = report["machine"]["quiet_probes_p99_us"]
        .as_array()
        .expect("quiet_probes_p99_us");
    assert_eq!(probes.len(), 1, "{report:#}");
    assert!(probes[0].as_u64().is_some_and(|p| p > 0), "{report:#}");
    assert!(stdout.contains("Quiet probe (--wait-quiet)"), "{stdout}");
    let rows = report["rows"].as_array().expect("rows");
    for id in ROWS {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row {id} in {report:#}"));
        let scenario = row["scenario"].as_str().expect("scenario");
        assert!(stdout.contains(scenario), "row {id} not printed:\n{stdout}");
        assert!(row["value"].as_f64().is_some(), "row {id}: {row:#}");
    }
    // --wait-quiet also gates each open-loop p99 run, floodgate's and each
    // baseline's (smoke: 2 rounds).
    for id in [
        "local-grpc-p99",
        "echo-p99",
        "redis-1-p99",
        "ping-p99",
        "fred-ping-p99",
        "least-p99",
        "fred-least-p99",
        "echo-relay-p99",
    ] {
        let row = rows.iter().find(|r| r["id"] == id).expect(id);
        for key in ["quiet_probes_p99_us", "baseline_quiet_probes_p99_us"] {
            let gates = row[key].as_array().unwrap_or_else(|| panic!("{id}: {key}"));
            assert_eq!(gates.len(), 2, "row {id}, {key}: {row:#}");
            assert!(gates.iter().all(|p| p.as_u64().is_some_and(|p| p > 0)));
        }
        let note = row["note"].as_str().expect("note");
        assert!(note.contains("each run waited for quiet first"), "{note}");
        assert!(note.contains("before its baseline's"), "{note}");
    }
    // The notes that say no sidecar could meet a p99 target follow the
    // floors measured beside it, whichever way the run went: the least
    // script's exactly when it and floodgate both miss the target (µs), the
    // plain TCP echo's exactly when the echo misses it.
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).expect(id);
    let value = |id: &str| {
        row(id)["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{id}: {:#}", row(id)))
    };
    let note = |id: &str| row(id)["note"].as_str().unwrap_or("").to_string();
    let (redis_p99, least_p99) = (value("redis-1-p99"), value("fred-least-p99"));
    assert_eq!(
        note("redis-1-p99").contains("the least script a check must run"),
        redis_p99 > 2000.0 && least_p99 > 2000.0,
        "floodgate {redis_p99} µs, least script {least_p99} µs: {}",
        note("redis-1-p99")
    );
    for (id, floor, target) in [
        ("redis-1-p99", "echo-relay-p99", 2000.0),
        ("local-grpc-p99", "echo-p99", 1000.0),
    ] {
        assert_eq!(
            note(id).contains("even a plain TCP echo on threads"),
            value(floor) > target,
            "{id}: echo {} µs: {}",
            value(floor),
            note(id)
        );
    }
    for id in RUNS {
        let run = &report["runs"][id];
        let rps = run["throughput_rps"].as_f64().unwrap_or(0.0);
        assert!(rps > 0.0, "run {id}: no throughput: {run:#}");
        assert_eq!(run["errors"].as_u64(), Some(0), "run {id}: {run:#}");
        assert!(run["command"].as_str().is_some(), "run {id}: {run:#}");
    }
    // The plain TCP echo under each open-loop p99, one hop and two.
    for id in ["echo-open", "echo-relay-open"] {
        let run = &report["runs"][id];
        let p99 = run["report"]["latency_us"]["p99"].as_u64().unwrap_or(0);
        assert!(p99 > 0, "run {id}: no p99: {run:#}");
        assert!(
            run["report"]["messages"].as_u64().unwrap_or(0) > 0,
            "run {id}: {run:#}"
        );
    }
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    for (flags, message) in [
        (&["--wait-quiet", "0"][..], "minutes must be 1 to 600"),
        (&["--wait-quiet", "601"][..], "minutes must be 1 to 600"),
        (&["--wait-quiet", "ten"][..], "minutes must be 1 to 600"),
        (&["--rounds", "0"][..], "rounds must be 1 to 9"),
        (&["--duration", "5m"][..], "not a duration"),
        (&["--full", "--smoke"][..], "not allowed with"),
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
