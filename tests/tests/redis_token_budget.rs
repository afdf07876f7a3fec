//! A token budget shared by three real sidecars on one real Redis: 40
//! parallel clients reserve 500 tokens per call and settle a random actual
//! cost (0 to 1 500: most calls overrun their estimate).
//!
//! The bound, for a `fixed_window` budget B per window: a reservation is
//! admitted only while `counter + 500 ≤ B`, and the counter holds, for each
//! call admitted in the window, its actual cost once settled and its
//! estimate until then. At the last admission L of a window that is
//! `Σ c_i ≤ B` over the calls admitted in it, c_i = actual if settled
//! before L, 500 otherwise. So the actual cost of all calls admitted in
//! the window is at most
//!
//!   B + Σ max(0, actual_i − 500) over the calls still in flight at L
//!
//! — the budget plus the overrun of the reservations in flight when the
//! window's last call was let in. Nothing else escapes, however many
//! sidecars and clients race. (In flight is taken conservatively: every
//! call of the window whose settle had not been answered when L was sent.)

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floodgate_e2e::{Floodgate, RedisServer, FREE_PORTS};

const BUDGET: u64 = 10_000;
const ESTIMATE: u64 = 500;
const CLIENTS: usize = 40;

fn config(redis: &RedisServer) -> String {
    format!(
        r#"{FREE_PORTS}
[store]
kind = "redis"

[store.redis]
url = "{}"
key_prefix = "budget"
timeout = "2s"

[[policy]]
name = "tokens"
key = ["org"]
limit = {BUDGET}
window = "1m"
algorithm = "fixed_window"
settle = true
"#,
        redis.url()
    )
}

/// One admitted call, as a client saw it.
#[derive(Debug, Clone, Copy)]
struct Call {
    /// The fixed window (minute) it was admitted in.
    window: u64,
    /// When its check was sent.
    sent: Instant,
    /// When its settle was answered.
    settled: Instant,
    /// Its actual cost.
    actual: u64,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One client: reserve, "call the model", settle; on a denial, wait a
/// little and try again, until `until`.
fn client(sidecars: &[Floodgate], seed: u64, until: Instant, calls: &Mutex<Vec<Call>>) {
    let mut rng = seed | 1;
    let body =
        format!(r#"{{"attributes": {{"org": "acme"}}, "hits": {ESTIMATE}, "reserve": true}}"#);
    while Instant::now() < until {
        let sidecar = &sidecars[(xorshift(&mut rng) % 3) as usize];
        let sent = Instant::now();
        let r = sidecar.check(&body);
        if r.status == 429 {
            std::thread::sleep(Duration::from_millis(20 + xorshift(&mut rng) % 30));
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        let json = r.json();
        // The window it was admitted in: the one ending reset_after_ms from now.
        let window = (epoch_ms() + json["reset_after_ms"].as_u64().unwrap() + 30_000) / 60_000;
        let id = json["settlement"]
            .as_str()
            .expect("settlement id")
            .to_string();
        std::thread::sleep(Duration::from_millis(xorshift(&mut rng) % 15));
        let actual = xorshift(&mut rng) % 1_501;
        let settle = &sidecars[(xorshift(&mut rng) % 3) as usize];
        let done = settle.http(
            "POST",
            "/v1/settle",
            Some(&format!(r#"{{"settlement": "{id}", "actual": {actual}}}"#)),
        );
        assert_eq!(done.status, 200, "{}", done.text());
        calls.lock().unwrap().push(Call {
            window,
            sent,
            settled: Instant::now(),
            actual,
        });
    }
}

#[test]
fn forty_clients_on_three_sidecars_never_pass_budget_plus_in_flight_overrun() {
    let redis = RedisServer::start();
    let sidecars: Vec<Floodgate> = (0..3).map(|_| Floodgate::start(&config(&redis))).collect();
    let calls = Mutex::new(Vec::new());
    let until = Instant::now() + Duration::from_secs(4);
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (sidecars, calls) = (&sidecars, &calls);
            scope.spawn(move || client(sidecars, 0x9E37_79B9 + c as u64 * 7919, until, calls));
        }
    });
    let calls = calls.into_inner().unwrap();
    let mut windows: Vec<u64> = calls.iter().map(|c| c.window).collect();
    windows.sort_unstable();
    windows.dedup();
    assert!(
        windows.len() <= 2,
        "a 4 s run spans at most two minutes: {windows:?}"
    );
    let single = windows.len() == 1;
    for window in windows {
        let admitted: Vec<&Call> = calls.iter().filter(|c| c.window == window).collect();
        let last = admitted.iter().map(|c| c.sent).max().unwrap();
        let total: u64 = admitted.iter().map(|c| c.actual).sum();
        let in_flight_overrun: u64 = admitted
            .iter()
            .filter(|c| c.settled > last)
            .map(|c| c.actual.saturating_sub(ESTIMATE))
            .sum();
        let bound = BUDGET + in_flight_overrun;
        eprintln!(
            "window {window}: {} calls, actual cost {total}, bound {bound} = {BUDGET} + {in_flight_overrun}",
            admitted.len()
        );
        assert!(
            total <= bound,
            "window {window}: {total} tokens admitted > {bound}"
        );
        if single {
            // Nothing lost: every call was reserved and settled in this
            // window, so its counter is exactly the sum of actual costs.
            let counter = redis.cli(&["GET", "budget:{tokens:acme}:fw:60000"]);
            let count: u64 = counter.trim().rsplit(':').next().unwrap().parse().unwrap();
            assert_eq!(count, total, "counter {counter:?}");
            assert!(
                admitted.len() >= 10,
                "the budget was used: {} calls",
                admitted.len()
            );
        }
    }
    // Every key floodgate wrote, records included, carries a TTL.
    let keys = redis.cli(&["--scan", "--pattern", "budget:*"]);
    assert!(
        keys.lines().any(|k| k.contains(":r:")),
        "reservation records: {keys}"
    );
    for key in keys.lines() {
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}
