//! The example app end to end, in-process: a user logs in through redauth's merged API
//! and reaches the app's own routes; the permission and revocation hold there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use redauth_core::service::NewUser;
use redauth_core::{Role, Secret};
use redauth_example_embed::{AppState, app, redauth};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PASSWORD: &str = "correct horse battery staple";

/// A data directory removed on drop.
struct DataDir(std::path::PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn a_user_logs_in_through_redauth_and_reaches_the_apps_own_routes() {
    let dir = DataDir(std::env::temp_dir().join(format!(
        "redauth-embed-example-{}",
        redauth_core::ids::random_id().unwrap()
    )));
    let redauth = redauth(
        &dir.0,
        Secret::new("example-secret-0123456789-0123456789-abcdef"),
    )
    .unwrap();
    let service = redauth.service.clone();
    service
        .put_role(Role {
            name: "analyst".into(),
            permissions: vec!["reports:read".into()],
        })
        .await
        .unwrap();
    for (name, roles) in [("ana", vec!["analyst".to_owned()]), ("bob", vec![])] {
        service
            .create_user(NewUser {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
                roles,
            })
            .await
            .unwrap();
    }
    let app = app(AppState {
        redauth,
        greeting: "hello".into(),
    });

    let mut tokens = Vec::new();
    for name in ["ana", "bob"] {
        let (status, body) = call(
            &app,
            post_json(
                "/api/auth/login",
                json!({"username": name, "password": PASSWORD}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    let (ana, bob) = (&tokens[0], &tokens[1]);

    assert_eq!(
        call(&app, get("/hello", ana)).await,
        (StatusCode::OK, Value::String("hello, ana".into()))
    );
    assert_eq!(call(&app, get("/reports", ana)).await.0, StatusCode::OK);
    let (status, body) = call(&app, get("/reports", bob)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = call(&app, Request::get("/hello").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );

    // Log out everywhere through the merged API: the app's routes refuse the token.
    let logout = Request::post("/api/auth/logout-all")
        .header(header::AUTHORIZATION, format!("Bearer {ana}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, logout).await.0, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, get("/hello", ana)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
}
