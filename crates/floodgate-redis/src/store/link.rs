//! [`Link`]: the connections of a [`super::RedisStore`] and how every call
//! is made on them — one pipeline of `EVALSHA`s within a deadline, sent
//! again with the full script when Redis answers `NOSCRIPT`. A lone call's
//! reply can also be had as the frame Redis sent ([`Link::run_frame`]),
//! read without fred's conversion into [`Value`]s.

use std::time::Duration;

use floodgate_store::StoreError;
use fred::clients::{Pipeline, Pool};
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::config::Options;
use fred::types::{ClusterHash, CustomCommand, Resp3Frame, Value};
use fred::util::redis_keyslot;
use tokio::time::{timeout_at, Instant};

use crate::error::{is_noscript, store_error};
use crate::script::{Call, SCRIPTS};

/// The connections of a store and how every call is made on them; cheap to
/// clone (the batcher and its drain tasks hold one).
#[derive(Clone)]
pub(crate) struct Link {
    /// Connections, each pipelining the commands sent to it.
    pub(crate) pool: Pool,
    /// Longest time one store call may take.
    pub(crate) timeout: Duration,
    /// Options of every call: fail fast. A call fails at once while its
    /// connection is known to be down, and a call cut off mid-flight by a
    /// dropped connection fails instead of being re-sent after reconnecting
    /// (see the crate docs for the one gap fred leaves). No fred timeout:
    /// every call with these options runs under our own deadline.
    pub(crate) options: Options,
}

impl Link {
    /// A link over `pool`, each call within `timeout`, fail-fast.
    pub(super) fn new(pool: Pool, timeout: Duration) -> Link {
        Link {
            pool,
            timeout,
            options: Options {
                fail_fast: true,
                // Zero: no timer of fred's beside ours (`default_command_
                // timeout` still covers the commands sent without them).
                timeout: Some(Duration::ZERO),
                ..Options::default()
            },
        }
    }

    /// The longest time one call may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Loads every script on every primary.
    pub(super) async fn load_scripts(&self, timeout: Duration) -> Result<(), FredError> {
        let client = self.pool.next();
        let all = async {
            for script in SCRIPTS.all() {
                // Boxed: fred's futures are large, keep ours small.
                Box::pin(client.script_load_cluster::<Value, _>(script.source.as_str())).await?;
            }
            Ok(())
        };
        within(timeout, "SCRIPT LOAD", all).await
    }

    /// Sends `calls` as one pipeline and returns each reply, in order.
    /// Calls answered `NOSCRIPT` are sent again with the full script.
    pub(crate) async fn run(&self, calls: &[&Call]) -> Result<Vec<Value>, StoreError> {
        self.run_by(calls, Instant::now() + self.timeout).await
    }

    /// [`Link::run`], answered by `deadline` (or [`StoreError::Timeout`]).
    pub(crate) async fn run_by(
        &self,
        calls: &[&Call],
        deadline: Instant,
    ) -> Result<Vec<Value>, StoreError> {
        let mut replies = self.send(calls, false, deadline).await?;
        let missing: Vec<usize> = (0..calls.len())
            .filter(|&i| matches!(&replies[i], Err(e) if is_noscript(e)))
            .collect();
        if !missing.is_empty() {
            let retry: Vec<&Call> = missing.iter().map(|&i| calls[i]).collect();
            let (again, ()) = tokio::join!(
                self.send(&retry, true, deadline),
                self.reload_scripts(missing.len(), deadline)
            );
            for (i, reply) in missing.into_iter().zip(again?) {
                replies[i] = reply;
            }
        }
        replies
            .into_iter()
            .map(|r| r.map_err(|e| store_error(&e)))
            .collect()
    }

    /// [`Link::run_by`] for one call, its reply the frame Redis sent (in
    /// RESP3 form), not converted into a [`Value`]: the check script's
    /// replies are read from it directly. An error reply is the error.
    pub(crate) async fn run_frame(
        &self,
        call: &Call,
        deadline: Instant,
    ) -> Result<Resp3Frame, StoreError> {
        let reply = match self.send_one(call, false, deadline).await? {
            Err(e) if is_noscript(&e) => {
                let (again, ()) = tokio::join!(
                    self.send_one(call, true, deadline),
                    self.reload_scripts(1, deadline)
                );
                again?
            }
            reply => reply,
        };
        reply.map_err(|e| store_error(&e))
    }

    /// After `calls` calls were answered `NOSCRIPT`: loads the scripts
    /// again (by `deadline`) while those calls are sent with `EVAL`.
    async fn reload_scripts(&self, calls: usize, deadline: Instant) {
        tracing::info!(calls, "Redis lost the scripts (NOSCRIPT): reloading");
        let timeout = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = self.load_scripts(timeout).await {
            tracing::warn!(error = %e, "reloading the scripts failed; EVAL keeps checks working");
        }
    }

    /// Sends one call (`EVALSHA`, or `EVAL` when `full`) and reads its reply
    /// frame by `deadline`; an error reply is fred's error for it, as
    /// [`fred::interfaces::ClientLike::custom`] would return.
    async fn send_one(
        &self,
        call: &Call,
        full: bool,
        deadline: Instant,
    ) -> Result<Result<Resp3Frame, FredError>, StoreError> {
        let (command, args) = command(call, full);
        let client = self.pool.next_connected().with_options(&self.options);
        let reply = timeout_at(
            deadline,
            Box::pin(client.custom_raw::<Value>(command, args)),
        )
        .await
        .map_err(|_| StoreError::Timeout)?;
        Ok(reply.and_then(|frame| match frame {
            Resp3Frame::SimpleError { .. } | Resp3Frame::BlobError { .. } => {
                // fred's conversion makes an error reply its error.
                Value::try_from(frame).and(Err(FredError::new(
                    fred::error::ErrorKind::Protocol,
                    "an error reply read as a value",
                )))
            }
            frame => Ok(frame),
        }))
    }

    /// Writes `calls` as one pipeline (`EVALSHA`, or `EVAL` when `full`) and
    /// reads every reply by `deadline`.
    async fn send(
        &self,
        calls: &[&Call],
        full: bool,
        deadline: Instant,
    ) -> Result<Vec<Result<Value, FredError>>, StoreError> {
        if let [call] = calls {
            // One call (a check on a standalone Redis, unless it names one
            // counter twice): no pipeline object to build and drain.
            let reply = self.send_one(call, full, deadline).await?;
            return Ok(vec![reply.and_then(Value::try_from)]);
        }
        let client = self.pool.next_connected().with_options(&self.options);
        let pipeline = Pipeline::from(client);
        for call in calls {
            let (command, args) = command(call, full);
            // Queuing in a pipeline only buffers the command. Boxed, as
            // every fred future: inline, fred's futures (kilobytes) would
            // make this one, and each future awaiting it, as large.
            Box::pin(pipeline.custom::<(), Value>(command, args))
                .await
                .map_err(|e| store_error(&e))?;
        }
        let replies = timeout_at(deadline, Box::pin(pipeline.try_all::<Value>()))
            .await
            .map_err(|_| StoreError::Timeout)?;
        if replies.len() != calls.len() {
            // The pipeline failed as a whole: one error stands for all.
            return Err(match replies.into_iter().find_map(Result::err) {
                Some(e) => store_error(&e),
                None => StoreError::Protocol("pipeline reply count mismatch".into()),
            });
        }
        Ok(replies)
    }
}

/// The command running `call` (`EVALSHA`, or `EVAL` with the full script
/// when `full`), routed by its keys' slot, and its arguments.
fn command(call: &Call, full: bool) -> (CustomCommand, Vec<Value>) {
    let slot = redis_keyslot(call.routing_key());
    let (name, script) = if full {
        ("EVAL", call.script.source.as_str())
    } else {
        ("EVALSHA", call.script.sha.as_str())
    };
    (
        CustomCommand::new_static(name, ClusterHash::Custom(slot), false),
        call.arguments(script),
    )
}

/// `future` (a fred command), or a timeout error naming `what` once
/// `timeout` has passed.
pub(super) async fn within<T>(
    timeout: Duration,
    what: &str,
    future: impl std::future::Future<Output = Result<T, FredError>>,
) -> Result<T, FredError> {
    // Boxed: fred's futures are kilobytes.
    tokio::time::timeout(timeout, Box::pin(future))
        .await
        .unwrap_or_else(|_| {
            Err(FredError::new(
                fred::error::ErrorKind::Timeout,
                format!("{what} timed out"),
            ))
        })
}
