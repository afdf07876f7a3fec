//! Calendar periods on fixed instants: DST days, month ends, leap years,
//! ISO weeks, a zone whose clocks skip midnight. Expected instants were
//! computed independently (Python's zoneinfo).

use super::*;

const H: u64 = 3_600_000_000;

fn cal(period: Period, zone: &str) -> Calendar {
    Calendar::new(period, zone).expect("known zone")
}

/// The period holding every instant of `[start, end)` (sampled) is that.
fn assert_period(c: &Calendar, start: u64, end: u64) {
    for t in [start, start + 1, (start + end) / 2, end - 1] {
        assert_eq!(c.period_at(t), (start, end), "{c:?} at {t}");
    }
    assert_eq!(c.period_at(end).0, end, "the next period starts at the end");
}

#[test]
fn paris_days_across_the_clock_changes_are_23_and_25_hours() {
    let c = cal(Period::Day, "Europe/Paris");
    // 2025-03-30: 02:00 → 03:00.
    let (s, e) = (1_743_289_200_000_000, 1_743_372_000_000_000);
    assert_period(&c, s, e);
    assert_eq!(e - s, 23 * H);
    // 2025-10-26: 03:00 → 02:00.
    let (s, e) = (1_761_429_600_000_000, 1_761_519_600_000_000);
    assert_period(&c, s, e);
    assert_eq!(e - s, 25 * H);
    // Noon on the short day (after the change): 12 hours to midnight, and
    // 11 hours have passed since the last one.
    let noon = 1_743_328_800_000_000;
    assert_eq!(c.period_at(noon).1 - noon, 12 * H);
    assert_eq!(noon - c.period_at(noon).0, 11 * H);
}

#[test]
fn new_york_days_across_the_clock_changes() {
    let c = cal(Period::Day, "America/New_York");
    let (s, e) = (1_741_496_400_000_000, 1_741_579_200_000_000); // 2025-03-09
    assert_period(&c, s, e);
    assert_eq!(e - s, 23 * H);
    let (s, e) = (1_762_056_000_000_000, 1_762_146_000_000_000); // 2025-11-02
    assert_period(&c, s, e);
    assert_eq!(e - s, 25 * H);
}

#[test]
fn months_have_their_lengths_and_leap_years_their_29th() {
    let c = cal(Period::Month, "Europe/Paris");
    let (jan, feb, mar) = (
        1_735_686_000_000_000,
        1_738_364_400_000_000,
        1_740_783_600_000_000,
    );
    assert_period(&c, jan, feb); // January 31 → February
    assert_eq!(feb - jan, 31 * 24 * H);
    assert_period(&c, feb, mar);
    assert_eq!(mar - feb, 28 * 24 * H);
    let c = cal(Period::Month, "UTC");
    let (feb, mar) = (1_706_745_600_000_000, 1_709_251_200_000_000); // 2024
    assert_period(&c, feb, mar);
    assert_eq!(mar - feb, 29 * 24 * H);
}

#[test]
fn weeks_start_on_monday_and_may_hold_a_clock_change() {
    let c = cal(Period::Week, "Europe/Paris");
    // Monday 2025-03-24 to Monday 2025-03-31, with the spring change.
    let (s, e) = (1_742_770_800_000_000, 1_743_372_000_000_000);
    assert_period(&c, s, e);
    assert_eq!(e - s, 7 * 24 * H - H);
    // Sunday noon is in that week; Monday 00:00 starts the next.
    assert_eq!(c.period_at(1_743_328_800_000_000), (s, e));
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_when_the_clocks_resume() {
    // Chile, 2024-09-08: 00:00 → 01:00.
    let c = cal(Period::Day, "America/Santiago");
    let (s, e) = (1_725_768_000_000_000, 1_725_850_800_000_000);
    assert_period(&c, s, e);
    assert_eq!(e - s, 23 * H);
}

#[test]
fn boundaries_surround_now_with_a_period_on_each_side() {
    for period in [Period::Day, Period::Week, Period::Month] {
        let c = cal(period, "Europe/Paris");
        let now = 1_743_328_800_000_000;
        let [a, b, d, e] = c.boundaries(now);
        assert!(a < b && b <= now && now < d && d < e, "{period:?}");
        assert_eq!(c.period_at(a).1, b);
        assert_eq!(c.period_at(d), (d, e));
    }
}

#[test]
fn settings_are_validated_each_at_its_field() {
    let check = |kind, calendar, zone, window, settle| {
        let mut errors = Vec::new();
        let c = validate(kind, calendar, zone, window, settle, &mut errors);
        (
            c.map(|c| c.zone().to_string()),
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
        )
    };
    let fw = AlgorithmKind::FixedWindow;
    assert_eq!(check(fw, None, None, true, false), (None, vec![]));
    assert_eq!(
        check(fw, Some("day"), None, false, false),
        (Some("UTC".into()), vec![])
    );
    assert_eq!(
        check(fw, Some("month"), Some("Asia/Tokyo"), false, false),
        (Some("Asia/Tokyo".into()), vec![])
    );
    assert_eq!(
        check(fw, Some("day"), Some("Europe/Pariss"), false, false).1,
        ["timezone"]
    );
    assert_eq!(
        check(fw, Some("fortnight"), None, false, false).1,
        ["calendar"]
    );
    assert_eq!(
        check(
            AlgorithmKind::SlidingWindow,
            Some("day"),
            None,
            false,
            false
        )
        .1,
        ["calendar"]
    );
    assert_eq!(check(fw, Some("day"), None, true, false).1, ["window"]);
    assert_eq!(check(fw, Some("day"), None, false, true).1, ["settle"]);
    assert_eq!(check(fw, None, Some("UTC"), true, false).1, ["timezone"]);
}
