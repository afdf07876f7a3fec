//! `floodgate check-config`, `--version`, output into a closed pipe, shell
//! completions and the man page.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use floodgate_e2e::{binary, repo_root, run_cli};

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
fn the_shipped_token_budget_example_is_valid() {
    let path = repo_root().join("config/ai-budget.toml");
    let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for policy in ["tokens-per-user", "tokens-per-org", "llm-inflight"] {
        assert!(out.contains(policy), "{out}");
    }
    assert_eq!(out.matches(", settle (").count(), 2, "{out}");
    assert!(
        out.contains("cost usage total_tokens (estimate max_tokens, else 1000)"),
        "{out}"
    );
}

#[test]
fn settle_on_a_concurrency_policy_is_a_positioned_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[policy]]\nname = \"c\"\nkey = [\"user\"]\nlimit = 2\nalgorithm = \"concurrency\"\nsettle = true\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml:6:10"), "{err}");
    assert!(err.contains("settle applies only to"), "{err}");
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

/// A config whose summary and explanation are far larger than a pipe's
/// buffer (64 KiB), so writing them blocks until the reader reads or leaves.
fn big_config(dir: &Path) -> String {
    let mut text = String::from("[server]\nhttp = \"127.0.0.1:0\"\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "\n[[policy]]\nname = \"policy-{i}\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"1m\"\n"
        ));
    }
    let path = dir.join("big.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs `floodgate <args>` with stdout a pipe whose reader reads `lines`
/// lines and then closes it (`| head -n lines`); with 0 the reader is
/// closed before floodgate even starts, so its first write fails. Returns
/// (exit code, stderr).
fn into_closed_pipe(args: &[&str], lines: usize) -> (Option<i32>, String) {
    // The shell waits before exec-ing floodgate, so a reader that reads
    // nothing is gone before the first write, however short the output.
    let delay = if lines == 0 { "0.2" } else { "0" };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {delay}; exec \"$0\" \"$@\""))
        .arg(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn floodgate");
    let stdout = child.stdout.take().unwrap();
    if lines > 0 {
        let mut reader = BufReader::new(stdout);
        for _ in 0..lines {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "{args:?}: no output"
            );
        }
    } else {
        drop(stdout);
    }
    let out = child.wait_with_output().expect("wait for floodgate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_config(dir.path());
    let runs: [(&[&str], usize); 7] = [
        (&["check-config", &big], 2),
        (&["check-config", &big], 0),
        (&["explain", "--config", &big, "user=u1"], 1),
        (&["completions", "bash"], 0),
        (&["completions", "zsh"], 0),
        (&["man"], 0),
        (&["--help"], 0),
    ];
    for (args, lines) in runs {
        let (code, err) = into_closed_pipe(args, lines);
        assert!(!err.contains("panicked"), "{args:?} | head -{lines}: {err}");
        assert_eq!(code, Some(0), "{args:?} | head -{lines}: {err}");
        assert!(err.is_empty(), "{args:?} | head -{lines}: {err}");
    }
}

/// The subcommands `floodgate --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let (code, out, err) = run_cli(&["--help"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect();
    for expected in ["serve", "check-config", "explain", "completions", "man"] {
        assert!(names.iter().any(|n| n == expected), "{out}");
    }
    names
}

#[test]
fn completions_name_every_subcommand_and_bash_accepts_them() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, err) = run_cli(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "{shell}: no {name}\n{script}"
            );
        }
    }
    let (_, script, _) = run_cli(&["completions", "bash"]);
    assert!(script.contains("complete -F _floodgate"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.bash");
    std::fs::write(&path, &script).unwrap();
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sourced, it registers the completion and offers the subcommands.
    let probe = format!(
        "source {}; COMP_WORDS=(floodgate ch); COMP_CWORD=1; _floodgate floodgate ch floodgate; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        offered.lines().any(|l| l == "check-config"),
        "{offered}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unknown_shell_is_refused_clearly() {
    let (code, out, err) = run_cli(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    assert!(err.contains("bash, zsh, fish"), "{err}");
}

#[test]
fn the_man_page_is_roff_that_groff_renders() {
    let (code, page, err) = run_cli(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains("\n.TH floodgate 1"), "{page}");
    assert!(page.contains(".SH NAME\nfloodgate \\- "), "{page}");
    let names = subcommands();
    for name in &names {
        let heading = format!(".SS \"floodgate {}\"", name.replace('-', "\\-"));
        assert!(page.contains(&heading), "no {heading}\n{page}");
    }
    // Rendered by the real formatter when the machine has it (Debian's
    // groff-base, which `man` needs): no warnings, every command shown.
    if Command::new("groff").arg("--version").output().is_err() {
        eprintln!("groff is not installed: the page was checked as text only");
        return;
    }
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .env("GROFF_NO_SGR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut groff.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let out = groff.wait_with_output().unwrap();
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.is_empty(), "{warnings}");
    // Bold and underline come as overstrikes (`c\bc`); drop them.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    for section in ["NAME", "SYNOPSIS", "COMMANDS"] {
        assert!(plain.contains(section), "{plain}");
    }
    for name in &names {
        assert!(
            plain.contains(&format!("floodgate {name}")),
            "{name}\n{plain}"
        );
    }
}

/// What `serve` could not start with is an error `check-config` reports:
/// two listeners on one port, a log filter the server could not read.
#[test]
fn a_shared_port_and_an_unreadable_log_filter_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nhttp = \"127.0.0.1:39001\"\ngrpc = \"127.0.0.1:39001\"\nlog = \"floodgate=loud\"\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(":3:8: grpc (127.0.0.1:39001) and http"),
        "{err}"
    );
    assert!(
        err.contains(":4:7: invalid log filter \"floodgate=loud\""),
        "{err}"
    );
    // serve refuses it too, before binding anything.
    let (code, _, err) = run_cli(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("listen on one port"), "{err}");
}
