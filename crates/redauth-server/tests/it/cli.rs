//! The admin CLI, in-process and as the real binary, and the server binary over real
//! TCP: start-up refusal on bad config, 503 while Redis is down, a login end to end.

use clap::Parser as _;
use redauth_server::cli::{Cli, run_admin};

use crate::support::{PASSWORD, TestApp, http, redauth, run_cli, serve};

async fn admin(app: &TestApp, args: &[&str], stdin: &str) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("redauth").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    run_admin(
        cli.command.unwrap(),
        &app.service,
        &mut stdin.as_bytes(),
        &mut out,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn admin_commands_manage_users_roles_and_sessions() {
    let app = TestApp::start().await;
    assert!(
        admin(&app, &["role", "set", "admin", "redauth:admin"], "")
            .await
            .unwrap()
            .contains("role admin")
    );
    admin(&app, &["role", "set", "support", "tickets:read"], "")
        .await
        .unwrap();
    let out = admin(
        &app,
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .await
    .unwrap();
    assert!(out.starts_with("created user alice"), "{out}");
    let (token, _) = app.login("alice").await;
    assert_eq!(
        app.get_bearer("/api/admin/users", &token).await.status,
        axum::http::StatusCode::OK
    );

    let list = admin(&app, &["user", "list"], "").await.unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("alice") && l.contains("active") && l.ends_with("admin")),
        "{list}"
    );
    assert!(
        admin(&app, &["user", "grant", "alice", "support"], "")
            .await
            .unwrap()
            .ends_with("admin,support\n")
    );
    // alice is the only admin: removing that is refused (issue 11, item 11).
    let refused = admin(&app, &["user", "revoke", "alice", "admin"], "")
        .await
        .unwrap_err();
    assert!(refused.contains("no administrator"), "{refused}");
    // With another admin, alice's admin role can go.
    app.user("root", &["admin"]).await;
    assert!(
        admin(&app, &["user", "revoke", "alice", "admin"], "")
            .await
            .unwrap()
            .ends_with("roles: support\n")
    );
    assert!(
        admin(&app, &["user", "grant", "alice", "ghost-role"], "")
            .await
            .is_err()
    );
    let roles = admin(&app, &["role", "list"], "").await.unwrap();
    assert!(roles.contains("support") && roles.contains("tickets:read"));

    let show = admin(&app, &["user", "show", "ALICE"], "").await.unwrap();
    assert!(show.contains("sessions:  1"), "{show}");
    let sessions = admin(&app, &["sessions", "list", "alice"], "")
        .await
        .unwrap();
    assert_eq!(sessions.lines().count(), 2, "{sessions}");
    let sid = sessions
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        admin(&app, &["sessions", "revoke", "alice", &sid], "")
            .await
            .unwrap()
            .contains(&sid)
    );
    assert!(
        app.get_bearer("/api/auth/me", &token)
            .await
            .status
            .is_client_error()
    );

    app.login("alice").await;
    app.login("alice").await;
    assert!(
        admin(&app, &["sessions", "revoke-all", "alice"], "")
            .await
            .unwrap()
            .contains("revoked 2 session(s)")
    );

    admin(
        &app,
        &["user", "passwd", "alice", "--password-stdin"],
        "another long password\r\n",
    )
    .await
    .unwrap();
    let r = app
        .post(
            "/api/auth/login",
            serde_json::json!({"username": "alice", "password": "another long password"}),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK);

    assert!(
        admin(&app, &["user", "disable", "alice"], "")
            .await
            .unwrap()
            .contains("disabled")
    );
    assert!(
        admin(&app, &["user", "list"], "")
            .await
            .unwrap()
            .contains("disabled")
    );
    admin(&app, &["user", "enable", "alice"], "").await.unwrap();
    admin(&app, &["user", "delete", "alice"], "").await.unwrap();
    assert!(
        admin(&app, &["user", "show", "alice"], "")
            .await
            .unwrap_err()
            .contains("not found")
    );
    assert!(
        admin(
            &app,
            &[
                "user",
                "add",
                "bob",
                "--email",
                "bob@example.com",
                "--password-stdin"
            ],
            ""
        )
        .await
        .unwrap_err()
        .contains("no password")
    );
    assert!(
        admin(
            &app,
            &[
                "user",
                "add",
                "bob",
                "--email",
                "bob@example.com",
                "--password-stdin"
            ],
            "short\n"
        )
        .await
        .unwrap_err()
        .contains("password")
    );
}

#[test]
fn session_ids_starting_with_a_dash_are_accepted() {
    let cli = Cli::try_parse_from([
        "redauth",
        "sessions",
        "revoke",
        "alice",
        "-abcdefghijklmnopqrstu",
    ])
    .unwrap();
    let Some(redauth_server::cli::Command::Sessions(
        redauth_server::cli::SessionsCommand::Revoke { session_id, .. },
    )) = cli.command
    else {
        panic!("parsed as {:?}", cli.command)
    };
    assert_eq!(session_id, "-abcdefghijklmnopqrstu");
}

#[test]
fn passwords_are_never_accepted_as_arguments() {
    let err = Cli::try_parse_from([
        "redauth",
        "user",
        "add",
        "bob",
        "--email",
        "b@example.com",
        "--password",
        "x",
    ])
    .unwrap_err();
    assert!(
        err.to_string().contains("unexpected argument '--password'"),
        "{err}"
    );
}

#[test]
fn the_binary_refuses_to_start_on_a_weak_or_missing_secret() {
    let out = redauth()
        .args(["serve"])
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .env("JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("JWT_SECRET is too weak"), "{err}");
    let out = redauth()
        .args(["serve"])
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("JWT_SECRET is not set")
    );
    let out = redauth()
        .args(["serve"])
        .env("REDAUTH_ACCESS_TTL_SECS", "abc")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("REDAUTH_ACCESS_TTL_SECS")
    );
}

#[test]
fn unreachable_redis_at_start_is_a_503_not_a_crash() {
    let mut redis = redauth_testkit::RedisServer::start();
    let url = redis.url();
    redis.kill();
    let server = serve(&url);
    assert_eq!(http(&server.addr, "GET", "/healthz", &[], "").0, 200);
    let (status, _, body) = http(&server.addr, "GET", "/readyz", &[], "");
    assert_eq!(status, 503);
    assert!(body.contains("\"unavailable\""), "{body}");
    redis.restart();
    // The lazy connection reconnects on the next request.
    let mut status = 0;
    for _ in 0..50 {
        status = http(&server.addr, "GET", "/readyz", &[], "").0;
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100)); // retry loop, bounded
    }
    assert_eq!(status, 200);
}

#[test]
fn cli_creates_a_user_and_the_server_logs_it_in_over_tcp() {
    let redis = redauth_testkit::RedisServer::start();
    let url = redis.url();
    let add = [
        "user",
        "add",
        "carol",
        "--email",
        "carol@example.com",
        "--password-stdin",
    ];
    let out = run_cli(
        &add,
        &[("REDIS_URL", url.as_str())],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.starts_with("created user carol"), "{out}");

    let server = serve(&redis.url());
    let body = serde_json::json!({"username": "carol", "password": PASSWORD}).to_string();
    let (status, head, body) = http(
        &server.addr,
        "POST",
        "/api/auth/login",
        &[
            ("Content-Type", "application/json"),
            ("User-Agent", "tcp-test"),
        ],
        &body,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("set-cookie: redauth_refresh=rt1."),
        "{head}"
    );
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = http(
        &server.addr,
        "GET",
        "/api/auth/sessions",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(status, 200);
    let sessions: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sessions["sessions"][0]["ip"], "127.0.0.1");
    assert_eq!(sessions["sessions"][0]["user_agent"], "tcp-test");
}
