//! `block_for`, `block_escalation` and `block_max` of a policy: read,
//! defaulted, and refused with their position.

use super::{parse, single_error, POLICY};

#[test]
fn no_lockout_by_default() {
    let config = parse(POLICY);
    let policy = config.policies.iter().next().unwrap();
    assert!(!policy.block().is_on());
}

#[test]
fn lockouts_are_read_and_summarised() {
    let config = parse(&format!("{POLICY}block_for = \"15m\"\n"));
    let block = config.policies.iter().next().unwrap().block();
    assert_eq!((block.for_us, block.max_us), (900_000_000, 900_000_000));
    assert!(
        config.summary().contains(", block_for 15m"),
        "{}",
        config.summary()
    );
    let config = parse(&format!(
        "{POLICY}block_for = \"1m\"\nblock_escalation = true\nblock_max = \"1h\"\n"
    ));
    let block = config.policies.iter().next().unwrap().block();
    assert_eq!((block.for_us, block.max_us), (60_000_000, 3_600_000_000));
    assert!(
        config
            .summary()
            .contains(", block_for 1m (doubling up to 1h)"),
        "{}",
        config.summary()
    );
    let config = parse(&format!(
        "{POLICY}block_for = \"1m\"\nblock_escalation = true\n"
    ));
    assert_eq!(
        config.policies.iter().next().unwrap().block().max_us,
        86_400_000_000
    );
}

#[test]
fn bad_lockouts_are_refused_at_their_value() {
    single_error(
        &format!("{POLICY}block_for = \"400d\"\n"),
        6,
        13,
        &["block_for must be between 1ms and 366d"],
    );
    single_error(
        &format!("{POLICY}max_wait = \"1s\"\nblock_for = \"1m\"\n"),
        7,
        13,
        &["block_for cannot be combined with max_wait"],
    );
    single_error(
        &format!("{POLICY}block_escalation = true\n"),
        6,
        20,
        &["block_escalation applies only with a block_for"],
    );
    single_error(
        &format!("{POLICY}block_for = \"1m\"\nblock_max = \"1h\"\n"),
        7,
        13,
        &["block_max applies only with block_escalation = true"],
    );
    single_error(
        &format!("{POLICY}block_for = \"1m\"\nblock_escalation = true\nblock_max = \"30s\"\n"),
        8,
        13,
        &["block_max must be whole milliseconds, at least block_for"],
    );
}

#[test]
fn a_lockout_on_a_concurrency_policy_is_refused_at_its_value() {
    single_error(
        "[[policy]]\nname = \"uploads\"\nkey = [\"user\"]\nlimit = 5\nalgorithm = \"concurrency\"\nblock_for = \"15m\"\n",
        6,
        13,
        &["block_for does not apply to concurrency policies"],
    );
}
