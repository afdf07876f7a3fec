//! A `concurrency` policy shared by three real `floodgate` processes on one
//! real Redis: never more than `limit` holders at once across all of them,
//! a release frees a slot at once (whichever sidecar it goes to), and an
//! abandoned lease frees its slot after `lease_timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_e2e::{Floodgate, HttpResponse, RedisServer, FREE_PORTS};

const LIMIT: usize = 5;

fn config(redis: &RedisServer) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"leases\"\ntimeout = \"500ms\"\n\n[[policy]]\nname = \"inflight\"\nkey = [\"user\"]\nlimit = {LIMIT}\nalgorithm = \"concurrency\"\nlease_timeout = \"2s\"\n",
        redis.url()
    )
}

fn check(sidecar: &Floodgate, user: &str) -> HttpResponse {
    let r = sidecar.check(&format!(r#"{{"attributes": {{"user": "{user}"}}}}"#));
    assert!(r.status == 200 || r.status == 429, "{}", r.text());
    r
}

fn release(sidecar: &Floodgate, lease: &str) {
    let r = sidecar.http(
        "POST",
        "/v1/release",
        Some(&format!(r#"{{"lease": "{lease}"}}"#)),
    );
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The lease of an allowed check, with its source checked.
fn lease_of(r: &HttpResponse) -> String {
    let json = r.json();
    assert_eq!(json["statuses"][0]["source"], "redis", "{json}");
    let lease = json["lease"]
        .as_str()
        .expect("an allowed check has a lease");
    assert!(!lease.is_empty());
    lease.to_string()
}

#[test]
fn three_sidecars_share_one_concurrency_limit() {
    let redis = RedisServer::start();
    let sidecars: Vec<Floodgate> = (0..3).map(|_| Floodgate::start(&config(&redis))).collect();
    assert_eq!(
        sidecars[0].http("GET", "/readyz", None).json()["store"],
        "redis"
    );

    // Long-running holders on all three sidecars: never more than LIMIT hold
    // a lease at once. A holder counts itself in after its check is allowed
    // and out before it releases, so the count can only be below the
    // leases Redis holds, never above.
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for worker in 0..12 {
            let (sidecars, holding, most, admitted) =
                (&sidecars, holding.clone(), most.clone(), admitted.clone());
            scope.spawn(move || {
                for i in 0..25 {
                    let r = check(&sidecars[(worker + i) % 3], "shared");
                    if r.status != 200 {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let lease = lease_of(&r);
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    admitted.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    holding.fetch_sub(1, Ordering::SeqCst);
                    // Released through another sidecar than the one that
                    // granted it: leases are global.
                    release(&sidecars[(worker + i + 1) % 3], &lease);
                }
            });
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!(most <= LIMIT, "{most} holders at once, limit {LIMIT}");
    assert!(
        admitted.load(Ordering::SeqCst) > LIMIT,
        "released slots were reused"
    );

    // A release frees a slot at once, on any sidecar.
    let leases: Vec<String> = (0..LIMIT)
        .map(|i| {
            let r = check(&sidecars[i % 3], "release");
            assert_eq!(r.status, 200, "{}", r.text());
            lease_of(&r)
        })
        .collect();
    for sidecar in &sidecars {
        let r = check(sidecar, "release");
        assert_eq!(r.status, 429, "a sixth holder: {}", r.text());
        assert!(r.header("retry-after").is_some());
    }
    release(&sidecars[2], &leases[0]);
    let r = check(&sidecars[1], "release");
    assert_eq!(r.status, 200, "the released slot is free: {}", r.text());
    assert_eq!(check(&sidecars[0], "release").status, 429);

    // Abandoned leases (never released) free their slots after
    // lease_timeout = 2s, not before.
    let started = Instant::now();
    for i in 0..LIMIT {
        assert_eq!(check(&sidecars[i % 3], "abandon").status, 200);
    }
    let denied = check(&sidecars[0], "abandon");
    assert_eq!(denied.status, 429);
    let retry_ms = denied.json()["retry_after_ms"].as_u64().unwrap();
    assert!(
        (1..=2000).contains(&retry_ms),
        "retry_after_ms {retry_ms} should point at the oldest lease's expiry"
    );
    std::thread::sleep(Duration::from_millis(retry_ms + 100));
    let r = check(&sidecars[1], "abandon");
    assert_eq!(
        r.status,
        200,
        "expired leases free their slots: {}",
        r.text()
    );
    assert!(started.elapsed() >= Duration::from_secs(2));

    // Every lease key carries a TTL.
    for key in redis
        .cli(&["--scan", "--pattern", "leases:*"])
        .lines()
        .filter(|k| !k.is_empty())
    {
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}

/// The calls Redis has run of `command` since the last `CONFIG RESETSTAT`.
fn calls_of(redis: &RedisServer, command: &str) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// One release of many comma-joined leases is one `ZREM` per counter, not
/// one Redis call per lease; more than 64 parts are refused with a 400 and
/// release nothing.
#[test]
fn a_release_of_many_leases_is_few_redis_calls_and_capped() {
    let redis = RedisServer::start();
    let config = config(&redis).replace(&format!("limit = {LIMIT}"), "limit = 100");
    let sidecar = Floodgate::start(&config);
    let leases: Vec<String> = (0..65)
        .map(|_| lease_of(&check(&sidecar, "many")))
        .collect();
    let key = "leases:{inflight:many}:cc";
    assert_eq!(redis.cli(&["ZCARD", key]).trim(), "65");

    let r = sidecar.http(
        "POST",
        "/v1/release",
        Some(&format!(r#"{{"lease": "{}"}}"#, leases.join(","))),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("at most 64"), "{}", r.text());
    assert_eq!(redis.cli(&["ZCARD", key]).trim(), "65", "nothing released");

    redis.cli(&["CONFIG", "RESETSTAT"]);
    release(&sidecar, &leases[..64].join(","));
    assert_eq!(redis.cli(&["ZCARD", key]).trim(), "1");
    assert_eq!(calls_of(&redis, "zrem"), 1, "one ZREM for the counter");
    assert_eq!(calls_of(&redis, "evalsha"), 0, "no script call per lease");
}
