//! One entry of a policy's `key`: an attribute, or alternatives separated
//! by `|` (`"user|ip"`: the user, or the client address when there is no
//! user). The first alternative present in a check wins.

use std::fmt;

use crate::attributes::Attributes;

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
    /// one; `None` when none is present (the policy does not apply).
    pub fn resolve<'a>(&self, attributes: &'a Attributes) -> Option<(usize, &'a str)> {
        self.alternatives
            .iter()
            .enumerate()
            .find_map(|(i, name)| attributes.get(name).map(|v| (i, v.as_str())))
    }
}

impl fmt::Display for KeyEntry {
    /// `user|ip`, as normalised (no spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.alternatives.join("|"))
    }
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
}
