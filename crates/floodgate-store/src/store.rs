//! The one async store interface. The config picks the store at run time,
//! so transports only ever see `Arc<dyn Store>` behind the `Limiter`.

use async_trait::async_trait;
use floodgate_core::{AlgorithmKind, Outcome, Policy, Receipt};

use crate::StoreError;

/// Which store made a decision (`source` in docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The shared Redis store.
    Redis,
    /// The embedded local store (configured as the store).
    Local,
    /// The local fallback while Redis is unreachable.
    Fallback,
}

impl Source {
    /// `"redis" | "local" | "fallback"`, as in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Redis => "redis",
            Source::Local => "local",
            Source::Fallback => "fallback",
        }
    }
}

/// One policy's share of a check.
#[derive(Debug, Clone, Copy)]
pub struct StoreOp<'a> {
    /// The policy deciding.
    pub policy: &'a Policy,
    /// Its counter key (`<policy>:<escaped values>`).
    pub key: &'a str,
    /// The cost; 0 peeks.
    pub hits: u64,
    /// Whether a denial of this op denies the whole check (false for a
    /// shadow policy, which only reports).
    pub enforced: bool,
    /// Whether an allowed op is charged. `false` decides the real cost
    /// against the counter as it stands and charges nothing (no receipt):
    /// the deny cache asks so for the other policies of a check it already
    /// knows is denied.
    pub charge: bool,
    /// A reservation: when the op is allowed and charged, the store also
    /// keeps a record of it under this nonce (see [`Store::settle`]).
    /// `None` for an ordinary check.
    pub reserve: Option<u128>,
}

impl<'a> StoreOp<'a> {
    /// An enforced op, charged when allowed.
    pub fn new(policy: &'a Policy, key: &'a str, hits: u64) -> Self {
        StoreOp {
            policy,
            key,
            hits,
            enforced: true,
            charge: true,
            reserve: None,
        }
    }
}

/// The settle of one reservation: its record and the actual cost.
#[derive(Debug, Clone, Copy)]
pub struct Settle<'a> {
    /// The policy that charged the reservation (a settleable one).
    pub policy: &'a Policy,
    /// The counter key charged.
    pub key: &'a str,
    /// The nonce the reservation's record is kept under.
    pub nonce: u128,
    /// When the settlement id says the reservation was charged (epoch µs,
    /// the store's clock): tells a forged id from a lapsed one.
    pub issued_us: u64,
    /// The actual cost.
    pub actual: u64,
}

/// What a store did with one [`Settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The reservation of this estimate was settled: the difference was
    /// applied.
    Applied {
        /// The estimate the check had charged.
        estimate: u64,
    },
    /// It had been settled already: nothing changed.
    Spent,
    /// No record, and the id's issue time says it would have lapsed:
    /// nothing changed, the estimate stays charged.
    Lapsed,
    /// No record although the id's issue time says it would still be
    /// kept: a forged id (or one this store never saw). Nothing changed.
    Unknown,
}

/// One counter an admin reset clears.
#[derive(Debug, Clone, Copy)]
pub struct Clear<'a> {
    /// The policy counting in it.
    pub policy: &'a Policy,
    /// Its counter key (`<policy>:<escaped values>`).
    pub key: &'a str,
}

/// What a store decided for one [`StoreOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOutcome {
    /// The algorithm's outcome.
    pub outcome: Outcome,
    /// Who decided.
    pub source: Source,
}

/// Undo of one earlier charge (a refund, or a lease release).
#[derive(Debug, Clone, Copy)]
pub struct Refund<'a> {
    /// The policy that charged.
    pub policy: &'a Policy,
    /// The counter key charged.
    pub key: &'a str,
    /// The hits charged.
    pub hits: u64,
    /// The receipt the charge returned.
    pub receipt: Receipt,
    /// The store that counted the charge (the [`StoreOutcome::source`] of
    /// the op that charged): a refund goes back to that store only.
    /// `None` when it is not known — a lease released by its token — which
    /// only a `concurrency` release may be: its lease id is random, so a
    /// store that never issued it is left untouched.
    pub source: Option<Source>,
}

/// Hits the fallback admitted in one window of one counter while the
/// primary was away (or failed a call), to be added to the primary's counter
/// of the same window once it is back ([`Store::reconcile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconcile {
    /// The policy's algorithm: `fixed_window` or `sliding_window`.
    pub kind: AlgorithmKind,
    /// The counter key (`<policy>:<escaped values>`).
    pub key: String,
    /// The policy's window in µs.
    pub window_us: u64,
    /// When the window's latest such charge was made (epoch µs, the
    /// sidecar's clock): its window is `at_us / window_us`.
    pub at_us: u64,
    /// Hits charged in that window.
    pub hits: u64,
}

/// Where counters live. Implementations own atomicity per counter and run
/// each policy's algorithm check-then-charge.
#[async_trait]
pub trait Store: Send + Sync {
    /// Decides every op, in order, charging those that are allowed. All ops
    /// of one check are sent together (one round trip for a remote store).
    ///
    /// When an enforced op is denied the check is denied, and a store may
    /// then leave the allowed ops uncharged (the Redis store does, atomically,
    /// for the ops of one script call: all of them on a standalone Redis,
    /// those of one slot on a Cluster): an outcome carries a receipt exactly
    /// when its op was charged, and the caller refunds those.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not decide; nothing may have been
    /// charged, or some ops may have been (the caller refunds nothing then:
    /// a failed check counts at most once).
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError>;

    /// Undoes earlier charges. Undoing twice is harmless.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not be reached.
    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError>;

    /// Adds hits another store admitted to this store's counters of the same
    /// windows; a window that has passed is skipped. Stores that are never
    /// a failover primary do nothing (the default).
    ///
    /// # Errors
    /// [`StoreError`] when the store could not be reached (some charges may
    /// have been added).
    async fn reconcile(&self, charges: &[Reconcile]) -> Result<(), StoreError> {
        let _ = charges;
        Ok(())
    }

    /// Settles reservations: for each, marks its record settled and applies
    /// `actual − estimate` to its counter (an overrun past any limit, or a
    /// refund), in one atomic step per reservation, so a record settles at
    /// most once. Returns what happened to each, in order. Stores that
    /// keep no records answer an error (the default).
    ///
    /// # Errors
    /// [`StoreError`] when the store could not be reached (some settles
    /// may have been applied).
    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        let _ = settles;
        Err(StoreError::Protocol("this store cannot settle".into()))
    }

    /// Clears counters (an admin reset): their state, their lockout and
    /// leases, wherever this store keeps them, so the next check starts a
    /// fresh counter. A reservation charged before gives nothing back when
    /// settled later. Clearing a counter that does not exist is harmless.
    /// Stores that keep nothing do nothing (the default).
    ///
    /// # Errors
    /// [`StoreError`] when the store could not be reached (some counters
    /// may have been cleared).
    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        let _ = clears;
        Ok(())
    }

    /// Forgets what this sidecar alone keeps of these counter keys (cached
    /// denials, fallback counters), never the shared store's state: every
    /// sidecar applies it when any of them resets a key. Stores that keep
    /// nothing of their own do nothing (the default).
    fn forget(&self, keys: &[&str]) {
        let _ = keys;
    }

    /// What answers checks right now: `"local"`, `"redis"` or `"fallback"`
    /// (shown by `/readyz`).
    fn mode(&self) -> Source;

    /// Checks that the store answers (the failover store probes with it).
    /// Stores that cannot be down answer `Ok` (the default).
    ///
    /// # Errors
    /// [`StoreError`] when the store does not answer.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
