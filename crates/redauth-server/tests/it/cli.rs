//! The admin CLI, in-process and as the real binary, and the server binary over real
//! TCP: start-up refusal on bad config, 503 while Redis is down, a login end to end.

use clap::Parser as _;
use redauth_server::cli::{Cli, run_admin};

use crate::support::{
    PASSWORD, SECRET, TestApp, http, redauth, run_cli, serve, serve_with, start_server,
    start_up_lines,
};

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
    // Times in RFC 3339 UTC, not raw Unix seconds.
    let alice_id = app.service.find_user("alice").await.unwrap().id;
    let session = &app.service.list_all_sessions(&alice_id).await.unwrap()[0];
    let created = redauth_server::utc::rfc3339(session.created_at);
    let expires = redauth_server::utc::rfc3339(session.expires_at());
    assert!(
        sessions.contains(&format!("{created}  {expires}")),
        "{sessions}"
    );
    assert!(
        !sessions.contains(&session.created_at.to_string()),
        "{sessions}"
    );
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

/// Every command, subcommand and argument says what it is for in `--help`.
#[test]
fn every_command_and_argument_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() {
            missing.push(format!("{path}: no about"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(
        &<Cli as clap::CommandFactory>::command(),
        "redauth",
        &mut missing,
    );
    assert!(missing.is_empty(), "no help text: {missing:#?}");
    // And the real binary shows it.
    let out = redauth()
        .args(["sessions", "revoke", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("End one login session"), "{help}");
    assert!(help.contains("as `sessions list` shows it"), "{help}");
}

/// The README's `cargo run --release --listen …` form: the serve flags work with no
/// `serve`, before it, or after it (after wins), and nowhere else.
#[test]
fn serve_flags_work_without_the_serve_command() {
    let redis = redauth_testkit::RedisServer::start();
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("JWT_SECRET", SECRET)];
    let listening = |args: &[&str]| {
        let (server, _) = start_server(args, &env).unwrap();
        server.addr.clone()
    };
    // JSON logs are how `start_server` finds the address: `--log-format` took effect.
    let addr = listening(&["--listen", "127.0.0.1:0", "--log-format", "json"]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    listening(&["--log-format", "json", "serve", "--listen", "127.0.0.1:0"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    listening(&[
        "--listen",
        &taken,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);

    let out = redauth()
        .args(["--listen", "127.0.0.1:0", "user", "list"])
        .env("REDIS_URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("only apply to serve"), "{err}");
    let out = redauth().args(["--log-format", "xml"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("possible values: text, json"), "{err}");
}

/// The start-up log tells how to create the first admin only when no account exists.
#[test]
fn the_first_admin_hint_appears_only_when_no_account_exists() {
    let redis = redauth_testkit::RedisServer::start();
    let url = redis.url();
    let (server, lines) = serve_with(&url, &[]);
    let text = start_up_lines(&lines);
    assert!(text.contains("no accounts exist yet"), "{text}");
    assert!(
        text.contains(redauth_server::app::FIRST_ADMIN_COMMANDS),
        "{text}"
    );
    drop(server);

    let add = [
        "user",
        "add",
        "dave",
        "--email",
        "dave@example.com",
        "--password-stdin",
    ];
    run_cli(&add, &[("REDIS_URL", &url)], &format!("{PASSWORD}\n"));
    let (_server, lines) = serve_with(&url, &[]);
    let text = start_up_lines(&lines);
    assert!(text.contains("store holds accounts"), "{text}");
    assert!(text.contains(r#""accounts":1"#), "{text}");
    assert!(!text.contains("no accounts exist"), "{text}");
}

/// A misspelt `REDAUTH_*` variable is named in a warning at start, with the setting it
/// probably meant; the admin commands warn on stderr too.
#[test]
fn unknown_redauth_variables_are_warned_about() {
    let redis = redauth_testkit::RedisServer::start();
    let url = redis.url();
    let (_server, lines) = serve_with(
        &url,
        &[
            ("REDAUTH_ACCES_TTL_SECS", "60"),
            ("REDAUTH_JWT_SECRET", "x"),
            ("REDAUTH_SOMETHING_ELSE", "1"),
        ],
    );
    let text = start_up_lines(&lines);
    let warning = |name: &str| {
        text.lines()
            .find(|l| l.contains(name) && l.contains(r#""level":"WARN""#))
            .unwrap_or_else(|| panic!("no warning naming {name}: {text}"))
            .to_owned()
    };
    assert!(
        warning("REDAUTH_ACCES_TTL_SECS").contains("did you mean REDAUTH_ACCESS_TTL_SECS?"),
        "{text}"
    );
    assert!(
        warning("REDAUTH_JWT_SECRET").contains("did you mean JWT_SECRET?"),
        "{text}"
    );
    assert!(!warning("REDAUTH_SOMETHING_ELSE").contains("did you mean"));
    assert!(
        !text.contains("REDAUTH_COOKIE_SECURE is not"),
        "a real setting is not warned about: {text}"
    );

    let out = redauth()
        .args(["role", "list"])
        .env("REDIS_URL", &url)
        .env("REDAUTH_KEY_PREFX", "x:")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("REDAUTH_KEY_PREFX is not a redauth setting")
            && err.contains("did you mean REDAUTH_KEY_PREFIX?"),
        "{err}"
    );
}

/// A TOML error names the file, line and column; the process exits 2 with one line.
#[test]
fn a_config_file_error_names_its_line_and_column() {
    let dir = std::env::temp_dir().join(format!(
        "redauth-cli-toml-{}",
        redauth_core::ids::random_id().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("redauth.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\naccess_ttl_secs = 60\n  acess_ttl_secs = 60\n",
    )
    .unwrap();
    let out = redauth()
        .args(["--config", file.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{}, line 3, column 3:", file.display()))
            && err.contains("unknown setting `acess_ttl_secs`; did you mean `access_ttl_secs`?"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A port in use stops the start with the address and the setting that chose it.
#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = redauth()
        .args(["serve", "--listen", &addr])
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .env("JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "redauth: cannot listen on {addr} (REDAUTH_LISTEN, --listen): "
        )),
        "{err}"
    );
    assert!(last.to_ascii_lowercase().contains("in use"), "{err}");
}
