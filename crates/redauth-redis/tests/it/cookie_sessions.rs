//! Cookie sessions on Redis: the conformance suite in both layouts, then what only
//! Redis shows: the documented keys, TTLs set in the same command as the value, the
//! library's exact value format, and one round trip per operation.

use std::sync::Arc;

use redauth_core::cookie_store::{CookieSessionLayout, CookieSessionStore, StoredCookieSession};
use redauth_redis::{RedisConfig, RedisCookieSessionStore, RedisStore};
use redauth_testkit::cookie_conformance::CookieStoreUnderTest;
use redauth_testkit::{CountingProxy, RedisServer};

fn now() -> i64 {
    redauth_core::Clock::now(&redauth_core::SystemClock)
}

fn under_test(layout: CookieSessionLayout) -> CookieStoreUnderTest {
    let server = RedisServer::start();
    let store = Arc::new(RedisStore::connect(&RedisConfig::new(&server.url(), "conf:")).unwrap());
    let sessions = store.cookie_sessions(&layout);
    let client = server.client();
    let keys = sessions.clone();
    CookieStoreUnderTest {
        store: Arc::new(sessions),
        records_expiry: layout == CookieSessionLayout::Native,
        auth: Some(store),
        expire_now: Box::new(move |id| {
            let client = client.clone();
            let key = keys.session_key(&id);
            Box::pin(async move {
                let mut con = client.get_multiplexed_async_connection().await.unwrap();
                // A non-positive TTL makes Redis expire the key at once, as time would.
                let _: i64 = redis::cmd("EXPIRE")
                    .arg(key)
                    .arg(0)
                    .query_async(&mut con)
                    .await
                    .unwrap();
            })
        }),
        guard: Box::new(server),
    }
}

mod native {
    use super::*;

    async fn native_store() -> CookieStoreUnderTest {
        under_test(CookieSessionLayout::Native)
    }

    redauth_testkit::cookie_store_conformance_tests!(native_store);
}

mod compat {
    use super::*;

    async fn compat_store() -> CookieStoreUnderTest {
        under_test(CookieSessionLayout::compat_defaults())
    }

    redauth_testkit::cookie_store_conformance_tests!(compat_store);
}

struct Fixture {
    server: RedisServer,
    con: redis::aio::MultiplexedConnection,
}

impl Fixture {
    async fn start() -> Self {
        let server = RedisServer::start();
        let con = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Self { server, con }
    }

    fn store(&self, prefix: &str, layout: CookieSessionLayout) -> RedisCookieSessionStore {
        RedisCookieSessionStore::connect(&RedisConfig::new(&self.server.url(), prefix), &layout)
            .unwrap()
    }

    async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut self.con.clone()).await.unwrap()
    }
}

fn stored(id: &str, user: Option<&str>, data: &str, ttl: Option<i64>) -> StoredCookieSession {
    let t = now();
    StoredCookieSession {
        id: id.into(),
        user_id: user.map(str::to_owned),
        data: data.into(),
        created_at: Some(t),
        expires_at: ttl.map(|s| t + s),
    }
}

const COMPAT_ID: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
const NATIVE_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test]
async fn native_keys_are_the_documented_ones_under_the_configured_prefix() {
    let f = Fixture::start().await;
    let store = f.store("myapp:", CookieSessionLayout::Native);
    let s = stored(NATIVE_ID, Some("u1"), r#"{"k":1}"#, Some(600));
    store.create(&s, now()).await.unwrap();
    let mut keys: Vec<String> = f.cmd(&["KEYS", "*"]).await;
    keys.sort();
    assert_eq!(keys, ["myapp:cs-user:u1", &format!("myapp:cs:{NATIVE_ID}")]);
    let value: String = f.cmd(&["GET", &format!("myapp:cs:{NATIVE_ID}")]).await;
    let v: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(v["uid"], "u1");
    assert_eq!(v["data"], r#"{"k":1}"#);
    assert_eq!(v["exp"], s.expires_at.unwrap());
    let ttl: i64 = f.cmd(&["TTL", &format!("myapp:cs:{NATIVE_ID}")]).await;
    assert!((599..=600).contains(&ttl), "{ttl}");
    let score: f64 = f.cmd(&["ZSCORE", "myapp:cs-user:u1", NATIVE_ID]).await;
    assert_eq!(score as i64, s.expires_at.unwrap());
    let index_ttl: i64 = f.cmd(&["TTL", "myapp:cs-user:u1"]).await;
    assert!(
        (599..=600).contains(&index_ttl),
        "index expires with its last session"
    );
}

#[tokio::test]
async fn native_value_and_expiry_are_written_by_one_set_ex() {
    let f = Fixture::start().await;
    let store = f.store("p:", CookieSessionLayout::Native);
    let before = f.server.command_calls();
    store
        .create(&stored(NATIVE_ID, None, "{}", Some(60)), now())
        .await
        .unwrap();
    let after = f.server.command_calls();
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!(delta("set"), 1);
    assert_eq!(delta("expire") + delta("expireat") + delta("pexpire"), 0);
    let ttl: i64 = f.cmd(&["TTL", &format!("p:cs:{NATIVE_ID}")]).await;
    assert!(ttl > 0);
}

#[tokio::test]
async fn compat_writes_exactly_the_library_layout() {
    let f = Fixture::start().await;
    let store = f.store("ignored:", CookieSessionLayout::compat_defaults());
    let data = r#"{"email":"a@example.com","roles":["x"]}"#;
    store
        .create(&stored(COMPAT_ID, Some("42"), data, Some(86_400)), now())
        .await
        .unwrap();
    let mut keys: Vec<String> = f.cmd(&["KEYS", "*"]).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("sk_ioredis_session:{COMPAT_ID}"),
            "sk_ioredis_user_sessions:42".to_owned()
        ]
    );
    let value: String = f
        .cmd(&["GET", &format!("sk_ioredis_session:{COMPAT_ID}")])
        .await;
    assert_eq!(value, data, "the value is the data, nothing around it");
    let ttl: i64 = f
        .cmd(&["TTL", &format!("sk_ioredis_session:{COMPAT_ID}")])
        .await;
    assert!((86_399..=86_400).contains(&ttl));
    let members: Vec<String> = f.cmd(&["SMEMBERS", "sk_ioredis_user_sessions:42"]).await;
    assert_eq!(members, [COMPAT_ID]);
    let set_ttl: i64 = f.cmd(&["TTL", "sk_ioredis_user_sessions:42"]).await;
    assert_eq!(set_ttl, -1, "the library never expires the user set");
}

#[tokio::test]
async fn compat_prefixes_are_configurable() {
    let f = Fixture::start().await;
    let store = f.store(
        "x:",
        CookieSessionLayout::Compat {
            session_prefix: "app_s".into(),
            user_sessions_prefix: "app_u".into(),
        },
    );
    store
        .create(&stored(COMPAT_ID, Some("7"), "1", Some(60)), now())
        .await
        .unwrap();
    let mut keys: Vec<String> = f.cmd(&["KEYS", "*"]).await;
    keys.sort();
    assert_eq!(keys, [format!("app_s:{COMPAT_ID}"), "app_u:7".to_owned()]);
    assert_eq!(store.list_user("7", now()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn compat_reads_sessions_the_library_wrote_and_tolerates_its_stale_members() {
    let f = Fixture::start().await;
    let store = f.store("x:", CookieSessionLayout::compat_defaults());
    // What the library's createSession pipelines: SET, SADD, EXPIRE.
    let key = format!("sk_ioredis_session:{COMPAT_ID}");
    let _: () = f.cmd(&["SET", &key, r#"{"from":"sveltekit"}"#]).await;
    let _: i64 = f
        .cmd(&[
            "SADD",
            "sk_ioredis_user_sessions:u",
            COMPAT_ID,
            "deadDeadDeadDeadDeadDeadDeadDeadDead",
        ])
        .await;
    let _: i64 = f.cmd(&["EXPIRE", &key, "86400"]).await;
    let t = now();
    let s = store.load(COMPAT_ID, t).await.unwrap().unwrap();
    assert_eq!(s.data, r#"{"from":"sveltekit"}"#);
    assert!((t + 86_399..=t + 86_400).contains(&s.expires_at.unwrap()));
    let listed = store.list_user("u", t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, COMPAT_ID);
    let members: Vec<String> = f.cmd(&["SMEMBERS", "sk_ioredis_user_sessions:u"]).await;
    assert_eq!(
        members,
        [COMPAT_ID],
        "redauth prunes what the library leaves"
    );
    // The library's `useTTL: false`: no expiry at all.
    let _: i64 = f.cmd(&["PERSIST", &key]).await;
    assert_eq!(
        store.load(COMPAT_ID, t).await.unwrap().unwrap().expires_at,
        None
    );
}

#[tokio::test]
async fn compat_update_keeps_the_ttl_and_never_creates() {
    let f = Fixture::start().await;
    let store = f.store("x:", CookieSessionLayout::compat_defaults());
    let key = format!("sk_ioredis_session:{COMPAT_ID}");
    store
        .create(&stored(COMPAT_ID, None, "1", Some(500)), now())
        .await
        .unwrap();
    assert!(store.update_data(COMPAT_ID, "2", now()).await.unwrap());
    let ttl: i64 = f.cmd(&["TTL", &key]).await;
    assert!((499..=500).contains(&ttl), "{ttl}");
    let other = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    assert!(!store.update_data(other, "x", now()).await.unwrap());
    let exists: i64 = f
        .cmd(&["EXISTS", &format!("sk_ioredis_session:{other}")])
        .await;
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn every_operation_is_one_round_trip() {
    let server = RedisServer::start();
    let proxy = CountingProxy::start(server.port()).await;
    for layout in [
        CookieSessionLayout::Native,
        CookieSessionLayout::compat_defaults(),
    ] {
        let store =
            RedisCookieSessionStore::connect(&RedisConfig::new(&proxy.url(), "rt:"), &layout)
                .unwrap();
        store.preload_scripts().await.unwrap();
        let t = now();
        let id = if layout == CookieSessionLayout::Native {
            NATIVE_ID
        } else {
            COMPAT_ID
        };
        let new_id = if layout == CookieSessionLayout::Native {
            "BBBBBBBBBBBBBBBBBBBBBB"
        } else {
            "bBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
        };
        // Linked to a login session, so that `load_with_principal` reads one too.
        let s = stored(
            id,
            Some("u"),
            r#"{"redauth":{"user_id":"u","session_id":"s"}}"#,
            Some(600),
        );
        let ops: Vec<(&str, u64)> = vec![
            ("create", {
                let b = proxy.round_trips();
                store.create(&s, t).await.unwrap();
                proxy.round_trips() - b
            }),
            ("load", {
                let b = proxy.round_trips();
                store.load(id, t).await.unwrap().unwrap();
                proxy.round_trips() - b
            }),
            ("load with principal", {
                let b = proxy.round_trips();
                let (_, linked) = store.load_with_principal(id, t).await.unwrap().unwrap();
                assert_eq!(linked.unwrap().session_id, "s");
                proxy.round_trips() - b
            }),
            ("update", {
                let b = proxy.round_trips();
                store.update_data(id, "1", t).await.unwrap();
                proxy.round_trips() - b
            }),
            ("expiry", {
                let b = proxy.round_trips();
                store.set_expiry(id, Some(t + 900), t).await.unwrap();
                proxy.round_trips() - b
            }),
            ("rename", {
                let b = proxy.round_trips();
                store
                    .rename(id, new_id, Some("u"), "2", Some(t + 60), t)
                    .await
                    .unwrap();
                proxy.round_trips() - b
            }),
            ("list", {
                let b = proxy.round_trips();
                store.list_user("u", t).await.unwrap();
                proxy.round_trips() - b
            }),
            ("delete", {
                let b = proxy.round_trips();
                store.delete(new_id, Some("u")).await.unwrap();
                proxy.round_trips() - b
            }),
            ("delete user", {
                let b = proxy.round_trips();
                store.delete_user("u").await.unwrap();
                proxy.round_trips() - b
            }),
        ];
        for (op, n) in ops {
            assert_eq!(n, 1, "{layout:?} {op}");
        }
    }
}
