//! Bad input gets the right status and the stable JSON error body, never a 500;
//! a Redis outage is a 503.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::support::{PASSWORD, TestApp};

#[tokio::test]
async fn wrong_method_and_unknown_path_get_json_errors() {
    let app = TestApp::start().await;
    let r = app.send(Method::GET, "/api/auth/login", None, &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = app.send(Method::GET, "/api/nope", None, &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn malformed_login_bodies_are_400_415_or_413() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let raw = |content_type: Option<&str>, body: String| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/api/auth/login");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req.body(Body::from(body)).unwrap()
    };
    let good = json!({"username": "alice", "password": PASSWORD}).to_string();
    let r = app.call(raw(None, good.clone())).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let r = app.call(raw(Some("text/plain"), good)).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    for body in [
        "{".to_string(),
        "[]".into(),
        "null".into(),
        json!({"username": ["alice"], "password": PASSWORD}).to_string(),
        json!({"username": "alice", "password": 12}).to_string(),
        json!({"username": "alice"}).to_string(),
        json!({"username": "alice", "password": PASSWORD, "admin": true}).to_string(),
        json!(["alice", PASSWORD]).to_string(),
        json!(["alice", PASSWORD, "body"]).to_string(),
        json!({"username": "alice", "password": PASSWORD, "refresh_token_delivery": "carrier-pigeon"}).to_string(),
    ] {
        let r = app.call(raw(Some("application/json"), body.clone())).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{body}");
        assert!(!r.body["message"].as_str().unwrap().contains(PASSWORD), "error echoes no secret");
    }
    let huge = json!({"username": "alice", "password": "x".repeat(20_000)}).to_string();
    let r = app.call(raw(Some("application/json"), huge)).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn error_bodies_never_echo_the_values_sent() {
    let app = TestApp::start().await;
    const MARKER: &str = "MARKER-secret-value-77";
    for body in [
        json!({"username": "alice", "password": PASSWORD, "refresh_token_delivery": MARKER}),
        json!({"username": "alice", "password": [MARKER]}),
        json!({"username": {"nested": MARKER}, "password": MARKER}),
        json!({MARKER: "x", "username": "alice", "password": PASSWORD}),
    ] {
        let r = app.post("/api/auth/login", body.clone()).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        assert!(!r.body.to_string().contains("MARKER"), "{}", r.body);
    }
    let r = app
        .post("/api/auth/refresh", json!({"refresh_token": [MARKER]}))
        .await;
    assert_eq!(r.error_code(), "invalid_request");
    assert!(!r.body.to_string().contains("MARKER"), "{}", r.body);
    let m = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": 5}),
        )
        .await;
    assert!(
        m.body["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "says where: {}",
        m.body
    );
}

#[tokio::test]
async fn refresh_body_must_be_json_of_the_right_shape() {
    let app = TestApp::start().await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/refresh")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("rt1.x"))
        .unwrap();
    assert_eq!(
        app.call(req).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let r = app
        .post("/api/auth/refresh", json!({"refresh_token": 5}))
        .await;
    assert_eq!(r.error_code(), "invalid_request");
    let r = app
        .post("/api/auth/refresh", json!({"refresh_token": "garbage"}))
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
    );
    let r = app.send(Method::POST, "/api/auth/refresh", None, &[]).await;
    assert_eq!(r.error_code(), "invalid_refresh_token", "no token at all");
    // Tokens in the query string are never read.
    let (_, rt) = {
        app.user("alice", &[]).await;
        app.login("alice").await
    };
    let r = app
        .send(
            Method::POST,
            &format!("/api/auth/refresh?refresh_token={rt}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.error_code(), "invalid_refresh_token");
}

#[tokio::test]
async fn redis_down_is_503_never_500_and_health_stays_up() {
    let mut app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (token, rt) = app.login("alice").await;
    assert_eq!(
        app.send(Method::GET, "/readyz", None, &[]).await.status,
        StatusCode::OK
    );
    app.redis.kill();
    let r = app.send(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert_eq!(
        app.send(Method::GET, "/healthz", None, &[]).await.status,
        StatusCode::OK
    );
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert_eq!(
        app.refresh_with_cookie(&rt).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Not even a cached session verifies once the node knows its revocation feed is
    // gone with Redis: nothing could tell it about a revocation (issue 10, item 9).
    let mut feed = app.store.feed_state();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        feed.wait_for(|s| s.losses > 0),
    )
    .await
    .unwrap()
    .unwrap();
    let r = app.get_bearer("/api/auth/verify", &token).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}

#[tokio::test]
async fn request_ids_are_propagated_or_generated() {
    let app = TestApp::start().await;
    let r = app
        .send(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = app.send(Method::GET, "/healthz", None, &[]).await;
    let generated = r.header("x-request-id").unwrap().to_owned();
    let r = app.send(Method::GET, "/healthz", None, &[]).await;
    let next = r.header("x-request-id").unwrap().to_owned();
    assert_ne!(generated, next, "every request gets its own id");
    let (prefix, _) = generated.split_once('.').unwrap();
    assert_eq!(prefix.len(), 11, "a random per-process prefix: {generated}");
    assert!(
        next.starts_with(&format!("{prefix}.")),
        "{generated} / {next}"
    );
    let r = app
        .send(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "bad id with spaces")],
        )
        .await;
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
}
