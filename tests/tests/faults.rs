//! Redis faults under load, with real processes (docs/configuration.md, `[fallback]`): a Redis that
//! hangs (SIGSTOP: connections stay open, nothing answers) and a Redis that
//! flaps. Checks always get a decision; latencies across a hang are printed
//! (measured, never asserted beyond a generous liveness bound).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use floodgate_e2e::{wait_until, Floodgate, RedisServer, FREE_PORTS};

/// Per Redis call; the hang test's liveness bound is this plus a second.
const TIMEOUT_MS: u64 = 100;

fn config(redis: &RedisServer) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"faults\"\ntimeout = \"{TIMEOUT_MS}ms\"\n\n[fallback]\ninstances = 2\nprobe_interval = \"200ms\"\nfailure_threshold = 2\n\n[[policy]]\nname = \"api\"\nkey = [\"user\"]\nlimit = 1000000\nwindow = \"1m\"\nalgorithm = \"fixed_window\"\n\n[[policy]]\nname = \"open-in-outage\"\nmatch = {{ endpoint = \"open\" }}\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\nfallback = \"allow\"\n\n[[policy]]\nname = \"closed-in-outage\"\nmatch = {{ endpoint = \"closed\" }}\nkey = [\"user\"]\nlimit = 1000000\nwindow = \"1m\"\nfallback = \"deny\"\n",
        redis.url()
    )
}

fn store_mode(floodgate: &Floodgate) -> String {
    let ready = floodgate.http("GET", "/readyz", None).json();
    ready["store"].as_str().unwrap_or_default().to_string()
}

/// One timed check; panics unless it is a decision (200 or 429).
fn timed_check(floodgate: &Floodgate, user: &str) -> Duration {
    let start = Instant::now();
    let r = floodgate.check(&format!(r#"{{"attributes": {{"user": "{user}"}}}}"#));
    let took = start.elapsed();
    assert!(
        r.status == 200 || r.status == 429,
        "{} {}",
        r.status,
        r.text()
    );
    took
}

/// Runs checks from 4 threads over both sidecars for `run` (at most 5 000
/// checks a thread); each sample is tagged with `tag()` read as it starts.
fn load(
    sidecars: &[Floodgate],
    run: Duration,
    tag: &(dyn Fn() -> bool + Sync),
) -> Vec<(bool, Duration)> {
    let until = Instant::now() + run;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                scope.spawn(move || {
                    let mut samples = Vec::new();
                    for i in 0..5_000 {
                        if Instant::now() >= until {
                            break;
                        }
                        let tagged = tag();
                        let took = timed_check(&sidecars[(w + i) % 2], &format!("u{}", i % 50));
                        samples.push((tagged, took));
                    }
                    samples
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// "n=…, p50 …, p99 …, max …" of `samples`.
fn summary(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "n=0".into();
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "n={}, p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    )
}

#[test]
fn a_hung_redis_costs_at_most_a_timeout_then_nothing() {
    let redis = RedisServer::start();
    let sidecars: Vec<Floodgate> = (0..2).map(|_| Floodgate::start(&config(&redis))).collect();
    assert_eq!(store_mode(&sidecars[0]), "redis");
    let never = || false;
    let before = load(&sidecars, Duration::from_millis(700), &never);

    redis.signal("STOP");
    // A sample is "open" when every sidecar already reported fallback as it
    // started; a watcher thread keeps that flag current.
    let open = AtomicBool::new(false);
    let watching = AtomicBool::new(true);
    let hang = std::thread::scope(|scope| {
        scope.spawn(|| {
            while watching.load(Ordering::SeqCst) {
                let all = sidecars.iter().all(|s| store_mode(s) == "fallback");
                open.store(all, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let is_open = || open.load(Ordering::SeqCst);
        let samples = load(&sidecars, Duration::from_millis(2_000), &is_open);
        watching.store(false, Ordering::SeqCst);
        samples
    });
    for sidecar in &sidecars {
        assert_eq!(store_mode(sidecar), "fallback", "the breaker opened");
    }
    // Outage policies, decided without Redis: `allow` lets a second hit of
    // a limit-1 policy through, `deny` refuses everything.
    for _ in 0..2 {
        let r = sidecars[0].check(r#"{"attributes": {"user": "x", "endpoint": "open"}}"#);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["statuses"][0]["source"], "fallback");
    }
    let r = sidecars[1].check(r#"{"attributes": {"user": "x", "endpoint": "closed"}}"#);
    assert_eq!(r.status, 429, "{}", r.text());

    redis.signal("CONT");
    let resumed = Instant::now();
    wait_until("both sidecars back on Redis", || {
        sidecars.iter().all(|s| store_mode(s) == "redis")
    });
    let back = resumed.elapsed();
    let after = load(&sidecars, Duration::from_millis(700), &never);

    let slowest = hang.iter().map(|(_, d)| *d).max().unwrap();
    let (opened, closed): (Vec<_>, Vec<_>) = hang.into_iter().partition(|(open, _)| *open);
    let durations = |v: Vec<(bool, Duration)>| v.into_iter().map(|(_, d)| d).collect();
    eprintln!("check latency (HTTP, 4 clients, 2 sidecars, Redis timeout {TIMEOUT_MS}ms):");
    eprintln!(
        "  before the hang:           {}",
        summary(durations(before))
    );
    eprintln!(
        "  hung, breaker not yet open: {}",
        summary(durations(closed))
    );
    eprintln!(
        "  hung, breaker open:        {}",
        summary(durations(opened))
    );
    eprintln!("  after SIGCONT:             {}", summary(durations(after)));
    eprintln!("  SIGCONT → both sidecars on Redis: {back:?}");
    // Liveness only: no check waits on a hung Redis much past its timeout.
    assert!(
        slowest < Duration::from_millis(TIMEOUT_MS + 1_000),
        "a check took {slowest:?} while Redis hung"
    );
}

/// Threads, open file descriptors and resident KiB of a process.
fn footprint(pid: u32) -> (usize, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (field("Threads:") as usize, fds, field("VmRSS:"))
}

#[test]
fn a_flapping_redis_leaves_no_stuck_state_and_no_leak() {
    let mut redis = RedisServer::start();
    let sidecars: Vec<Floodgate> = (0..2).map(|_| Floodgate::start(&config(&redis))).collect();
    let never = || false;
    load(&sidecars, Duration::from_millis(300), &never);
    let start = footprint(sidecars[0].pid());
    for round in 0..5 {
        if round % 2 == 0 {
            redis.kill();
        } else {
            redis.signal("STOP");
        }
        load(&sidecars, Duration::from_millis(400), &never);
        if round % 2 == 0 {
            redis.restart();
        } else {
            redis.signal("CONT");
        }
        load(&sidecars, Duration::from_millis(300), &never);
    }
    wait_until("both sidecars back on Redis", || {
        sidecars.iter().all(|s| store_mode(s) == "redis")
    });
    let r = sidecars[0].check(r#"{"attributes": {"user": "final"}}"#);
    assert_eq!(r.json()["statuses"][0]["source"], "redis", "{}", r.text());
    let end = footprint(sidecars[0].pid());
    eprintln!("threads, fds, RSS KiB: before {start:?}, after 5 flaps {end:?}");
    // Bounded, not exact: a worker pool or connection pool may settle at a
    // slightly different size, but nothing may grow per flap.
    assert!(end.0 <= start.0 + 4, "threads grew: {start:?} → {end:?}");
    assert!(
        end.1 <= start.1 + 16,
        "file descriptors grew: {start:?} → {end:?}"
    );
    assert!(
        end.2 <= start.2 * 2 + 8_192,
        "RSS grew: {start:?} → {end:?}"
    );
}

#[test]
fn redis_killed_under_load_local_fallback_admits_its_share_per_sidecar() {
    let mut redis = RedisServer::start();
    // `scarce`: 10 a minute for everyone; in fallback each of the 2
    // instances may admit ceil(10 / 2) = 5.
    let config = config(&redis).replace(
        "[[policy]]\nname = \"api\"",
        "[[policy]]\nname = \"scarce\"\nmatch = { endpoint = \"scarce\" }\nkey = []\nlimit = 10\nwindow = \"1m\"\nalgorithm = \"sliding_log\"\nfallback = \"local\"\n\n[[policy]]\nname = \"api\"",
    );
    let sidecars: Vec<Floodgate> = (0..2).map(|_| Floodgate::start(&config)).collect();
    let never = || false;
    // Load on both sidecars while Redis is SIGKILLed: every answer is a
    // decision (`load` asserts 200/429 on each).
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| load(&sidecars, Duration::from_millis(1_500), &never));
        std::thread::sleep(Duration::from_millis(300));
        redis.kill();
        assert!(busy.join().unwrap().len() > 100);
    });
    for sidecar in &sidecars {
        assert_eq!(store_mode(sidecar), "fallback");
    }
    // Each sidecar now admits at most its share of `scarce`, however many
    // clients hammer it at once.
    for sidecar in &sidecars {
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        let r = sidecar.check(r#"{"attributes": {"endpoint": "scarce"}}"#);
                        assert!(r.status == 200 || r.status == 429, "{}", r.text());
                        if r.status == 200 {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(
            admitted.load(Ordering::SeqCst),
            5,
            "ceil(10 / 2) per sidecar"
        );
    }
    redis.restart();
    wait_until("both sidecars back on Redis", || {
        sidecars.iter().all(|s| store_mode(s) == "redis")
    });
}

/// The value of the unlabelled gauge `name` on `/metrics`, if present.
fn gauge(floodgate: &Floodgate, name: &str) -> Option<f64> {
    let text = floodgate.http("GET", "/metrics", None).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn auto_instances_count_live_sidecars_and_divide_the_fallback_limit() {
    let mut redis = RedisServer::start();
    // `instances` left out: "auto", the default.
    let config = config(&redis)
        .replace("instances = 2\n", "")
        .replace(
            "[[policy]]\nname = \"api\"",
            "[[policy]]\nname = \"scarce\"\nmatch = { endpoint = \"scarce\" }\nkey = []\nlimit = 10\nwindow = \"1m\"\nfallback = \"local\"\n\n[[policy]]\nname = \"api\"",
        );
    assert!(!config.contains("instances"));
    let sidecars: Vec<Floodgate> = (0..3).map(|_| Floodgate::start(&config)).collect();
    // Each sidecar beats every 2 s: within a few beats all see all three.
    let start = Instant::now();
    while !sidecars
        .iter()
        .all(|s| gauge(s, "floodgate_instances") == Some(3.0))
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "live counts: {:?}",
            sidecars
                .iter()
                .map(|s| gauge(s, "floodgate_instances"))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let members = redis.cli(&["ZCARD", "faults:{hb}:instances"]);
    assert_eq!(members.trim(), "3");
    let ttl: i64 = redis
        .cli(&["PTTL", "faults:{hb}:instances"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 6_000, "heartbeat key TTL {ttl}");

    // Redis gone: each sidecar admits ceil(10 / 3) = 4, the count seen last.
    // (Each breaker is opened first, by other checks: a check whose Redis
    // call timed out is answered by the fallback without being charged
    // there, since Redis may have counted it.)
    redis.kill();
    for sidecar in &sidecars {
        wait_until("the sidecar in fallback", || {
            let r = sidecar.check(r#"{"attributes": {"user": "tripper"}}"#);
            assert!(r.status == 200 || r.status == 429, "{}", r.text());
            store_mode(sidecar) == "fallback"
        });
        let admitted = (0..8)
            .filter(|_| {
                let r = sidecar.check(r#"{"attributes": {"endpoint": "scarce"}}"#);
                assert!(r.status == 200 || r.status == 429, "{}", r.text());
                r.status == 200
            })
            .count();
        assert_eq!(admitted, 4, "ceil(10 / 3) per sidecar");
        assert_eq!(gauge(sidecar, "floodgate_instances"), Some(3.0));
    }
}
