//! `floodgate-echo`: the plain-thread TCP echo `scripts/bench` runs under
//! each open-loop p99. Every message it sends comes back and is timed, over
//! one hop or two; bad flags are refused before anything runs.

use std::process::Command;

use serde_json::Value;

const ECHO: &str = env!("CARGO_BIN_EXE_floodgate-echo");

fn echo(args: &[&str]) -> std::process::Output {
    Command::new(ECHO)
        .args(args)
        .output()
        .expect("run floodgate-echo")
}

#[test]
fn every_message_comes_back_timed_over_one_hop_and_two() {
    for (relay, hops) in [(false, 1), (true, 2)] {
        let mut args = vec!["--rate", "2000", "--for", "0.25", "--json"];
        if relay {
            args.push("--relay");
        }
        let out = echo(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["hops"], hops, "{report}");
        // 2000/s for 0.25 s: 500 messages, each timed once.
        assert_eq!(report["messages"], 500, "{report}");
        let latency = &report["latency_us"];
        let at = |q: &str| {
            latency[q]
                .as_u64()
                .unwrap_or_else(|| panic!("{q}: {report}"))
        };
        assert!(at("p50") <= at("p99") && at("p99") <= at("max"), "{report}");
    }
}

#[test]
fn the_table_line_names_the_rate_and_hops() {
    let out = echo(&["--rate", "1000", "--for", "0.1"]);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains("100 messages at 1000/s, 1 hop(s): p50"),
        "{line}"
    );
}

#[test]
fn bad_flags_are_refused() {
    for (args, message) in [
        (
            &["--rate", "0", "--for", "1"][..],
            "0 is not in 1..=10000000",
        ),
        (
            &["--rate", "10000001", "--for", "1"][..],
            "not in 1..=10000000",
        ),
        (
            &["--rate", "10", "--for", "0"][..],
            "not a number of seconds in (0, 600]",
        ),
        (
            &["--rate", "10", "--for", "601"][..],
            "not a number of seconds in (0, 600]",
        ),
        (
            &["--rate", "10", "--for", "NaN"][..],
            "not a number of seconds in (0, 600]",
        ),
        (&["--rate", "10"][..], "--for"),
    ] {
        let out = echo(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
