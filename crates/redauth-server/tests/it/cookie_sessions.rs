//! Cookie sessions over HTTP, native and compat: login, `GET /api/auth/session`,
//! logout, renewal, rotation, revocation across nodes, the cache (round trips counted
//! on the wire) and every server setting.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use redauth_core::{ManualClock, Secret};
use redauth_server::config::{LoginIssues, SessionCookieMode, Settings};
use redauth_testkit::{CountingProxy, RedisServer};
use serde_json::json;

use crate::support::{Node, PASSWORD, Resp, TestApp};

pub const SESSION_SECRET: &str = "sveltekit-shared-secret-0123456789abcdef";
const NATIVE_COOKIE: &str = "__Host-redauth_session";

pub fn native() -> Settings {
    Settings {
        session_cookie_mode: Some(SessionCookieMode::Native),
        ..Settings::default()
    }
}

pub fn compat() -> Settings {
    Settings {
        session_cookie_mode: Some(SessionCookieMode::Compat),
        session_secret: Some(Secret::new(SESSION_SECRET)),
        ..Settings::default()
    }
}

async fn counted(settings: Settings) -> TestApp {
    let redis = RedisServer::start();
    let proxy = CountingProxy::start(redis.port()).await;
    let node = Node::start(
        &proxy.url(),
        settings,
        Arc::new(ManualClock::starting_now()),
    )
    .await;
    TestApp {
        redis,
        proxy: Some(proxy),
        node,
    }
}

impl Node {
    pub fn cookie_auth(&self) -> Arc<redauth_axum::cookie_auth::CookieAuth> {
        self.cookie_sessions
            .as_ref()
            .expect("cookie sessions on")
            .auth
            .clone()
    }

    pub async fn session_login(&self, username: &str, data: Option<serde_json::Value>) -> Resp {
        let mut body = json!({"username": username, "password": PASSWORD});
        if let Some(d) = data {
            body["session_data"] = d;
        }
        self.post("/api/auth/login", body).await
    }

    pub async fn get_session(&self, cookie_name: &str, value: &str) -> Resp {
        self.send(
            Method::GET,
            "/api/auth/session",
            None,
            &[("cookie", &format!("{cookie_name}={value}"))],
        )
        .await
    }
}

fn attr(header: &str, name: &str) -> Option<String> {
    header
        .split("; ")
        .find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[tokio::test]
async fn native_login_sets_a_host_cookie_and_the_session_endpoint_returns_principal_and_data() {
    let app = TestApp::start_with(native()).await;
    let u = app.user("alice", &["reader"]).await;
    let r = app
        .session_login("alice", Some(json!({"theme": "dark"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["access_token"].is_string(), "both: tokens too");
    assert!(r.set_cookie("redauth_refresh").is_some());
    let header = r.set_cookie_header(NATIVE_COOKIE).unwrap();
    for a in [
        "Path=/",
        "HttpOnly",
        "Secure",
        // Lax by default: a link from another site keeps the user logged in.
        "SameSite=Lax",
        "Max-Age=86400",
    ] {
        assert!(header.contains(a), "{a} missing in {header}");
    }
    assert!(!header.contains("Domain="));
    let cookie = r.set_cookie(NATIVE_COOKIE).unwrap();
    assert!(cookie.starts_with("v1."), "{cookie}");

    let s = app.get_session(NATIVE_COOKIE, &cookie).await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    assert_eq!(s.body["user"]["id"], u.id.as_str());
    assert_eq!(s.body["user"]["username"], "alice");
    assert_eq!(s.body["user"]["permissions"], json!(["reader:use"]));
    assert_eq!(
        s.body["data"],
        json!({"theme": "dark"}),
        "the link stays internal"
    );
    assert!(s.body["session"]["id"].is_string());
    assert!(
        s.set_cookie_header(NATIVE_COOKIE).is_none(),
        "nothing to renew yet"
    );
    assert_eq!(s.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn session_only_login_returns_no_tokens() {
    let app = TestApp::start_with(Settings {
        login_issues: Some(LoginIssues::Session),
        ..native()
    })
    .await;
    app.user("alice", &[]).await;
    let r = app.session_login("alice", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("access_token").is_none(), "{:?}", r.body);
    assert!(r.set_cookie_header("redauth_refresh").is_none());
    assert_eq!(r.body["user"]["username"], "alice");
    let cookie = r.set_cookie(NATIVE_COOKIE).unwrap();
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn tokens_only_login_sets_no_session_cookie() {
    let app = TestApp::start_with(Settings {
        login_issues: Some(LoginIssues::Tokens),
        ..native()
    })
    .await;
    app.user("alice", &[]).await;
    let r = app.session_login("alice", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookie_header(NATIVE_COOKIE).is_none());
    assert!(r.body["access_token"].is_string());
}

#[tokio::test]
async fn missing_forged_and_ended_sessions_are_401_with_stable_codes() {
    let app = TestApp::start_with(native()).await;
    app.user("alice", &[]).await;
    let r = app.send(Method::GET, "/api/auth/session", None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "missing_session");
    assert!(r.header("www-authenticate").is_none());

    let cookie = app
        .session_login("alice", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    // One character of the MAC changed (never to itself).
    let i = cookie.len() - 10;
    let swap = if &cookie[i..=i] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &cookie[..i], &cookie[i + 1..]);
    for bad in [forged.as_str(), "v1.x.y", "garbage", &format!("{cookie}.x")] {
        let r = app.get_session(NATIVE_COOKIE, bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(r.error_code(), "invalid_session");
        assert_eq!(r.set_cookie(NATIVE_COOKIE).as_deref(), Some(""), "cleared");
    }
}

#[tokio::test]
async fn logout_ends_the_cookie_session_and_its_login_session() {
    let app = TestApp::start_with(native()).await;
    app.user("alice", &[]).await;
    let r = app.session_login("alice", None).await;
    let cookie = r.set_cookie(NATIVE_COOKIE).unwrap();
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let out = app
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &format!("{NATIVE_COOKIE}={cookie}"))],
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let cleared = out.set_cookie_header(NATIVE_COOKIE).unwrap();
    assert!(
        cleared.starts_with(&format!("{NATIVE_COOKIE}=; Max-Age=0")),
        "{cleared}"
    );
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &cookie).await.error_code(),
        "invalid_session"
    );
    assert_eq!(
        app.get_bearer("/api/auth/me", &token).await.status,
        StatusCode::UNAUTHORIZED,
        "the login session ended with it"
    );
    // Idempotent.
    let again = app
        .send(
            Method::POST,
            "/api/auth/logout",
            None,
            &[("cookie", &format!("{NATIVE_COOKIE}={cookie}"))],
        )
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_hot_session_check_needs_no_round_trip_and_a_miss_costs_one() {
    type Mode = fn() -> Settings;
    for (settings, cookie_name) in [(native as Mode, NATIVE_COOKIE), (compat, "session")] {
        let app = counted(settings()).await;
        app.user("alice", &["reader"]).await;
        let cookie = app
            .session_login("alice", None)
            .await
            .set_cookie(cookie_name)
            .unwrap();
        let before = app.round_trips();
        for _ in 0..50 {
            assert_eq!(
                app.get_session(cookie_name, &cookie).await.status,
                StatusCode::OK
            );
        }
        assert_eq!(app.round_trips() - before, 0, "{cookie_name}");
        let other = Node::start(
            &app.proxy.as_ref().unwrap().url(),
            settings(),
            app.clock.clone(),
        )
        .await;
        let before = app.round_trips();
        let r = other.get_session(cookie_name, &cookie).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["user"]["roles"], json!(["reader"]));
        assert_eq!(
            app.round_trips() - before,
            1,
            "{cookie_name}: cookie session + login session + user + roles in one script"
        );
        let before = app.round_trips();
        other.get_session(cookie_name, &cookie).await;
        assert_eq!(
            app.round_trips() - before,
            0,
            "{cookie_name}: now cached there too"
        );
        // A cached cookie session whose principal was evicted (here by a feed message
        // alone, with the login session still live in Redis) is not served from
        // memory: it is read again together with the principal, in one round trip.
        let sid = r.body["session"]["id"].as_str().unwrap().to_owned();
        app.publish_invalidation(&format!("sid:{sid}"), &other)
            .await;
        assert_eq!(
            other.cookie_auth().cached_sessions(),
            1,
            "still held, not served"
        );
        let before = app.round_trips();
        assert_eq!(
            other.get_session(cookie_name, &cookie).await.status,
            StatusCode::OK
        );
        assert_eq!(
            app.round_trips() - before,
            1,
            "{cookie_name}: after eviction"
        );
    }
}

#[tokio::test]
async fn with_the_session_cache_off_every_check_reads_redis_once_and_only_the_session_when_the_principal_is_cached()
 {
    type Mode = fn() -> Settings;
    for (settings, cookie_name) in [(native as Mode, NATIVE_COOKIE), (compat, "session")] {
        let uncached = || Settings {
            session_cache_secs: Some(0),
            ..settings()
        };
        let app = counted(uncached()).await;
        app.user("alice", &["reader"]).await;
        let cookie = app
            .session_login("alice", None)
            .await
            .set_cookie(cookie_name)
            .unwrap();
        let evalsha = || {
            app.redis
                .command_calls()
                .get("evalsha")
                .copied()
                .unwrap_or(0)
        };
        let (trips, scripts) = (app.round_trips(), evalsha());
        for _ in 0..10 {
            let r = app.get_session(cookie_name, &cookie).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body["user"]["username"], "alice");
        }
        assert_eq!(
            app.round_trips() - trips,
            10,
            "{cookie_name}: one read per check"
        );
        let expected_scripts = match cookie_name {
            // Compat sessions are read with a script too (value and TTL together).
            "session" => 10,
            _ => 0,
        };
        assert_eq!(
            evalsha() - scripts,
            expected_scripts,
            "{cookie_name}: the principal was cached, so no principal script ran"
        );

        // Another node has neither the principal nor the link: one script reads both.
        let other = Node::start(
            &app.proxy.as_ref().unwrap().url(),
            uncached(),
            app.clock.clone(),
        )
        .await;
        let trips = app.round_trips();
        assert_eq!(
            other.get_session(cookie_name, &cookie).await.status,
            StatusCode::OK
        );
        assert_eq!(app.round_trips() - trips, 1, "{cookie_name}: cold node");

        // The session deleted behind redauth's back (the SvelteKit app logging out by
        // itself) is gone on the very next check: nothing was served from memory.
        let key = app
            .redis
            .client()
            .get_connection()
            .and_then(|mut con| redis::cmd("KEYS").arg("*").query::<Vec<String>>(&mut con))
            .unwrap();
        let session_keys: Vec<_> = key
            .iter()
            .filter(|k| cookie.contains(k.rsplit(':').next().unwrap()))
            .collect();
        assert_eq!(session_keys.len(), 1, "{cookie_name}: {key:?}");
        let mut con = app.redis.client().get_connection().unwrap();
        let _: () = redis::cmd("DEL")
            .arg(session_keys[0])
            .query(&mut con)
            .unwrap();
        assert_eq!(
            app.get_session(cookie_name, &cookie).await.status,
            StatusCode::UNAUTHORIZED,
            "{cookie_name}"
        );
    }
}

/// Data a store cannot parse: the link is out of its reach.
struct ReversedJson;

impl redauth_core::cookie_session::CookieSessionSerializer for ReversedJson {
    fn serialize(&self, data: &serde_json::Value) -> Result<String, String> {
        Ok(data.to_string().chars().rev().collect())
    }
    fn deserialize(&self, stored: &str) -> Result<serde_json::Value, String> {
        serde_json::from_str(&stored.chars().rev().collect::<String>()).map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn when_the_store_cannot_read_the_link_a_miss_reads_the_principal_separately() {
    use redauth_axum::cookie_auth::CookieAuth;
    use redauth_core::cookie::native::{NativeCodec, NativeMode};
    use redauth_core::cookie_session::{
        CookieFormat, CookieSessionError, CookieSessionManager, CookieSessionOptions,
    };
    use redauth_core::cookie_store::CookieSessionLayout;

    let app = counted(native()).await;
    let u = app.user("alice", &["reader"]).await;
    let manager = CookieSessionManager::new(
        // Keys of their own, out of the way of the server's native sessions.
        Arc::new(app.store.cookie_sessions(&CookieSessionLayout::Compat {
            session_prefix: "reversed_s".into(),
            user_sessions_prefix: "reversed_u".into(),
        })),
        CookieFormat::Native(
            NativeCodec::new(&Secret::new(SESSION_SECRET), NativeMode::Signed).unwrap(),
        ),
        CookieSessionOptions::default(),
        app.clock.clone(),
    )
    .unwrap()
    .with_serializer(Arc::new(ReversedJson));
    let auth = CookieAuth::new(
        app.service.clone(),
        Arc::new(manager),
        redauth_axum::cookie_auth::CookieAuthOptions {
            cache_secs: 0,
            carry_anonymous_data: false,
        },
    );
    let login = auth
        .login("alice", PASSWORD, Default::default(), None, None)
        .await
        .unwrap();
    let cookie = login
        .set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let sid = login.tokens.principal.session_id.clone();
    // The principal leaves the cache (as a role redefinition anywhere would make it).
    app.publish_invalidation("all", &app).await;
    let before = app.round_trips();
    let check = auth.check(Some(&cookie)).await.unwrap();
    assert_eq!(
        app.round_trips() - before,
        2,
        "cookie session, then principal"
    );
    let p = check.principal.unwrap();
    assert_eq!(
        (p.user_id.as_str(), p.roles().to_vec()),
        (u.id.as_str(), vec!["reader".to_owned()])
    );
    // The fallback keeps every check: a revoked login session ends the cookie session.
    app.service.revoke_session(&u.id, &sid).await.unwrap();
    assert!(matches!(
        auth.check(Some(&cookie)).await,
        Err(CookieSessionError::NotFound)
    ));
}

#[tokio::test]
async fn logout_on_one_node_evicts_the_cookie_session_on_every_node() {
    let app = TestApp::start_with(native()).await;
    let other = Node::start(&app.redis.url(), native(), app.clock.clone()).await;
    app.user("alice", &[]).await;
    let cookie = app
        .session_login("alice", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    assert_eq!(
        other.get_session(NATIVE_COOKIE, &cookie).await.status,
        StatusCode::OK
    );
    assert_eq!(other.cookie_auth().cached_sessions(), 1);
    let mut applied = other.service.cache_status().invalidations_applied;
    let seen = *applied.borrow_and_update();
    app.send(
        Method::POST,
        "/api/auth/logout",
        None,
        &[("cookie", &format!("{NATIVE_COOKIE}={cookie}"))],
    )
    .await;
    crate::support::until_applied(&mut applied, seen).await;
    assert_eq!(
        other.get_session(NATIVE_COOKIE, &cookie).await.error_code(),
        "invalid_session"
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_cookie_sessions_in_redis_at_once() {
    let app = TestApp::start_with(compat()).await;
    let u = app.user("alice", &[]).await;
    let r = app.session_login("alice", None).await;
    let cookie = r.set_cookie("session").unwrap();
    let mut con = app.redis.client().get_connection().unwrap();
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("sk_ioredis_user_sessions:{}", u.id))
        .query(&mut con)
        .unwrap();
    assert_eq!(members.len(), 1);
    let key = format!("sk_ioredis_session:{}", members[0]);
    app.service.set_disabled(&u.id, true).await.unwrap();
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut con).unwrap();
    assert_eq!(exists, 0, "an app reading Redis directly sees it gone too");
    assert_eq!(
        app.get_session("session", &cookie).await.error_code(),
        "invalid_session"
    );
}

#[tokio::test]
async fn a_privilege_change_moves_the_session_to_a_new_id() {
    let app = TestApp::start_with(native()).await;
    let u = app.user("alice", &["reader"]).await;
    app.user("bob", &["writer"]).await;
    let old = app
        .session_login("alice", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    app.service
        .set_user_roles(&u.id, vec!["reader".into(), "writer".into()])
        .await
        .unwrap();
    let r = app.get_session(NATIVE_COOKIE, &old).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["roles"], json!(["reader", "writer"]));
    let new = r.set_cookie(NATIVE_COOKIE).expect("re-set with a new id");
    assert_ne!(new, old);
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &old).await.error_code(),
        "invalid_session"
    );
    let again = app.get_session(NATIVE_COOKIE, &new).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(
        again.set_cookie_header(NATIVE_COOKIE).is_none(),
        "stable now"
    );
}

/// Issue 11, item 9: a login ends the anonymous session the request carried and, by
/// default, does not carry its data over (a cookie planted from a sibling subdomain
/// must not put data into the victim's session); `REDAUTH_SESSION_CARRY_ANONYMOUS_DATA`
/// opts in (a cart filled before login).
#[tokio::test]
async fn login_replaces_the_presented_session_and_carries_anonymous_data_only_if_asked() {
    for (carry, want) in [
        (None, json!({"theme": "dark"})),
        (Some(true), json!({"cart": [1, 2], "theme": "dark"})),
    ] {
        let app = TestApp::start_with(Settings {
            session_carry_anonymous_data: carry,
            ..native()
        })
        .await;
        app.user("alice", &[]).await;
        // An anonymous session (a cart before login, or one an attacker planted).
        let cookie_auth = app.node.cookie_auth();
        let anon = cookie_auth
            .manager()
            .create(json!({"cart": [1, 2], "theme": "light"}), None)
            .await
            .unwrap();
        let anon_cookie = anon
            .set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        let anon_view = app.get_session(NATIVE_COOKIE, &anon_cookie).await;
        assert_eq!(anon_view.body["user"], serde_json::Value::Null);
        let r = app
            .send(
                Method::POST,
                "/api/auth/login",
                Some(json!({"username": "alice", "password": PASSWORD, "session_data": {"theme": "dark"}})),
                &[("cookie", &format!("{NATIVE_COOKIE}={anon_cookie}"))],
            )
            .await;
        let new = r.set_cookie(NATIVE_COOKIE).unwrap();
        assert_ne!(new, anon_cookie, "never the id the client brought");
        let s = app.get_session(NATIVE_COOKIE, &new).await;
        assert_eq!(s.body["data"], want, "carry {carry:?}");
        assert_eq!(
            app.get_session(NATIVE_COOKIE, &anon_cookie)
                .await
                .error_code(),
            "invalid_session"
        );
    }
}

#[tokio::test]
async fn sessions_renew_inside_the_window_and_never_outlive_the_login() {
    let app = TestApp::start_with(Settings {
        session_ttl_secs: Some(1000),
        session_renew_before_secs: Some(300),
        session_cache_secs: Some(0),
        ..native()
    })
    .await;
    app.user("alice", &[]).await;
    let r = app.session_login("alice", None).await;
    let cookie = r.set_cookie(NATIVE_COOKIE).unwrap();
    assert_eq!(
        attr(&r.set_cookie_header(NATIVE_COOKIE).unwrap(), "Max-Age").unwrap(),
        "1000"
    );
    app.clock.advance(700);
    assert!(
        app.get_session(NATIVE_COOKIE, &cookie)
            .await
            .set_cookie_header(NATIVE_COOKIE)
            .is_none()
    );
    app.clock.advance(1);
    let renewed = app.get_session(NATIVE_COOKIE, &cookie).await;
    let header = renewed.set_cookie_header(NATIVE_COOKIE).expect("renewed");
    assert_eq!(attr(&header, "Max-Age").unwrap(), "1000");
    assert_eq!(
        renewed.set_cookie(NATIVE_COOKIE).unwrap(),
        cookie,
        "same id"
    );
    app.clock.advance(999);
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn renewal_can_be_switched_off() {
    let app = TestApp::start_with(Settings {
        session_ttl_secs: Some(1000),
        session_renew: Some(false),
        session_cache_secs: Some(0),
        ..native()
    })
    .await;
    app.user("alice", &[]).await;
    let cookie = app
        .session_login("alice", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    app.clock.advance(999);
    let r = app.get_session(NATIVE_COOKIE, &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookie_header(NATIVE_COOKIE).is_none());
    app.clock.advance(1);
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &cookie).await.error_code(),
        "invalid_session"
    );
}

#[tokio::test]
async fn the_cache_window_bounds_how_long_an_outside_deletion_goes_unseen() {
    let app = TestApp::start_with(Settings {
        session_cache_secs: Some(30),
        ..compat()
    })
    .await;
    let cookie_auth = app.node.cookie_auth();
    // A session the SvelteKit app made (no redauth login behind it).
    let made = cookie_auth
        .manager()
        .create(json!({"from": "app"}), Some("app-user-1"))
        .await
        .unwrap();
    let cookie = made
        .set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let r = app.get_session("session", &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"], serde_json::Value::Null);
    assert_eq!(r.body["data"], json!({"from": "app"}));
    // The app deletes it in Redis, behind redauth's back.
    let mut con = app.redis.client().get_connection().unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("sk_ioredis_session:{}", made.session.id))
        .query(&mut con)
        .unwrap();
    assert_eq!(
        app.get_session("session", &cookie).await.status,
        StatusCode::OK,
        "cached"
    );
    app.clock.advance(30);
    assert_eq!(
        app.get_session("session", &cookie).await.error_code(),
        "invalid_session"
    );
}

#[tokio::test]
async fn compat_login_writes_the_library_format() {
    let app = TestApp::start_with(compat()).await;
    let u = app.user("alice", &["reader"]).await;
    let r = app
        .session_login("alice", Some(json!({"theme": "dark"})))
        .await;
    let header = r.set_cookie_header("session").unwrap();
    assert!(
        header.ends_with("; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Strict"),
        "{header}"
    );
    let value = r.set_cookie("session").unwrap();
    let decoded = value
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    let (id, sig) = decoded.split_once('.').unwrap();
    assert_eq!(id.len(), 36);
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(sig.len(), 44);
    let mut con = app.redis.client().get_connection().unwrap();
    let stored: String = redis::cmd("GET")
        .arg(format!("sk_ioredis_session:{id}"))
        .query(&mut con)
        .unwrap();
    let data: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(data["theme"], "dark");
    assert_eq!(data["redauth"]["user_id"], u.id.as_str());
    assert_eq!(data["redauth"]["username"], "alice");
    assert_eq!(data["redauth"]["roles"], json!(["reader"]));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("sk_ioredis_user_sessions:{}", u.id))
        .query(&mut con)
        .unwrap();
    assert_eq!(members, [id]);
    let s = app.get_session("session", &value).await;
    assert_eq!(s.body["user"]["id"], u.id.as_str());
    assert_eq!(s.body["data"], json!({"theme": "dark"}));
}

#[tokio::test]
async fn compat_prefixes_and_unsigned_cookies() {
    let app = TestApp::start_with(Settings {
        session_compat_prefix: Some("app_s".into()),
        session_compat_user_prefix: Some("app_u".into()),
        session_cookie_signed: Some(false),
        ..compat()
    })
    .await;
    let u = app.user("alice", &[]).await;
    let value = app
        .session_login("alice", None)
        .await
        .set_cookie("session")
        .unwrap();
    assert_eq!(value.len(), 36, "unsigned: the bare id");
    let mut con = app.redis.client().get_connection().unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("app_s:{value}"))
        .arg(format!("app_u:{}", u.id))
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 2);
    assert_eq!(
        app.get_session("session", &value).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn encrypted_and_unsigned_native_cookies() {
    for (settings, prefix) in [
        (
            Settings {
                session_cookie_encrypted: Some(true),
                ..native()
            },
            "v1e.",
        ),
        (
            Settings {
                session_cookie_signed: Some(false),
                ..native()
            },
            "",
        ),
    ] {
        let app = TestApp::start_with(settings).await;
        app.user("alice", &[]).await;
        let cookie = app
            .session_login("alice", None)
            .await
            .set_cookie(NATIVE_COOKIE)
            .unwrap();
        assert!(cookie.starts_with(prefix), "{cookie}");
        if prefix.is_empty() {
            assert_eq!(cookie.len(), 22, "the bare 128-bit id");
        }
        assert_eq!(
            app.get_session(NATIVE_COOKIE, &cookie).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_separate_session_secret_is_used() {
    let app = TestApp::start_with(Settings {
        session_secret: Some(Secret::new(SESSION_SECRET)),
        ..native()
    })
    .await;
    app.user("alice", &[]).await;
    let cookie = app
        .session_login("alice", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    // A node deriving its keys from the JWT secret cannot verify it.
    let other = Node::start(&app.redis.url(), native(), app.clock.clone()).await;
    assert_eq!(
        other.get_session(NATIVE_COOKIE, &cookie).await.error_code(),
        "invalid_session"
    );
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cookie_attribute_settings_reach_the_header() {
    let app = TestApp::start_with(Settings {
        session_cookie_name: Some("app_sid".into()),
        session_cookie_path: Some("/app".into()),
        session_cookie_domain: Some("example.com".into()),
        session_cookie_same_site: Some(redauth_core::cookie::SameSite::Lax),
        session_ttl_secs: Some(600),
        ..native()
    })
    .await;
    app.user("alice", &[]).await;
    let r = app.session_login("alice", None).await;
    let header = r.set_cookie_header("app_sid").unwrap();
    assert!(
        header.ends_with(
            "; Max-Age=600; Domain=example.com; Path=/app; HttpOnly; Secure; SameSite=Lax"
        ),
        "{header}"
    );
    let cookie = r.set_cookie("app_sid").unwrap();
    assert_eq!(
        app.get_session("app_sid", &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_session_data_and_disabled_sessions_are_refused() {
    let app = TestApp::start_with(native()).await;
    app.user("alice", &[]).await;
    for bad in [json!([1]), json!("x"), json!({"redauth": {}})] {
        let r = app.session_login("alice", Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "invalid_request");
    }
    let off = TestApp::start().await;
    off.user("alice", &[]).await;
    let r = off.session_login("alice", Some(json!({"a": 1}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = off.get_session(NATIVE_COOKIE, "x").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn native_sessions_on_the_embedded_store() {
    use redauth_server::app::{self, StoreKind};
    let dir = std::env::temp_dir().join(format!(
        "redauth-sessions-{}",
        redauth_core::ids::random_id().unwrap()
    ));
    let config = redauth_server::config::Config::resolve(Settings {
        data_dir: Some(dir.clone()),
        jwt_secret: Some(Secret::new(crate::support::SECRET)),
        argon2_memory_kib: Some(64),
        argon2_iterations: Some(1),
        ..native()
    })
    .unwrap();
    let store = Arc::new(redauth_embedded::EmbeddedStore::open(&dir).unwrap());
    let built = app::build_on(
        &config,
        store,
        StoreKind::Embedded {
            data_dir: dir.clone(),
            generated_secret: None,
        },
        Arc::new(ManualClock::starting_now()),
    )
    .unwrap();
    let router = redauth_axum::router(built.state);
    built
        .service
        .create_user(redauth_core::service::NewUser {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: PASSWORD.into(),
            roles: vec![],
        })
        .await
        .unwrap();
    use tower::ServiceExt as _;
    let call = |req: axum::http::Request<axum::body::Body>| {
        let router = router.clone();
        async move { router.oneshot(req).await.unwrap() }
    };
    let login = call(
        axum::http::Request::post("/api/auth/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"username": "alice", "password": PASSWORD}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(login.status(), StatusCode::OK);
    let set = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(NATIVE_COOKIE))
        .unwrap();
    let pair = set.split(';').next().unwrap().to_owned();
    let check = |cookie: String| {
        axum::http::Request::get("/api/auth/session")
            .header("cookie", cookie)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(call(check(pair.clone())).await.status(), StatusCode::OK);
    let out = call(
        axum::http::Request::post("/api/auth/logout")
            .header("cookie", pair.clone())
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(call(check(pair)).await.status(), StatusCode::UNAUTHORIZED);
    drop(router);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 10, item 8: a process started without the cookie-session settings (the admin
/// CLI, a node configured for tokens only) ends a login session; the compat session
/// linked to it, which a SvelteKit app reads straight from Redis, ends with it.
#[tokio::test]
async fn a_process_without_cookie_settings_still_ends_compat_sessions() {
    let app = TestApp::start_with(compat()).await;
    let u = app.user("alice", &["reader"]).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app.session_login("alice", None).await;
        let value = r.set_cookie("session").unwrap().replace("%2B", "+");
        ids.push(value.split_once('.').unwrap().0.to_owned());
    }
    let mut con = app.redis.client().get_connection().unwrap();
    let stored = |con: &mut redis::Connection, id: &str| -> bool {
        redis::cmd("EXISTS")
            .arg(format!("sk_ioredis_session:{id}"))
            .query::<i64>(con)
            .unwrap()
            == 1
    };
    assert!(ids.iter().all(|id| stored(&mut con, id)));

    let cli = Node::start(
        &app.redis.url(),
        Settings::default(),
        Arc::new(ManualClock::starting_now()),
    )
    .await;
    assert!(cli.cookie_sessions.is_none(), "no cookie-session settings");
    assert_eq!(
        cli.service.revoke_all_sessions(&u.id, None).await.unwrap(),
        2
    );
    for id in &ids {
        assert!(
            !stored(&mut con, id),
            "compat session {id} outlived its login session"
        );
    }
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("sk_ioredis_user_sessions:{}", u.id))
        .query(&mut con)
        .unwrap();
    assert!(members.is_empty(), "{members:?}");
}

/// Issue 10, item 7: a SvelteKit app reading a compat session from Redis trusts
/// `data.redauth.permissions`. Losing a role or a permission must show there at once,
/// whichever process makes the change; gaining one shows after redauth's next check
/// (under a new session id).
#[tokio::test]
async fn losing_a_right_is_written_into_compat_sessions_at_once() {
    let app = TestApp::start_with(compat()).await;
    let u = app.user("alice", &["reader", "writer"]).await;
    let r = app.session_login("alice", None).await;
    let value = r.set_cookie("session").unwrap();
    let id = value
        .replace("%2B", "+")
        .split_once('.')
        .unwrap()
        .0
        .to_owned();
    let mut con = app.redis.client().get_connection().unwrap();
    let link = |con: &mut redis::Connection, id: &str| -> serde_json::Value {
        let stored: String = redis::cmd("GET")
            .arg(format!("sk_ioredis_session:{id}"))
            .query(con)
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&stored).unwrap()["redauth"].clone()
    };
    assert_eq!(
        link(&mut con, &id)["permissions"],
        json!(["reader:use", "writer:use"])
    );

    // A process without cookie settings (the CLI) removes a role...
    let cli = Node::start(
        &app.redis.url(),
        Settings::default(),
        Arc::new(ManualClock::starting_now()),
    )
    .await;
    cli.service.revoke_role(&u.id, "writer").await.unwrap();
    let now = link(&mut con, &id);
    assert_eq!(now["roles"], json!(["reader"]));
    assert_eq!(now["permissions"], json!(["reader:use"]));
    // ...and a permission from a role the user keeps.
    cli.service
        .put_role(redauth_core::Role {
            name: "reader".into(),
            permissions: vec!["reader:list".into()],
        })
        .await
        .unwrap();
    assert_eq!(link(&mut con, &id)["permissions"], json!([]));

    // A grant is not written into the old id...
    cli.service.grant_role(&u.id, "writer").await.unwrap();
    assert_eq!(link(&mut con, &id)["roles"], json!(["reader"]));
    // ...redauth's next check moves the session to a new id carrying it.
    let checked = app.get_session("session", &value).await;
    assert_eq!(checked.status, StatusCode::OK);
    let moved = checked.set_cookie("session").expect("a new id");
    let new_id = moved
        .replace("%2B", "+")
        .split_once('.')
        .unwrap()
        .0
        .to_owned();
    assert_ne!(new_id, id);
    assert_eq!(
        link(&mut con, &new_id)["permissions"],
        json!(["reader:list", "writer:use"])
    );
}

/// Issue 11, item 8: two different session cookies of one name are refused.
#[tokio::test]
async fn two_different_session_cookies_are_refused() {
    let app = TestApp::start_with(native()).await;
    app.user("alice", &[]).await;
    app.user("mallory", &[]).await;
    let mine = app
        .session_login("alice", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    let planted = app
        .session_login("mallory", None)
        .await
        .set_cookie(NATIVE_COOKIE)
        .unwrap();
    let both = format!("{NATIVE_COOKIE}={planted}; {NATIVE_COOKIE}={mine}");
    let r = app
        .send(
            Method::GET,
            "/api/auth/session",
            None,
            &[("cookie", both.as_str())],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(
        app.get_session(NATIVE_COOKIE, &mine).await.status,
        StatusCode::OK
    );
}
