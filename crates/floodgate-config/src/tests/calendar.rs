//! `calendar` and `timezone` of a policy: read, defaulted, and refused
//! with their position.

use super::{parse, single_error};

const DAILY: &str = "[[policy]]\nname = \"messages\"\nkey = [\"user\"]\nlimit = 100\nalgorithm = \"fixed_window\"\n";

#[test]
fn calendars_are_read_and_summarised() {
    let config = parse(&format!(
        "{DAILY}calendar = \"day\"\ntimezone = \"Europe/Paris\"\n"
    ));
    let policy = config.policies.iter().next().unwrap();
    let calendar = policy.calendar().unwrap();
    assert_eq!(
        (calendar.period().as_str(), calendar.zone()),
        ("day", "Europe/Paris")
    );
    assert!(
        config
            .summary()
            .contains("messages: 100/day fixed_window, key [user], match every request, enforce, calendar day in Europe/Paris"),
        "{}",
        config.summary()
    );
    let config = parse(&format!("{DAILY}calendar = \"month\"\n"));
    assert_eq!(
        config
            .policies
            .iter()
            .next()
            .unwrap()
            .calendar()
            .unwrap()
            .zone(),
        "UTC"
    );
}

#[test]
fn bad_calendars_are_refused_at_their_value() {
    single_error(
        &format!("{DAILY}calendar = \"day\"\ntimezone = \"Europe/Pariss\"\n"),
        7,
        12,
        &["unknown time zone \"Europe/Pariss\""],
    );
    let long = "A/".repeat(5_000);
    for zone in [
        "../../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "",
        long.as_str(),
    ] {
        single_error(
            &format!("{DAILY}calendar = \"day\"\ntimezone = \"{zone}\"\n"),
            7,
            12,
            &["unknown time zone"],
        );
    }
    single_error(
        &format!("{DAILY}calendar = \"fortnight\"\n"),
        6,
        12,
        &["calendar must be \"day\", \"week\" or \"month\""],
    );
    single_error(
        &format!("{DAILY}calendar = \"day\"\nwindow = \"1d\"\n"),
        7,
        10,
        &["a calendar policy's window is its calendar period"],
    );
    single_error(
        "[[policy]]\nname = \"m\"\nkey = [\"user\"]\nlimit = 100\ncalendar = \"week\"\n",
        5,
        12,
        &["calendar applies only to fixed_window policies, not sliding_window"],
    );
    single_error(
        "[[policy]]\nname = \"m\"\nkey = [\"user\"]\nlimit = 100\nwindow = \"1d\"\ntimezone = \"UTC\"\n",
        6,
        12,
        &["timezone applies only with a calendar"],
    );
    single_error(
        &format!("{DAILY}calendar = \"day\"\nsettle = true\n"),
        7,
        10,
        &["settle is not available on calendar policies"],
    );
}
