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

const CHAT: &str = "[[endpoint]]\nname = \"chat\"\npath = \"/v1/chat/completions\"\n";

#[test]
fn an_endpoint_cost_is_read() {
    use crate::cost::{CostSource, UsageField, DEFAULT_MAX_REQUEST_BODY};
    let src = format!(
        "{CHAT}cost = {{ usage = \"completion_tokens\", estimate = 800, estimate_from = \"max_tokens\" }}\n\n[[endpoint]]\nname = \"tool\"\npath = \"/tool\"\ncost = {{ header = \"X-Cost\", estimate = 5, max_request_body = 10 }}\n"
    );
    let config = parse(&src);
    let chat = &config.costs["chat"];
    assert_eq!(chat.source, CostSource::Usage(UsageField::Completion));
    assert_eq!(
        (chat.estimate, chat.estimate_from.as_deref()),
        (800, Some("max_tokens"))
    );
    assert_eq!(chat.max_request_body, DEFAULT_MAX_REQUEST_BODY);
    let tool = &config.costs["tool"];
    assert_eq!(tool.source, CostSource::Header("x-cost".into()));
    assert_eq!(tool.max_request_body, 10);
    assert!(parse(CHAT).costs.is_empty());
}

#[test]
fn a_bad_endpoint_cost_is_refused_where_it_is_wrong() {
    single_error(
        &format!("{CHAT}cost = {{ usage = \"tokens\", estimate = 1 }}\n"),
        4,
        18,
        &["invalid usage \"tokens\"", "total_tokens"],
    );
    single_error(
        &format!("{CHAT}cost = {{ usage = \"total_tokens\" }}\n"),
        4,
        8,
        &["needs an estimate"],
    );
    single_error(
        &format!("{CHAT}cost = {{ estimate = 3 }}\n"),
        4,
        8,
        &["needs usage = \"total_tokens\""],
    );
    single_error(
        &format!("{CHAT}cost = {{ usage = \"total_tokens\", header = \"x\", estimate = 3 }}\n"),
        4,
        43,
        &["not both"],
    );
    single_error(
        &format!("{CHAT}cost = {{ header = \"bad header\", estimate = 3 }}\n"),
        4,
        19,
        &["not an HTTP header name"],
    );
    single_error(
        &format!("{CHAT}cost = {{ usage = \"total_tokens\", estimate = 0 }}\n"),
        4,
        45,
        &["estimate must be between 1"],
    );
    single_error(
        &format!("{CHAT}cost = {{ usage = \"total_tokens\", estimate = 1, max_request_body = 99999999 }}\n"),
        4,
        67,
        &["max_request_body must be between"],
    );
    single_error(
        &format!("{CHAT}cost = {{ usage = \"total_tokens\", estimate = 1, extra = 2 }}\n"),
        4,
        48,
        &["unknown key \"extra\""],
    );
}
