//! Calendar quotas with the real binary: a daily quota in a named time
//! zone answers with the time until that zone's next local midnight, on
//! Redis (whose clock decides) and on the local store. The expected
//! midnight is computed here with the same time-zone crate (jiff).

use floodgate_e2e::{Floodgate, HttpResponse, RedisServer, FREE_PORTS};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Unit};

/// India (UTC+05:30): its midnight is never a UTC hour boundary.
const ZONE: &str = "Asia/Kolkata";

fn policy() -> String {
    format!("[[policy]]\nname = \"messages\"\nkey = [\"user\"]\nlimit = 2\nalgorithm = \"fixed_window\"\ncalendar = \"day\"\ntimezone = \"{ZONE}\"\n")
}

/// Milliseconds from now until the next local midnight in `ZONE`.
fn until_midnight_ms() -> i64 {
    let now = Timestamp::now().to_zoned(TimeZone::get(ZONE).unwrap());
    let midnight = now
        .date()
        .tomorrow()
        .unwrap()
        .to_zoned(now.time_zone().clone())
        .unwrap()
        .start_of_day()
        .unwrap();
    now.until((Unit::Millisecond, &midnight))
        .unwrap()
        .get_milliseconds()
}

/// Checks that `r`'s reset is the next local midnight (within 2 s: the
/// request's own time), in the body and in the `RateLimit` header.
fn assert_resets_at_midnight(r: &HttpResponse) {
    let expected = until_midnight_ms();
    let body = r.json();
    let reset = body["reset_after_ms"].as_i64().unwrap();
    assert!(
        (reset - expected).abs() < 2_000,
        "reset_after_ms {reset}, next midnight in {ZONE} in {expected} ms"
    );
    let header = r.header("ratelimit").unwrap();
    let t: i64 = header.rsplit("t=").next().unwrap().parse().unwrap();
    assert!(
        (t - (expected + 999) / 1_000).abs() <= 2,
        "{header} vs {expected} ms"
    );
}

fn quota_resets_at_local_midnight(sidecar: &Floodgate) {
    let body = r#"{"attributes": {"user": "u1"}}"#;
    for _ in 0..2 {
        let r = sidecar.check(body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_resets_at_midnight(&r);
    }
    let denied = sidecar.check(body);
    assert_eq!(denied.status, 429, "{}", denied.text());
    assert_resets_at_midnight(&denied);
    let json = denied.json();
    assert_eq!(json["retry_after_ms"], json["reset_after_ms"]);
    let policies = sidecar.http("GET", "/v1/policies", None).json();
    assert_eq!(policies["policies"][0]["calendar"], "day");
    assert_eq!(policies["policies"][0]["timezone"], ZONE);
}

#[test]
fn a_daily_quota_on_redis_resets_at_midnight_in_its_zone() {
    let redis = RedisServer::start();
    let sidecar = Floodgate::start(&format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"e2e\"\n\n{}",
        redis.url(),
        policy()
    ));
    quota_resets_at_local_midnight(&sidecar);
    let key = format!("e2e:{{messages:u1}}:fw:day:{ZONE}");
    let pttl: i64 = redis.cli(&["PTTL", &key]).trim().parse().unwrap();
    assert!(
        (pttl - until_midnight_ms()).abs() < 2_000,
        "{key} lives until midnight: {pttl}"
    );
}

#[test]
fn a_daily_quota_on_the_local_store_resets_at_midnight_in_its_zone() {
    let sidecar = Floodgate::start(&format!("{FREE_PORTS}\n{}", policy()));
    quota_resets_at_local_midnight(&sidecar);
}

#[test]
fn an_unknown_time_zone_is_refused_at_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    std::fs::write(
        &path,
        format!("{FREE_PORTS}\n{}", policy().replace(ZONE, "Europe/Pariss")),
    )
    .unwrap();
    let (code, _, err) = floodgate_e2e::run_cli(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(":11:12"), "positioned: {err}");
    assert!(err.contains("unknown time zone \"Europe/Pariss\""), "{err}");
}
