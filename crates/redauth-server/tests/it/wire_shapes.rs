//! The JSON every endpoint answers with, pinned by its keys. The bodies are typed
//! (`redauth_axum::dto`) since issue 12; this keeps a refactor of those types from
//! changing what clients receive unnoticed. The one intended change: `permissions`
//! joined the `user` of the token response and of the session-only login, so every
//! `user` a client sees has one shape.

use axum::http::{Method, StatusCode};
use redauth_server::config::{LoginIssues, Settings};
use serde_json::{Value, json};

use crate::cookie_sessions::native;
use crate::support::{PASSWORD, TestApp};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

const USER: [&str; 4] = ["id", "permissions", "roles", "username"];

#[tokio::test]
async fn token_sessions_admin_and_health_bodies_keep_their_shape() {
    let app = TestApp::start().await;
    app.user("root", &["admin"]).await;
    let login = app
        .post(
            "/api/auth/login",
            json!({"username": "root", "password": PASSWORD, "refresh_token_delivery": "body"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert_eq!(
        keys(&login.body),
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type",
            "user"
        ]
    );
    assert_eq!(keys(&login.body["user"]), USER);
    assert_eq!(login.body["user"]["permissions"], json!(["redauth:admin"]));
    let access = login.body["access_token"].as_str().unwrap().to_owned();

    let refreshed = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": login.body["refresh_token"]}),
        )
        .await;
    assert_eq!(keys(&refreshed.body), keys(&login.body));

    let me = app.get_bearer("/api/auth/me", &access).await;
    assert_eq!(
        keys(&me.body),
        [
            "id",
            "permissions",
            "roles",
            "session_expires_at",
            "session_id",
            "username"
        ],
        "flat, as before the typed views"
    );

    let sessions = app.get_bearer("/api/auth/sessions", &access).await;
    assert_eq!(keys(&sessions.body), ["next_cursor", "sessions"]);
    assert_eq!(sessions.body["next_cursor"], Value::Null);
    assert_eq!(
        keys(&sessions.body["sessions"][0]),
        [
            "absolute_expiry",
            "created_at",
            "current",
            "expires_at",
            "id",
            "ip",
            "last_seen",
            "user_agent"
        ]
    );

    let admin_user = [
        "created_at",
        "disabled",
        "email",
        "id",
        "password_changed_at",
        "roles",
        "updated_at",
        "username",
    ];
    let bearer = format!("Bearer {access}");
    let created = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD})),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(keys(&created.body), admin_user);
    let users = app.get_bearer("/api/admin/users", &access).await;
    assert_eq!(keys(&users.body), ["users"]);
    assert_eq!(keys(&users.body["users"][0]), admin_user);
    let roles = app.get_bearer("/api/admin/roles", &access).await;
    assert_eq!(keys(&roles.body), ["roles"]);
    assert_eq!(keys(&roles.body["roles"][0]), ["name", "permissions"]);
    let role = app
        .send(
            Method::PUT,
            "/api/admin/roles/editor",
            Some(json!({"permissions": ["doc:write"]})),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(
        role.body,
        json!({"name": "editor", "permissions": ["doc:write"]})
    );

    let health = app.send(Method::GET, "/healthz", None, &[]).await;
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.send(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(
        ready.body,
        json!({"status": "ready", "revocation_feed": "subscribed"})
    );

    let error = app.get_bearer("/api/auth/me", "not-a-token").await;
    assert_eq!(keys(&error.body), ["error", "message"]);
    assert_eq!(error.body["error"], "invalid_token");
}

#[tokio::test]
async fn cookie_session_bodies_keep_their_shape() {
    let app = TestApp::start_with(Settings {
        login_issues: Some(LoginIssues::Session),
        ..native()
    })
    .await;
    app.user("alice", &["reader"]).await;
    let login = app.session_login("alice", None).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert_eq!(keys(&login.body), ["session", "user"]);
    assert_eq!(keys(&login.body["user"]), USER);
    assert_eq!(keys(&login.body["session"]), ["expires_at", "id"]);

    let cookie = login.set_cookie("__Host-redauth_session").unwrap();
    let view = app.get_session("__Host-redauth_session", &cookie).await;
    assert_eq!(keys(&view.body), ["data", "session", "user"]);
    assert_eq!(keys(&view.body["user"]), USER);
    assert_eq!(keys(&view.body["session"]), ["expires_at", "id"]);
    assert_eq!(view.body["session"]["id"], login.body["session"]["id"]);
    assert_eq!(view.body["data"], json!({}));
}
