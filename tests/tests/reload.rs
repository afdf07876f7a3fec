//! Live reload (docs/configuration.md) against the real binary: by SIGHUP and by file
//! replacement, while checks keep flowing; an invalid file keeps the old
//! limit; counters survive a reload that keeps the policy's name and key.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use floodgate_e2e::{http_request, Floodgate, FREE_PORTS};

/// A config with one fixed-window policy of `limit` per user on endpoint x.
/// The limit is padded to a fixed width so that the file keeps its length.
fn config(limit: u64) -> String {
    format!(
        "{FREE_PORTS}\n[[policy]]\nname = \"p\"\nmatch = {{ endpoint = \"x\" }}\nkey = [\"user\"]\nlimit = {limit:>4}\nwindow = \"366d\"\nalgorithm = \"fixed_window\"\n"
    )
}

fn check(fg: &Floodgate, user: &str) -> u16 {
    let body = format!(r#"{{"attributes": {{"user": "{user}", "endpoint": "x"}}}}"#);
    let status = fg.check(&body).status;
    assert!(status == 200 || status == 429, "status {status}");
    status
}

/// Sends checks from another thread until dropped; records any answer that
/// is neither 200 nor 429.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    bad: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(fg: &Floodgate) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let addr = fg.http;
        let (s, n, b) = (stop.clone(), sent.clone(), bad.clone());
        let thread = std::thread::spawn(move || {
            let body = br#"{"attributes": {"user": "background", "endpoint": "x"}}"#;
            while !s.load(Ordering::Relaxed) {
                let r = http_request(addr, "POST", "/v1/check", &[], Some(body));
                n.fetch_add(1, Ordering::Relaxed);
                if r.status != 200 && r.status != 429 {
                    b.lock()
                        .unwrap()
                        .push(format!("{}: {}", r.status, r.text()));
                }
            }
        });
        Traffic {
            stop,
            sent,
            bad,
            thread: Some(thread),
        }
    }

    /// Stops the thread and asserts that every check was answered.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        assert!(self.sent.load(Ordering::Relaxed) > 10, "traffic flowed");
        let bad = self.bad.lock().unwrap();
        assert!(bad.is_empty(), "failed checks during reload: {bad:?}");
    }
}

/// Uses up `limit` checks of `user` and sees the next one denied.
fn exhaust(fg: &Floodgate, user: &str, limit: u64) {
    for i in 0..limit {
        assert_eq!(check(fg, user), 200, "check {i} of {user}");
    }
    assert_eq!(check(fg, user), 429, "{user} past {limit}");
}

/// Waits (≤ 2 s) for `user`, denied so far, to be allowed again; then
/// counts how many more are allowed before the next denial.
fn allowed_after_reload(fg: &Floodgate, user: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if check(fg, user) == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload did not take effect within 2 s; log:\n{}",
            fg.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut allowed = 1;
    while check(fg, user) == 200 {
        allowed += 1;
        assert!(allowed < 10_000);
    }
    allowed
}

/// Replaces `path` the way editors and `kubectl` do: a new file renamed
/// over the old one.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_changes_a_limit_and_keeps_counters() {
    let fg = Floodgate::start(&config(3));
    let traffic = Traffic::start(&fg);
    exhaust(&fg, "u1", 3);
    // Rewrite in place with the same length and the old mtime: the file
    // watch cannot see it, only SIGHUP can.
    let path = fg.config_path();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, config(7)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(check(&fg, "u1"), 429, "no reload without SIGHUP");
    fg.signal("HUP");
    // 3 of the 7 were used before the reload: the counter survived.
    assert_eq!(allowed_after_reload(&fg, "u1"), 4);
    traffic.finish();
    let metrics = fg.http("GET", "/metrics", None).text();
    assert!(
        metrics.contains("floodgate_config_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );
}

#[test]
fn replacing_the_file_changes_a_limit() {
    let fg = Floodgate::start(&config(3));
    let traffic = Traffic::start(&fg);
    exhaust(&fg, "u1", 3);
    replace(&fg.config_path(), &config(6));
    assert_eq!(allowed_after_reload(&fg, "u1"), 3);
    traffic.finish();
    assert!(fg.log.lock().unwrap().contains("config reloaded"));
}

#[test]
fn an_invalid_file_keeps_the_old_limit_until_a_valid_one_arrives() {
    let mut fg = Floodgate::start(&config(3));
    let traffic = Traffic::start(&fg);
    exhaust(&fg, "u1", 3);
    let path = fg.config_path();
    // Half-written: the policy is cut off mid-table.
    let half = config(9);
    replace(&path, &half[..half.len() - 40]);
    std::thread::sleep(Duration::from_millis(1200));
    // Truncated in place (an editor between truncate and write).
    std::fs::write(&path, "").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(check(&fg, "u1"), 429, "an empty file keeps the old limit");
    assert!(fg.log.lock().unwrap().contains("the file is empty"));
    // Nothing but whitespace and comments is empty too (no policies would
    // allow everything), by SIGHUP as well.
    std::fs::write(&path, "\n# the limits moved elsewhere\n  \n").unwrap();
    fg.signal("HUP");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(check(&fg, "u1"), 429, "a blank file keeps the old limit");
    let empties = fg.log.lock().unwrap().matches("the file is empty").count();
    assert!(empties >= 2, "{empties}");
    // Gone altogether, then SIGHUP.
    std::fs::remove_file(&path).unwrap();
    fg.signal("HUP");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(fg.wait_exit(Duration::from_millis(10)), None, "still alive");
    assert_eq!(check(&fg, "u1"), 429, "old limit kept");
    {
        let log = fg.log.lock().unwrap();
        assert!(log.contains("config reload rejected"), "{log}");
        assert!(log.contains("cannot read the configuration file"), "{log}");
    }
    let metrics = fg.http("GET", "/metrics", None).text();
    assert!(
        metrics.contains("floodgate_config_reloads_total{result=\"failure\"}"),
        "{metrics}"
    );
    // The next valid file is picked up.
    replace(&path, &config(5));
    assert_eq!(allowed_after_reload(&fg, "u1"), 2);
    traffic.finish();
}

#[test]
fn listener_changes_are_reported_as_needing_a_restart() {
    let fg = Floodgate::start(&config(3));
    let moved = config(4).replace("http = \"127.0.0.1:0\"", "http = \"127.0.0.1:1\"");
    replace(&fg.config_path(), &moved);
    let log = log_after_reload(&fg);
    assert!(log.contains("need a restart"), "{log}");
    assert!(log.contains("[server] listeners"), "{log}");
    // Still on the old listener, with the new policies.
    exhaust(&fg, "u1", 4);
}

#[test]
fn listener_limit_changes_are_reported_as_needing_a_restart() {
    let fg = Floodgate::start(&config(3));
    let changed = config(4).replace(
        "grpc = \"127.0.0.1:0\"",
        "grpc = \"127.0.0.1:0\"\nheader_read_timeout = \"3s\"",
    );
    assert_ne!(changed, config(4), "the config names its gRPC listener");
    replace(&fg.config_path(), &changed);
    let log = log_after_reload(&fg);
    assert!(log.contains("need a restart"), "{log}");
    assert!(log.contains("timeouts and limits"), "{log}");
    exhaust(&fg, "u1", 4);
}

/// The log once it says "config reloaded" (within 2 s).
fn log_after_reload(fg: &Floodgate) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !fg.log.lock().unwrap().contains("config reloaded") {
        assert!(Instant::now() < deadline, "{}", fg.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    fg.log.lock().unwrap().clone()
}
