//! CSRF refusal for cookie-carrying cross-site requests, CORS for configured origins
//! only, and the security headers on every response.

use axum::http::{Method, StatusCode};
use redauth_server::config::Settings;

use crate::support::TestApp;

const APP: &str = "https://app.example.com";

async fn app_with_allowed_origin() -> TestApp {
    TestApp::start_with(Settings {
        allowed_origins: Some(APP.into()),
        ..Settings::default()
    })
    .await
}

#[tokio::test]
async fn cross_site_requests_with_cookies_are_refused_and_change_nothing() {
    let app = app_with_allowed_origin().await;
    app.user("alice", &[]).await;
    let (access, rt) = app.login("alice").await;
    let cookie = format!("redauth_refresh={rt}");
    let attacks: [&[(&str, &str)]; 4] = [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://other.example.com"),
        ],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
    ];
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        for attack in attacks {
            let mut headers = vec![("cookie", cookie.as_str()), ("host", "auth.example.com")];
            headers.extend_from_slice(attack);
            let r = app.send(Method::POST, path, None, &headers).await;
            assert_eq!(
                (r.status, r.error_code()),
                (StatusCode::FORBIDDEN, "csrf_rejected"),
                "{path} {attack:?}"
            );
            assert!(r.set_cookie_header("redauth_refresh").is_none());
        }
    }
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.status,
        StatusCode::OK,
        "session untouched"
    );
    assert_eq!(
        app.refresh_with_cookie(&rt).await.status,
        StatusCode::OK,
        "token not rotated by the refused calls"
    );
}

#[tokio::test]
async fn same_origin_allowed_origins_and_non_browsers_pass() {
    let app = app_with_allowed_origin().await;
    app.user("alice", &[]).await;
    let mut rt = app.login("alice").await.1;
    let allowed: [&[(&str, &str)]; 4] = [
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://auth.example.com"),
            ("host", "auth.example.com"),
        ],
        &[
            ("origin", "https://auth.example.com"),
            ("host", "auth.example.com"),
        ],
        &[("sec-fetch-site", "cross-site"), ("origin", APP)],
        &[],
    ];
    for extra in allowed {
        let cookie = format!("redauth_refresh={rt}");
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend_from_slice(extra);
        let r = app
            .send(Method::POST, "/api/auth/refresh", None, &headers)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{extra:?}");
        rt = r.set_cookie("redauth_refresh").unwrap();
    }
    // Bearer-only requests carry no ambient credential, so CSRF rules do not apply.
    let (access, _) = app.login("alice").await;
    let r = app
        .send(
            Method::POST,
            "/api/auth/logout-all",
            None,
            &[
                ("authorization", &format!("Bearer {access}")),
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn cors_headers_only_for_configured_origins() {
    let app = app_with_allowed_origin().await;
    let app = &app;
    let preflight = |origin: &'static str| async move {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ];
        app.send(Method::OPTIONS, "/api/auth/refresh", None, &headers)
            .await
    };
    let ok = preflight(APP).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert!(
        ok.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let evil = preflight("https://evil.example").await;
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(evil.header("access-control-allow-credentials"), None);

    let simple = app
        .send(Method::GET, "/healthz", None, &[("origin", APP)])
        .await;
    assert_eq!(simple.header("access-control-allow-origin"), Some(APP));
    assert_eq!(simple.header("vary"), Some("Origin"));
    let other = app
        .send(
            Method::GET,
            "/healthz",
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);

    let none = TestApp::start().await;
    let r = none
        .send(Method::GET, "/healthz", None, &[("origin", APP)])
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "no origins configured: no CORS at all"
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (access, _) = app.login("alice").await;
    for r in [
        app.send(Method::GET, "/healthz", None, &[]).await,
        app.get_bearer("/api/auth/me", &access).await,
        app.send(Method::GET, "/api/auth/me", None, &[]).await,
        app.send(Method::GET, "/nowhere", None, &[]).await,
    ] {
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
    }
    let plain = TestApp::start_with(Settings {
        hsts: Some(false),
        ..Settings::default()
    })
    .await;
    assert_eq!(
        plain
            .send(Method::GET, "/healthz", None, &[])
            .await
            .header("strict-transport-security"),
        None
    );
}

/// Issue 11, item 12: the same host over plain http is another origin (a page there may
/// have been written by anyone on the network path); same scheme, host and port pass.
#[tokio::test]
async fn same_origin_means_same_scheme_host_and_port() {
    let app = TestApp::start().await; // Secure cookies: this server is https.
    app.user("alice", &[]).await;
    let (_, rt) = app.login("alice").await;
    let cookie = format!("redauth_refresh={rt}");
    let post = |origin: &'static str, host: &'static str| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/api/auth/logout",
                None,
                &[
                    ("cookie", cookie.as_str()),
                    ("host", host),
                    ("origin", origin),
                    ("sec-fetch-site", "same-site"),
                ],
            )
            .await
        }
    };
    for (origin, host) in [
        ("http://auth.example.com", "auth.example.com"),
        ("https://auth.example.com:8443", "auth.example.com"),
        ("https://auth.example.com", "auth.example.com:8443"),
    ] {
        let r = post(origin, host).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::FORBIDDEN, "csrf_rejected"),
            "{origin} vs Host {host}"
        );
    }
    for (origin, host) in [
        ("https://auth.example.com", "auth.example.com"),
        ("https://auth.example.com", "auth.example.com:443"),
        ("https://auth.example.com:8443", "auth.example.com:8443"),
    ] {
        assert_eq!(
            post(origin, host).await.status,
            StatusCode::NO_CONTENT,
            "{origin} vs Host {host}"
        );
    }
}
