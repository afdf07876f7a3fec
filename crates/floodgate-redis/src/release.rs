//! Lease releases in few commands: every `concurrency` refund of one call
//! to [`RedisStore::refund`](crate::RedisStore) (the parts of one lease
//! token) becomes one `ZREM` per counter, naming all of that counter's
//! members, instead of one script call per part. The counter's TTL is left
//! as it was (it can only be later than needed: the key lingers a little,
//! its leases are pruned by their scores on the next check).

use floodgate_core::AlgorithmKind;
use floodgate_store::{Refund, StoreError};
use fred::clients::Pipeline;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand, Value};
use fred::util::redis_keyslot;
use tokio::time::{timeout_at, Instant};

use crate::error::store_error;
use crate::key::redis_key;
use crate::store::Link;

/// One `ZREM`: a counter's key and the members (`<lease id>:<slots>`) to
/// remove from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Zrem {
    pub(crate) key: String,
    pub(crate) members: Vec<String>,
}

impl Zrem {
    /// The command's arguments: the key, then each member.
    pub(crate) fn arguments(&self) -> Vec<Value> {
        std::iter::once(&self.key)
            .chain(&self.members)
            .map(|s| Value::from(s.as_str()))
            .collect()
    }
}

/// The `concurrency` refunds of `refunds`, grouped by counter (in first-seen
/// order) with duplicate members dropped.
pub(crate) fn group(prefix: &str, refunds: &[Refund<'_>]) -> Vec<Zrem> {
    let mut out: Vec<Zrem> = Vec::new();
    for refund in refunds {
        if refund.policy.kind() != AlgorithmKind::Concurrency {
            continue;
        }
        let key = redis_key(prefix, refund.key, refund.policy);
        let member = format!("{}:{}", refund.receipt.id, refund.hits);
        match out.iter_mut().find(|z| z.key == key) {
            Some(z) if z.members.contains(&member) => {}
            Some(z) => z.members.push(member),
            None => out.push(Zrem {
                key,
                members: vec![member],
            }),
        }
    }
    out
}

impl Link {
    /// Sends every `ZREM` of `zrems` as one pipeline, answered within the
    /// timeout.
    pub(crate) async fn zrem(&self, zrems: &[Zrem]) -> Result<(), StoreError> {
        if zrems.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        let pipeline = Pipeline::from(self.pool.next_connected().with_options(&self.options));
        for zrem in zrems {
            let slot = redis_keyslot(zrem.key.as_bytes());
            let command = CustomCommand::new_static("ZREM", ClusterHash::Custom(slot), false);
            Box::pin(pipeline.custom::<(), Value>(command, zrem.arguments()))
                .await
                .map_err(|e| store_error(&e))?;
        }
        let replies = timeout_at(deadline, Box::pin(pipeline.try_all::<Value>()))
            .await
            .map_err(|_| StoreError::Timeout)?;
        match replies.into_iter().find_map(Result::err) {
            Some(e) => Err(store_error(&e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use floodgate_core::{testing, Receipt};

    use super::*;

    #[test]
    fn one_zrem_per_counter_without_duplicates() {
        let policy = |name: &str, kind| testing::policy(kind, 5, 60_000_000).name(name).build();
        let cc = policy("cc", AlgorithmKind::Concurrency);
        let fw = policy("fw", AlgorithmKind::FixedWindow);
        let refund = |policy, key, id| Refund {
            policy,
            key,
            hits: 1,
            receipt: Receipt { at_us: 0, id },
            source: None,
        };
        let refunds: Vec<Refund<'_>> = (0..300)
            .map(|i| refund(&cc, if i % 2 == 0 { "cc:a" } else { "cc:b" }, i % 100))
            .chain([refund(&fw, "fw:a", 1)])
            .collect();
        let zrems = group("fg", &refunds);
        assert_eq!(zrems.len(), 2, "one per counter");
        assert_eq!(zrems[0].key, "fg:{cc:a}:cc");
        assert_eq!(zrems[0].members.len(), 50, "duplicates dropped");
        assert_eq!(zrems[0].members[0], "0:1");
        assert_eq!(zrems[0].arguments().len(), 51);
    }
}
