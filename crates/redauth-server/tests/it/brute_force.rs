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
pub(crate) async fn from(
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
    let addr = SocketAddr::new(ip.parse().unwrap(), 40000);
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

fn account_limits(per_client: &str, total: &str) -> Settings {
    Settings {
        login_failure_limit_per_account_total: Some(total.into()),
        ..limits("off", per_client, "off")
    }
}

/// Issue 11, item 4: failures are counted per account *and client*, with a higher cap
/// for the account over all clients. A guesser on one network exhausts only its own
/// budget: the owner on theirs still gets in, until guessers on many networks exhaust
/// the total.
#[tokio::test]
async fn failed_logins_throttle_the_account_per_client_and_in_total_across_nodes() {
    let app = TestApp::start_with(account_limits("3/60", "5/60")).await;
    let other = crate::support::Node::start(
        &app.redis.url(),
        account_limits("3/60", "5/60"),
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
    for _ in 0..3 {
        assert_eq!(
            login_from(&app, "10.0.0.2", "alice", "wrong password!")
                .await
                .error_code(),
            "invalid_credentials"
        );
    }
    // That client's budget is spent on every node, even with the password...
    for node in [&*app, &other] {
        let r = login_from(node, "10.0.0.2", "ALICE", PASSWORD).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        assert_eq!(r.header("retry-after"), Some("60"));
    }
    // ...but the owner, on their own network, is not locked out.
    assert_eq!(
        login_from(&other, "10.0.0.1", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    // Guessers on more networks reach the account's total cap: then everyone waits.
    for ip in ["10.0.0.3", "10.0.0.4"] {
        assert_eq!(
            login_from(&app, ip, "alice", "wrong password!")
                .await
                .error_code(),
            "invalid_credentials"
        );
    }
    let r = login_from(&app, "10.0.0.1", "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Another account is untouched.
    app.user("bob", &[]).await;
    assert_eq!(
        login_from(&app, "10.0.0.2", "bob", PASSWORD).await.status,
        StatusCode::OK
    );
    // Never locked forever: one attempt comes back per interval.
    app.clock.advance(60);
    assert_eq!(
        login_from(&other, "10.0.0.1", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

/// Issue 11, item 1: the failure budget is reserved before hashing, atomically. Many
/// wrong passwords at once for one account from one client: no more than the budget
/// are ever evaluated (each evaluated one answers 401, the rest 429 without hashing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_never_evaluate_more_than_the_budget() {
    let app = TestApp::start_with(Settings {
        // This test is about the account budget; the per-client share of the hash
        // queue (which would also refuse most of these, with 503) is tested apart.
        hash_queue_per_client: Some(100),
        ..account_limits("10/60", "off")
    })
    .await;
    app.user("alice", &[]).await;
    let guesses = (0..48).map(|i| {
        let app = &app;
        async move {
            login_from(app, "10.0.0.7", "alice", &format!("wrong password {i}"))
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let evaluated = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(evaluated + refused, 48, "{statuses:?}");
    assert_eq!(
        evaluated, 10,
        "exactly the budget was evaluated: {statuses:?}"
    );
}

/// Issue 11, item 3: one IPv6 client owns a whole /64 and can use a new address for
/// every request; the per-client limit must hold across it (and only it).
#[tokio::test]
async fn an_ipv6_64_is_one_client() {
    let app = TestApp::start_with(limits("5/60", "off", "off")).await;
    app.user("alice", &[]).await;
    for i in 1..=5 {
        let ip = format!("2001:db8:1:2::{i:x}");
        assert_eq!(
            login_from(&app, &ip, "alice", PASSWORD).await.status,
            StatusCode::OK
        );
    }
    let r = login_from(&app, "2001:db8:1:2:ffff::1", "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "same /64");
    assert_eq!(
        login_from(&app, "2001:db8:1:3::1", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK,
        "the next /64 is another client"
    );
}

/// Issue 11, item 2: the current-password check of a password change pays the login
/// budgets (a stolen access token is no unlimited guessing oracle), and too many wrong
/// current passwords end the session.
#[tokio::test]
async fn password_change_guesses_are_limited_and_end_the_session() {
    let app = TestApp::start_with(Settings {
        password_failure_limit_per_session: Some("3/3600".into()),
        ..account_limits("5/60", "off")
    })
    .await;
    app.user("alice", &[]).await;
    let (token, _) = app.login("alice").await;
    let change = |current: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            from(
                app,
                "10.0.0.9",
                Method::POST,
                "/api/auth/password",
                Some(json!({"current_password": current, "new_password": "a brand new password"})),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
        }
    };
    for _ in 0..2 {
        assert_eq!(
            change("wrong guess 123").await.error_code(),
            "invalid_credentials"
        );
    }
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.status,
        StatusCode::OK
    );
    // The third wrong guess in this session ends it.
    assert_eq!(
        change("wrong guess 123").await.error_code(),
        "invalid_credentials"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.error_code(),
        "invalid_token"
    );
    // A fresh session (a thief logging in again needs the password anyway) still pays
    // the account budget shared with login: 3 failures spent, 2 left for this client.
    let (token, _) = app.login("alice").await;
    for expected in ["invalid_credentials", "invalid_credentials", "rate_limited"] {
        let r = from(
            &app,
            "10.0.0.9",
            Method::POST,
            "/api/auth/password",
            Some(json!({"current_password": "wrong guess 456", "new_password": "a brand new password"})),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(r.error_code(), expected);
    }
    let r = login_from(&app, "10.0.0.9", "alice", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "login shares the budget"
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

/// A 429 is held before it is sent (`REDAUTH_RATE_LIMITED_DELAY_MS`), so a client that
/// retries at once on many connections cannot spin on refusals (issue 11, item 5). The
/// assertion is a lower bound only (the hold is spread between half and one and a half
/// times the setting): the answer cannot come before the hold ends,
/// however loaded the machine; the release moment itself is tested with paused time
/// in redauth-axum.
#[tokio::test]
async fn a_rate_limited_answer_is_held_and_other_answers_are_not() {
    const HOLD: std::time::Duration = std::time::Duration::from_millis(400);
    let app = TestApp::start_with(Settings {
        rate_limited_delay_ms: Some(HOLD.as_millis() as u64),
        ..limits("1/10", "off", "off")
    })
    .await;
    app.user("alice", &[]).await;
    let started = std::time::Instant::now();
    let r = login_from(&app, "192.0.2.1", "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = login_from(&app, "192.0.2.1", "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(started.elapsed() >= HOLD / 2, "{:?}", started.elapsed());
}
