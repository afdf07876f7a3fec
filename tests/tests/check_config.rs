//! `floodgate check-config` and `--version`.

use floodgate_e2e::{repo_root, run_cli};

#[test]
fn shipped_configs_are_valid() {
    for file in [
        "config/floodgate.toml",
        "config/floodgate-redis.toml",
        "examples/nginx/floodgate.toml",
    ] {
        let path = repo_root().join(file);
        let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{file}: {err}");
        for policy in ["ai-per-user", "auth-per-ip", "api-per-user"] {
            assert!(out.contains(policy), "{file}: {out}");
        }
    }
}

#[test]
fn every_error_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nhtp = \"127.0.0.1:1\"\n\n[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 0\nwindow = \"1m\"\n\n[[policy]]\nname = \"q\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"5 minutes\"\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("bad.toml:")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains("bad.toml:2:1"), "{err}");
    assert!(lines[1].contains("bad.toml:7:9"), "{err}");
    assert!(lines[2].contains("bad.toml:14:10"), "{err}");
}

#[test]
fn missing_file_and_serve_with_a_bad_file_fail_clearly() {
    let (code, _, err) = run_cli(&["check-config", "/nonexistent/floodgate.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/floodgate.toml"), "{err}");
    let (code, _, err) = run_cli(&["serve", "--config", "/nonexistent/floodgate.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/floodgate.toml"), "{err}");
}

#[test]
fn version() {
    let (code, out, _) = run_cli(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("floodgate "), "{out}");
}
