//! Brute-force limits: per account (failures only) and per client IP, shared across
//! nodes through Redis, answered with 429 and `Retry-After`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use redauth_server::config::Settings;
use serde_json::json;

use crate::support::{Node, PASSWORD, Resp, TestApp};

fn limits(login_ip: &str, account: &str, refresh_ip: &str) -> Settings {
    Settings {
        login_limit_per_ip: Some(login_ip.into()),
        login_failure_limit_per_account: Some(account.into()),
        refresh_limit_per_ip: Some(refresh_ip.into()),
        ..Settings::default()
    }
}

/// A request as if it arrived over TCP from `ip`, with extra headers.
async fn from(
    node: &Node,
    ip: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let mut req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    node.call(req).await
}

async fn login_from(node: &Node, ip: &str, username: &str, password: &str) -> Resp {
    from(
        node,
        ip,
        Method::POST,
        "/api/auth/login",
        Some(json!({"username": username, "password": password})),
        &[],
    )
    .await
}

#[tokio::test]
async fn failed_logins_throttle_the_account_across_nodes_and_drain_with_time() {
    let app = TestApp::start_with(limits("off", "3/60", "off")).await;
    let other = crate::support::Node::start(
        &app.redis.url(),
        limits("off", "3/60", "off"),
        app.clock.clone(),
    )
    .await;
    app.user("alice", &[]).await;
    // Successful logins are not charged.
    for _ in 0..5 {
        assert_eq!(
            login_from(&app, "10.0.0.1", "alice", PASSWORD).await.status,
            StatusCode::OK
        );
    }
    for ip in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        assert_eq!(
            login_from(&app, ip, "alice", "wrong password!")
                .await
                .error_code(),
            "invalid_credentials"
        );
    }
    // The budget is spent, on every node and from every address, even with the password.
    for node in [&*app, &other] {
        let r = login_from(node, "10.9.9.9", "ALICE", PASSWORD).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        assert_eq!(r.header("retry-after"), Some("60"));
    }
    // Another account is untouched.
    app.user("bob", &[]).await;
    assert_eq!(
        login_from(&app, "10.0.0.2", "bob", PASSWORD).await.status,
        StatusCode::OK
    );
    // Never locked forever: one attempt comes back per minute.
    app.clock.advance(60);
    assert_eq!(
        login_from(&other, "10.0.0.1", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn login_attempts_are_limited_per_client_ip() {
    let app = TestApp::start_with(limits("2/10", "off", "off")).await;
    app.user("alice", &[]).await;
    assert_eq!(
        login_from(&app, "192.0.2.1", "alice", "wrong password!")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&app, "192.0.2.1", "nobody", PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = login_from(&app, "192.0.2.1", "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(
        login_from(&app, "192.0.2.2", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK,
        "other IPs unaffected"
    );
    app.clock.advance(10);
    assert_eq!(
        login_from(&app, "192.0.2.1", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refreshes_are_limited_per_client_ip() {
    let app = TestApp::start_with(limits("off", "off", "2/30")).await;
    app.user("alice", &[]).await;
    let (_, mut rt) = app.login("alice").await;
    for _ in 0..2 {
        let cookie = format!("redauth_refresh={rt}");
        let r = from(
            &app,
            "198.51.100.7",
            Method::POST,
            "/api/auth/refresh",
            None,
            &[("cookie", &cookie)],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        rt = r.set_cookie("redauth_refresh").unwrap();
    }
    let cookie = format!("redauth_refresh={rt}");
    let r = from(
        &app,
        "198.51.100.7",
        Method::POST,
        "/api/auth/refresh",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(
        (r.status, r.header("retry-after")),
        (StatusCode::TOO_MANY_REQUESTS, Some("30"))
    );
    // The limited request did not consume the token: it still works from elsewhere.
    let r = from(
        &app,
        "198.51.100.8",
        Method::POST,
        "/api/auth/refresh",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_proxy_header_is_trusted_only_when_configured() {
    // Not configured: X-Forwarded-For is ignored; all requests share the peer's budget.
    let app = TestApp::start_with(limits("1/60", "off", "off")).await;
    app.user("alice", &[]).await;
    let xff = |v: &'static str| [("x-forwarded-for", v)];
    let login = json!({"username": "alice", "password": PASSWORD});
    let r = from(
        &app,
        "10.1.1.1",
        Method::POST,
        "/api/auth/login",
        Some(login.clone()),
        &xff("203.0.113.1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = from(
        &app,
        "10.1.1.1",
        Method::POST,
        "/api/auth/login",
        Some(login.clone()),
        &xff("203.0.113.2"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "spoofed header did not buy a new budget"
    );

    // Configured: the last entry (the one the proxy appended) is the client.
    let settings = Settings {
        client_ip_header: Some("X-Forwarded-For".into()),
        ..limits("1/60", "off", "off")
    };
    let app = TestApp::start_with(settings).await;
    app.user("alice", &[]).await;
    let r = from(
        &app,
        "10.1.1.1",
        Method::POST,
        "/api/auth/login",
        Some(login.clone()),
        &xff("1.1.1.1, 203.0.113.1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = from(
        &app,
        "10.1.1.1",
        Method::POST,
        "/api/auth/login",
        Some(login.clone()),
        &xff("1.1.1.1, 203.0.113.2"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a different client behind the same proxy"
    );
    let r = from(
        &app,
        "10.1.1.1",
        Method::POST,
        "/api/auth/login",
        Some(login.clone()),
        &xff("9.9.9.9, 203.0.113.1"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged first entry does not help"
    );
    let sessions = app
        .service
        .list_all_sessions(&app.service.find_user("alice").await.unwrap().id)
        .await
        .unwrap();
    let mut ips: Vec<_> = sessions.iter().map(|s| s.ip.clone().unwrap()).collect();
    ips.sort();
    assert_eq!(
        ips,
        vec!["203.0.113.1", "203.0.113.2"],
        "sessions record the proxied client IP"
    );
}
