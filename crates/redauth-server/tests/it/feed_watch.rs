//! Bounded trust in the session cache when the revocation feed fails (issue 10): a
//! node whose subscription goes silent stops serving from its cache once the
//! heartbeat notices, and a node that loses Redis distrusts its cache at once and is
//! ready for writes as soon as its feed is back.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use redauth_core::{ManualClock, Store as _};
use redauth_redis::FeedStatus;
use redauth_server::config::Settings;
use redauth_testkit::{CountingProxy, RedisServer};
use tokio::sync::watch;

use crate::support::{Node, TestApp};

/// Awaits a feed status that satisfies `what`; fails instead of hanging.
async fn await_feed(
    state: &mut watch::Receiver<FeedStatus>,
    limit: Duration,
    what: impl FnMut(&FeedStatus) -> bool,
) {
    tokio::time::timeout(limit, state.wait_for(what))
        .await
        .expect("feed state not reached in time")
        .expect("feed alive");
}

/// `/readyz` answers 200 whatever the feed's state, and names that state.
async fn readyz_feed(node: &Node) -> String {
    let r = node.send(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
    r.body["revocation_feed"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned()
}

#[tokio::test]
async fn a_node_whose_feed_goes_silent_refuses_a_revoked_token_once_the_heartbeat_fires() {
    let redis = RedisServer::start();
    let proxy = CountingProxy::start(redis.port()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let a = Node::start(&redis.url(), Settings::default(), clock.clone()).await;
    // Node B reaches Redis only through the proxy, with the default heartbeat.
    let b = Node::start(&proxy.url(), Settings::default(), clock.clone()).await;
    a.user("alice", &[]).await;
    let (token, rt) = a.login("alice").await;
    assert_eq!(readyz_feed(&b).await, "subscribed");
    assert_eq!(
        b.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    let before = proxy.round_trips();
    assert_eq!(
        b.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(proxy.round_trips(), before, "B serves alice from its cache");

    // B's subscription goes silent (half-open); its command connection still works.
    let mut state = b.store.feed_state();
    proxy.blackhole_subscribers(true);
    let r = a
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &format!("redauth_refresh={rt}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The revocation never reaches B; its heartbeat notices within 1 s + 2 s.
    await_feed(&mut state, Duration::from_secs(10), |s| s.losses > 0).await;
    assert!(!b.service.cache_status().trusted);
    assert_eq!(readyz_feed(&b).await, "lost", "still ready, but says so");
    assert_eq!(
        b.service.cache_status().entries,
        0,
        "alice's principal flushed"
    );
    assert_eq!(
        b.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::UNAUTHORIZED,
        "B re-reads Redis and refuses the revoked session"
    );

    // The path heals: B resubscribes and caches again.
    proxy.blackhole_subscribers(false);
    await_feed(&mut state, Duration::from_secs(20), |s| {
        s.subscribed && s.subscriptions >= 2
    })
    .await;
    assert!(b.service.cache_status().trusted);
    assert_eq!(readyz_feed(&b).await, "subscribed");
    let (token, _) = a.login("alice").await;
    assert_eq!(
        b.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    let before = proxy.round_trips();
    assert_eq!(
        b.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(proxy.round_trips(), before, "cached again");
}

#[tokio::test]
async fn a_redis_restart_distrusts_the_cache_while_down_and_the_first_write_after_succeeds() {
    let mut app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (token, _) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.service.cache_status().entries, 1, "alice, cached");

    let mut state = app.store.feed_state();
    app.redis.kill();
    // From the moment the feed knows, before Redis is back: nothing from the cache.
    await_feed(&mut state, Duration::from_secs(10), |s| s.losses > 0).await;
    assert!(!app.service.cache_status().trusted);
    assert_eq!(
        app.service.cache_status().entries,
        0,
        "not served from the cache while Redis is down"
    );
    // No request while Redis is down: an idle node is the case where only the first
    // command would have found the command connection's socket dead.

    // Back on the same port, empty: alice's session is gone (as if revoked meanwhile).
    app.redis.restart();
    await_feed(&mut state, Duration::from_secs(20), |s| {
        s.subscribed && s.subscriptions >= 2
    })
    .await;
    // The very first command is a write. The store would retry it once on a dropped
    // connection, but it need not: the feed has already woken the command connection.
    app.store
        .create_user(&redauth_testkit::conformance::user("probe"))
        .await
        .expect("first write after the restart");
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.user("alice", &[]).await;
    let (token, _) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
}
