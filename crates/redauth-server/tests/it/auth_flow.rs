//! Login, refresh rotation, logout, verify, sessions and password change over HTTP.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{PASSWORD, Resp, TestApp};

#[tokio::test]
async fn login_returns_bearer_token_and_a_strict_refresh_cookie() {
    let app = TestApp::start().await;
    let u = app.user("alice", &["reader"]).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "Alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    // The one user shape (issue 12): `permissions` joined `id`, `username`, `roles`.
    assert_eq!(
        r.body["user"],
        json!({"id": u.id, "username": "alice", "roles": ["reader"], "permissions": ["reader:use"]})
    );
    assert!(
        r.body.get("refresh_token").is_none(),
        "refresh token stays out of the body by default"
    );
    let token = r.set_cookie("redauth_refresh").unwrap();
    assert!(token.starts_with(&format!("rt1.{}.", u.id)));
    assert_eq!(
        r.set_cookie_header("redauth_refresh").unwrap(),
        format!(
            "redauth_refresh={token}; Max-Age=259200; Path=/api/auth; HttpOnly; Secure; SameSite=Strict"
        ),
        "the refresh cookie's attributes, byte for byte"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn cookie_secure_can_be_switched_off_for_local_http() {
    let settings = redauth_server::config::Settings {
        cookie_secure: Some(false),
        ..Default::default()
    };
    let app = TestApp::start_with(settings).await;
    app.user("alice", &[]).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert!(
        !r.set_cookie_header("redauth_refresh")
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn body_delivery_returns_refresh_token_in_body_and_sets_no_cookie() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD, "refresh_token_delivery": "body"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert!(r.set_cookie_header("redauth_refresh").is_none());
    let r2 = app
        .post("/api/auth/refresh", json!({"refresh_token": rt}))
        .await;
    assert_eq!(r2.status, StatusCode::OK);
    let rt2 = r2.body["refresh_token"].as_str().unwrap();
    assert_ne!(rt2, rt);
    assert!(r2.set_cookie_header("redauth_refresh").is_none());
}

#[tokio::test]
async fn bad_credentials_unknown_users_and_disabled_accounts_look_the_same() {
    let app = TestApp::start().await;
    let u = app.user("alice", &[]).await;
    let wrong = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": "wrong password!!"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/login",
            json!({"username": "nobody", "password": PASSWORD}),
        )
        .await;
    app.service.set_disabled(&u.id, true).await.unwrap();
    let disabled = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    for r in [&wrong, &unknown, &disabled] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body, wrong.body);
        assert_eq!(r.error_code(), "invalid_credentials");
        assert!(r.set_cookie_header("redauth_refresh").is_none());
    }
}

async fn refresh_from(app: &TestApp, refresh: &str, user_agent: &str) -> Resp {
    app.send(
        Method::POST,
        "/api/auth/refresh",
        None,
        &[
            ("cookie", &format!("redauth_refresh={refresh}")),
            ("user-agent", user_agent),
        ],
    )
    .await
}

#[tokio::test]
async fn refresh_rotates_and_a_replay_by_another_client_after_the_grace_window_revokes_the_session()
{
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (access, rt0) = app.login("alice").await;

    let r1 = refresh_from(&app, &rt0, "victim browser").await;
    assert_eq!(r1.status, StatusCode::OK);
    let rt1 = r1.set_cookie("redauth_refresh").unwrap();
    assert_ne!(rt1, rt0);
    assert_ne!(r1.body["access_token"], access);

    // A second tab presenting the same old token gets the same successor, inside the
    // window and (its reply lost, retrying) after it.
    for dt in [3, 30] {
        app.clock.advance(dt);
        let again = refresh_from(&app, &rt0, "victim browser").await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.set_cookie("redauth_refresh").unwrap(), rt1);
    }

    // Another client, after the window: theft. 401 and the whole session is gone.
    let stolen = refresh_from(&app, &rt0, "thief").await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stolen.error_code(), "refresh_token_reused");
    assert_eq!(
        stolen.set_cookie("redauth_refresh").as_deref(),
        Some(""),
        "dead cookie is cleared"
    );
    assert_eq!(
        refresh_from(&app, &rt1, "victim browser")
            .await
            .error_code(),
        "invalid_refresh_token"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.error_code(),
        "invalid_token"
    );
}

/// Issue 10, item 4: a thief holding the previous refresh token and an access token
/// watches `last_seen` and replays inside the grace window. It must never receive the
/// victim's current refresh token (nor anything else); the victim is not disturbed.
#[tokio::test]
async fn a_thief_riding_the_grace_window_gets_nothing() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (access, mut current) = app.login("alice").await;
    for _ in 0..3 {
        let previous = current.clone();
        let r = refresh_from(&app, &previous, "victim browser").await;
        assert_eq!(r.status, StatusCode::OK);
        current = r.set_cookie("redauth_refresh").unwrap();
        let sessions = app.get_bearer("/api/auth/sessions", &access).await;
        assert_eq!(
            sessions.status,
            StatusCode::OK,
            "the thief sees last_seen move"
        );
        app.clock.advance(1);
        let ride = refresh_from(&app, &previous, "thief").await;
        assert_eq!(ride.status, StatusCode::UNAUTHORIZED);
        assert_eq!(ride.error_code(), "invalid_refresh_token");
        assert!(ride.body.get("access_token").is_none());
        assert!(
            ride.set_cookie("redauth_refresh")
                .is_none_or(|v| v.is_empty() || v != current),
            "the successor never reaches the thief"
        );
    }
    // The victim carries on.
    let r = refresh_from(&app, &current, "victim browser").await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Issue 10, item 3: a well-formed refresh token naming a real user and session (ids
/// are not secrets) must not end that session, and must be answered exactly as a token
/// for a session that does not exist.
#[tokio::test]
async fn a_made_up_refresh_token_for_a_real_session_changes_nothing() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (access, rt0) = app.login("alice").await;
    let parts: Vec<&str> = rt0.split('.').collect();
    let (uid, sid) = (parts[1], parts[2]);
    let secret = "A".repeat(43);
    let forged = format!("rt1.{uid}.{sid}.{secret}");
    let unknown = format!("rt1.{uid}.{}.{secret}", "B".repeat(22));
    let r = refresh_from(&app, &forged, "attacker").await;
    let for_unknown = refresh_from(&app, &unknown, "attacker").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "invalid_refresh_token");
    assert_eq!(
        r.body, for_unknown.body,
        "nothing tells whether the session exists"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.status,
        StatusCode::OK
    );
    assert_eq!(app.refresh_with_cookie(&rt0).await.status, StatusCode::OK);
}

#[tokio::test]
async fn twenty_parallel_refreshes_with_one_token_share_one_successor() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (_, rt0) = app.login("alice").await;
    let calls = (0..20).map(|_| app.refresh_with_cookie(&rt0));
    let results = futures_util::future::join_all(calls).await;
    let successors: std::collections::BTreeSet<_> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.set_cookie("redauth_refresh").unwrap()
        })
        .collect();
    assert_eq!(successors.len(), 1, "one lineage");
    let next = successors.into_iter().next().unwrap();
    assert_eq!(
        app.refresh_with_cookie(&next).await.status,
        StatusCode::OK,
        "no theft false positive"
    );
    let sessions = app
        .service
        .list_all_sessions(&app.service.find_user("alice").await.unwrap().id)
        .await
        .unwrap();
    assert_eq!(sessions[0].refresh_generation, 2);
}

#[tokio::test]
async fn idle_and_absolute_lifetimes_end_the_session() {
    let settings = redauth_server::config::Settings {
        idle_ttl_secs: Some(1000),
        refresh_ttl_secs: Some(2500),
        access_ttl_secs: Some(600),
        ..Default::default()
    };
    let app = TestApp::start_with(settings).await;
    app.user("alice", &[]).await;
    let (_, rt) = app.login("alice").await;
    app.clock.advance(1000);
    assert_eq!(
        app.refresh_with_cookie(&rt).await.error_code(),
        "invalid_refresh_token",
        "idle limit"
    );

    let (_, mut rt) = app.login("alice").await;
    for _ in 0..2 {
        app.clock.advance(900); // refreshed before each idle limit...
        let r = app.refresh_with_cookie(&rt).await;
        assert_eq!(r.status, StatusCode::OK);
        rt = r.set_cookie("redauth_refresh").unwrap();
    }
    app.clock.advance(700); // ...but the absolute limit (2500 s) still ends it.
    assert_eq!(
        app.refresh_with_cookie(&rt).await.error_code(),
        "invalid_refresh_token",
        "absolute limit"
    );
}

/// `REDAUTH_ACCESS_LEEWAY_SECS`: how long past `exp` an access token is still
/// accepted (clock skew between nodes and consumers); 0 ends it at `exp` exactly.
#[tokio::test]
async fn the_access_token_leeway_is_a_setting() {
    for leeway in [0, 30] {
        let app = TestApp::start_with(redauth_server::config::Settings {
            access_ttl_secs: Some(600),
            access_leeway_secs: Some(leeway),
            ..Default::default()
        })
        .await;
        app.user("alice", &[]).await;
        let (access, _) = app.login("alice").await;
        app.clock.advance(600 + leeway - 1);
        assert_eq!(
            app.get_bearer("/api/auth/me", &access).await.status,
            StatusCode::OK,
            "leeway {leeway}"
        );
        app.clock.advance(1);
        assert_eq!(
            app.get_bearer("/api/auth/me", &access).await.error_code(),
            "token_expired",
            "leeway {leeway}"
        );
    }
}

#[tokio::test]
async fn access_tokens_expire_and_refresh_gives_a_working_one() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (access, rt) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.status,
        StatusCode::OK
    );
    app.clock.advance(15 * 60 + 5);
    let r = app.get_bearer("/api/auth/me", &access).await;
    assert_eq!(r.error_code(), "token_expired");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let new_access = app.refresh_with_cookie(&rt).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get_bearer("/api/auth/me", &new_access).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn me_and_verify_describe_the_principal() {
    let app = TestApp::start().await;
    let u = app.user("alice", &["reader", "writer"]).await;
    let (access, _) = app.login("alice").await;
    let me = app.get_bearer("/api/auth/me", &access).await;
    assert_eq!(me.body["id"], u.id);
    assert_eq!(me.body["roles"], json!(["reader", "writer"]));
    assert_eq!(me.body["permissions"], json!(["reader:use", "writer:use"]));

    let v = app.get_bearer("/api/auth/verify", &access).await;
    assert_eq!(v.status, StatusCode::NO_CONTENT);
    assert_eq!(v.header("x-auth-user"), Some(u.id.as_str()));
    assert_eq!(v.header("x-auth-username"), Some("alice"));
    assert_eq!(v.header("x-auth-roles"), Some("reader,writer"));

    let none = app.send(Method::GET, "/api/auth/verify", None, &[]).await;
    assert_eq!(
        (none.status, none.error_code()),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    let basic = app
        .send(
            Method::GET,
            "/api/auth/verify",
            None,
            &[("authorization", "Basic YTpi")],
        )
        .await;
    assert_eq!(basic.error_code(), "invalid_token");
    assert_eq!(
        app.get_bearer("/api/auth/verify", "not.a.jwt")
            .await
            .error_code(),
        "invalid_token"
    );
    let (_, rt) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/auth/verify", &rt).await.error_code(),
        "invalid_token",
        "refresh token as access token"
    );
}

#[tokio::test]
async fn logout_revokes_refresh_and_access_tokens_and_is_idempotent() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (access, rt) = app.login("alice").await;
    let (other_access, _) = app.login("alice").await;
    let cookie = format!("redauth_refresh={rt}");
    let r = app
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.set_cookie("redauth_refresh").as_deref(), Some(""));
    assert!(
        r.set_cookie_header("redauth_refresh")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.error_code(),
        "invalid_token"
    );
    assert_eq!(
        app.refresh_with_cookie(&rt).await.error_code(),
        "invalid_refresh_token"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &other_access).await.status,
        StatusCode::OK,
        "other session lives"
    );
    // Again, and with nothing at all: still 204.
    assert_eq!(
        app.send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &cookie)]
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(Method::POST, "/api/auth/logout", None, &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // With only a bearer token.
    let r = app
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("authorization", &format!("Bearer {other_access}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/api/auth/me", &other_access)
            .await
            .error_code(),
        "invalid_token"
    );
}

#[tokio::test]
async fn a_forged_refresh_token_cannot_log_someone_out() {
    let app = TestApp::start().await;
    let u = app.user("alice", &[]).await;
    let (access, rt) = app.login("alice").await;
    let sid = rt.split('.').nth(2).unwrap();
    let forged = format!("rt1.{}.{sid}.{}", u.id, "A".repeat(43));
    let r = app
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &format!("redauth_refresh={forged}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/api/auth/me", &access).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_only() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    app.user("bob", &[]).await;
    let (a1, _) = app.login("alice").await;
    let (a2, rt2) = app.login("alice").await;
    let (b, _) = app.login("bob").await;
    let r = app
        .send(
            Method::POST,
            "/api/auth/logout-all",
            None,
            &[("authorization", &format!("Bearer {a1}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for t in [&a1, &a2] {
        assert_eq!(
            app.get_bearer("/api/auth/me", t).await.error_code(),
            "invalid_token"
        );
    }
    assert_eq!(
        app.refresh_with_cookie(&rt2).await.error_code(),
        "invalid_refresh_token"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &b).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn users_list_and_delete_their_own_sessions() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    app.user("mallory", &[]).await;
    let (a1, _) = app.login("alice").await;
    let (a2, _) = app.login("alice").await;
    let (m, _) = app.login("mallory").await;
    let list = app.get_bearer("/api/auth/sessions", &a1).await;
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other_sid = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Mallory cannot delete Alice's session.
    let path = format!("/api/auth/sessions/{other_sid}");
    let r = app
        .send(
            Method::DELETE,
            &path,
            None,
            &[("authorization", &format!("Bearer {m}"))],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &a2).await.status,
        StatusCode::OK
    );

    let r = app
        .send(
            Method::DELETE,
            &path,
            None,
            &[("authorization", &format!("Bearer {a1}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/api/auth/me", &a2).await.error_code(),
        "invalid_token"
    );
    let r = app
        .send(
            Method::DELETE,
            &path,
            None,
            &[("authorization", &format!("Bearer {a1}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn password_change_checks_the_old_one_and_ends_other_sessions() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    let (current, _) = app.login("alice").await;
    let (other, other_rt) = app.login("alice").await;
    let auth = format!("Bearer {current}");
    let change = |cur: &str, new: &str| json!({"current_password": cur, "new_password": new});

    let r = app
        .send(
            Method::POST,
            "/api/auth/password",
            Some(change("wrong wrong wrong", "a brand new password")),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.error_code(), "invalid_credentials");
    let r = app
        .send(
            Method::POST,
            "/api/auth/password",
            Some(change(PASSWORD, "short")),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &other).await.status,
        StatusCode::OK,
        "failed attempts change nothing"
    );

    let r = app
        .send(
            Method::POST,
            "/api/auth/password",
            Some(change(PASSWORD, "a brand new password")),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/api/auth/me", &current).await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &other).await.error_code(),
        "invalid_token"
    );
    assert_eq!(
        app.refresh_with_cookie(&other_rt).await.error_code(),
        "invalid_refresh_token"
    );
    let old = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.error_code(), "invalid_credentials");
    let new = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": "a brand new password"}),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK);
}

#[tokio::test]
async fn imported_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id() {
    let app = TestApp::start().await;
    let mut u = app.user("legacy", &[]).await;
    u.password_hash = bcrypt::hash("legacy password 123", 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    app.store_dyn()
        .update_user(&u, redauth_core::store::EndSessions::None)
        .await
        .unwrap();
    let r = app
        .post(
            "/api/auth/login",
            json!({"username": "legacy", "password": "legacy password 123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let stored = app.service.get_user(&u.id).await.unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$"),
        "{}",
        &stored.password_hash[..10]
    );
    let again = app
        .post(
            "/api/auth/login",
            json!({"username": "legacy", "password": "legacy password 123"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn passwords_count_characters_and_are_never_truncated() {
    let app = TestApp::start().await;
    let unicode = "пароль-密码-🔑-ok"; // 15 characters, 33 bytes
    app.service
        .create_user(redauth_core::service::NewUser {
            username: "uni".into(),
            email: "uni@example.com".into(),
            password: unicode.into(),
            roles: vec![],
        })
        .await
        .unwrap();
    let ok = app
        .post(
            "/api/auth/login",
            json!({"username": "uni", "password": unicode}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let prefix = app
        .post(
            "/api/auth/login",
            json!({"username": "uni", "password": &unicode[..unicode.len() - 1]}),
        )
        .await;
    assert_eq!(prefix.status, StatusCode::UNAUTHORIZED);
    let too_long = "x".repeat(129);
    let err = app
        .service
        .create_user(redauth_core::service::NewUser {
            username: "long".into(),
            email: "long@example.com".into(),
            password: too_long,
            roles: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, redauth_core::AuthError::InvalidRequest(_)));
}

/// Issue 11, item 8: two refresh cookies with different values (one planted from a
/// sibling subdomain beside the real one) are refused, not resolved by order; the same
/// cookie sent twice is fine.
#[tokio::test]
async fn two_different_refresh_cookies_are_refused() {
    let app = TestApp::start().await;
    app.user("alice", &[]).await;
    app.user("mallory", &[]).await;
    let (_, victims) = app.login("alice").await;
    let (_, planted) = app.login("mallory").await;
    for cookie in [
        format!("redauth_refresh={planted}; redauth_refresh={victims}"),
        format!("redauth_refresh={victims}; other=1; redauth_refresh={planted}"),
    ] {
        for path in ["/api/auth/refresh", "/api/auth/logout"] {
            let r = app
                .send(Method::POST, path, None, &[("cookie", cookie.as_str())])
                .await;
            assert_eq!(
                (r.status, r.error_code()),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{path} {cookie}"
            );
        }
    }
    let twice = format!("redauth_refresh={victims}; redauth_refresh={victims}");
    let r = app
        .send(
            Method::POST,
            "/api/auth/refresh",
            None,
            &[("cookie", twice.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
