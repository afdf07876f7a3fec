//! `scripts/bench-express --quick` runs end to end with the floodgate
//! binary under test: its own redis-server, the Express app of
//! bench/express (npm packages from the registry) on 4 cluster workers
//! limited by express-rate-limit, by floodgate's middleware, behind
//! floodgate's reverse proxy and unlimited, loaded by h2load. Every row must
//! be measured; no speed is asserted (benchmarks, not tests, judge speed),
//! but floodgate must admit exactly the limit of the burst. Skipped (with a
//! message) where node or npm is not installed.

use std::process::{Command, Stdio};
use std::time::Duration;

use floodgate_e2e::{binary, repo_root, run_bounded};
use serde_json::Value;

/// Every setup, as (letter, name printed in the table).
const SETUPS: [(&str, &str); 4] = [
    ("A", "express-rate-limit + rate-limit-redis"),
    ("B", "floodgate middleware"),
    ("C", "floodgate reverse proxy"),
    ("D", "no limiter (baseline)"),
];

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn quick_mode_measures_every_setup() {
    if !installed("node") || !installed("npm") {
        eprintln!("node or npm is not installed: skipping scripts/bench-express");
        return;
    }
    let bin_dir = binary().parent().expect("bin dir").to_path_buf();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench-express.json");
    // Bounded: quick mode takes about a minute; past five it is stuck.
    let out = run_bounded(
        Command::new(repo_root().join("scripts/bench-express"))
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
        "scripts/bench-express --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the --json file"))
            .expect("the --json file is JSON");
    assert!(report["failure"].is_null(), "{report:#}");
    let rounds = report["rounds"].as_u64().expect("rounds");
    let burst = report["burst"].as_u64().expect("burst");
    let burst_limit = report["burst_limit"].as_u64().expect("burst_limit");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), SETUPS.len(), "{report:#}");
    for (setup, name) in SETUPS {
        let row = rows
            .iter()
            .find(|r| r["setup"] == setup)
            .unwrap_or_else(|| panic!("no row {setup} in {report:#}"));
        assert_eq!(row["name"], name, "{row:#}");
        assert!(
            stdout.contains(&format!("| {setup}. {name} |")),
            "{setup}. {name} not printed:\n{stdout}"
        );
        for figure in ["rps", "p99_ms", "cpu_us", "app_cpu_us"] {
            assert!(
                row[figure].as_f64().is_some_and(|v| v > 0.0),
                "{figure}: {row:#}"
            );
            let ratio = row[format!("{figure}_ratio")].as_f64();
            if figure != "app_cpu_us" {
                assert!(ratio.is_some_and(|r| r > 0.0), "{figure} ratio: {row:#}");
            }
        }
        // The CPU of every process taking part: floodgate in B and C, Redis
        // (and its script calls) in A, B and C.
        let limited = setup != "D";
        let with_floodgate = setup == "B" || setup == "C";
        assert_eq!(row["floodgate_cpu_us"].is_f64(), with_floodgate, "{row:#}");
        assert_eq!(row["redis_cpu_us"].is_f64(), limited, "{row:#}");
        assert_eq!(row["evalsha_per_request"].is_f64(), limited, "{row:#}");
        let admitted = &row["admitted"];
        if !limited {
            assert!(admitted.is_null(), "{row:#}");
            continue;
        }
        let admitted: Vec<u64> = admitted
            .as_array()
            .expect("admitted counts")
            .iter()
            .map(|n| n.as_u64().expect("a count"))
            .collect();
        assert_eq!(admitted.len() as u64, rounds, "{row:#}");
        assert!(admitted.iter().all(|n| (1..=burst).contains(n)), "{row:#}");
        if with_floodgate {
            // On Redis, concurrent checks of one user admit exactly the limit.
            assert!(admitted.iter().all(|&n| n == burst_limit), "{row:#}");
        }
    }
    assert_eq!(rows[0]["rps_ratio"], 1.0, "A is the reference: {report:#}");
    // Every round answered requests, and floodgate checked each one.
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(
        runs.len() as u64,
        rounds * SETUPS.len() as u64,
        "{report:#}"
    );
    for run in runs {
        assert!(run["requests"].as_u64().is_some_and(|n| n > 0), "{run:#}");
        assert_eq!(run["ok"], run["requests"], "{run:#}");
        if run["setup"] == "B" || run["setup"] == "C" {
            let checks = run["checks_per_request"]
                .as_f64()
                .expect("checks per request");
            assert!(checks >= 0.99, "{run:#}");
        }
    }
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    for (flags, message) in [
        (&["--bin-dir", "/nonexistent"][..], "no floodgate there"),
        (&["--rounds", "3"][..], "unrecognized arguments"),
        (
            &["--json", "/nonexistent/dir/x.json"][..],
            "its directory does not exist",
        ),
    ] {
        let out = Command::new(repo_root().join("scripts/bench-express"))
            .args(flags)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/bench-express");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}
