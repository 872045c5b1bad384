//! Interop with the real `@ethercorps/sveltekit-redis-session@1.3.1` (and `ioredis@5`)
//! on one redis-server: sessions the library makes are read, renewed and deleted by
//! redauth; sessions redauth makes are read and deleted by the library; both list the
//! same sessions per user; and both render the same `Set-Cookie` bytes.
//!
//! The fixture is `interop/sveltekit/` (committed `package-lock.json`). `npm ci` runs
//! when `node_modules` is missing or was installed from another lock file. Node and npm
//! are required: without them this test fails, it never skips.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use axum::http::StatusCode;
use redauth_core::Secret;
use redauth_server::config::{SessionCookieMode, Settings};
use serde_json::{Value, json};

use crate::cookie_sessions::SESSION_SECRET;
use crate::support::TestApp;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/sveltekit")
}

/// One install per lock file, shared by concurrent tests of this binary.
fn npm_ci() {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fixture();
    let lock = std::fs::read(dir.join("package-lock.json")).expect("package-lock.json");
    let stamp = dir.join("node_modules/.redauth-installed-lock");
    if std::fs::read(&stamp).ok().as_deref() == Some(lock.as_slice()) {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap_or_else(|e| panic!("npm is required for the SvelteKit interop test: {e}"));
    assert!(status.success(), "npm ci failed in {}", dir.display());
    std::fs::write(&stamp, &lock).unwrap();
}

struct Library {
    redis_url: String,
}

impl Library {
    /// Runs one library operation; returns `{result: {data, error, message}, setCookie}`.
    fn run(&self, op: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let out = Command::new("node")
            .args([
                "--conditions=svelte",
                "--import",
                "./register.mjs",
                "interop.mjs",
                &self.redis_url,
                SESSION_SECRET,
                op,
            ])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(fixture())
            .output()
            .unwrap_or_else(|e| panic!("node is required for the SvelteKit interop test: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "node {op} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("node {op} printed no JSON ({e}): {stdout}"))
    }

    fn ok(&self, op: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let v = self.run(op, args, env);
        assert_eq!(v["result"]["error"], false, "library {op}: {v}");
        v
    }
}

/// `name=value` from a `Set-Cookie` header: what the browser sends back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn cookie_value(set_cookie: &str) -> String {
    cookie_pair(set_cookie)
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

#[tokio::test]
async fn sveltekit_redis_session_interop_both_ways() {
    npm_ci();
    let app = TestApp::start_with(Settings {
        session_cookie_mode: Some(SessionCookieMode::Compat),
        session_secret: Some(Secret::new(SESSION_SECRET)),
        session_renew: Some(true),
        session_cache_secs: Some(0),
        ..Settings::default()
    })
    .await;
    let lib = Library {
        redis_url: app.redis.url(),
    };
    let cookie_auth = app.cookie_auth();
    let manager = cookie_auth.manager();
    let mut con = app.redis.client().get_connection().unwrap();

    // --- The library creates; redauth reads, renews and deletes. ---
    let made = lib.ok(
        "create",
        &["app-user-7", r#"{"userId":"app-user-7","name":"Ada"}"#],
        &[],
    );
    let lib_header = made["setCookie"][0].as_str().unwrap().to_owned();
    let value = cookie_value(&lib_header);
    assert!(value.contains('%'), "SvelteKit percent-encodes: {value}");
    let read = manager.get(&value).await.unwrap();
    assert_eq!(
        read.session.data,
        json!({"userId": "app-user-7", "name": "Ada"})
    );
    let http = app.get_session("session", &value).await;
    assert_eq!(http.status, StatusCode::OK, "{:?}", http.body);
    assert_eq!(http.body["user"], Value::Null, "no redauth login behind it");
    assert_eq!(http.body["data"]["name"], "Ada");
    // Byte-for-byte the library's Set-Cookie for the same session.
    let ours = manager.update_expiry(&value).await.unwrap();
    assert_eq!(ours.set_cookie, lib_header);
    // Renewal: less than renewBeforeSeconds left → full TTL again, same cookie re-set.
    let key = format!("sk_ioredis_session:{}", read.session.id);
    let _: i64 = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(100)
        .query(&mut con)
        .unwrap();
    let renewed = app.get_session("session", &value).await;
    assert_eq!(
        renewed.set_cookie_header("session").as_deref(),
        Some(lib_header.as_str())
    );
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
    assert!(ttl > 86_000, "{ttl}");
    // Lists agree.
    lib.ok(
        "create",
        &["app-user-7", r#"{"userId":"app-user-7","n":2}"#],
        &[],
    );
    let lib_list = lib.ok("list", &["app-user-7"], &[]);
    let our_list: Vec<Value> = manager
        .list_user("app-user-7")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.data)
        .collect();
    assert_eq!(
        sorted(lib_list["result"]["data"].as_array().unwrap().clone()),
        sorted(our_list)
    );
    // redauth deletes; the library no longer finds it.
    manager.delete(&value).await.unwrap();
    let gone = lib.run("get", &[&cookie_pair(&lib_header)], &[]);
    assert_eq!(gone["result"]["error"], true, "{gone}");

    // --- redauth creates (an HTTP login); the library reads, renews and deletes. ---
    let alice = app.user("alice", &["reader"]).await;
    let login = app
        .session_login("alice", Some(json!({"theme": "dark"})))
        .await;
    let our_header = login.set_cookie_header("session").unwrap();
    let pair = cookie_pair(&our_header);
    let seen = lib.ok("get", &[&pair], &[]);
    assert_eq!(seen["result"]["data"]["theme"], "dark");
    assert_eq!(seen["result"]["data"]["redauth"]["username"], "alice");
    assert_eq!(
        seen["result"]["data"]["redauth"]["roles"],
        json!(["reader"])
    );
    let renewed_by_lib = lib.ok(
        "get",
        &[&pair],
        &[("RENEW", "1"), ("RENEW_BEFORE", "100000")],
    );
    assert_eq!(
        renewed_by_lib["setCookie"][0].as_str(),
        Some(our_header.as_str()),
        "the library re-sets exactly the cookie redauth set"
    );
    let lib_list = lib.ok("list", &[&alice.id], &[]);
    let our_list: Vec<Value> = manager
        .list_user(&alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.data)
        .collect();
    assert_eq!(our_list.len(), 1);
    assert_eq!(lib_list["result"]["data"], json!(our_list));
    let deleted = lib.ok("delete", &[&pair, &alice.id], &[]);
    assert_eq!(
        deleted["setCookie"][0].as_str(),
        Some(manager.delete_cookie().as_str()),
        "both clear the cookie the same way"
    );
    assert_eq!(
        app.get_session("session", &cookie_value(&our_header))
            .await
            .error_code(),
        "invalid_session"
    );
    assert!(manager.list_user(&alice.id).await.unwrap().is_empty());

    // --- Per-user deletion, made by redauth, ended by the library. ---
    for n in 0..2 {
        manager
            .create(json!({"n": n}), Some("app-user-9"))
            .await
            .unwrap();
    }
    let lib_list = lib.ok("list", &["app-user-9"], &[]);
    assert_eq!(lib_list["result"]["data"].as_array().unwrap().len(), 2);
    lib.ok("delete-user", &["app-user-9"], &[]);
    assert!(manager.list_user("app-user-9").await.unwrap().is_empty());
}
