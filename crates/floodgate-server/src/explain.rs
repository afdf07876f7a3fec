//! `floodgate explain`: which policies a check with given attributes would
//! meet, the counter key each would use, and why the others do not apply —
//! to debug a policy without sending traffic.

use std::fmt::Write as _;

use floodgate_config::Config;
use floodgate_core::{Attributes, Policy};

/// Parses `name=value` arguments into attributes.
///
/// # Errors
/// A message naming the bad argument: no `=`, an empty name, a name given
/// twice, or attributes floodgate would reject in a check.
pub fn parse_attributes(args: &[String]) -> Result<Attributes, String> {
    let mut attributes = Attributes::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(format!(
                "{arg:?} is not an attribute: expected name=value (e.g. user=u1)"
            ));
        };
        if name.is_empty() {
            return Err(format!("{arg:?} has an empty attribute name"));
        }
        if attributes
            .insert(name.to_string(), value.to_string())
            .is_some()
        {
            return Err(format!("attribute {name:?} is given more than once"));
        }
    }
    floodgate_core::validate_attributes(&attributes).map_err(|e| e.to_string())?;
    Ok(attributes)
}

/// Why `policy` does not apply to a check with `attributes` in `domain`;
/// empty when it applies.
pub fn reasons(policy: &Policy, attributes: &Attributes, domain: Option<&str>) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(own) = policy.domain() {
        if domain != Some(own) {
            why.push(match domain {
                Some(d) => format!("it belongs to domain {own:?}, not {d:?}"),
                None => format!("it belongs to domain {own:?} and the check has none (--domain)"),
            });
        }
    }
    for (name, values) in policy.matches() {
        let wanted = values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(" or ");
        match attributes.get(name) {
            None => why.push(format!("match {name} = {wanted}: {name} is missing")),
            Some(v) if !values.iter().any(|x| x == v) => {
                why.push(format!("match {name} = {wanted}: {name} is {v:?}"));
            }
            Some(_) => {}
        }
    }
    for entry in policy.key_entries() {
        if entry.resolve(attributes).is_none() {
            why.push(match entry.alternatives() {
                [name] if attributes.get(name).is_some_and(String::is_empty) => {
                    format!("key attribute {name} is empty (an empty value counts as absent)")
                }
                [name] => format!("key attribute {name} is missing"),
                names => format!("key {entry}: none of {} is present", names.join(", ")),
            });
        }
    }
    debug_assert_eq!(why.is_empty(), policy.applies(attributes, domain));
    why
}

/// One line per key entry with alternatives: which one the check uses,
/// like `key user|ip → ip=127.0.0.1` (the policy must apply).
fn stand_ins(policy: &Policy, attributes: &Attributes) -> String {
    let mut out = String::new();
    for entry in policy.key_entries() {
        if entry.alternatives().len() < 2 {
            continue;
        }
        if let Some((i, value)) = entry.resolve(attributes) {
            let used = &entry.alternatives()[i];
            let note = if i == 0 { "" } else { " (stand-in)" };
            let _ = writeln!(out, "  key {entry} → {used}={value}{note}");
        }
    }
    out
}

/// `us` microseconds in the largest unit that divides it (`1m`, `250ms`).
fn duration(us: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
    ];
    for (size, unit) in UNITS {
        if us >= size && us % size == 0 {
            return format!("{}{unit}", us / size);
        }
    }
    format!("{us}µs")
}

/// The lines for `policy`, which applies but is set aside by the
/// policies in force (`in_force`) that replace it.
fn write_replaced(
    out: &mut String,
    policy: &Policy,
    in_force: &[(usize, &std::sync::Arc<Policy>)],
    config: &Config,
    attributes: &Attributes,
    domain: Option<&str>,
) {
    let set = &config.policies;
    let by: Vec<&str> = (in_force.iter())
        .filter(|(_, r)| {
            (set.replaced_by(r, attributes, domain)).any(|p| p.name() == policy.name())
        })
        .map(|(_, r)| r.name())
        .collect();
    let by = by.join(", ");
    let _ = writeln!(
        out,
        "\n{}: replaced (it matches, but {by} applies and replaces it)\n  replaced_by: {by}",
        policy.name(),
    );
}

/// The report for a check with `attributes` in `domain` under `config`.
pub fn explain(config: &Config, attributes: &Attributes, domain: Option<&str>) -> String {
    let mut out = String::new();
    write_check(&mut out, config, attributes, domain);
    let set = &config.policies;
    let in_force: Vec<_> = set.applicable(attributes, domain).collect();
    let mut applying = 0;
    for (i, policy) in set.iter().enumerate() {
        let why = reasons(policy, attributes, domain);
        if !why.is_empty() {
            write_not_applying(&mut out, policy, why);
        } else if !in_force.iter().any(|&(f, _)| f == i) {
            write_replaced(&mut out, policy, &in_force, config, attributes, domain);
        } else {
            applying += 1;
            write_applying(&mut out, policy, config, attributes, domain);
        }
    }
    let _ = writeln!(
        out,
        "\n{applying} of {} policies apply",
        config.policies.len()
    );
    out
}

/// The lines naming the check: its attributes (sorted), its domain, the
/// store.
fn write_check(out: &mut String, config: &Config, attributes: &Attributes, domain: Option<&str>) {
    let mut names: Vec<_> = attributes.iter().collect();
    names.sort();
    let shown = names
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(out, "attributes: {shown}");
    if let Some(domain) = domain {
        let _ = writeln!(out, "domain: {domain}");
    }
    let _ = writeln!(out, "store: {}", config.store.kind().as_str());
}

/// The lines for `policy`, which does not apply for the reasons `why`.
fn write_not_applying(out: &mut String, policy: &Policy, why: Vec<String>) {
    let _ = writeln!(out, "\n{}: does not apply", policy.name());
    for reason in why {
        let _ = writeln!(out, "  - {reason}");
    }
}

/// The lines for `policy`, which applies and is in force: its quota, the
/// key entries' stand-ins, its counter key (as the store names it) and the
/// policies it replaces.
fn write_applying(
    out: &mut String,
    policy: &Policy,
    config: &Config,
    attributes: &Attributes,
    domain: Option<&str>,
) {
    let key = policy.counter_key(attributes);
    let key = match config.store.redis() {
        Some(redis) => floodgate_redis::redis_key(&redis.key_prefix, policy, &key),
        None => key,
    };
    let _ = write!(
        out,
        "\n{}: applies ({} per {}, {})\n{}  counter key: {key}\n",
        policy.name(),
        policy.limit(),
        match policy.calendar() {
            Some(c) => format!("{} in {}", c.period().as_str(), c.zone()),
            None => duration(policy.window_us()),
        },
        policy.kind().as_str(),
        stand_ins(policy, attributes),
    );
    let replaced: Vec<&str> = (config.policies)
        .replaced_by(policy, attributes, domain)
        .map(|p| p.name())
        .collect();
    if !replaced.is_empty() {
        let _ = writeln!(out, "  replaced: {}", replaced.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[policy]]
name = "ai"
match = { endpoint = ["ai", "chat"] }
key = ["user"]
limit = 5
window = "1m"

[[policy]]
name = "auth"
match = { endpoint = "auth" }
key = ["ip"]
limit = 5
window = "1m"

[[policy]]
name = "d"
key = ["user"]
limit = 5
window = "1m"
domain = "edge"
"#;

    fn attrs(args: &[&str]) -> Attributes {
        parse_attributes(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn says_why_each_policy_does_or_does_not_apply() {
        let config = floodgate_config::from_str(CONFIG, "t.toml").unwrap();
        let a = attrs(&["user=u1", "endpoint=ai"]);
        let get = |n: &str| config.policies.get(n).unwrap().clone();
        assert!(reasons(&get("ai"), &a, None).is_empty());
        assert_eq!(
            reasons(&get("auth"), &a, None),
            [
                "match endpoint = \"auth\": endpoint is \"ai\"",
                "key attribute ip is missing"
            ]
        );
        assert_eq!(
            reasons(&get("d"), &a, None),
            ["it belongs to domain \"edge\" and the check has none (--domain)"]
        );
        assert!(reasons(&get("d"), &a, Some("edge")).is_empty());
        let none = attrs(&[]);
        assert_eq!(
            reasons(&get("ai"), &none, None),
            [
                "match endpoint = \"ai\" or \"chat\": endpoint is missing",
                "key attribute user is missing"
            ]
        );
        let empty = attrs(&["user=", "endpoint=ai"]);
        assert_eq!(
            reasons(&get("ai"), &empty, None),
            ["key attribute user is empty (an empty value counts as absent)"]
        );
        let out = explain(&config, &a, None);
        assert!(
            out.contains("ai: applies (5 per 1m, sliding_window)"),
            "{out}"
        );
        assert!(out.contains("counter key: ai:u1\n"), "{out}");
        assert!(out.contains("1 of 3 policies apply"), "{out}");
    }

    #[test]
    fn shows_the_stand_in_a_check_uses() {
        let src = "[[policy]]\nname = \"ai\"\nkey = [\"user|ip\"]\nlimit = 5\nwindow = \"1m\"\n";
        let config = floodgate_config::from_str(src, "t.toml").unwrap();
        let out = explain(&config, &attrs(&["ip=127.0.0.1"]), None);
        assert!(
            out.contains(
                "  key user|ip → ip=127.0.0.1 (stand-in)\n  counter key: ai:ip=127.0.0.1\n"
            ),
            "{out}"
        );
        let out = explain(&config, &attrs(&["ip=127.0.0.1", "user=u1"]), None);
        assert!(
            out.contains("  key user|ip → user=u1\n  counter key: ai:u1\n"),
            "{out}"
        );
        let p = config.policies.get("ai").unwrap();
        assert_eq!(
            reasons(p, &attrs(&[]), None),
            ["key user|ip: none of user, ip is present"]
        );
    }

    #[test]
    fn redis_keys_carry_the_prefix_and_hash_tag() {
        let src = format!(
            "[store]\nkind = \"redis\"\n[store.redis]\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"app\"\n{CONFIG}"
        );
        let config = floodgate_config::from_str(&src, "t.toml").unwrap();
        let out = explain(&config, &attrs(&["user=u1", "endpoint=chat"]), None);
        assert!(out.contains("counter key: app:{ai:u1}:sw:60000\n"), "{out}");
        // A stand-in stays inside the hash tag, `=` and all.
        let src = src.replace("key = [\"user\"]", "key = [\"user|ip\"]");
        let config = floodgate_config::from_str(&src, "t.toml").unwrap();
        let out = explain(&config, &attrs(&["ip=::/56", "endpoint=chat"]), None);
        assert!(
            out.contains("counter key: app:{ai:ip=%3A%3A%2F56}:sw:60000\n"),
            "{out}"
        );
    }

    #[test]
    fn shows_what_replaced_what() {
        let src = "[[policy]]\nname = \"base\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"1m\"\n\n[[policy]]\nname = \"pro\"\nmatch = { plan = \"pro\" }\nkey = [\"user\"]\nlimit = 50\nwindow = \"1m\"\nreplaces = [\"base\"]\n";
        let config = floodgate_config::from_str(src, "t.toml").unwrap();
        let out = explain(&config, &attrs(&["user=u1", "plan=pro"]), None);
        assert!(
            out.contains("base: replaced (it matches, but pro applies and replaces it)\n  replaced_by: pro\n"),
            "{out}"
        );
        assert!(
            out.contains("  counter key: pro:u1\n  replaced: base\n"),
            "{out}"
        );
        assert!(out.contains("1 of 2 policies apply"), "{out}");
        let out = explain(&config, &attrs(&["user=u1", "plan=free"]), None);
        assert!(out.contains("base: applies"), "{out}");
        assert!(!out.contains("replaced"), "{out}");
    }

    #[test]
    fn bad_arguments_are_named() {
        let parse = |a: &[&str]| {
            parse_attributes(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err()
        };
        assert!(parse(&["user"]).contains("expected name=value"));
        assert!(parse(&["=x"]).contains("empty attribute name"));
        assert!(parse(&["user=a", "user=b"]).contains("more than once"));
    }
}
