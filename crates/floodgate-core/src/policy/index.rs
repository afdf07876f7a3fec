//! The policy index: which policies a check could match, found by lookup
//! instead of by trying every policy.
//!
//! Built once per policy set (so once per config load). Each policy is filed
//! under one condition it requires:
//!
//! - one of its `match` conditions (the one listing the fewest values): a
//!   map from attribute name, then value, to the policies requiring it;
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
        let mut index = PolicyIndex::default();
        for (i, policy) in policies.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 policies");
            let condition = policy.matches.iter().min_by_key(|(_, values)| values.len());
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
