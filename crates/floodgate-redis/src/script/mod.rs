//! The Lua scripts (`lua/*.lua`) and the calls that run them.
//!
//! The scripts, each the shared prelude followed by its body: `check` (the
//! five algorithms as functions, then `check.lua`, which decides one or more
//! checks, each check's ops all or nothing), `refund`, `settle`, `reset` and
//! `heartbeat`; `reconcile` is built in `reconcile.rs`. Their SHA1s are
//! computed here, so a call sends only `EVALSHA`. Each script family builds
//! its calls (and reads its replies) in a file of its own: `check.rs`,
//! `refund.rs`, `settle.rs`, `reset.rs`, `heartbeat.rs`.

use std::sync::LazyLock;

use bytes::Bytes;
use fred::types::Value;
use fred::util::sha1_hash;

mod check;
mod heartbeat;
mod refund;
mod reset;
mod settle;

pub(crate) use check::{check_calls, split_frame, split_value, CheckReply};
pub(crate) use heartbeat::{heartbeat_call, read_heartbeat};
pub(crate) use refund::refund_call;
pub(crate) use reset::reset_call;
pub(crate) use settle::{read_settled, settle_call};

/// One script: its source and SHA1.
#[derive(Debug)]
pub(crate) struct Script {
    /// What `SCRIPT LOAD` and `EVAL` send.
    pub(crate) source: String,
    /// What `EVALSHA` sends.
    pub(crate) sha: String,
}

impl Script {
    /// The prelude, then each of `parts`, newline-separated.
    pub(crate) fn new(parts: &[&str]) -> Script {
        let mut source = include_str!("../../lua/prelude.lua").to_string();
        for part in parts {
            source.push('\n');
            source.push_str(part);
        }
        let sha = sha1_hash(&source);
        Script { source, sha }
    }
}

/// The scripts, built once per process.
pub(crate) struct Scripts {
    /// The five algorithms and `check.lua`.
    pub(crate) check: Script,
    /// `refund.lua`.
    refund: Script,
    /// `reserve.lua` and `settle.lua`.
    pub(crate) settle: Script,
    /// `heartbeat.lua`.
    pub(crate) heartbeat: Script,
    /// `reset.lua`.
    pub(crate) reset: Script,
}

/// Every script, built on first use.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    check: Script::new(&[
        include_str!("../../lua/reserve.lua"),
        include_str!("../../lua/block.lua"),
        include_str!("../../lua/sliding_window.lua"),
        include_str!("../../lua/fixed_window.lua"),
        include_str!("../../lua/sliding_log.lua"),
        include_str!("../../lua/token_bucket.lua"),
        include_str!("../../lua/concurrency.lua"),
        include_str!("../../lua/check.lua"),
    ]),
    refund: Script::new(&[include_str!("../../lua/refund.lua")]),
    settle: Script::new(&[
        include_str!("../../lua/reserve.lua"),
        include_str!("../../lua/settle.lua"),
    ]),
    heartbeat: Script::new(&[include_str!("../../lua/heartbeat.lua")]),
    reset: Script::new(&[include_str!("../../lua/reset.lua")]),
});

impl Scripts {
    /// All scripts, `reconcile.rs`'s too, to load them at connect time (a
    /// script first sent after connect would meet `NOSCRIPT`, and its
    /// reload be logged as Redis having lost the scripts).
    pub(crate) fn all(&self) -> [&Script; 6] {
        [
            &self.check,
            &self.refund,
            &self.heartbeat,
            &self.settle,
            &self.reset,
            &crate::reconcile::RECONCILE,
        ]
    }
}

/// One script call: `EVALSHA <sha> <number of keys> <keys…> <args…>`.
#[derive(Debug)]
pub(crate) struct Call {
    /// The script to run.
    pub(crate) script: &'static Script,
    /// Its keys (one slot on a Cluster). Shared bytes: a call is sent
    /// again (`EVAL`) when Redis lost the script, so its arguments are
    /// cloned for each send, which for shared bytes is a reference count.
    pub(crate) keys: Vec<Bytes>,
    /// Its ARGV.
    pub(crate) args: Vec<Value>,
}

impl Call {
    /// The command's arguments after the command name: the script (SHA or
    /// source, sent from the static [`SCRIPTS`] without a copy), the key
    /// count, the keys and the ARGV.
    pub(crate) fn arguments(&self, script: &'static str) -> Vec<Value> {
        let mut out = Vec::with_capacity(2 + self.keys.len() + self.args.len());
        out.push(Value::from_static_str(script));
        out.push(count(self.keys.len()));
        out.extend(self.keys.iter().map(|k| Value::Bytes(k.clone())));
        out.extend(self.args.iter().cloned());
        out
    }

    /// The key that routes the call (every key shares its slot).
    pub(crate) fn routing_key(&self) -> &[u8] {
        self.keys.first().map_or(&[], |k| &k[..])
    }
}

/// A count as a command argument: the small counts every call sends (its
/// key count, each check's op count) as static text, the bytes Redis reads
/// for an integer anyway, so that sending one formats nothing.
pub(crate) fn count(n: usize) -> Value {
    const SMALL: [&str; 65] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
        "32", "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46",
        "47", "48", "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61",
        "62", "63", "64",
    ];
    match SMALL.get(n) {
        Some(text) => Value::from_static_str(text),
        None => int(n as u64),
    }
}

/// A number as a script argument (every value sent is below 2^53).
fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_its_decimal_text() {
        for n in 0..100 {
            let sent = count(n);
            let text = sent.as_str().map(|t| t.to_string());
            assert_eq!(text.as_deref(), Some(n.to_string().as_str()), "{sent:?}");
        }
    }

    #[test]
    fn every_script_states_its_contract_first() {
        // Entry scripts name their KEYS and ARGV; algorithm files, loaded
        // into the check script as functions, their key and arguments.
        let entries = [
            include_str!("../../lua/check.lua"),
            include_str!("../../lua/refund.lua"),
            include_str!("../../lua/heartbeat.lua"),
            include_str!("../../lua/settle.lua"),
            include_str!("../../lua/reset.lua"),
        ];
        let algorithms = [
            include_str!("../../lua/reserve.lua"),
            include_str!("../../lua/sliding_window.lua"),
            include_str!("../../lua/fixed_window.lua"),
            include_str!("../../lua/sliding_log.lua"),
            include_str!("../../lua/token_bucket.lua"),
            include_str!("../../lua/concurrency.lua"),
        ];
        let entry_parts = ["KEYS[", "ARGV", "Returns"];
        let algorithm_parts = ["Key", "Args", "Returns"];
        let all = (entries.iter().map(|b| (b, &entry_parts)))
            .chain(algorithms.iter().map(|b| (b, &algorithm_parts)));
        for (body, parts) in all {
            assert!(body.starts_with("-- "));
            for part in parts {
                assert!(body.contains(part), "{part} missing");
            }
        }
        let shas: std::collections::HashSet<_> =
            SCRIPTS.all().iter().map(|s| s.sha.clone()).collect();
        assert_eq!(shas.len(), 6);
    }
}
