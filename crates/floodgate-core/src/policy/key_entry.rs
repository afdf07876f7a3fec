//! One entry of a policy's `key`: an attribute, or alternatives separated
//! by `|` (`"user|ip"`: the user, or the client address when there is no
//! user). The first alternative present in a check wins.
//!
//! An attribute whose value is empty counts as absent, for a single
//! attribute as for alternatives: `{"user": "", "ip": "…"}` is keyed on the
//! address, and a policy keyed on `user` alone does not apply to it (an
//! empty value would otherwise put every such caller on one shared counter).

use std::fmt;

use super::{is_valid_name, PolicyError, MAX_NAME_LEN};
use crate::attributes::Attributes;
use crate::key::Segment;

/// One `key` entry, validated: one or more attribute names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The alternatives, in order of preference; never empty.
    alternatives: Vec<String>,
}

impl KeyEntry {
    /// Splits `"user"` or `"user|ip"` into its alternatives (spaces around
    /// `|` allowed). Names are not checked here: [`crate::Policy::new`]
    /// does, so an alternative left empty (`"user|"`) is kept as `""` for
    /// it to report.
    pub fn parse(text: &str) -> KeyEntry {
        KeyEntry {
            alternatives: text.split('|').map(|a| a.trim().to_string()).collect(),
        }
    }

    /// The alternatives, in order of preference.
    pub fn alternatives(&self) -> &[String] {
        &self.alternatives
    }

    /// The alternative a check uses: its index and value, the first present
    /// one with a non-empty value; `None` when none is (the policy does not
    /// apply).
    pub fn resolve<'a>(&self, attributes: &'a Attributes) -> Option<(usize, &'a str)> {
        self.alternatives.iter().enumerate().find_map(|(i, name)| {
            attributes
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| (i, v.as_str()))
        })
    }

    /// This entry's segment of a counter key for `attributes`: the first
    /// alternative's value as is, a stand-in's with its name (empty when
    /// none is present, which only a policy that does not apply meets).
    pub fn segment<'a>(&'a self, attributes: &'a Attributes) -> Segment<'a> {
        match self.resolve(attributes) {
            Some((0, value)) => Segment {
                stand_in: None,
                value,
            },
            Some((i, value)) => Segment {
                stand_in: Some(self.alternatives[i].as_str()),
                value,
            },
            None => Segment {
                stand_in: None,
                value: "",
            },
        }
    }
}

impl fmt::Display for KeyEntry {
    /// `user|ip`, as normalised (no spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.alternatives.join("|"))
    }
}

/// Parses and validates the `key` entries; every problem goes to `errors`,
/// naming the entry's index.
pub(super) fn parse_all(key: &[String], errors: &mut Vec<PolicyError>) -> Vec<KeyEntry> {
    let mut seen: Vec<&str> = Vec::new();
    let entries: Vec<KeyEntry> = key.iter().map(|k| KeyEntry::parse(k)).collect();
    for (i, entry) in entries.iter().enumerate() {
        let mut at = |message: String| {
            errors.push(PolicyError {
                field: "key",
                message,
                index: Some(i),
            });
        };
        for name in entry.alternatives() {
            if !is_valid_name(name) {
                let what = if entry.alternatives().len() > 1 {
                    format!(" in {:?}", key[i])
                } else {
                    String::new()
                };
                at(format!("key attribute {name:?}{what} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.' (alternatives are separated by '|', like \"user|ip\")"));
            } else if seen.contains(&name.as_str()) {
                at(format!("key attribute {name:?} is listed twice"));
            } else {
                seen.push(name);
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_alternatives() {
        let entry = KeyEntry::parse(" user | ip ");
        assert_eq!(entry.alternatives(), ["user", "ip"]);
        assert_eq!(entry.to_string(), "user|ip");
        let mut a = Attributes::new();
        assert_eq!(entry.resolve(&a), None);
        a.insert("ip".into(), "127.0.0.1".into());
        assert_eq!(entry.resolve(&a), Some((1, "127.0.0.1")));
        a.insert("user".into(), "u1".into());
        assert_eq!(entry.resolve(&a), Some((0, "u1")));
        assert_eq!(KeyEntry::parse("user|").alternatives(), ["user", ""]);
    }

    #[test]
    fn an_empty_value_counts_as_absent() {
        let entry = KeyEntry::parse("user|ip");
        let mut a = Attributes::new();
        a.insert("user".into(), String::new());
        a.insert("ip".into(), "192.0.2.1".into());
        assert_eq!(entry.resolve(&a), Some((1, "192.0.2.1")));
        assert_eq!(
            entry.segment(&a),
            Segment {
                stand_in: Some("ip"),
                value: "192.0.2.1"
            }
        );
        a.insert("ip".into(), String::new());
        assert_eq!(entry.resolve(&a), None);
        // A single attribute: empty is absent too, the policy does not apply.
        assert_eq!(KeyEntry::parse("user").resolve(&a), None);
    }
}
