//! With no Redis configured, `redauth serve` runs on the embedded store: zero setup,
//! a generated secret kept in the data directory, data that survives a restart, and
//! one process per data file.

use serde_json::json;

use crate::support::{
    PASSWORD, http, redauth, refresh_cookie_in, run_cli, serve_env, start_up_lines,
};

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "redauth-embedded-it-{}",
            redauth_core::ids::random_id().unwrap()
        ));
        Self(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn with_no_redis_the_server_runs_on_the_embedded_store() {
    let dir = TempDir::new();
    let env = [("REDAUTH_DATA_DIR", dir.path())];
    // First admin, created with the CLI before the server holds the data file.
    run_cli(&["role", "set", "admin", "redauth:admin"], &env, "");
    let add = [
        "user",
        "add",
        "alice",
        "--email",
        "alice@example.com",
        "--role",
        "admin",
        "--password-stdin",
    ];
    run_cli(&add, &env, &format!("{PASSWORD}\n"));

    let (server, lines) = serve_env(&env).unwrap();
    let text = start_up_lines(&lines);
    assert!(text.contains("EMBEDDED"), "{text}");
    assert!(
        text.contains(dir.path()),
        "banner says where the data lives: {text}"
    );
    assert!(
        text.contains("REDIS_URL"),
        "banner says how to use Redis: {text}"
    );
    assert!(text.contains("generated in the data directory"), "{text}");
    assert!(
        text.contains(r#""accounts":1"#) && !text.contains("no accounts exist"),
        "alice exists, so no first-admin hint: {text}"
    );
    let secret_file = dir.0.join(redauth_server::app::GENERATED_SECRET_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&secret_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(secret.len() >= 32);
    assert!(
        !text.contains(secret.trim()),
        "the secret itself is never printed"
    );

    // A second process on the same data file refuses to start, clearly.
    let second = serve_env(&env).map(|_| ()).unwrap_err();
    assert!(second.contains("already in use"), "{second}");

    // Login, refresh, logout.
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let (status, head, body) = http(
        &server.addr,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(status, 200, "{body}");
    let access = serde_json::from_str::<serde_json::Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rt0 = refresh_cookie_in(&head);
    let refresh = |addr: &str, rt: &str| {
        http(
            addr,
            "POST",
            "/api/auth/refresh",
            &[("Cookie", &format!("redauth_refresh={rt}"))],
            "",
        )
    };
    let (status, head, _) = refresh(&server.addr, &rt0);
    assert_eq!(status, 200);
    let rt1 = refresh_cookie_in(&head);
    let (status, _, body) = http(&server.addr, "GET", "/readyz", &[], "");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"status": "ready", "revocation_feed": "none"}),
        "one process: no feed to report"
    );

    // Restart: the generated secret and the sessions are still there.
    drop(server);
    let (server, _lines) = serve_env(&env).unwrap();
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        secret,
        "same secret after restart"
    );
    let auth = format!("Bearer {access}");
    assert_eq!(
        http(
            &server.addr,
            "GET",
            "/api/auth/me",
            &[("Authorization", &auth)],
            ""
        )
        .0,
        200
    );
    let (status, head, _) = refresh(&server.addr, &rt1);
    assert_eq!(status, 200);
    let rt2 = refresh_cookie_in(&head);
    let (status, _, _) = http(
        &server.addr,
        "POST",
        "/api/auth/logout",
        &[("Cookie", &format!("redauth_refresh={rt2}"))],
        "",
    );
    assert_eq!(status, 204);
    assert_eq!(refresh(&server.addr, &rt2).0, 401);
    assert_eq!(
        http(
            &server.addr,
            "GET",
            "/api/auth/me",
            &[("Authorization", &auth)],
            ""
        )
        .0,
        401
    );
}

#[test]
fn with_redis_configured_a_secret_stays_mandatory() {
    let out = redauth()
        .args(["serve"])
        .env("REDIS_HOST", "127.0.0.1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("JWT_SECRET is not set")
    );
}
