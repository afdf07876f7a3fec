//! `settle = true` on a policy: accepted where reservations can be settled,
//! a positioned error elsewhere.

use super::{parse, single_error, POLICY};

#[test]
fn settle_is_off_by_default_and_on_where_asked() {
    let config = parse(POLICY);
    assert!(!config.policies.iter().next().unwrap().settle());
    for algorithm in ["sliding_window", "fixed_window", "token_bucket"] {
        let src = format!("{POLICY}algorithm = \"{algorithm}\"\nsettle = true\n");
        let config = parse(&src);
        assert!(
            config.policies.iter().next().unwrap().settle(),
            "{algorithm}"
        );
    }
}

#[test]
fn settle_on_a_log_or_concurrency_policy_is_refused_at_its_value() {
    let src = format!("{POLICY}algorithm = \"sliding_log\"\nsettle = true\n");
    single_error(&src, 7, 10, &["settle applies only to", "not sliding_log"]);
    let src = "[[policy]]\nname = \"c\"\nkey = [\"user\"]\nlimit = 2\nalgorithm = \"concurrency\"\nsettle = true\n";
    single_error(src, 6, 10, &["settle applies only to", "not concurrency"]);
}

#[test]
fn settle_must_be_a_boolean() {
    let src = format!("{POLICY}settle = \"yes\"\n");
    single_error(&src, 6, 10, &["settle"]);
}
