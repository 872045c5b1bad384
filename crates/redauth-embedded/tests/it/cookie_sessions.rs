//! Cookie sessions in the embedded store: the conformance suite (native layout), the
//! refusal of the compat layout, and the sweeper reclaiming dead cookie sessions.

use std::sync::Arc;

use redauth_core::Store;
use redauth_core::clock::{Clock, SystemClock};
use redauth_core::cookie_store::{CookieSessionLayout, StoredCookieSession};
use redauth_embedded::EmbeddedStore;
use redauth_testkit::cookie_conformance::CookieStoreUnderTest;

use crate::temp_dir::TempDir;

async fn embedded_sessions() -> CookieStoreUnderTest {
    let dir = TempDir::new();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    CookieStoreUnderTest {
        store: store
            .cookie_session_store(&CookieSessionLayout::Native)
            .unwrap(),
        records_expiry: true,
        auth: Some(store),
        expire_now: Box::new(|_| Box::pin(async {})),
        guard: Box::new(dir),
    }
}

redauth_testkit::cookie_store_conformance_tests!(embedded_sessions);

#[test]
fn the_compat_layout_needs_redis() {
    let dir = TempDir::new();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let err = store
        .cookie_session_store(&CookieSessionLayout::compat_defaults())
        .err()
        .unwrap();
    assert!(err.to_string().contains("needs Redis"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_reclaims_dead_cookie_sessions_and_sessions_survive_a_restart() {
    let dir = TempDir::new();
    let t = SystemClock.now();
    let session = |id: &str, ttl: Option<i64>| StoredCookieSession {
        id: id.into(),
        user_id: Some("u".into()),
        data: "{}".into(),
        created_at: Some(t),
        expires_at: ttl.map(|s| t + s),
    };
    {
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let cookies = store
            .cookie_session_store(&CookieSessionLayout::Native)
            .unwrap();
        for (id, ttl) in [("short", Some(10)), ("long", Some(1000)), ("forever", None)] {
            assert!(cookies.create(&session(id, ttl), t).await.unwrap());
        }
        assert_eq!(store.sweep_expired(t + 10).await.unwrap(), 1);
        assert!(
            cookies.load("short", t).await.unwrap().is_none(),
            "row gone"
        );
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let cookies = store
        .cookie_session_store(&CookieSessionLayout::Native)
        .unwrap();
    assert_eq!(cookies.list_user("u", t).await.unwrap().len(), 2);
    assert_eq!(store.sweep_expired(t + 1_000_000).await.unwrap(), 1);
    assert_eq!(
        cookies.list_user("u", t).await.unwrap().len(),
        1,
        "forever stays"
    );
}
