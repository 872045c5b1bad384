//! Issue 11, item 6 over HTTP: a login past `REDAUTH_MAX_SESSIONS_PER_USER` ends the
//! oldest session on every node, and `GET /api/auth/sessions` is paged.

use std::time::Duration;

use axum::http::StatusCode;
use redauth_server::config::Settings;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_past_the_cap_ends_the_oldest_session_on_every_node() {
    let app = TestApp::start_with(Settings {
        max_sessions_per_user: Some(2),
        ..Settings::default()
    })
    .await;
    app.user("capped", &[]).await;
    let b = app.second_node().await;
    // A second apart: sessions created in the same second are ordered by id.
    let (first, first_refresh) = app.login("capped").await;
    app.clock.advance(1);
    let (second, _) = app.login("capped").await;
    app.clock.advance(1);
    for node in [&app.node, &b] {
        for _ in 0..2 {
            // The second call is served from the node's cache.
            let r = node.get_bearer("/api/auth/verify", &first).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        }
    }
    let mut seen = b.service.cache_status().invalidations_applied;
    seen.borrow_and_update();

    let (third, _) = app.login("capped").await;

    // The node that ran the login evicted it itself: no waiting on its own feed.
    let r = app.get_bearer("/api/auth/verify", &first).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "same node still serves it"
    );
    tokio::time::timeout(Duration::from_secs(10), seen.changed())
        .await
        .expect("no invalidation reached the second node")
        .unwrap();
    let r = b.get_bearer("/api/auth/verify", &first).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "second node still serves it"
    );
    assert_eq!(
        app.refresh_with_cookie(&first_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    for token in [&second, &third] {
        for node in [&app.node, &b] {
            let r = node.get_bearer("/api/auth/verify", token).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        }
    }
    let listed = app.get_bearer("/api/auth/sessions", &third).await;
    assert_eq!(listed.body["sessions"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_in_pages_and_bad_page_values_are_refused() {
    let app = TestApp::start().await;
    app.user("pager", &[]).await;
    let mut access = String::new();
    for _ in 0..5 {
        access = app.login("pager").await.0;
    }

    // Without parameters: every session (fewer than a page), as before paging.
    let all = app.get_bearer("/api/auth/sessions", &access).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["sessions"].as_array().unwrap().len(), 5);
    assert!(all.body["next_cursor"].is_null());
    let all_ids: Vec<_> = all.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();

    let mut paged = Vec::new();
    let mut path = "/api/auth/sessions?limit=2".to_owned();
    loop {
        let r = app.get_bearer(&path, &access).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let page = r.body["sessions"].as_array().unwrap();
        assert!(page.len() <= 2);
        paged.extend(page.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/auth/sessions?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, all_ids);

    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=",
        "cursor=nope",
        "cursor=12.short",
        "cursor=",
        "limit=1&limit=2",
    ] {
        let r = app
            .get_bearer(&format!("/api/auth/sessions?{bad}"), &access)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert_eq!(r.error_code(), "invalid_request", "{bad}");
    }
}
