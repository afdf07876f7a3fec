//! The policy index: which policies a check could match, found by lookup
//! instead of by trying every policy.
//!
//! Built once per policy set (so once per config load). Each policy is filed
//! under one condition it requires:
//!
//! - one of its `match` conditions: the one whose values the fewest
//!   policies mention (so `tenant = "t5"` rather than an `endpoint = "ai"`
//!   that thousands of policies share), in a map from attribute name, then
//!   value, to the policies filed under it;
//! - else, for a policy restricted to an Envoy RLS domain, that domain;
//! - else (no `match`, no domain) an always-check list.
//!
//! A check's candidates are the lists its own attribute values and domain
//! select, plus the always-check list. A policy is filed under exactly one
//! condition, and a check holds one value per attribute, so the lists are
//! disjoint; each is sorted, so merging them yields the candidates in
//! configuration order. Every candidate still goes through the full
//! [`Policy::applies`]: the index only skips policies that cannot apply.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::quality::RandomState;

use super::Policy;
use crate::attributes::Attributes;

/// A map with a fast keyed hash (its seed random per process).
type Map<K, V> = HashMap<K, V, RandomState>;

/// Lists merged without allocating; a check selecting more spills to the heap.
const INLINE_LISTS: usize = 4;

/// Where each policy of a set is filed (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(super) struct PolicyIndex {
    /// Attribute name → value → indices of the policies filed under it,
    /// ascending.
    by_match: Map<String, Map<String, Vec<u32>>>,
    /// Domain → indices of the policies without a `match` filed under it.
    by_domain: Map<String, Vec<u32>>,
    /// Indices of the policies every check must try, ascending.
    always: Vec<u32>,
}

impl PolicyIndex {
    /// Files every policy of `policies` (in configuration order).
    pub(super) fn new(policies: &[Arc<Policy>]) -> PolicyIndex {
        // How many conditions mention each (attribute, value).
        let mut mentions: Map<&str, Map<&str, usize>> = Map::default();
        for (name, values) in policies.iter().flat_map(|p| &p.matches) {
            let by_value = mentions.entry(name).or_default();
            for value in values {
                *by_value.entry(value).or_default() += 1;
            }
        }
        let shared = |(name, values): &(String, Vec<String>)| -> usize {
            let by_value = &mentions[name.as_str()];
            values.iter().map(|v| by_value[v.as_str()]).sum()
        };
        let mut index = PolicyIndex::default();
        for (i, policy) in policies.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 policies");
            let condition = policy.matches.iter().min_by_key(|c| shared(c));
            match (condition, &policy.domain) {
                (Some((name, values)), _) => {
                    let by_value = index.by_match.entry(name.clone()).or_default();
                    for value in values {
                        let list = by_value.entry(value.clone()).or_default();
                        // A value listed twice files the policy once.
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                (None, Some(domain)) => {
                    index.by_domain.entry(domain.clone()).or_default().push(i);
                }
                (None, None) => index.always.push(i),
            }
        }
        index
    }

    /// The indices of the policies that could apply to a check, ascending.
    pub(super) fn candidates<'a>(
        &'a self,
        attributes: &'a Attributes,
        domain: Option<&str>,
    ) -> Candidates<'a> {
        let mut lists = Candidates::default();
        lists.push(&self.always);
        if let Some(list) = domain.and_then(|d| self.by_domain.get(d)) {
            lists.push(list);
        }
        // Walk the smaller side: the indexed attribute names (usually a
        // handful) or the check's attributes (at most 64).
        if self.by_match.len() <= attributes.len() {
            for (name, by_value) in &self.by_match {
                if let Some(list) = attributes.get(name).and_then(|v| by_value.get(v)) {
                    lists.push(list);
                }
            }
        } else {
            for (name, value) in attributes {
                if let Some(list) = self.by_match.get(name).and_then(|m| m.get(value)) {
                    lists.push(list);
                }
            }
        }
        lists
    }
}

/// Sorted, disjoint lists of policy indices, merged into one ascending
/// sequence as it is iterated.
#[derive(Debug, Default)]
pub(super) struct Candidates<'a> {
    /// The first lists, held inline.
    inline: [&'a [u32]; INLINE_LISTS],
    /// How many of `inline` are in use.
    len: usize,
    /// Further lists (a check selecting more than [`INLINE_LISTS`]).
    spill: Vec<&'a [u32]>,
}

impl<'a> Candidates<'a> {
    fn push(&mut self, list: &'a [u32]) {
        if list.is_empty() {
            return;
        }
        if self.len < INLINE_LISTS {
            self.inline[self.len] = list;
            self.len += 1;
        } else {
            self.spill.push(list);
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let (inline, spill) = (&mut self.inline[..self.len], &mut self.spill);
        let smallest = inline
            .iter_mut()
            .chain(spill.iter_mut())
            .filter(|list| !list.is_empty())
            .min_by_key(|list| list[0])?;
        let (&first, rest) = smallest.split_first()?;
        *smallest = rest;
        Some(first as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySpec;

    fn policy(name: String, matches: &[(&str, &str)], domain: Option<&str>) -> Arc<Policy> {
        Arc::new(
            Policy::new(PolicySpec {
                name,
                matches: (matches.iter())
                    .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
                    .collect(),
                key: vec!["user".into()],
                limit: 1,
                window_us: Some(1_000_000),
                domain: domain.map(str::to_string),
                ..PolicySpec::default()
            })
            .unwrap(),
        )
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A condition every policy shares (`endpoint = "ai"`, written first) is
    /// not the one they are filed under: a tenant's check tries one policy.
    #[test]
    fn files_each_policy_under_its_least_shared_condition() {
        let policies: Vec<_> = (0..1_000)
            .map(|n| {
                let tenant = format!("t{n}");
                policy(
                    format!("p{n}"),
                    &[("endpoint", "ai"), ("tenant", &tenant)],
                    None,
                )
            })
            .collect();
        let index = PolicyIndex::new(&policies);
        let a = attrs(&[("endpoint", "ai"), ("tenant", "t7"), ("user", "u")]);
        assert_eq!(index.candidates(&a, None).collect::<Vec<_>>(), [7]);
    }

    /// Policies without `match` are tried by every check, those restricted
    /// to a domain only by its checks; more lists than fit inline still
    /// merge in configuration order.
    #[test]
    fn merges_every_selected_list_in_configuration_order() {
        let names = ["a", "b", "c", "d", "e"];
        let mut policies = vec![policy("always".into(), &[], None)];
        for (i, n) in names.iter().enumerate() {
            policies.push(policy(format!("m{i}"), &[(n, "x")], None));
        }
        policies.push(policy("edge".into(), &[], Some("edge")));
        policies.push(policy("last".into(), &[], None));
        let index = PolicyIndex::new(&policies);
        let all = attrs(&[("a", "x"), ("b", "x"), ("c", "x"), ("d", "x"), ("e", "x")]);
        let got: Vec<_> = index.candidates(&all, Some("edge")).collect();
        assert_eq!(got, (0..policies.len()).collect::<Vec<_>>());
        let some = attrs(&[("c", "x"), ("e", "y")]);
        assert_eq!(index.candidates(&some, None).collect::<Vec<_>>(), [0, 3, 7]);
    }
}
