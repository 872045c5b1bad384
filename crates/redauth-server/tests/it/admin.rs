//! Admin endpoints: permission guard, user and role management, and their effect on
//! live sessions.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{PASSWORD, TestApp};

async fn admin_token(app: &TestApp) -> String {
    app.user("root", &["admin"]).await;
    app.login("root").await.0
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_permission() {
    let app = TestApp::start().await;
    app.user("alice", &["reader"]).await;
    let (user_token, _) = app.login("alice").await;
    let r = app.get_bearer("/api/admin/users", &user_token).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let r = app.send(Method::GET, "/api/admin/users", None, &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    let admin = admin_token(&app).await;
    let r = app.get_bearer("/api/admin/users", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<_> = r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "root"]);
    assert!(r.body["users"][0].get("password_hash").is_none());
}

#[tokio::test]
async fn admin_creates_users_with_validation_and_uniqueness() {
    let app = TestApp::start().await;
    let admin = admin_token(&app).await;
    let auth = format!("Bearer {admin}");
    let create =
        |name: &str, email: &str| json!({"username": name, "email": email, "password": PASSWORD});
    let r = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(create("Zoe", "zoe@example.com")),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["username"], "Zoe");
    let r = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(create("zoe", "z2@example.com")),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::CONFLICT, "username_taken")
    );
    let r = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(create("yan", "not-an-email")),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert!(r.body["message"].as_str().unwrap().contains("email"));
    let bad_role = json!({"username": "yan", "email": "yan@example.com", "password": PASSWORD, "roles": ["nope"]});
    let r = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(bad_role),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.error_code(), "invalid_request");
    assert!(
        app.service.find_user("yan").await.is_err(),
        "nothing half-written"
    );
}

/// Issue 11, item 10 (emails): an address that normalizes to, or looks like, another
/// user's is a 409 `email_taken` with the usual error body, and nothing is created.
#[tokio::test]
async fn an_email_taken_up_to_case_form_or_look_alikes_is_a_409_email_taken() {
    let app = TestApp::start().await;
    let admin = admin_token(&app).await;
    let auth = format!("Bearer {admin}");
    let create =
        |name: &str, email: &str| json!({"username": name, "email": email, "password": PASSWORD});
    let headers = [("authorization", auth.as_str())];
    let r = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(create("zoe", "Zoe@Example.com")),
            &headers,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["email"], "Zoe@Example.com", "kept as entered");
    // ZOE@…, fullwidth ｚｏｅ@…, and zоe@… with a Cyrillic о.
    for email in [
        "ZOE@example.com",
        "ｚｏｅ@example.com",
        "z\u{43e}e@example.com",
    ] {
        let r = app
            .send(
                Method::POST,
                "/api/admin/users",
                Some(create("yves", email)),
                &headers,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{email}");
        assert_eq!(
            r.body,
            json!({"error": "email_taken", "message": "email is already taken"}),
            "{email}"
        );
    }
    assert!(
        app.service.find_user("yves").await.is_err(),
        "nothing half-written"
    );
    let r = app
        .send(
            Method::POST,
            "/api/admin/users",
            Some(create("yves", "yves@example.com")),
            &headers,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn two_concurrent_creates_of_one_username_give_one_user() {
    let app = TestApp::start().await;
    let admin = admin_token(&app).await;
    let auth = format!("Bearer {admin}");
    let body = |email: &str| json!({"username": "twin", "email": email, "password": PASSWORD});
    let headers = [("authorization", auth.as_str())];
    let (a, b) = tokio::join!(
        app.send(
            Method::POST,
            "/api/admin/users",
            Some(body("a@example.com")),
            &headers
        ),
        app.send(
            Method::POST,
            "/api/admin/users",
            Some(body("b@example.com")),
            &headers
        ),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    assert_eq!(
        app.service
            .list_users()
            .await
            .unwrap()
            .iter()
            .filter(|u| u.username == "twin")
            .count(),
        1
    );
}

#[tokio::test]
async fn disabling_a_user_cuts_access_on_the_next_request() {
    let app = TestApp::start().await;
    let admin = admin_token(&app).await;
    let u = app.user("alice", &[]).await;
    let (token, rt) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::NO_CONTENT,
        "cached now"
    );
    let r = app
        .send(
            Method::POST,
            &format!("/api/admin/users/{}/disable", u.id),
            None,
            &[("authorization", &format!("Bearer {admin}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["disabled"], true);
    assert_eq!(
        app.get_bearer("/api/auth/verify", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh_with_cookie(&rt).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .send(
            Method::POST,
            &format!("/api/admin/users/{}/enable", u.id),
            None,
            &[("authorization", &format!("Bearer {admin}"))],
        )
        .await;
    assert_eq!(r.body["disabled"], false);
    app.login("alice").await;
}

#[tokio::test]
async fn role_changes_show_up_on_the_next_request() {
    let app = TestApp::start().await;
    let admin = admin_token(&app).await;
    let auth = format!("Bearer {admin}");
    let u = app.user("alice", &[]).await;
    let (token, _) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.body["permissions"],
        json!([])
    );

    let r = app
        .send(
            Method::PUT,
            "/api/admin/roles/editor",
            Some(json!({"permissions": ["docs:write"]})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        r.body,
        json!({"name": "editor", "permissions": ["docs:write"]})
    );
    let path = format!("/api/admin/users/{}/roles", u.id);
    let r = app
        .send(
            Method::PUT,
            &path,
            Some(json!({"roles": ["editor"]})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.body["permissions"],
        json!(["docs:write"])
    );

    app.send(
        Method::PUT,
        "/api/admin/roles/editor",
        Some(json!({"permissions": ["docs:write", "docs:publish"]})),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.body["permissions"],
        json!(["docs:publish", "docs:write"])
    );

    let r = app
        .send(
            Method::PUT,
            "/api/admin/roles/Bad%20Name",
            Some(json!({"permissions": []})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.error_code(), "invalid_request");
    let roles = app.get_bearer("/api/admin/roles", &admin).await;
    assert_eq!(roles.body["roles"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn admin_gets_and_deletes_users() {
    let app = TestApp::start().await;
    let admin = admin_token(&app).await;
    let auth = format!("Bearer {admin}");
    let u = app.user("alice", &[]).await;
    let (token, _) = app.login("alice").await;
    let r = app
        .get_bearer(&format!("/api/admin/users/{}", u.id), &admin)
        .await;
    assert_eq!(r.body["email"], "alice@example.com");
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/admin/users/{}", u.id),
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .get_bearer(&format!("/api/admin/users/{}", u.id), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .get_bearer("/api/admin/users/..%2F..%2Fetc", &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
