//! The in-process cache and the one-round-trip guarantees, measured on the wire by a
//! counting proxy, and revocation reaching other nodes through the feed.

use axum::http::{Method, StatusCode};

use crate::support::TestApp;

#[tokio::test]
async fn a_cached_session_verifies_with_zero_round_trips() {
    let app = TestApp::start_counted().await;
    app.user("alice", &["reader"]).await;
    let (token, _) = app.login("alice").await;
    let before = app.round_trips();
    for _ in 0..50 {
        assert_eq!(
            app.get_bearer("/api/auth/verify", &token).await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(app.round_trips() - before, 0);
}

#[tokio::test]
async fn a_cache_miss_costs_exactly_one_round_trip_then_hits() {
    let app = TestApp::start_counted().await;
    app.user("alice", &["reader", "writer"]).await;
    let (token, _) = app.login("alice").await;
    // Another node, or this one after a restart: empty cache, Redis refills it.
    let other = app.second_node().await;
    let evalsha_before = app
        .redis
        .command_calls()
        .get("evalsha")
        .copied()
        .unwrap_or(0);
    let before = app.round_trips();
    let me = other.get_bearer("/api/auth/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.body["permissions"],
        serde_json::json!(["reader:use", "writer:use"])
    );
    assert_eq!(
        app.round_trips() - before,
        1,
        "session + user + roles in one round trip"
    );
    assert_eq!(app.redis.command_calls()["evalsha"] - evalsha_before, 1);
    let before = app.round_trips();
    assert_eq!(
        other.get_bearer("/api/auth/me", &token).await.status,
        StatusCode::OK
    );
    assert_eq!(app.round_trips() - before, 0, "now cached");
}

#[tokio::test]
async fn a_refresh_is_exactly_one_round_trip() {
    let app = TestApp::start_counted().await;
    app.user("alice", &["reader"]).await;
    let (_, mut rt) = app.login("alice").await;
    for _ in 0..3 {
        // From a real client address, so the per-IP refresh limit is charged too: it
        // rides in the same call.
        let mut req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/auth/refresh")
            .header("cookie", format!("redauth_refresh={rt}"))
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [192, 0, 2, 9],
                4000,
            ))));
        let before = app.round_trips();
        let r = app.call(req).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(app.round_trips() - before, 1);
        rt = r.set_cookie("redauth_refresh").unwrap();
    }
}

#[tokio::test]
async fn logout_on_one_node_evicts_the_session_on_every_node() {
    let app = TestApp::start().await;
    let other = app.second_node().await;
    app.user("alice", &[]).await;
    let (token, rt) = app.login("alice").await;
    assert_eq!(
        other.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(other.service.cache_status().entries, 1, "alice, cached");

    let mut applied = other.service.cache_status().invalidations_applied;
    let seen = *applied.borrow_and_update();
    let r = app
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &format!("redauth_refresh={rt}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Wait for the feed to deliver (an event, not a sleep), then the other node refuses.
    crate::support::until_applied(&mut applied, seen).await;
    assert_eq!(
        other.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_node_that_loses_the_feed_clears_its_cache_on_reconnect() {
    let mut app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (token, _) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.service.cache_status().entries, 1);
    let mut applied = app.service.cache_status().invalidations_applied;
    let seen = *applied.borrow_and_update();
    // Redis restarts empty: whatever was published meanwhile is lost, so the node
    // must not trust its cache.
    app.redis.restart();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        applied.wait_for(|n| *n > seen),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(app.service.cache_status().entries, 0);
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}
