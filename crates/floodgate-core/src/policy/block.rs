//! Lockouts (`block_for`): a key denied by the policy is then refused for a
//! while whatever its counter says — a penalty box for login brute force.
//! Optionally each repeat offence doubles the block (`block_escalation`),
//! up to `block_max`.
//!
//! The arithmetic lives here so both stores agree: the local store calls
//! [`Block::start`]; `block.lua` in floodgate-redis mirrors it.
//!
//! Rules, for a policy with `block_for`:
//!
//! - A denied op with a cost (`hits > 0`) starts a block, unless the key is
//!   blocked already (a hit during a block neither extends nor repeats it).
//!   A peek (`hits = 0`) never starts one.
//! - While blocked, every op on the key is denied (peeks too), with
//!   `remaining = 0` and `retry_after` = `reset_after` = the time left.
//! - Escalation: the offence level is remembered until `block_max` after the
//!   block's end; a denial within that memory starts a block twice as long
//!   as the previous one (capped at `block_max`); past it, the level starts
//!   again at 1.

use super::{error, AlgorithmKind, PolicyError, MAX_WINDOW_US, MIN_WINDOW_US};

/// `block_max` when escalation is on and none is given: 1 day (or
/// `block_for`, if longer).
pub const DEFAULT_BLOCK_MAX_US: u64 = 86_400 * 1_000_000;
/// Highest offence level kept (the length is capped long before).
const MAX_LEVEL: u32 = 64;

/// A policy's lockout settings, validated. `for_us == 0`: no lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Block {
    /// The first block's length, µs (0 = no lockout).
    pub for_us: u64,
    /// The longest block, µs; equal to `for_us` without escalation.
    pub max_us: u64,
}

/// A key's lockout record: until when it is blocked, and its offence level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRecord {
    /// End of the block (epoch µs, the store's clock).
    pub until_us: u64,
    /// Offences so far within the memory (1 = the first).
    pub level: u32,
    /// When the record may be forgotten (epoch µs): the block's end, plus
    /// `block_max` with escalation.
    pub expires_us: u64,
}

impl Block {
    /// Whether the policy locks keys out.
    pub fn is_on(&self) -> bool {
        self.for_us > 0
    }

    /// Whether repeats double the block.
    pub fn escalates(&self) -> bool {
        self.max_us > self.for_us
    }

    /// The block length at offence `level` (1 = the first).
    pub fn length_us(&self, level: u32) -> u64 {
        let mut length = self.for_us;
        for _ in 1..level.min(MAX_LEVEL) {
            if length >= self.max_us {
                break;
            }
            length = length.saturating_mul(2).min(self.max_us);
        }
        length
    }

    /// The record a denial at `now_us` writes, given the key's current
    /// record (`None` when none is remembered, or it has expired).
    pub fn start(&self, previous: Option<BlockRecord>, now_us: u64) -> BlockRecord {
        let level = match previous {
            Some(p) if self.escalates() && p.expires_us > now_us => (p.level + 1).min(MAX_LEVEL),
            _ => 1,
        };
        let until_us = now_us + self.length_us(level);
        let memory = if self.escalates() { self.max_us } else { 0 };
        BlockRecord {
            until_us,
            level,
            expires_us: until_us + memory,
        }
    }
}

/// Validates the lockout settings, pushing each problem onto `errors`
/// (naming `block_for`, `block_escalation` or `block_max`).
pub(super) fn validate(
    kind: AlgorithmKind,
    for_us: Option<u64>,
    escalation: bool,
    max_us: Option<u64>,
    max_wait_us: Option<u64>,
    errors: &mut Vec<PolicyError>,
) -> Block {
    let Some(for_us) = for_us else {
        check_without_block_for(escalation, max_us, errors);
        return Block::default();
    };
    let before = errors.len();
    check_block_for(kind, for_us, max_wait_us, errors);
    let max = block_max(for_us, escalation, max_us, errors);
    if errors.len() > before {
        return Block::default();
    }
    Block {
        for_us,
        max_us: max,
    }
}

/// Without `block_for`, `block_escalation` and `block_max` mean nothing.
fn check_without_block_for(escalation: bool, max_us: Option<u64>, errors: &mut Vec<PolicyError>) {
    if escalation {
        errors.push(error(
            "block_escalation",
            "block_escalation applies only with a block_for (like block_for = \"15m\")",
        ));
    } else if max_us.is_some() {
        errors.push(error(
            "block_max",
            "block_max applies only with block_for and block_escalation = true",
        ));
    }
}

/// `block_for`: whole milliseconds from 1ms to 366d, on a rate policy
/// without `max_wait`.
fn check_block_for(
    kind: AlgorithmKind,
    for_us: u64,
    max_wait_us: Option<u64>,
    errors: &mut Vec<PolicyError>,
) {
    if kind == AlgorithmKind::Concurrency {
        errors.push(error(
            "block_for",
            "block_for does not apply to concurrency policies (a slot is freed by a release, not by time); use it on a rate policy such as sliding_window",
        ));
    } else if !(MIN_WINDOW_US..=MAX_WINDOW_US).contains(&for_us) {
        errors.push(error("block_for", "block_for must be between 1ms and 366d"));
    } else if for_us % 1_000 != 0 {
        errors.push(error(
            "block_for",
            "block_for must be a whole number of milliseconds",
        ));
    } else if max_wait_us.is_some_and(|w| w > 0) {
        errors.push(error(
            "block_for",
            "block_for cannot be combined with max_wait: a locked-out key is refused at once, it never waits",
        ));
    }
}

/// The longest lockout: `block_max` with escalation (by default
/// `DEFAULT_BLOCK_MAX_US`, at least `block_for`), else `block_for`.
fn block_max(
    for_us: u64,
    escalation: bool,
    max_us: Option<u64>,
    errors: &mut Vec<PolicyError>,
) -> u64 {
    match (escalation, max_us) {
        (false, Some(_)) => {
            errors.push(error(
                "block_max",
                "block_max applies only with block_escalation = true",
            ));
            for_us
        }
        (false, None) => for_us,
        (true, None) => DEFAULT_BLOCK_MAX_US.max(for_us),
        (true, Some(m)) if !(for_us..=MAX_WINDOW_US).contains(&m) || m % 1_000 != 0 => {
            errors.push(error(
                "block_max",
                "block_max must be whole milliseconds, at least block_for and at most 366d",
            ));
            for_us
        }
        (true, Some(m)) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn without_escalation_every_block_has_the_same_length_and_no_memory() {
        let b = Block {
            for_us: 60 * S,
            max_us: 60 * S,
        };
        let first = b.start(None, 1_000 * S);
        assert_eq!(
            first,
            BlockRecord {
                until_us: 1_060 * S,
                level: 1,
                expires_us: 1_060 * S
            }
        );
        let again = b.start(Some(first), 1_070 * S);
        assert_eq!(again.until_us, 1_130 * S);
        assert_eq!(again.level, 1);
    }

    #[test]
    fn escalation_doubles_within_the_memory_and_is_capped() {
        let b = Block {
            for_us: 60 * S,
            max_us: 300 * S,
        };
        assert!(b.escalates());
        let lengths: Vec<u64> = (1..=6).map(|l| b.length_us(l) / S).collect();
        assert_eq!(lengths, [60, 120, 240, 300, 300, 300]);
        let first = b.start(None, 0);
        assert_eq!(first.expires_us, 360 * S);
        let second = b.start(Some(first), 100 * S);
        assert_eq!((second.level, second.until_us), (2, 220 * S));
        // Past the memory (block end + block_max), the level starts again.
        let later = b.start(Some(second), second.expires_us);
        assert_eq!(
            (later.level, later.until_us - second.expires_us),
            (1, 60 * S)
        );
        assert_eq!(b.length_us(u32::MAX), 300 * S);
    }

    fn check(
        kind: AlgorithmKind,
        for_us: Option<u64>,
        escalation: bool,
        max_us: Option<u64>,
        max_wait: Option<u64>,
    ) -> Result<Block, Vec<&'static str>> {
        let mut errors = Vec::new();
        let b = validate(kind, for_us, escalation, max_us, max_wait, &mut errors);
        if errors.is_empty() {
            Ok(b)
        } else {
            Err(errors.iter().map(|e| e.field).collect())
        }
    }

    #[test]
    fn settings_are_validated_each_at_its_field() {
        let fw = AlgorithmKind::FixedWindow;
        assert_eq!(check(fw, None, false, None, None), Ok(Block::default()));
        assert_eq!(
            check(fw, Some(S), true, None, None),
            Ok(Block {
                for_us: S,
                max_us: DEFAULT_BLOCK_MAX_US
            })
        );
        assert_eq!(
            check(fw, Some(S), false, None, Some(0)),
            Ok(Block {
                for_us: S,
                max_us: S
            })
        );
        let c = AlgorithmKind::Concurrency;
        assert_eq!(check(c, Some(S), false, None, None), Err(vec!["block_for"]));
        assert_eq!(
            check(fw, Some(0), false, None, None),
            Err(vec!["block_for"])
        );
        assert_eq!(
            check(fw, Some(1_500), false, None, None),
            Err(vec!["block_for"])
        );
        assert_eq!(
            check(fw, Some(S), false, None, Some(S)),
            Err(vec!["block_for"])
        );
        assert_eq!(
            check(fw, None, true, None, None),
            Err(vec!["block_escalation"])
        );
        assert_eq!(
            check(fw, None, false, Some(S), None),
            Err(vec!["block_max"])
        );
        assert_eq!(
            check(fw, Some(S), false, Some(2 * S), None),
            Err(vec!["block_max"])
        );
        assert_eq!(
            check(fw, Some(2 * S), true, Some(S), None),
            Err(vec!["block_max"])
        );
    }
}
