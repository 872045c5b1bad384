//! The revocation feed: a pub/sub subscription that delivers other nodes'
//! invalidations to this node's session cache, and proves it is alive.
//!
//! Pub/sub is fire-and-forget: messages published while a node is not subscribed are
//! lost, and a subscription connection can stop delivering without closing (a
//! half-open TCP connection, a proxy or firewall that drops it silently). So the feed
//! reports its state to the cache, not only its messages:
//!
//! - [`FeedEvent::Lost`] at once when it starts (nothing is delivered yet), and from
//!   the moment it knows it cannot vouch for delivery: the stream ended, a heartbeat
//!   went unanswered, or subscribing fails. The cache flushes and serves nothing.
//! - [`FeedEvent::Subscribed`] once a subscription is confirmed: the cache flushes
//!   again (messages sent meanwhile are gone) and trusts what it loads from then on.
//!
//! The heartbeat is a `PING` through the subscription connection itself (Redis
//! answers it in subscribed mode, in order with the messages), every
//! [`Heartbeat::interval`]; no answer within [`Heartbeat::deadline`] counts as a loss
//! and the connection is dropped and made anew. A connection that falls silent is
//! therefore detected within interval + deadline (3 s with the defaults).
//!
//! On every loss and resubscription the feed also pings the store's command
//! connection, so that after a Redis restart it reconnects before user traffic needs
//! it (a `ConnectionManager` only discovers a dead socket on its next command).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redauth_core::store::{FeedEvent, Invalidation, InvalidationSink};
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::watch;

/// How the feed proves its subscription is alive (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time between two pings through the subscription connection.
    pub interval: Duration,
    /// How long a ping (and a subscription attempt) may go unanswered before the feed
    /// counts as lost.
    pub deadline: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            deadline: Duration::from_secs(2),
        }
    }
}

/// What the feed is doing, for tests and health reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// Subscribed and proven alive by the last heartbeat (or not yet due for one).
    pub subscribed: bool,
    /// Subscriptions confirmed since the store was created.
    pub subscriptions: u64,
    /// Times a working subscription was lost (closed, or silent past the deadline).
    pub losses: u64,
}

/// Shared view of the feed's [`FeedStatus`]. Updated after the cache has been told,
/// so whoever sees a change can rely on the cache having applied it.
#[derive(Clone)]
pub struct FeedState(Arc<watch::Sender<FeedStatus>>);

impl Default for FeedState {
    fn default() -> Self {
        Self(Arc::new(watch::channel(FeedStatus::default()).0))
    }
}

impl FeedState {
    pub async fn ready(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|s| s.subscribed).await;
    }

    pub fn watch(&self) -> watch::Receiver<FeedStatus> {
        self.0.subscribe()
    }

    fn subscribed(&self) {
        self.0.send_modify(|s| {
            s.subscribed = true;
            s.subscriptions += 1;
        });
    }

    fn lost(&self) {
        self.0.send_modify(|s| {
            s.subscribed = false;
            s.losses += 1;
        });
    }
}

pub fn parse(payload: &str) -> Option<Invalidation> {
    match payload.split_once(':') {
        Some(("sid", sid)) => Some(Invalidation::Session(sid.to_owned())),
        Some(("user", uid)) => Some(Invalidation::User(uid.to_owned())),
        None if payload == "all" => Some(Invalidation::All),
        _ => None,
    }
}

/// Everything the feed task needs.
pub struct Feed {
    pub client: redis::Client,
    pub channel: String,
    pub sink: InvalidationSink,
    pub state: FeedState,
    pub heartbeat: Heartbeat,
    /// A clone of the store's command connection, woken on loss and resubscription.
    pub command: ConnectionManager,
}

pub fn spawn(feed: Feed) {
    // Not subscribed yet: nothing published from now on is sure to arrive. Told
    // before the task starts, so no request is served from a cache nobody vouches for.
    (feed.sink)(FeedEvent::Lost);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            "no async runtime: the invalidation feed is not running and the session cache stays off"
        );
        return;
    };
    runtime.spawn(run(feed));
}

async fn run(feed: Feed) {
    let Feed {
        client,
        channel,
        sink,
        state,
        heartbeat,
        command,
    } = feed;
    let mut backoff = Duration::from_millis(100);
    loop {
        match tokio::time::timeout(heartbeat.deadline, subscribe(&client, &channel)).await {
            Ok(Ok((mut pings, mut messages))) => {
                backoff = Duration::from_millis(100);
                // The command connection first, so that the first request after the
                // cache is trusted again finds it connected.
                wake(&command, heartbeat.deadline).await;
                sink(FeedEvent::Subscribed);
                state.subscribed();
                tracing::info!("invalidation feed subscribed; the session cache is trusted");
                let why = deliver_until_lost(&mut pings, &mut messages, &sink, heartbeat).await;
                sink(FeedEvent::Lost);
                state.lost();
                tracing::warn!(
                    reason = why,
                    "invalidation feed lost; the session cache is off until it resubscribes"
                );
                // Dropping both halves closes the silent connection.
                drop((pings, messages));
                let command = command.clone();
                tokio::spawn(async move { wake(&command, heartbeat.deadline).await });
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "invalidation feed cannot subscribe; retrying");
            }
            Err(_) => {
                tracing::warn!("invalidation feed: no answer to SUBSCRIBE in time; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.subscribe(channel).await?;
    Ok((sink, stream))
}

/// Delivers messages until the subscription ends or stops answering; says why.
async fn deliver_until_lost(
    pings: &mut PubSubSink,
    messages: &mut PubSubStream,
    sink: &InvalidationSink,
    heartbeat: Heartbeat,
) -> &'static str {
    let deliver = async {
        while let Some(msg) = messages.next().await {
            match msg.get_payload::<String>().ok().as_deref().and_then(parse) {
                Some(inv) => sink(FeedEvent::Invalidate(inv)),
                None => tracing::warn!("ignoring malformed invalidation message"),
            }
        }
        "the subscription connection closed"
    };
    let prove_alive = async {
        let mut ticks = tokio::time::interval(heartbeat.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the subscription was just confirmed.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match tokio::time::timeout(heartbeat.deadline, pings.ping::<redis::Value>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return "a heartbeat ping failed",
                Err(_) => return "no answer to a heartbeat ping within the deadline",
            }
        }
    };
    tokio::select! {
        why = deliver => why,
        why = prove_alive => why,
    }
}

/// Pings the command connection until it answers (a few tries, each bounded): the
/// first try on a dead socket fails and starts the reconnect, the next awaits it.
async fn wake(command: &ConnectionManager, deadline: Duration) {
    let ping = redis::cmd("PING");
    for _ in 0..3 {
        let mut con = command.clone();
        let answer = ping.query_async::<String>(&mut con);
        if let Ok(Ok(_)) = tokio::time::timeout(deadline, answer).await {
            return;
        }
    }
    tracing::debug!("redis command connection not answering yet");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_message_kinds() {
        assert_eq!(parse("sid:abc"), Some(Invalidation::Session("abc".into())));
        assert_eq!(parse("user:u1"), Some(Invalidation::User("u1".into())));
        assert_eq!(parse("all"), Some(Invalidation::All));
        assert_eq!(parse("bogus"), None);
        assert_eq!(parse("x:y"), None);
    }
}
