//! `deny_status`, `max_wait` and `max_waiting` of a policy: read, defaulted,
//! and refused with their position.

use super::{parse, single_error, POLICY};

#[test]
fn defaults_deny_with_429_and_never_wait() {
    let config = parse(POLICY);
    let policy = config.policies.iter().next().unwrap();
    assert_eq!(policy.deny_status(), 429);
    assert_eq!(policy.waiting().max_wait_us, 0);
    assert_eq!(policy.waiting().max_waiting, 0);
}

#[test]
fn deny_status_and_waits_are_read() {
    let config = parse(&format!(
        "{POLICY}deny_status = 503\nmax_wait = \"2s\"\nmax_waiting = 20\n"
    ));
    let policy = config.policies.iter().next().unwrap();
    assert_eq!(policy.deny_status(), 503);
    assert_eq!(policy.waiting().max_wait_us, 2_000_000);
    assert_eq!(policy.waiting().max_waiting, 20);
    assert!(
        config
            .summary()
            .contains("max_wait 2s (max_waiting 20), deny_status 503"),
        "{}",
        config.summary()
    );
    let config = parse(&format!("{POLICY}max_wait = \"500ms\"\n"));
    assert_eq!(
        config.policies.iter().next().unwrap().waiting().max_waiting,
        100
    );
}

#[test]
fn a_deny_status_that_is_not_an_error_status_is_refused_at_its_value() {
    for bad in ["200", "302", "600", "99999"] {
        single_error(
            &format!("{POLICY}deny_status = {bad}\n"),
            6,
            15,
            &[
                "deny_status must be an HTTP error status from 400 to 599",
                bad,
            ],
        );
    }
    single_error(
        &format!("{POLICY}deny_status = -1\n"),
        6,
        15,
        &["deny_status"],
    );
}

#[test]
fn bad_waits_are_refused_at_their_value() {
    single_error(
        &format!("{POLICY}max_wait = \"11m\"\n"),
        6,
        12,
        &["max_wait must be at most 10m"],
    );
    single_error(
        &format!("{POLICY}max_waiting = 5\n"),
        6,
        15,
        &["max_waiting applies only with a max_wait above 0"],
    );
    single_error(
        &format!("{POLICY}max_wait = \"1s\"\nmax_waiting = 0\n"),
        7,
        15,
        &["max_waiting must be between 1 and 100000"],
    );
}
