//! Lockouts in the local store (`block_for`, rules in floodgate-core's
//! `policy/block.rs`): one record per counter key (`<policy>:<values>`,
//! so per policy and key) in a bounded map of its own, next to the
//! counters. The Redis store keeps the same record in
//! `<counter's Redis key>:block` (floodgate-redis `lua/block.lua`).

use floodgate_core::{BlockRecord, Outcome, Policy};

use super::LocalStore;
use crate::shards::Expiring;

/// A key's lockout record, until it may be forgotten.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held(BlockRecord);

impl Expiring for Held {
    fn expires_us(&self) -> u64 {
        self.0.expires_us
    }
}

/// The denial of an op on a blocked key: nothing left until the block ends.
pub(crate) fn blocked(limit: u64, until_us: u64, now_us: u64) -> Outcome {
    let left = until_us - now_us;
    Outcome {
        allowed: false,
        limit,
        remaining: 0,
        reset_after_us: left,
        retry_after_us: left,
        receipt: None,
    }
}

impl LocalStore {
    /// The denial of `key` when it is blocked at `now_us`.
    pub(super) fn blocked_now(&self, policy: &Policy, key: &str, now_us: u64) -> Option<Outcome> {
        let hash = self.blocks.hash(key);
        let shard = self.blocks.lock(&hash);
        let Held(record) = shard.get(&hash).copied()?;
        (record.until_us > now_us).then(|| blocked(policy.burst(), record.until_us, now_us))
    }

    /// After the algorithm decided `outcome` for `hits` at `now_us`: a
    /// denied op with a cost starts a block (the key was not blocked, or it
    /// would not have been decided). Returns the outcome to report: the
    /// denial until the block's end.
    pub(super) fn maybe_block(
        &self,
        policy: &Policy,
        key: &str,
        hits: u64,
        outcome: Outcome,
        now_us: u64,
    ) -> Outcome {
        let block = policy.block();
        if !block.is_on() || outcome.allowed || hits == 0 {
            return outcome;
        }
        let hash = self.blocks.hash(key);
        let mut shard = self.blocks.lock(&hash);
        let previous = shard
            .get(&hash)
            .map(|Held(r)| *r)
            .filter(|r| r.expires_us > now_us);
        let record = block.start(previous, now_us);
        if self.blocks.insert(&mut shard, hash, Held(record), now_us) {
            drop(shard);
            self.note_full(now_us);
        }
        let left = record.until_us - now_us;
        Outcome {
            reset_after_us: outcome.reset_after_us.max(left),
            retry_after_us: left,
            ..outcome
        }
    }

    /// Forgets the lockout of counter key `key` (`<policy>:<values>`), if
    /// any: the key is no longer blocked and its offence level starts again
    /// (for an admin reset). Returns whether there was one.
    pub fn clear_block(&self, key: &str) -> bool {
        let hash = self.blocks.hash(key);
        self.blocks.lock(&hash).remove(&hash).is_some()
    }
}
