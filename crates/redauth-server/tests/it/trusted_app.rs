//! The web app in front of redauth (`REDAUTH_APP_SECRET`, issue 13): only a request
//! carrying the secret may forward the browser's address and user agent, skip the CSRF
//! guard and name the user by a forwarded session cookie; everyone else is served as
//! before, whatever headers they add. Also `GET /api/auth/config`, the refresh
//! token's lifetime in token responses and the `SameSite=Lax` session-cookie default.

use axum::http::{Method, StatusCode};
use redauth_core::Secret;
use redauth_server::config::Settings;
use serde_json::{Value, json};

use crate::cookie_sessions::{compat, native};
use crate::support::{Node, PASSWORD, Resp, TestApp};

const APP_SECRET: &str = "app-secret-0123456789-0123456789-abcdef";
/// Where the app server connects from: every browser's request arrives from here.
const APP_PEER: &str = "10.0.0.2";
const BROWSER_IP: &str = "203.0.113.7";
const BROWSER_UA: &str = "Mozilla/5.0 (browser under test)";

fn with_app_secret(base: Settings) -> Settings {
    Settings {
        app_secret: Some(Secret::new(APP_SECRET)),
        ..base
    }
}

/// A request arriving over TCP from `APP_PEER` with `headers` (and a JSON body), with
/// the user agent of the app's own HTTP client.
async fn call(
    node: &Node,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut all = vec![("user-agent", "node")];
    all.extend_from_slice(headers);
    crate::brute_force::from(node, APP_PEER, method, path, body, &all).await
}

/// What the app sends with every call: the secret and the browser's address and agent.
fn forwarded<'a>(secret: &'a str, ip: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("x-redauth-app-secret", secret),
        ("x-redauth-client-ip", ip),
        ("x-redauth-client-user-agent", BROWSER_UA),
    ]
}

async fn login(node: &Node, headers: &[(&str, &str)]) -> Resp {
    call(
        node,
        Method::POST,
        "/api/auth/login",
        Some(json!({"username": "alice", "password": PASSWORD})),
        headers,
    )
    .await
}

/// The (ip, user_agent) redauth recorded on the session of `access`.
async fn recorded_client(node: &Node, access: &str) -> (Value, Value) {
    let r = node.get_bearer("/api/auth/sessions", access).await;
    let current = r.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()
        .clone();
    (current["ip"].clone(), current["user_agent"].clone())
}

#[tokio::test]
async fn only_the_app_secret_makes_forwarded_client_address_and_agent_count() {
    let app = TestApp::start_with(with_app_secret(Settings::default())).await;
    app.user("alice", &[]).await;

    let trusted = login(&app, &forwarded(APP_SECRET, BROWSER_IP)).await;
    assert_eq!(trusted.status, StatusCode::OK, "{:?}", trusted.body);
    let access = trusted.body["access_token"].as_str().unwrap();
    assert_eq!(
        recorded_client(&app, access).await,
        (json!(BROWSER_IP), json!(BROWSER_UA)),
        "the app's request: the browser's address and agent are recorded"
    );

    // No secret: the same forwarding headers are ignored; the caller is who it is.
    let spoofed = login(
        &app,
        &[
            ("x-redauth-client-ip", BROWSER_IP),
            ("x-redauth-client-user-agent", BROWSER_UA),
        ],
    )
    .await;
    assert_eq!(spoofed.status, StatusCode::OK);
    let access = spoofed.body["access_token"].as_str().unwrap();
    assert_eq!(
        recorded_client(&app, access).await,
        (json!(APP_PEER), json!("node")),
        "a caller without the secret cannot choose the address it is recorded under"
    );

    // A wrong secret is refused outright, before anything is read or counted.
    for wrong in ["app-secret-0123456789-0123456789-abcdeX", "", "x"] {
        let r = login(&app, &forwarded(wrong, BROWSER_IP)).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::UNAUTHORIZED, "invalid_app_secret"),
            "{wrong:?}"
        );
        assert!(r.body.get("access_token").is_none());
    }
    // A malformed forwarded address from the app is an error, not a silent fallback.
    let r = login(&app, &forwarded(APP_SECRET, "203.0.113.7, 10.0.0.1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
}

#[tokio::test]
async fn a_secret_sent_to_a_redauth_without_one_is_refused() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let r = login(&app, &forwarded(APP_SECRET, BROWSER_IP)).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "invalid_app_secret")
    );
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("REDAUTH_APP_SECRET")
    );
}

/// Per-client login limits count the browser's address for the app's requests (one
/// busy user no longer locks everyone out), and the peer's for anyone else (so a
/// guesser cannot get a fresh budget per request by inventing addresses).
#[tokio::test]
async fn rate_limits_count_forwarded_addresses_only_for_the_app() {
    let app = TestApp::start_with(with_app_secret(Settings {
        login_limit_per_ip: Some("2/3600".into()),
        ..Settings::default()
    }))
    .await;
    app.user("alice", &[]).await;
    for _ in 0..2 {
        let r = login(&app, &forwarded(APP_SECRET, "198.51.100.1")).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = login(&app, &forwarded(APP_SECRET, "198.51.100.1")).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "that browser's budget"
    );
    let r = login(&app, &forwarded(APP_SECRET, "198.51.100.2")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "another browser behind the same app still logs in"
    );

    // Without the secret every attempt counts against the peer, whatever it claims.
    let mut statuses = Vec::new();
    for n in 0..3 {
        let ip = format!("192.0.2.{n}");
        let r = login(
            &app,
            &[
                ("x-redauth-client-ip", ip.as_str()),
                ("x-forwarded-for", ip.as_str()),
            ],
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "forged addresses do not buy fresh budgets"
    );
}

/// The app's server calls with the user's cookie and (through SvelteKit's `fetch`) an
/// `Origin`: with the secret it is not a browser and passes; a browser's cross-site
/// request, or the same call without the secret or with a wrong one, is refused.
#[tokio::test]
async fn the_app_passes_the_csrf_guard_and_browsers_do_not() {
    let app = TestApp::start_with(with_app_secret(Settings::default())).await;
    app.user("alice", &[]).await;
    let (access, rt) = app.login("alice").await;
    let cookie = format!("redauth_refresh={rt}");
    let cross_site = [
        ("cookie", cookie.as_str()),
        ("host", "auth.internal:8080"),
        ("origin", "https://app.example.com"),
        ("sec-fetch-site", "cross-site"),
    ];
    let r = call(&app, Method::POST, "/api/auth/logout", None, &cross_site).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    // The forwarding headers without the secret are just headers.
    let mut posing = cross_site.to_vec();
    posing.extend([
        ("x-redauth-client-ip", BROWSER_IP),
        ("x-redauth-client-user-agent", BROWSER_UA),
    ]);
    let r = call(&app, Method::POST, "/api/auth/logout", None, &posing).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    let mut wrong = cross_site.to_vec();
    wrong.push((
        "x-redauth-app-secret",
        "not-the-app-secret-0123456789-012345",
    ));
    let r = call(&app, Method::POST, "/api/auth/logout", None, &wrong).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.status,
        StatusCode::OK,
        "the refused calls ended nothing"
    );

    let mut from_app = cross_site.to_vec();
    from_app.push(("x-redauth-app-secret", APP_SECRET));
    let r = call(&app, Method::POST, "/api/auth/logout", None, &from_app).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.status,
        StatusCode::UNAUTHORIZED,
        "the app's logout ended the session"
    );
}

/// Cookie sessions: the app lists and ends the user's sessions with the session
/// cookie it forwards. Without the secret those endpoints still want a Bearer token.
#[tokio::test]
async fn the_app_may_name_the_user_by_the_forwarded_session_cookie() {
    let app = TestApp::start_with(with_app_secret(Settings {
        login_issues: Some(redauth_axum::cookie::LoginIssues::Session),
        ..native()
    }))
    .await;
    app.user("alice", &[]).await;
    let first = login(&app, &forwarded(APP_SECRET, BROWSER_IP)).await;
    let second = login(&app, &forwarded(APP_SECRET, "198.51.100.9")).await;
    let name = "__Host-redauth_session";
    let cookie = format!("{name}={}", first.set_cookie(name).unwrap());
    let other = format!("{name}={}", second.set_cookie(name).unwrap());

    let r = call(
        &app,
        Method::GET,
        "/api/auth/sessions",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "missing_token"),
        "no secret: the cookie is no Bearer token"
    );

    let mut headers = forwarded(APP_SECRET, BROWSER_IP).to_vec();
    headers.push(("cookie", &cookie));
    let r = call(&app, Method::GET, "/api/auth/sessions", None, &headers).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let sessions = r.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["ip"], BROWSER_IP);
    assert_eq!(current[0]["user_agent"], BROWSER_UA);

    let r = call(&app, Method::POST, "/api/auth/logout-all", None, &headers).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    for c in [&cookie, &other] {
        let (n, v) = c.split_once('=').unwrap();
        assert_eq!(
            app.get_session(n, v).await.error_code(),
            "invalid_session",
            "log out everywhere ended every cookie session"
        );
    }
    // A forged cookie names nobody.
    let mut forged = forwarded(APP_SECRET, BROWSER_IP).to_vec();
    let bad = format!("{name}=v1.AAAAAAAAAAAAAAAAAAAAAA.AAAA");
    forged.push(("cookie", &bad));
    let r = call(&app, Method::GET, "/api/auth/sessions", None, &forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn config_endpoint_tells_the_app_the_cookie_it_must_use() {
    let tokens = TestApp::start().await;
    let r = tokens
        .send(Method::GET, "/api/auth/config", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["login_issues"], "tokens");
    assert_eq!(r.body["session_cookie"], Value::Null);
    assert_eq!(r.body["cookie_secure"], true);
    assert_eq!(
        r.body["app_secret"],
        json!({"configured": false, "trusted": false})
    );

    let native = TestApp::start_with(with_app_secret(native())).await;
    let r = native
        .send(
            Method::GET,
            "/api/auth/config",
            None,
            &[("x-redauth-app-secret", APP_SECRET)],
        )
        .await;
    assert_eq!(
        r.body["session_cookie"],
        json!({
            "mode": "native", "name": "__Host-redauth_session", "path": "/", "domain": null,
            "secure": true, "http_only": true, "same_site": "lax", "max_age": 86400
        })
    );
    assert_eq!(r.body["login_issues"], "both");
    assert_eq!(
        r.body["app_secret"],
        json!({"configured": true, "trusted": true})
    );
    // And the cookie login sets is exactly that one.
    native.user("alice", &[]).await;
    let login = native.session_login("alice", None).await;
    let set = login.set_cookie_header("__Host-redauth_session").unwrap();
    assert!(
        set.ends_with("; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Lax"),
        "{set}"
    );

    let compat = TestApp::start_with(compat()).await;
    let r = compat
        .send(Method::GET, "/api/auth/config", None, &[])
        .await;
    assert_eq!(r.body["session_cookie"]["mode"], "compat");
    assert_eq!(r.body["session_cookie"]["name"], "session");
    assert_eq!(
        r.body["session_cookie"]["same_site"], "strict",
        "compat keeps the library's default"
    );
}

#[tokio::test]
async fn token_responses_say_when_the_refresh_token_expires() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD, "refresh_token_delivery": "body"}),
        )
        .await;
    // Idle timeout (3 days) comes before the absolute one (7 days).
    assert_eq!(r.body["refresh_expires_in"], 259_200, "{:?}", r.body);
    app.clock.advance(3600);
    let rt = r.body["refresh_token"].as_str().unwrap();
    let r = app
        .post("/api/auth/refresh", json!({"refresh_token": rt}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["refresh_expires_in"], 259_200, "refreshing moves it");
    // Cookie delivery: the same number is the cookie's Max-Age.
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let set = r.set_cookie_header("redauth_refresh").unwrap();
    assert!(set.contains(&format!("Max-Age={}", r.body["refresh_expires_in"])));
}
