//! Tiers: a policy that `replaces` others takes their place for the checks
//! it applies to, so a plan or a named customer can get *more* than the
//! policy everyone else meets.
//!
//! The rules, for one check:
//!
//! - A policy R *sets aside* every policy in the transitive closure of its
//!   `replaces` list: the ones it names, the ones those name, and so on,
//!   whether or not the policies in between apply to the check. With
//!   `pro replaces ["free"]` and `enterprise replaces ["pro"]`, an
//!   enterprise check that also matches `free` meets `enterprise` alone.
//! - R sets aside only when it applies to the check itself, and only when
//!   its own `mode` is `enforce`: a `mode = "shadow"` policy (a tier being
//!   tried out) counts and reports but sets nothing aside, so the limits in
//!   force stay in force. Global `[server] shadow` changes nothing here.
//! - A policy set aside by any policy that applies is not checked, not
//!   charged and not reported for that check, even when it replaces others
//!   itself (those stay set aside: the closure above already covers them).
//! - The order of the policies in the file does not matter.
//!
//! Refused when the set is built: a name that is no policy, a cycle
//! (`a` replaces `b` replaces `a`, or a policy replacing itself), and a
//! `concurrency` policy replacing a rate policy or the reverse (transports
//! that cannot release leases skip `concurrency` policies, and a skipped
//! replacer must not lift the limit it replaced).

use std::collections::HashMap;
use std::sync::Arc;

use super::{AlgorithmKind, Policy, PolicyError, PolicySpec};

/// Why the `replaces` lists (or names) of a policy set were refused. Each
/// names the policy (`policy`, its index in the list given to
/// [`super::PolicySet::new`]) and, for `replaces` problems, the entry at
/// fault (`index`), so a config loader can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicySetError {
    /// Two policies share a name.
    #[error("shares its name {name:?} with another policy")]
    Duplicate {
        /// The second policy with the name.
        policy: usize,
        /// The name.
        name: String,
    },
    /// A `replaces` entry names no policy.
    #[error("replaces {target:?}, which is not the name of any policy")]
    Unknown {
        /// The replacing policy.
        policy: usize,
        /// The entry in its `replaces` list.
        index: usize,
        /// The name given.
        target: String,
    },
    /// Following `replaces` from a policy leads back to it.
    #[error("replaces {:?}, which closes a cycle ({}); a policy cannot replace, even through others, a policy that replaces it", path.last().map_or("", String::as_str), path.join(" replaces "))]
    Cycle {
        /// The policy whose entry closes the cycle.
        policy: usize,
        /// The entry in its `replaces` list.
        index: usize,
        /// The names along the cycle, first and last the same.
        path: Vec<String>,
    },
    /// A `concurrency` policy replaces a rate policy, or the reverse.
    #[error("replaces {target:?}, but a concurrency policy can only replace concurrency policies, and a rate policy only rate policies")]
    Kinds {
        /// The replacing policy.
        policy: usize,
        /// The entry in its `replaces` list.
        index: usize,
        /// The replaced policy's name.
        target: String,
    },
}

/// For each policy of a set, every policy it sets aside (the transitive
/// closure of its `replaces`), as sorted indices.
#[derive(Debug, Clone, Default)]
pub(super) struct Replacements {
    /// By policy index; empty for the (many) policies that replace nothing.
    closure: Vec<Box<[u32]>>,
    /// Whether any policy replaces another.
    any: bool,
}

impl Replacements {
    /// Resolves and checks every `replaces` list of `policies`.
    pub(super) fn new(
        policies: &[Arc<Policy>],
        by_name: &HashMap<Arc<str>, usize>,
    ) -> Result<Replacements, Vec<PolicySetError>> {
        let mut errors = Vec::new();
        let concurrency = |p: &Policy| p.kind() == AlgorithmKind::Concurrency;
        let edges: Vec<Vec<(usize, u32)>> = (policies.iter().enumerate())
            .map(|(i, p)| {
                let mut targets = Vec::new();
                for (index, target) in p.replaces().iter().enumerate() {
                    match by_name.get(target.as_str()) {
                        None => errors.push(PolicySetError::Unknown {
                            policy: i,
                            index,
                            target: target.clone(),
                        }),
                        Some(&t) if concurrency(p) != concurrency(&policies[t]) => {
                            errors.push(PolicySetError::Kinds {
                                policy: i,
                                index,
                                target: target.clone(),
                            });
                        }
                        Some(&t) => targets.push((index, index_u32(t))),
                    }
                }
                targets
            })
            .collect();
        let order = post_order(policies, &edges, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        // In post order every policy comes after those it replaces, so
        // their closures are complete when it is reached.
        let mut closure: Vec<Box<[u32]>> = vec![Box::default(); policies.len()];
        for i in order {
            let mut all: Vec<u32> = Vec::new();
            for &(_, t) in &edges[i] {
                all.push(t);
                all.extend_from_slice(&closure[t as usize]);
            }
            all.sort_unstable();
            all.dedup();
            closure[i] = all.into_boxed_slice();
        }
        let any = closure.iter().any(|c| !c.is_empty());
        Ok(Replacements { closure, any })
    }

    /// Whether any policy replaces another.
    pub(super) fn any(&self) -> bool {
        self.any
    }

    /// The policies that `policy` sets aside when it applies.
    pub(super) fn of(&self, policy: usize) -> &[u32] {
        self.closure.get(policy).map_or(&[], |c| c)
    }
}

/// The `replaces` list of `spec`, checked for what one policy can tell: it
/// must not name itself nor any policy twice (other problems need the set).
pub(super) fn replaces_of(spec: &PolicySpec, errors: &mut Vec<PolicyError>) -> Vec<String> {
    for (i, name) in spec.replaces.iter().enumerate() {
        let message = if *name == spec.name {
            format!("policy {name:?} cannot replace itself")
        } else if spec.replaces[..i].contains(name) {
            format!("replaces lists {name:?} twice")
        } else {
            continue;
        };
        errors.push(PolicyError {
            field: "replaces",
            message,
            index: Some(i),
        });
    }
    spec.replaces.clone()
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 policies")
}

/// Every policy in an order where each comes after the ones it replaces;
/// each cycle found is reported (once, at the entry that closes it).
fn post_order(
    policies: &[Arc<Policy>],
    edges: &[Vec<(usize, u32)>],
    errors: &mut Vec<PolicySetError>,
) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; policies.len()];
    let mut order = Vec::with_capacity(policies.len());
    for root in 0..policies.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (policy, next edge to follow): no recursion, however long a chain.
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Open;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let Some(&(index, target)) = edges[node].get(*next) else {
                mark[node] = Mark::Done;
                order.push(node);
                stack.pop();
                continue;
            };
            *next += 1;
            let target = target as usize;
            match mark[target] {
                Mark::New => {
                    mark[target] = Mark::Open;
                    stack.push((target, 0));
                }
                Mark::Open => {
                    let from = stack.iter().position(|&(n, _)| n == target).unwrap_or(0);
                    let mut path: Vec<String> = stack[from..]
                        .iter()
                        .map(|&(n, _)| policies[n].name().to_string())
                        .collect();
                    path.push(policies[target].name().to_string());
                    errors.push(PolicySetError::Cycle {
                        policy: node,
                        index,
                        path,
                    });
                }
                Mark::Done => {}
            }
        }
    }
    order
}

#[cfg(test)]
#[path = "replace_tests.rs"]
mod tests;
