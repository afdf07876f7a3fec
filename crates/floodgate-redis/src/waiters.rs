//! Wake-ups across sidecars for checks waiting on a `concurrency` counter.
//!
//! A release through any sidecar is announced with one `PUBLISH` on the
//! channel `<key_prefix>:wake`, the message being the counter key
//! (`<policy>:<values>`). Every sidecar subscribes to that channel on a
//! connection of its own and wakes the waiters it holds on that
//! counter, which re-checks at once (with the shared ticket queue of
//! `ticket_queue.rs`: every waiter there re-reads its rank, and the first
//! re-checks). Pub/sub is fire and forget: a message
//! lost (a subscriber reconnecting, Redis restarting) only delays a waiter
//! to its next poll (`WaitRoom::poll`), and a lease that lapses by its
//! timeout is found the same way. Only releases of policies with a
//! `max_wait` are announced (the others have nobody waiting).
//!
//! The same connections carry admin resets on `<key_prefix>:reset`: the
//! message is the reset counter keys, one a line, and every sidecar
//! forgets them in its deny cache and fallback ([`Resets::received`]).

use std::sync::Arc;
use std::time::Duration;

use floodgate_store::{ResetBus, Resets, WaitRoom, WakeBus};
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::ReconnectPolicy;
use fred::types::{Builder, Message};
use tokio::sync::{broadcast, mpsc};

use crate::config::{target, to_fred};
use crate::ticket_queue::RedisQueue;
use crate::{Error, RedisConfig};

/// Announced releases waiting to be published, at most; past it a release
/// is not announced (its waiters poll).
const QUEUED: usize = 4_096;

/// The wake-up channel's name for `prefix`.
pub fn wake_channel(prefix: &str) -> String {
    format!("{prefix}:wake")
}

/// The reset channel's name for `prefix`.
pub fn reset_channel(prefix: &str) -> String {
    format!("{prefix}:reset")
}

/// Publishes releases on the wake channel and resets on the reset channel,
/// from a task of its own so a release never waits for it.
pub struct WakePublisher {
    /// (channel, message) to publish.
    queue: mpsc::Sender<(Arc<str>, String)>,
    /// The wake channel.
    wake: Arc<str>,
    /// The reset channel.
    reset: Arc<str>,
}

impl WakeBus for WakePublisher {
    fn publish(&self, keys: Vec<String>) {
        for key in keys {
            if self.queue.try_send((self.wake.clone(), key)).is_err() {
                tracing::debug!("wake-up queue full: a waiter will find the slot by polling");
            }
        }
    }
}

impl ResetBus for WakePublisher {
    fn publish(&self, keys: Vec<String>) {
        if self
            .queue
            .try_send((self.reset.clone(), keys.join("\n")))
            .is_err()
        {
            tracing::warn!("reset announcement queue full: other sidecars keep their cached denials of the reset keys until they lapse");
        }
    }
}

fn builder(config: &RedisConfig) -> Result<Builder, Error> {
    let mut builder = Builder::from_config(to_fred(config)?);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = config.timeout.max(Duration::from_secs(1));
            c.tcp.nodelay = Some(true);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    Ok(builder)
}

/// Connects the wake channel for `room`: a subscriber that wakes the
/// room's waiters on every announced release, and the publisher the room
/// announces its own releases through (installed with
/// [`WaitRoom::set_bus`]), carrying admin resets for `resets` too. Both
/// reconnect by themselves; they run until `stop` resolves.
///
/// # Errors
/// [`Error`] when the connections cannot be built or made.
pub async fn connect_wake_channel(
    config: &RedisConfig,
    room: Arc<WaitRoom>,
    resets: Arc<Resets>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let channel = wake_channel(&config.key_prefix);
    let resetting = reset_channel(&config.key_prefix);
    let (subscriber, publisher, messages) = subscribe(config, &channel, &resetting).await?;
    // Subscribes again after every reconnection.
    let _resubscribe = subscriber.manage_subscriptions();
    let keys = install_bus(config, &room, &resets, &publisher, &channel, &resetting);
    let publishing = spawn_publishing(publisher.clone(), keys);
    tokio::spawn(async move {
        tokio::select! {
            () = stop => {}
            () = receive(messages, &room, &resets, &resetting) => {}
        }
        publishing.abort();
        let _ = subscriber.quit().await;
        let _ = publisher.quit().await;
    });
    Ok(())
}

/// Builds and connects the subscriber (subscribed to `channel` and
/// `resetting`, its messages returned) and the publisher; on failure both
/// are closed.
async fn subscribe(
    config: &RedisConfig,
    channel: &str,
    resetting: &str,
) -> Result<(SubscriberClient, Client, broadcast::Receiver<Message>), Error> {
    let target = target(config);
    let subscriber: SubscriberClient = builder(config)?
        .build_subscriber_client()
        .map_err(|e| Error::connecting(target.clone(), &e))?;
    let publisher: Client = builder(config)?
        .build()
        .map_err(|e| Error::connecting(target.clone(), &e))?;
    // Bounded, as the store's own connect: unreachable is retried by the
    // caller, and nothing keeps reconnecting behind its back.
    let wait = config.timeout.max(Duration::from_secs(1)) * 2;
    let messages = subscriber.message_rx();
    let subscribed = tokio::time::timeout(wait, async {
        subscriber.init().await?;
        publisher.init().await?;
        subscriber
            .subscribe(vec![channel.to_string(), resetting.to_string()])
            .await
    })
    .await;
    let failed = match subscribed {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Error::connecting(target.clone(), &e)),
        Err(_) => Some(Error::Unreachable {
            target: target.clone(),
            reason: format!("no connection within {wait:?}"),
        }),
    };
    if let Some(error) = failed {
        let _ = subscriber.quit().await;
        let _ = publisher.quit().await;
        return Err(error);
    }
    Ok((subscriber, publisher, messages))
}

/// Installs the [`WakePublisher`] as the bus of `room` and `resets`, and
/// the shared ticket queue on `publisher`; returns the publisher's queue.
fn install_bus(
    config: &RedisConfig,
    room: &WaitRoom,
    resets: &Resets,
    publisher: &Client,
    channel: &str,
    resetting: &str,
) -> mpsc::Receiver<(Arc<str>, String)> {
    let (queue, keys) = mpsc::channel::<(Arc<str>, String)>(QUEUED);
    let bus = Arc::new(WakePublisher {
        queue,
        wake: channel.into(),
        reset: resetting.into(),
    });
    room.set_bus(bus.clone());
    resets.set_bus(bus);
    room.set_shared(Arc::new(RedisQueue::new(
        publisher.clone(),
        &config.key_prefix,
        channel.to_string(),
        config.timeout,
    )));
    keys
}

/// Publishes every queued (channel, message) until the queue closes.
fn spawn_publishing(
    publisher: Client,
    mut keys: mpsc::Receiver<(Arc<str>, String)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((to, message)) = keys.recv().await {
            if let Err(error) = publisher.publish::<(), _, _>(&*to, message).await {
                tracing::debug!(%error, channel = &*to, "message not published");
            }
        }
    })
}

/// Wakes waiters on every release announced, and forgets every reset
/// announced on `resetting`, until the subscriber closes.
async fn receive(
    mut messages: broadcast::Receiver<Message>,
    room: &WaitRoom,
    resets: &Resets,
    resetting: &str,
) {
    loop {
        match messages.recv().await {
            Ok(message) => {
                let Some(text) = message.value.as_str() else {
                    continue;
                };
                if &*message.channel == resetting {
                    resets.received(&text);
                    // Freed slots: waiters on those counters re-check.
                    for key in text.lines() {
                        room.wake_all(key);
                    }
                } else {
                    room.wake_all(&text);
                }
            }
            // Missed messages: the waiters poll.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
