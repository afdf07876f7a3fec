//! The status page (`GET /`), loaded by a real headless Chromium against a
//! real floodgate: its script runs under the page's own Content-Security-
//! Policy and fills in the policies, the store and the decisions. Skipped
//! (with a message) where `chromium` is not installed.

use std::process::Command;

use floodgate_e2e::{http_request, Floodgate, FREE_PORTS};

const CONFIG: &str = r#"
[[policy]]
name = "chat"
match = { endpoint = "ai" }
key = ["user"]
limit = 3
window = "1h"

[[policy]]
name = "everyone"
key = ["user"]
limit = 1000
window = "1h"
mode = "shadow"
"#;

/// The page's DOM after its script has run for `budget_ms` of virtual time.
fn rendered_dom(url: &str, budget_ms: u32) -> Option<String> {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new("chromium")
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
            "--disable-default-apps",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("utf-8 DOM"))
}

/// The text of the first element whose opening tag contains `marker`.
fn text_after<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {dom}"));
    let rest = &dom[start..];
    let open = rest.find('>').expect("tag end") + 1;
    let close = rest[open..].find('<').expect("text end");
    &rest[open..open + close]
}

#[test]
fn the_status_page_shows_policies_store_and_decisions() {
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!("chromium is not installed: skipping the status page test");
        return;
    }
    let fg = Floodgate::start(&format!("{FREE_PORTS}{CONFIG}"));
    let body = br#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let statuses: Vec<u16> = (0..5)
        .map(|_| http_request(fg.http, "POST", "/v1/check", &[], Some(body)).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    let dom = rendered_dom(&format!("http://{}/", fg.http), 5_000).unwrap_or_else(|| {
        panic!("chromium is installed but did not run");
    });
    assert_eq!(text_after(&dom, r#"id="store""#), "local");
    assert_eq!(text_after(&dom, r#"id="fallback""#), "off");
    assert_eq!(text_after(&dom, r#"id="sidecars""#), "1 (local store)");
    assert_eq!(text_after(&dom, r#"id="policy-count""#), "2");
    assert!(
        dom.contains(r#"id="error" hidden"#),
        "no error shown: {dom}"
    );

    let chat = &dom[dom.find(r#"<tr data-policy="chat">"#).expect("chat row")..];
    assert_eq!(text_after(chat, r#"class="num allowed""#), "3");
    assert_eq!(text_after(chat, r#"class="num denied""#), "2");
    assert_eq!(text_after(chat, "<td"), "chat");
    assert!(chat.contains("3 / 3600s"), "limit and window shown: {chat}");
    // Polls at 0, 2 and 4 s of virtual time: at least two rate samples drawn.
    let samples: u32 = chat[chat.find("data-samples=\"").expect("chart") + 14..]
        .split('"')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("sample count");
    assert!(samples >= 2, "chart samples: {chat}");
    assert!(chat.contains("<polyline class=\"allowed\""), "{chat}");
    assert!(chat.contains("<polyline class=\"denied\""), "{chat}");

    let shadow = &dom[dom
        .find(r#"<tr data-policy="everyone">"#)
        .expect("shadow row")..];
    assert!(shadow.contains(">shadow<"), "{shadow}");
}

#[test]
fn the_status_page_is_served_with_a_strict_policy_and_only_by_get() {
    let fg = Floodgate::start(&format!("{FREE_PORTS}{CONFIG}"));
    for path in ["/", "/ui"] {
        let page = http_request(fg.http, "GET", path, &[], None);
        assert_eq!(page.status, 200);
        assert!(page
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(String::from_utf8_lossy(&page.body).contains("/ui/app.js"));
    }
    let script = http_request(fg.http, "GET", "/ui/app.js", &[], None);
    assert_eq!(script.status, 200);
    assert_eq!(script.header("x-content-type-options"), Some("nosniff"));
    let post = http_request(fg.http, "POST", "/", &[], Some(b"{}"));
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    assert_eq!(http_request(fg.http, "GET", "/ui/", &[], None).status, 404);
    assert_eq!(
        http_request(fg.http, "GET", "/ui/../metrics", &[], None).status,
        404
    );
}

#[test]
fn the_status_page_shows_the_fallback_while_redis_is_unreachable() {
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!("chromium is not installed: skipping the status page test");
        return;
    }
    // Nothing listens on this port: floodgate starts on its fallback.
    let port = floodgate_e2e::free_port();
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"redis://127.0.0.1:{port}\"\ntimeout = \"100ms\"\n\n[fallback]\ninstances = 3\n{CONFIG}"
    ));
    let dom = rendered_dom(&format!("http://{}/ui", fg.http), 3_000).expect("chromium ran");
    assert_eq!(text_after(&dom, r#"id="store""#), "fallback");
    assert_eq!(
        text_after(&dom, r#"id="fallback""#),
        "on: Redis unreachable, the fallback answers"
    );
    assert_eq!(text_after(&dom, r#"id="sidecars""#), "3");
}
