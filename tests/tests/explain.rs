//! `floodgate explain` against the shipped configs.

use floodgate_e2e::{repo_root, run_cli};

fn shipped(file: &str) -> String {
    repo_root().join(file).to_str().unwrap().to_string()
}

#[test]
fn explains_the_default_config() {
    let config = shipped("config/floodgate.toml");
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        &config,
        "user=u1",
        "endpoint=ai",
        "ip=1.2.3.4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("attributes: endpoint=ai ip=1.2.3.4 user=u1"),
        "{out}"
    );
    assert!(out.contains("ai-per-user: applies (500 per 1m"), "{out}");
    assert!(out.contains("counter key: ai-per-user:u1\n"), "{out}");
    assert!(out.contains("auth-per-ip: does not apply"), "{out}");
    assert!(
        out.contains("match endpoint = \"auth\": endpoint is \"ai\""),
        "{out}"
    );
    assert!(out.contains("api-per-user: does not apply"), "{out}");
    // The per-address backstops count the user's address too.
    assert!(out.contains("ai-per-ip: applies"), "{out}");
    assert!(out.contains("all-per-ip: applies"), "{out}");
    assert!(out.contains("3 of 5 policies apply"), "{out}");

    // Without a user, the per-user policy counts the client address, and
    // says so.
    let (code, out, _) = run_cli(&[
        "explain",
        "--config",
        &config,
        "endpoint=api",
        "ip=127.0.0.1",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("api-per-user: applies (1000 per 1m, sliding_window)\n  key user|ip → ip=127.0.0.1 (stand-in)\n  counter key: api-per-user:ip=127.0.0.1\n"),
        "{out}"
    );
    // With neither, it names both missing alternatives.
    let (code, out, _) = run_cli(&["explain", "--config", &config, "endpoint=api"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("key user|ip: none of user, ip is present"),
        "{out}"
    );
}

#[test]
fn redis_config_shows_redis_keys() {
    let config = shipped("config/floodgate-redis.toml");
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        &config,
        "endpoint=auth",
        "ip=1.2.3.4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("auth-per-ip: applies"), "{out}");
    assert!(out.contains(":{auth-per-ip:1.2.3.4}:"), "{out}");
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let config = shipped("config/floodgate.toml");
    for (arg, expect) in [
        ("user", "expected name=value"),
        ("=u1", "empty attribute name"),
    ] {
        let (code, _, err) = run_cli(&["explain", "--config", &config, arg]);
        assert_eq!(code, 2, "{arg}: {err}");
        assert!(err.contains(expect), "{arg}: {err}");
    }
    let (code, _, err) = run_cli(&["explain", "--config", "/nonexistent.toml", "user=u1"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

/// The key `explain` prints is the key the store writes, shape and all,
/// for every algorithm whose key carries one.
#[test]
fn explain_prints_the_key_the_redis_store_writes() {
    use floodgate_e2e::{Floodgate, RedisServer, FREE_PORTS};
    let redis = RedisServer::start();
    let config = format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"ex\"\n\n\
         [[policy]]\nname = \"sw\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"90s\"\n\n\
         [[policy]]\nname = \"tb\"\nkey = [\"user\"]\nlimit = 4\nwindow = \"2s\"\nalgorithm = \"token_bucket\"\nburst = 7\n",
        redis.url()
    );
    let fg = Floodgate::start(&config);
    let r = fg.check(r#"{"attributes": {"user": "u1"}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let path = fg.config_path();
    let (code, out, err) = run_cli(&["explain", "--config", path.to_str().unwrap(), "user=u1"]);
    assert_eq!(code, 0, "{err}");
    let printed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("counter key: "))
        .collect();
    assert_eq!(
        printed,
        ["ex:{sw:u1}:sw:90000", "ex:{tb:u1}:tb:7:500000"],
        "{out}"
    );
    let stored = redis.cli(&["--scan", "--pattern", "ex:{*"]);
    // (Besides the heartbeat's `ex:{hb}:instances`.)
    let mut stored: Vec<&str> = stored
        .lines()
        .filter(|k| *k != "ex:{hb}:instances")
        .collect();
    stored.sort_unstable();
    assert_eq!(stored, printed);
}
