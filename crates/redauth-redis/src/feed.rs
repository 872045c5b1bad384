//! The revocation feed: a pub/sub subscription that delivers other nodes'
//! invalidations to this node's session cache.
//!
//! Pub/sub is fire-and-forget: messages published while a node is not subscribed are
//! lost. So every (re)subscription first tells the cache to drop everything; the cache
//! refills from Redis, which is always right.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redauth_core::store::{Invalidation, InvalidationSink};
use tokio::sync::watch;

/// Whether the feed is currently subscribed; tests wait on it.
#[derive(Clone)]
pub struct FeedState(Arc<watch::Sender<bool>>);

impl Default for FeedState {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl FeedState {
    pub async fn ready(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|subscribed| *subscribed).await;
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

pub fn spawn(client: redis::Client, channel: String, sink: InvalidationSink, state: FeedState) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: the invalidation feed is not running");
        return;
    };
    runtime.spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match subscribe(&client, &channel).await {
                Ok(mut pubsub) => {
                    backoff = Duration::from_millis(100);
                    sink(Invalidation::All);
                    state.0.send_replace(true);
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        match msg.get_payload::<String>().ok().as_deref().and_then(parse) {
                            Some(inv) => sink(inv),
                            None => tracing::warn!("ignoring malformed invalidation message"),
                        }
                    }
                    state.0.send_replace(false);
                    tracing::warn!("invalidation feed disconnected; resubscribing");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "invalidation feed cannot subscribe; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
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
