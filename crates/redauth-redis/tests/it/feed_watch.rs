//! The revocation feed proves it is alive: a subscription that falls silent without
//! closing (here: a proxy that swallows what Redis sends to subscribers) is reported
//! lost within the heartbeat's interval + deadline, and the feed resubscribes once
//! the path works again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redauth_core::Store;
use redauth_core::store::{EndSessions, FeedEvent, Invalidation};
use redauth_core::token::refresh::TokenHash;
use redauth_redis::{FeedStatus, Heartbeat, RedisConfig, RedisStore};
use redauth_testkit::conformance::{session, user};
use redauth_testkit::{CountingProxy, RedisServer};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

fn now() -> i64 {
    redauth_core::Clock::now(&redauth_core::SystemClock)
}

/// Awaits a feed status that satisfies `what`, failing (not hanging) after `limit`.
async fn await_feed(
    state: &mut watch::Receiver<FeedStatus>,
    limit: Duration,
    what: impl FnMut(&FeedStatus) -> bool,
) -> FeedStatus {
    *tokio::time::timeout(limit, state.wait_for(what))
        .await
        .expect("feed state not reached in time")
        .expect("feed state sender alive")
}

async fn next(rx: &mut UnboundedReceiver<FeedEvent>) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a feed event in time")
        .expect("feed alive")
}

#[tokio::test]
async fn a_silent_subscription_is_reported_lost_within_the_bound_and_resubscribes() {
    let server = RedisServer::start();
    let proxy = CountingProxy::start(server.port()).await;
    let writer = RedisStore::connect(&RedisConfig::new(&server.url(), "hb:")).unwrap();
    let mut config = RedisConfig::new(&proxy.url(), "hb:");
    let heartbeat = Heartbeat {
        interval: Duration::from_millis(200),
        deadline: Duration::from_millis(400),
    };
    config.feed_heartbeat = heartbeat;
    let listener = RedisStore::connect(&config).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    listener.subscribe_invalidations(Arc::new(move |event| {
        let _ = tx.send(event);
    }));
    let mut state = listener.feed_state();
    await_feed(&mut state, Duration::from_secs(10), |s| s.subscribed).await;
    assert_eq!(next(&mut rx).await, FeedEvent::Lost);
    assert_eq!(next(&mut rx).await, FeedEvent::Subscribed);

    let u = user("alice");
    writer.create_user(&u).await.unwrap();
    let (s1, s2) = (
        session(&u.id, now(), 3600, 3600),
        session(&u.id, now(), 3600, 3600),
    );
    for s in [&s1, &s2] {
        writer
            .create_session(
                s,
                &TokenHash("t".into()),
                0,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                now(),
            )
            .await
            .unwrap();
    }
    writer.revoke_session(&u.id, &s1.sid, None).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        FeedEvent::Invalidate(Invalidation::Session(s1.sid.clone())),
        "delivered through the proxy"
    );

    // The path to the subscriber goes silent; the socket stays open.
    proxy.blackhole_subscribers(true);
    let silent_since = Instant::now();
    writer.revoke_session(&u.id, &s2.sid, None).await.unwrap();
    let lost = await_feed(&mut state, Duration::from_secs(10), |s| s.losses > 0).await;
    let took = silent_since.elapsed();
    assert!(!lost.subscribed);
    assert_eq!(
        next(&mut rx).await,
        FeedEvent::Lost,
        "the swallowed revocation never arrives; the loss does"
    );
    // interval + deadline, plus slack for a busy machine.
    let bound = heartbeat.interval + heartbeat.deadline;
    assert!(
        took <= bound + Duration::from_secs(2),
        "detected after {took:?}, bound {bound:?}"
    );

    // While the path is dead, subscribing cannot succeed either.
    assert!(!listener.feed_state().borrow().subscribed);
    proxy.blackhole_subscribers(false);
    await_feed(&mut state, Duration::from_secs(20), |s| {
        s.subscribed && s.subscriptions >= 2
    })
    .await;
    assert_eq!(next(&mut rx).await, FeedEvent::Subscribed);
    writer
        .update_user(&u, EndSessions::AllBut(None))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        FeedEvent::Invalidate(Invalidation::User(u.id.clone())),
        "delivering again"
    );
}

#[tokio::test]
async fn heartbeats_do_not_count_as_round_trips() {
    let server = RedisServer::start();
    let proxy = CountingProxy::start(server.port()).await;
    let mut config = RedisConfig::new(&proxy.url(), "hbrt:");
    config.feed_heartbeat = Heartbeat {
        interval: Duration::from_millis(50),
        deadline: Duration::from_secs(2),
    };
    let store = RedisStore::connect(&config).unwrap();
    store.subscribe_invalidations(Arc::new(|_| {}));
    store.invalidation_feed_ready().await;
    store.ping().await.unwrap();
    let before = proxy.round_trips();
    // Several heartbeats reach Redis (counted by Redis itself)...
    let pings = || server.command_calls().get("ping").copied().unwrap_or(0);
    let pings_before = pings();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pings() < pings_before + 3 {
        assert!(Instant::now() < deadline, "no heartbeats reached Redis");
        // Polling a condition Redis reports, not waiting for time to pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.feed_state().borrow().subscribed);
    // ...and none is counted as a request's round trip.
    assert_eq!(proxy.round_trips(), before);
}
