//! The policies in force for one check: those the index offers that
//! apply, less those a replacing policy sets aside (see [`super::replace`]).

use std::sync::Arc;

use super::index::Candidates;
use super::{Mode, Policy, PolicySet};
use crate::attributes::Attributes;

/// The policies in force for a check, in configuration order, each with its
/// index in the set. Made by [`PolicySet::applicable`].
pub struct Applicable<'a> {
    /// The set the indices point into.
    set: &'a PolicySet,
    /// Where the next policy comes from.
    state: State<'a>,
}

enum State<'a> {
    /// No policy of the set replaces another: the candidates that apply,
    /// found one at a time, with no allocation.
    Direct {
        candidates: Candidates<'a>,
        attributes: &'a Attributes,
        domain: Option<&'a str>,
    },
    /// The policies in force, found up front (some were set aside).
    Kept(std::vec::IntoIter<usize>),
}

impl<'a> Applicable<'a> {
    pub(super) fn new(
        set: &'a PolicySet,
        candidates: Candidates<'a>,
        attributes: &'a Attributes,
        domain: Option<&'a str>,
    ) -> Self {
        let mut direct = Applicable {
            set,
            state: State::Direct {
                candidates,
                attributes,
                domain,
            },
        };
        if !set.replacements.any() {
            return direct;
        }
        let mut matching: Vec<usize> = direct.by_ref().map(|(i, _)| i).collect();
        let mut aside: Vec<u32> = (matching.iter())
            .filter(|&&i| set.policies[i].mode() == Mode::Enforce)
            .flat_map(|&i| set.replacements.of(i).iter().copied())
            .collect();
        if !aside.is_empty() {
            aside.sort_unstable();
            aside.dedup();
            matching.retain(|&i| {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                aside.binary_search(&i).is_err()
            });
        }
        Applicable {
            set,
            state: State::Kept(matching.into_iter()),
        }
    }
}

impl<'a> Iterator for Applicable<'a> {
    type Item = (usize, &'a Arc<Policy>);

    fn next(&mut self) -> Option<Self::Item> {
        let policies = &self.set.policies;
        match &mut self.state {
            State::Direct {
                candidates,
                attributes,
                domain,
            } => candidates
                .map(|i| (i, &policies[i]))
                .find(|(_, p)| p.applies(attributes, *domain)),
            State::Kept(kept) => kept.next().map(|i| (i, &policies[i])),
        }
    }
}
