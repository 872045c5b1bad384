//! redauth's extractors on a host app's own routes (`redauth_axum::guards`): a router
//! with its own state, its own routes, and redauth's API merged in, as an embedder
//! writes it. The guarantees of redauth's routes hold there too: revocation, stable
//! error bodies, renewed cookies reaching the browser, the CSRF check.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::get;
use redauth_axum::Redauth;
use redauth_axum::extract::AuthUser;
use redauth_axum::guards::{CookieSession, RequirePermission, set_session_cookies};
use redauth_server::config::Settings;
use serde_json::{Value, json};

use crate::cookie_sessions::native;
use crate::support::{Node, Resp, TestApp};

redauth_axum::permission!(ReportsUse = "reports:use");

#[derive(Clone)]
struct Host {
    redauth: Redauth,
    greeting: &'static str,
}

impl FromRef<Host> for Redauth {
    fn from_ref(host: &Host) -> Redauth {
        host.redauth.clone()
    }
}

async fn hello(State(host): State<Host>, AuthUser(user): AuthUser) -> String {
    format!("{}, {}", host.greeting, user.username)
}

async fn reports(RequirePermission(user, _): RequirePermission<ReportsUse>) -> String {
    format!("reports for {}", user.username)
}

#[derive(serde::Deserialize)]
struct Cart {
    #[serde(default)]
    items: Vec<String>,
}

async fn cart(session: CookieSession<Cart>) -> axum::Json<Value> {
    axum::Json(json!({
        "user": session.user.as_ref().map(|u| u.username.to_string()),
        "items": session.data.items,
    }))
}

/// The node's API under its own prefix-free paths, plus the host's routes.
fn host_app(node: &Node) -> Router {
    let host_routes = Router::new()
        .route("/hello", get(hello))
        .route("/reports", get(reports))
        .route("/cart", get(cart).post(cart))
        .layer(axum::middleware::from_fn(set_session_cookies));
    Router::new()
        .route("/bare-cart", get(cart))
        .merge(host_routes)
        .merge(redauth_axum::router(node.redauth.clone()))
        .with_state(Host {
            redauth: node.redauth.clone(),
            greeting: "hello",
        })
}

async fn call(app: &Router, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Resp {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn bearer_routes_of_the_host_need_a_live_token_and_the_permission() {
    let app = TestApp::start().await;
    let host = host_app(&app);
    app.user("alice", &["reports"]).await;
    app.user("bob", &[]).await;
    let (alice, _) = app.login("alice").await;
    let (bob, _) = app.login("bob").await;
    let bearer = |t: &str| format!("Bearer {t}");

    let r = call(
        &host,
        Method::GET,
        "/hello",
        &[("authorization", &bearer(&alice))],
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, Some("hello, alice"))
    );
    let r = call(
        &host,
        Method::GET,
        "/reports",
        &[("authorization", &bearer(&alice))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &host,
        Method::GET,
        "/reports",
        &[("authorization", &bearer(&bob))],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let r = call(&host, Method::GET, "/reports", &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );

    // Logging out through the merged API revokes the token on the host's routes too.
    let r = call(
        &host,
        Method::POST,
        "/api/auth/logout",
        &[("authorization", &bearer(&alice))],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &host,
        Method::GET,
        "/reports",
        &[("authorization", &bearer(&alice))],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

const COOKIE: &str = "__Host-redauth_session";

#[tokio::test]
async fn cookie_routes_of_the_host_check_the_session_refuse_cross_site_writes_and_pass_renewals_on()
{
    let app = TestApp::start_with(Settings {
        session_ttl_secs: Some(1000),
        session_renew_before_secs: Some(300),
        session_cache_secs: Some(0),
        ..native()
    })
    .await;
    let host = host_app(&app);
    app.user("alice", &[]).await;
    let login = app
        .session_login("alice", Some(json!({"items": ["tea"]})))
        .await;
    let cookie = format!("{COOKIE}={}", login.set_cookie(COOKIE).unwrap());

    let r = call(&host, Method::GET, "/cart", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"user": "alice", "items": ["tea"]}));
    assert!(
        r.set_cookie_header(COOKIE).is_none(),
        "nothing to renew yet"
    );

    // A state-changing request from another site is refused before the handler runs.
    let cross_site = [
        ("cookie", cookie.as_str()),
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ];
    let r = call(&host, Method::POST, "/cart", &cross_site).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    let r = call(&host, Method::POST, "/cart", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK, "not from a browser: no CSRF risk");

    // Inside the renewal window the host's response carries the renewed cookie.
    app.clock.advance(701);
    let r = call(&host, Method::GET, "/cart", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let renewed = r
        .set_cookie_header(COOKIE)
        .expect("the renewal reaches the browser");
    assert!(renewed.contains("Max-Age=1000"), "{renewed}");

    // A route without the middleware is refused rather than losing that cookie.
    let r = call(&host, Method::GET, "/bare-cart", &[("cookie", &cookie)]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
    );

    // Logging out ends the session on the host's routes, and the cookie is cleared.
    let r = call(
        &host,
        Method::POST,
        "/api/auth/logout",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&host, Method::GET, "/cart", &[("cookie", &cookie)]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "invalid_session")
    );
    assert_eq!(r.set_cookie(COOKIE).as_deref(), Some(""));
    assert_eq!(
        r.headers.get_all(header::SET_COOKIE).iter().count(),
        1,
        "cleared once"
    );
    let r = call(&host, Method::GET, "/cart", &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "missing_session")
    );
}
