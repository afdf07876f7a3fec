//! The admin API with the real binary: the token guards it, `state` peeks,
//! `reset` frees a denied user on every sidecar at once (Redis, deny
//! cache), `top` names the hammering user, and `floodgate admin` drives it
//! from the command line.

use std::time::{Duration, Instant};

use floodgate_e2e::{http_request, run_cli, Floodgate, HttpResponse, RedisServer, FREE_PORTS};

const TOKEN: &str = "e2e-admin-token-0123456789";

fn admin_section() -> String {
    "[admin]\ntoken_env = \"FG_E2E_ADMIN_TOKEN\"\n".to_string()
}

const POLICIES: &str = r#"
[[policy]]
name = "per-user"
key = ["user"]
limit = 3
window = "1h"
algorithm = "fixed_window"

[[policy]]
name = "ai-per-user"
match = { endpoint = "ai" }
key = ["user"]
limit = 5
window = "1h"
"#;

fn start(extra: &str) -> Floodgate {
    let config = format!("{FREE_PORTS}{extra}\n{}{POLICIES}", admin_section());
    Floodgate::start_env(&config, &[], &[("FG_E2E_ADMIN_TOKEN", TOKEN)])
}

fn admin(
    f: &Floodgate,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpResponse {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    http_request(f.http, method, path, &headers, body.map(str::as_bytes))
}

fn check(f: &Floodgate, user: &str, endpoint: &str) -> u16 {
    f.check(&format!(
        r#"{{"attributes": {{"user": "{user}", "endpoint": "{endpoint}"}}}}"#
    ))
    .status
}

fn used(state: &serde_json::Value, policy: &str) -> u64 {
    let found = state["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == policy)
        .unwrap_or_else(|| panic!("{policy} not in {state}"));
    found["used"].as_u64().unwrap()
}

#[test]
fn without_the_token_every_route_is_refused_and_nothing_changes() {
    let f = start("");
    for _ in 0..4 {
        check(&f, "u1", "ai");
    }
    assert_eq!(check(&f, "u1", "ai"), 429);
    let reset = r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        for (method, path, body) in [
            ("GET", "/v1/admin/state?user=u1&endpoint=ai", None),
            ("POST", "/v1/admin/reset", Some(reset)),
            ("GET", "/v1/admin/top", None),
        ] {
            let r = admin(&f, method, path, token, body);
            assert_eq!(r.status, 401, "{method} {path} {token:?}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    // A scheme other than Bearer carrying the right token is refused too.
    let basic = format!("Basic {TOKEN}");
    let r = http_request(
        f.http,
        "POST",
        "/v1/admin/reset",
        &[("Authorization", &basic)],
        Some(reset.as_bytes()),
    );
    assert_eq!(r.status, 401);
    assert_eq!(check(&f, "u1", "ai"), 429, "the user is still denied");
    let metrics = f.http("GET", "/metrics", None).text();
    assert!(
        metrics.contains(r#"floodgate_admin_requests_total{action="reset",result="unauthorized"}"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("u1"),
        "attribute values never become labels"
    );
    assert!(f.log.lock().unwrap().contains("admin request refused"));
}

#[test]
fn without_the_section_the_routes_do_not_exist() {
    let f = Floodgate::start(&format!("{FREE_PORTS}{POLICIES}"));
    let r = admin(&f, "GET", "/v1/admin/state?user=u1", Some(TOKEN), None);
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn state_peeks_without_charging() {
    let f = start("");
    assert_eq!(check(&f, "u1", "ai"), 200);
    assert_eq!(check(&f, "u1", "ai"), 200);
    for _ in 0..2 {
        let r = admin(
            &f,
            "GET",
            "/v1/admin/state?user=u1&endpoint=ai",
            Some(TOKEN),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let state = r.json();
        assert_eq!(used(&state, "per-user"), 2, "{state}");
        assert_eq!(used(&state, "ai-per-user"), 2, "{state}");
        let p = &state["policies"][0];
        assert_eq!(p["remaining"], 1);
        assert_eq!(p["limit"], 3);
        assert_eq!(p["source"], "local");
        assert!(p["reset_after_ms"].as_u64().unwrap() > 0);
    }
    // Input limits as /v1/check: a value too long is a 400.
    let long = "x".repeat(300);
    let r = admin(
        &f,
        "GET",
        &format!("/v1/admin/state?user={long}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin(&f, "GET", "/v1/admin/state", Some(TOKEN), None);
    assert_eq!(r.status, 400, "{}", r.text());
    // Escapes that decode to no UTF-8: refused, not read as U+FFFD.
    let r = admin(&f, "GET", "/v1/admin/state?user=%FF", Some(TOKEN), None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not UTF-8"), "{}", r.text());
    let r = admin(
        &f,
        "POST",
        "/v1/admin/state?user=u1",
        Some(TOKEN),
        Some("{}"),
    );
    assert_eq!(r.status, 405);
}

#[test]
fn a_named_reset_clears_that_policy_only() {
    let f = start("");
    for _ in 0..3 {
        assert_eq!(check(&f, "u1", "ai"), 200);
    }
    assert_eq!(check(&f, "u1", "ai"), 429);
    let body = r#"{"attributes": {"user": "u1", "endpoint": "ai"}, "policy": "ai-per-user"}"#;
    let r = admin(&f, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reset"][0]["policy"], "ai-per-user");
    assert_eq!(r.json()["reset"].as_array().unwrap().len(), 1);
    let state = admin(
        &f,
        "GET",
        "/v1/admin/state?user=u1&endpoint=ai",
        Some(TOKEN),
        None,
    )
    .json();
    assert_eq!(used(&state, "ai-per-user"), 0, "{state}");
    assert_eq!(used(&state, "per-user"), 3, "{state}");
    assert_eq!(check(&f, "u1", "ai"), 429, "per-user still denies");
    // Every applicable policy.
    let body = r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let r = admin(&f, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(
        r.json()["reset"].as_array().unwrap().len(),
        2,
        "{}",
        r.text()
    );
    assert_eq!(check(&f, "u1", "ai"), 200);
    // An unknown policy: 404, nothing reset.
    let body = r#"{"attributes": {"user": "u1"}, "policy": "nope"}"#;
    let r = admin(&f, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    // Malformed bodies: 400.
    for bad in [
        "[]",
        "{\"attributes\": 3}",
        "{\"attributes\": {}, \"x\": 1}",
        "{\"attributes\": {\"user\": \"u1\", \"user\": \"u2\"}}",
    ] {
        let r = admin(&f, "POST", "/v1/admin/reset", Some(TOKEN), Some(bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[test]
fn a_reset_no_policy_applies_to_says_so() {
    let f = start("");
    let body = r#"{"attributes": {"ip": "10.0.0.1"}}"#;
    let r = admin(&f, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reset"], serde_json::json!([]));
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("nothing was reset"));
    // A named policy that does not apply to them: the same.
    let body = r#"{"attributes": {"user": "u1"}, "policy": "ai-per-user"}"#;
    let r = admin(&f, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(r.json()["reset"], serde_json::json!([]), "{}", r.text());
}

#[test]
fn top_names_the_hammering_user() {
    let f = start("");
    for _ in 0..30 {
        check(&f, "hammer", "ai");
    }
    for _ in 0..5 {
        check(&f, "calm", "ai");
    }
    let r = admin(
        &f,
        "GET",
        "/v1/admin/top?policy=per-user&n=5",
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let top = r.json();
    let first = &top["policies"][0]["top"][0];
    assert_eq!(first["key"], "per-user:hammer", "{top}");
    assert_eq!(first["count"], 27);
    assert!(first["lower"].as_u64().unwrap() <= 27 && first["upper"].as_u64().unwrap() >= 27);
    assert_eq!(top["policies"][0]["denials"], 29);
    assert_eq!(top["per_sidecar"], true);
    assert!(top["policies"][0]["error_bound"].is_u64());
    // Unknown policy, bad n.
    assert_eq!(
        admin(&f, "GET", "/v1/admin/top?policy=nope", Some(TOKEN), None).status,
        404
    );
    assert_eq!(
        admin(&f, "GET", "/v1/admin/top?n=0", Some(TOKEN), None).status,
        400
    );
    // Every policy when none is named.
    let all = admin(&f, "GET", "/v1/admin/top", Some(TOKEN), None).json();
    assert_eq!(all["policies"].as_array().unwrap().len(), 2);
}

fn redis_config(redis: &RedisServer) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"adm\"\ntimeout = \"500ms\"\ndeny_cache = true\n\n{}{POLICIES}",
        redis.url(),
        admin_section()
    )
}

#[test]
fn a_reset_frees_a_denied_user_on_every_sidecar_at_once() {
    let redis = RedisServer::start();
    let config = redis_config(&redis);
    let env = [("FG_E2E_ADMIN_TOKEN", TOKEN)];
    let a = Floodgate::start_env(&config, &[], &env);
    let b = Floodgate::start_env(&config, &[], &env);
    for _ in 0..3 {
        assert_eq!(check(&a, "u1", "ai"), 200);
    }
    // Both sidecars learn the denial (their deny caches now answer it
    // for the rest of the hour without asking Redis).
    assert_eq!(check(&a, "u1", "ai"), 429);
    assert_eq!(check(&b, "u1", "ai"), 429);
    assert_eq!(check(&b, "u1", "ai"), 429);
    let metrics = b.http("GET", "/metrics", None).text();
    assert!(
        metrics.contains("floodgate_deny_cache_hits_total"),
        "b answers from its cache"
    );
    let body = r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let r = admin(&a, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(r.status, 200, "{}", r.text());
    // Every key of the counters is gone from Redis.
    let keys = redis.cli(&["--scan", "--pattern", "adm:{per-user:u1}*"]);
    assert!(keys.lines().all(|k| k.ends_with(":cleared")), "{keys}");
    // b forgets its cached denial at once (a message, not a lapse: the
    // denial would be cached for the rest of the hour).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = check(&b, "u1", "ai");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b still denies u1 after the reset"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(check(&a, "u1", "ai"), 200);
    let state = admin(
        &b,
        "GET",
        "/v1/admin/state?user=u1&endpoint=ai",
        Some(TOKEN),
        None,
    )
    .json();
    assert_eq!(used(&state, "per-user"), 2, "{state}");
    assert_eq!(state["policies"][0]["source"], "redis");
}

#[test]
fn the_admin_api_on_its_own_listener() {
    let port = floodgate_e2e::free_port();
    let config = format!(
        "{FREE_PORTS}\n[admin]\ntoken_env = \"FG_E2E_ADMIN_TOKEN\"\nlisten = \"127.0.0.1:{port}\"\n{POLICIES}"
    );
    let f = Floodgate::start_env(&config, &[], &[("FG_E2E_ADMIN_TOKEN", TOKEN)]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let r = http_request(addr, "GET", "/v1/admin/state?user=u1", &auth, None);
    assert_eq!(r.status, 200, "{}", r.text());
    // Not on the HTTP listener, and nothing else on the admin one.
    assert_eq!(
        http_request(f.http, "GET", "/v1/admin/state?user=u1", &auth, None).status,
        404
    );
    assert_eq!(
        http_request(addr, "GET", "/metrics", &auth, None).status,
        404
    );
}

#[test]
fn the_cli_against_a_real_server() {
    let f = start("");
    for _ in 0..5 {
        check(&f, "u1", "ai");
    }
    let url = format!("http://{}", f.http);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let tf = token_file.to_str().unwrap();
    let (code, out, err) = run_cli(&[
        "admin",
        "state",
        "--url",
        &url,
        "--token-file",
        tf,
        "user=u1",
        "endpoint=ai",
    ]);
    assert_eq!(code, 0, "{err}");
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(used(&state, "per-user"), 3);
    let (code, out, err) = run_cli(&[
        "admin",
        "top",
        "--url",
        &url,
        "--token-file",
        tf,
        "--policy",
        "per-user",
        "-n",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("per-user:u1"), "{out}");
    let (code, out, err) = run_cli(&[
        "admin",
        "reset",
        "--url",
        &url,
        "--token-file",
        tf,
        "--policy",
        "per-user",
        "user=u1",
        "endpoint=ai",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"per-user\""), "{out}");
    assert_eq!(check(&f, "u1", "ai"), 200);
    // The token from the environment.
    let out = std::process::Command::new(floodgate_e2e::binary())
        .args(["admin", "state", "--url", &url, "user=u1"])
        .env("FLOODGATE_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Failures: a clear line and a non-zero exit.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "wrong-token-0123456789").unwrap();
    let (code, _, err) = run_cli(&[
        "admin",
        "state",
        "--url",
        &url,
        "--token-file",
        wrong.to_str().unwrap(),
        "user=u1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
    let out = std::process::Command::new(floodgate_e2e::binary())
        .args(["admin", "state", "--url", &url, "user=u1"])
        .env_remove("FLOODGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FLOODGATE_ADMIN_TOKEN"));
    let (code, _, err) = run_cli(&["admin", "state", "--url", &url, "--token-file", tf, "user"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("name=value"), "{err}");
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "first-half-0123456789\nsecond-half").unwrap();
    let (code, _, err) = run_cli(&[
        "admin",
        "state",
        "--url",
        &url,
        "--token-file",
        broken.to_str().unwrap(),
        "user=u1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("control character"), "{err}");
    // A malformed --url is a bad argument too.
    for bad in ["notaurl", "https://127.0.0.1:1", "http://", "http://a b"] {
        let (code, _, err) = run_cli(&[
            "admin",
            "state",
            "--url",
            bad,
            "--token-file",
            tf,
            "user=u1",
        ]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("invalid --url"), "{bad}: {err}");
    }
    let closed = format!("http://127.0.0.1:{}", floodgate_e2e::free_port());
    let (code, _, err) = run_cli(&["admin", "top", "--url", &closed, "--token-file", tf]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach"), "{err}");
}

/// The status page's own functions (`topRequest`, `topRows`, `topStatus`
/// of `ui/app.js`), run by node against the real server: the request the
/// page makes with a pasted token names the hammering user; a wrong token
/// is told apart. Then the page itself, in headless Chromium, offers the
/// token field under its strict policy.
#[test]
fn the_status_page_shows_the_most_denied_keys_with_the_token() {
    let f = start("");
    for _ in 0..10 {
        check(&f, "hammer", "ai");
    }
    let app_js = floodgate_e2e::repo_root().join("crates/floodgate-server/src/http/ui/app.js");
    let script = r#"
const ui = require(process.argv[1]);
const [base, token] = [process.argv[2], process.argv[3]];
(async () => {
  const [path, options] = ui.topRequest(token, 5);
  const response = await fetch(base + path, options);
  if (!response.ok) { console.log(JSON.stringify({ status: ui.topStatus(response.status) })); return; }
  console.log(JSON.stringify({ rows: ui.topRows(await response.json()) }));
})();
"#;
    let base = format!("http://{}", f.http);
    let run = |token: &str| -> serde_json::Value {
        let out = std::process::Command::new("node")
            .args(["-e", script, app_js.to_str().unwrap(), &base, token])
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from node")
    };
    let shown = run(TOKEN);
    assert_eq!(shown["rows"][0][0], "per-user", "{shown}");
    assert_eq!(shown["rows"][0][1], "per-user:hammer", "{shown}");
    assert_eq!(shown["rows"][0][2], "7", "{shown}");
    let refused = run("wrong-token-0123456789");
    assert!(
        refused["status"].as_str().unwrap().contains("refused"),
        "{refused}"
    );

    if std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("chromium is not installed: skipping the page check");
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--virtual-time-budget=3000")
        .arg("--dump-dom")
        .arg(format!("{base}/"))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains(r#"id="admin-token""#), "{dom}");
    assert!(dom.contains(">no token given<"), "{dom}");
    assert!(
        dom.contains(r#"id="error" hidden"#),
        "the page ran without error: {dom}"
    );
    assert!(dom.contains(r#"<tr data-policy="per-user">"#), "{dom}");
}

/// The token is read again at every reload: a rotated token applies at
/// once; a token file that became too short is a rejected reload, and the
/// old token keeps working.
#[test]
fn a_reload_rotates_the_token_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config = format!(
        "{FREE_PORTS}\n[admin]\ntoken_file = {:?}\n{POLICIES}",
        token_file.display().to_string()
    );
    let f = Floodgate::start(&config);
    let path = "/v1/admin/state?user=u1";
    assert_eq!(admin(&f, "GET", path, Some(TOKEN), None).status, 200);
    let wait_for = |count: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while f.log.lock().unwrap().matches(what).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in {}",
                f.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::fs::write(&token_file, "short").unwrap();
    f.signal("HUP");
    wait_for(1, "config reload rejected");
    assert!(f.log.lock().unwrap().contains("too short"));
    assert_eq!(admin(&f, "GET", path, Some(TOKEN), None).status, 200);
    let rotated = "rotated-admin-token-9876543210";
    std::fs::write(&token_file, rotated).unwrap();
    f.signal("HUP");
    wait_for(1, "config reloaded");
    assert_eq!(admin(&f, "GET", path, Some(rotated), None).status, 200);
    assert_eq!(admin(&f, "GET", path, Some(TOKEN), None).status, 401);
}

#[test]
fn a_reset_lifts_a_lockout_on_every_sidecar_at_once() {
    let redis = RedisServer::start();
    let config = format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"lock\"\ntimeout = \"500ms\"\ndeny_cache = true\n\n{}[[policy]]\nname = \"login\"\nkey = [\"user\"]\nlimit = 2\nwindow = \"1h\"\nalgorithm = \"fixed_window\"\nblock_for = \"1h\"\n",
        redis.url(),
        admin_section()
    );
    let env = [("FG_E2E_ADMIN_TOKEN", TOKEN)];
    let a = Floodgate::start_env(&config, &[], &env);
    let b = Floodgate::start_env(&config, &[], &env);
    let login = |f: &Floodgate| f.check(r#"{"attributes": {"user": "u1"}}"#);
    assert_eq!(login(&a).status, 200);
    assert_eq!(login(&b).status, 200);
    // The denial locks u1 out for an hour, on both sidecars.
    assert_eq!(login(&a).status, 429);
    let locked = login(&b);
    assert_eq!(locked.status, 429);
    assert!(locked.json()["retry_after_ms"].as_u64().unwrap() > 3_500_000);
    let blocks = redis.cli(&["--scan", "--pattern", "lock:*:block"]);
    assert_eq!(blocks.lines().count(), 1, "{blocks}");

    let body = r#"{"attributes": {"user": "u1"}}"#;
    let r = admin(&a, "POST", "/v1/admin/reset", Some(TOKEN), Some(body));
    assert_eq!(r.status, 200, "{}", r.text());
    let blocks = redis.cli(&["--scan", "--pattern", "lock:*:block"]);
    assert_eq!(blocks.trim(), "", "the lockout record is deleted");
    // Both sidecars let u1 in again at once (b had the block cached): one
    // check each, within the limit of 2.
    for (name, f) in [("b", &b), ("a", &a)] {
        let deadline = Instant::now() + Duration::from_secs(3);
        while login(f).status != 200 {
            assert!(Instant::now() < deadline, "{name} still locks u1 out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
