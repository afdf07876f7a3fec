//! `/metrics` against docs/api.md: it parses as Prometheus text exposition,
//! holds every metric docs/api.md names (with a Redis store that fails, so the
//! store metrics exist too), histograms are well formed, and no label ever
//! carries an attribute value that checks sent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use floodgate_e2e::{wait_until, Floodgate, RedisServer, FREE_PORTS};

/// One sample line: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the exposition strictly; panics on any line that is not a HELP,
/// TYPE or sample line. Returns the samples and each family's TYPE.
fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name, labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        samples.push((name.to_string(), labels, value));
    }
    (samples, types)
}

fn check(floodgate: &Floodgate, body: &str) -> u16 {
    floodgate.check(body).status
}

#[test]
fn metrics_hold_every_spec_metric_and_no_attribute_value() {
    let mut redis = RedisServer::start();
    let config = format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\ntimeout = \"100ms\"\n\n[fallback]\nprobe_interval = \"200ms\"\nfailure_threshold = 1\n\n[[policy]]\nname = \"enforced\"\nkey = [\"user\"]\nlimit = 2\nwindow = \"1m\"\n\n[[policy]]\nname = \"dark\"\nkey = [\"ip\"]\nlimit = 1\nwindow = \"1m\"\nmode = \"shadow\"\n",
        redis.url()
    );
    let floodgate = Floodgate::start(&config);
    // Values that must never appear in a label.
    let (user, ip) = ("secret-user-4f9a", "203.0.113.77");
    let body = format!(r#"{{"attributes": {{"user": "{user}", "ip": "{ip}"}}}}"#);
    assert_eq!(check(&floodgate, &body), 200); // allowed
    assert_eq!(check(&floodgate, &body), 200); // dark: shadow_denied
    assert_eq!(check(&floodgate, &body), 429); // enforced: denied
                                               // A reload (same file) and a store failure.
    floodgate.signal("HUP");
    wait_until("the reload to be counted", || {
        floodgate
            .http("GET", "/metrics", None)
            .text()
            .contains("floodgate_config_reloads_total")
    });
    // Counted on after the reload (its policies are new objects).
    let body_3 = format!(r#"{{"attributes": {{"user": "{user}-3", "ip": "{ip}"}}}}"#);
    assert_eq!(check(&floodgate, &body_3), 200);
    redis.kill();
    // A fresh user: `body`'s denial is cached and would not ask Redis.
    check(
        &floodgate,
        &format!(r#"{{"attributes": {{"user": "{user}-2", "ip": "{ip}"}}}}"#),
    );
    wait_until("the fallback", || {
        floodgate.http("GET", "/readyz", None).json()["store"] == "fallback"
    });
    std::thread::sleep(Duration::from_millis(50));

    let text = floodgate.http("GET", "/metrics", None).text();
    let (samples, types) = parse(&text);
    for (name, kind) in [
        ("floodgate_checks_total", "counter"),
        ("floodgate_check_duration_seconds", "histogram"),
        ("floodgate_store_errors_total", "counter"),
        ("floodgate_store_fallback", "gauge"),
        ("floodgate_config_reloads_total", "counter"),
        ("floodgate_local_keys", "gauge"),
    ] {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(kind),
            "{name}\n{text}"
        );
    }
    let series = |name: &str| -> Vec<&Sample> { samples.iter().filter(|s| s.0 == name).collect() };

    // floodgate_checks_total{policy,decision,source}: exactly those labels,
    // every decision seen.
    let checks = series("floodgate_checks_total");
    let decisions: BTreeSet<&str> = checks.iter().map(|s| s.1["decision"].as_str()).collect();
    for decision in ["allowed", "denied", "shadow_denied"] {
        assert!(decisions.contains(decision), "{decisions:?}");
    }
    for (_, labels, _) in &checks {
        let keys: Vec<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["decision", "policy", "source"]);
        assert!(["enforced", "dark"].contains(&labels["policy"].as_str()));
        assert!(["redis", "local", "fallback"].contains(&labels["source"].as_str()));
    }
    let count = |policy: &str, decision: &str| {
        checks
            .iter()
            .find(|s| {
                s.1["policy"] == policy && s.1["decision"] == decision && s.1["source"] == "redis"
            })
            .map_or(0.0, |s| s.2)
    };
    assert_eq!(count("enforced", "allowed"), 3.0, "{checks:?}");
    assert_eq!(count("enforced", "denied"), 1.0, "{checks:?}");
    assert_eq!(count("dark", "allowed"), 1.0, "{checks:?}");
    // The 4th: the check after Redis died, its denial from the deny cache
    // (Redis's own, cached).
    assert_eq!(count("dark", "shadow_denied"), 4.0, "{checks:?}");
    assert_eq!(series("floodgate_store_fallback")[0].2, 1.0);
    assert!(series("floodgate_store_errors_total")
        .iter()
        .any(|s| s.2 >= 1.0));
    assert!(series("floodgate_config_reloads_total")
        .iter()
        .any(|s| s.1.contains_key("result") && s.2 >= 1.0));

    // The histogram: per label set, cumulative buckets with a +Inf bucket
    // equal to _count, and buckets fine enough for tens of microseconds.
    let buckets = series("floodgate_check_duration_seconds_bucket");
    let counts = series("floodgate_check_duration_seconds_count");
    assert!(!counts.is_empty() && !series("floodgate_check_duration_seconds_sum").is_empty());
    for (_, labels, count) in &counts {
        let mut mine: Vec<(f64, f64)> = buckets
            .iter()
            .filter(|(_, l, _)| l.iter().all(|(k, v)| k == "le" || labels.get(k) == Some(v)))
            .map(|(_, l, v)| {
                let le = l["le"].as_str();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, *v)
            })
            .collect();
        mine.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(
            mine.windows(2).all(|w| w[0].1 <= w[1].1),
            "not cumulative: {mine:?}"
        );
        assert_eq!(mine.last().unwrap(), &(f64::INFINITY, *count));
        assert!(mine[0].0 <= 0.00005, "smallest bucket {}", mine[0].0);
    }

    // No attribute value anywhere in the scrape.
    for secret in [user, ip] {
        assert!(!text.contains(secret), "{secret} leaked into /metrics");
    }
}

/// The metric names a PromQL expression reads: identifiers outside string
/// literals and label matchers that start with `floodgate_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut plain = String::new();
    let (mut in_string, mut in_braces) = (false, false);
    for c in expr.chars() {
        match c {
            '"' if in_braces || in_string => in_string = !in_string,
            '{' if !in_string => in_braces = true,
            '}' if !in_string => in_braces = false,
            _ if in_string || in_braces => {}
            _ => plain.push(c),
        }
    }
    plain
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("floodgate_"))
        .map(String::from)
        .collect()
}

/// Every PromQL expression of the shipped dashboard and alert rules.
fn shipped_expressions() -> Vec<String> {
    let root = floodgate_e2e::repo_root();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/floodgate-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").clone())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect();
    assert!(exprs.len() >= 9, "{exprs:?}");
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus/floodgate-alerts.yml")).unwrap(),
    )
    .expect("the alert rules are YAML");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            assert!(rule["alert"].as_str().is_some(), "{rule:?}");
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{rule:?}"
            );
            exprs.push(rule["expr"].as_str().expect("expr").to_string());
            alerts += 1;
        }
    }
    assert!(alerts >= 5);
    exprs
}

#[test]
fn dashboard_and_alerts_query_only_exported_metrics() {
    let mut redis = RedisServer::start();
    let config = format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\ntimeout = \"100ms\"\n\n[fallback]\nfailure_threshold = 1\n\n[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\n",
        redis.url()
    );
    let floodgate = Floodgate::start(&config);
    check(&floodgate, r#"{"attributes": {"user": "a"}}"#);
    check(&floodgate, r#"{"attributes": {"user": "a"}}"#);
    redis.kill();
    check(&floodgate, r#"{"attributes": {"user": "a"}}"#);
    let (samples, _) = parse(&floodgate.http("GET", "/metrics", None).text());
    let exported: BTreeSet<&str> = samples.iter().map(|s| s.0.as_str()).collect();
    let label_names: BTreeSet<&str> = samples
        .iter()
        .flat_map(|s| s.1.keys().map(String::as_str))
        .chain(["instance", "job"]) // added by Prometheus to every target
        .collect();
    for expr in shipped_expressions() {
        let names = metric_names(&expr);
        // `up` is Prometheus's own per-target metric.
        assert!(
            !names.is_empty() || expr.starts_with("up{"),
            "no floodgate metric in {expr}"
        );
        for name in &names {
            assert!(
                exported.contains(name.as_str()),
                "{name} (in {expr}) is not exported"
            );
        }
        // Grouping labels must exist too.
        for clause in expr.split("by (").skip(1) {
            for label in clause.split(')').next().unwrap().split(',') {
                assert!(
                    label_names.contains(label.trim()),
                    "label {label} in {expr}"
                );
            }
        }
    }
}
