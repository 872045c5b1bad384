//! The conformance suite of [`CookieSessionStore`]: every behaviour
//! `CookieSessionManager` relies on, written once and run against each backend and
//! layout through [`session_store_conformance_tests!`](crate::session_store_conformance_tests).
//!
//! Layouts that record expiry times are judged at the `now` each call passes, so tests
//! move `now` instead of sleeping. The compat layout records only a Redis TTL; for it
//! the harness's [`SessionStoreUnderTest::expire_now`] ends a key the way its TTL would,
//! and expiry readbacks are compared with one second of slack (Redis' clock ticks).

use std::any::Any;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use redauth_core::clock::{Clock, SystemClock, UnixTime};
use redauth_core::ids::random_id;
use redauth_core::session_store::{CookieSessionStore, StoredSession};

/// Generates one `#[tokio::test]` per case. `$factory` is an async fn returning a
/// [`SessionStoreUnderTest`].
#[macro_export]
macro_rules! session_store_conformance_tests {
    ($factory:path) => {
        $crate::session_store_conformance_tests!(@each $factory;
            create_and_load_round_trip,
            create_never_overwrites_a_live_id,
            unknown_ids_load_as_none,
            update_data_keeps_expiry_and_never_creates,
            set_expiry_moves_the_deadline_and_can_remove_it,
            sessions_end_at_their_expiry,
            rename_moves_the_session_in_one_step,
            delete_is_idempotent,
            list_user_returns_live_sessions_and_prunes_dead_ids,
            delete_user_removes_that_users_sessions_only,
            data_is_stored_byte_for_byte,
            concurrent_creates_with_one_id_store_one_session,
        );
    };
    (@each $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let under_test = $factory().await;
                $crate::session_conformance::$case(under_test).await;
            }
        )*
    };
}

/// One backend and layout, ready for a test.
pub struct SessionStoreUnderTest {
    pub store: Arc<dyn CookieSessionStore>,
    /// True when the layout stores expiry times (native, embedded): a later `now` ends
    /// sessions. False when only the key's TTL does (compat).
    pub records_expiry: bool,
    /// Makes the backend drop session `id` as its own TTL would, leaving any index
    /// entry behind (what Redis does when a key expires). A no-op where nothing
    /// expires behind the store's back (the embedded store).
    pub expire_now: Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
    /// Kept alive for the test: a redis-server, a temporary directory…
    pub guard: Box<dyn Any + Send>,
}

fn now() -> UnixTime {
    SystemClock.now()
}

fn id_for(t: &SessionStoreUnderTest) -> String {
    // Native ids are 22 base64url characters, compat ids 36 alphanumerics; both
    // layouts store whatever id they are given, so letters and digits fit both.
    let raw = random_id().unwrap().replace(['-', '_'], "x");
    if t.records_expiry {
        raw
    } else {
        format!(
            "{raw}{}",
            &random_id().unwrap().replace(['-', '_'], "y")[..14]
        )
    }
}

fn session(
    t: &SessionStoreUnderTest,
    user: Option<&str>,
    data: &str,
    at: UnixTime,
    ttl: Option<i64>,
) -> StoredSession {
    StoredSession {
        id: id_for(t),
        user_id: user.map(str::to_owned),
        data: data.to_owned(),
        created_at: Some(at),
        expires_at: ttl.map(|s| at + s),
    }
}

fn user() -> String {
    format!("user-{}", random_id().unwrap())
}

/// Expiries read back from a TTL may be a second early.
fn assert_expiry(t: &SessionStoreUnderTest, got: Option<UnixTime>, want: Option<UnixTime>) {
    match (got, want) {
        (Some(g), Some(w)) if !t.records_expiry => {
            assert!((w - 1..=w).contains(&g), "expiry {g}, want {w}")
        }
        _ => assert_eq!(got, want),
    }
}

/// What a load must give back: the layout may drop what it cannot record.
fn assert_same(t: &SessionStoreUnderTest, got: &StoredSession, want: &StoredSession) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.data, want.data);
    assert_expiry(t, got.expires_at, want.expires_at);
    if t.records_expiry {
        assert_eq!(got.user_id, want.user_id);
        assert_eq!(got.created_at, want.created_at);
    }
}

pub async fn create_and_load_round_trip(t: SessionStoreUnderTest) {
    let at = now();
    let uid = user();
    for s in [
        session(&t, Some(&uid), r#"{"cart":[1,2]}"#, at, Some(3600)),
        session(&t, None, "null", at, Some(60)),
        session(&t, Some(&uid), "{}", at, None),
    ] {
        assert!(t.store.create(&s, at).await.unwrap());
        let got = t.store.load(&s.id, at).await.unwrap().expect("stored");
        assert_same(&t, &got, &s);
    }
}

pub async fn create_never_overwrites_a_live_id(t: SessionStoreUnderTest) {
    let at = now();
    let s = session(&t, None, "first", at, Some(3600));
    assert!(t.store.create(&s, at).await.unwrap());
    let again = StoredSession {
        data: "second".into(),
        ..s.clone()
    };
    assert!(!t.store.create(&again, at).await.unwrap());
    assert_eq!(
        t.store.load(&s.id, at).await.unwrap().unwrap().data,
        "first"
    );
}

pub async fn unknown_ids_load_as_none(t: SessionStoreUnderTest) {
    let at = now();
    let id = id_for(&t);
    assert!(t.store.load(&id, at).await.unwrap().is_none());
    assert!(!t.store.delete(&id, None).await.unwrap());
    assert!(!t.store.set_expiry(&id, Some(at + 10), at).await.unwrap());
}

pub async fn update_data_keeps_expiry_and_never_creates(t: SessionStoreUnderTest) {
    let at = now();
    let s = session(&t, Some(&user()), "v1", at, Some(600));
    t.store.create(&s, at).await.unwrap();
    assert!(t.store.update_data(&s.id, "v2", at + 1).await.unwrap());
    let got = t.store.load(&s.id, at + 1).await.unwrap().unwrap();
    assert_eq!(got.data, "v2");
    if t.records_expiry {
        assert_eq!(got.expires_at, s.expires_at);
        assert_eq!(got.user_id, s.user_id);
    } else {
        // The TTL is kept (KEEPTTL), read back relative to the `now` passed in.
        assert_expiry(&t, got.expires_at, Some(at + 1 + 600));
    }
    let stranger = id_for(&t);
    assert!(!t.store.update_data(&stranger, "x", at).await.unwrap());
    assert!(
        t.store.load(&stranger, at).await.unwrap().is_none(),
        "an update never creates a session"
    );
}

pub async fn set_expiry_moves_the_deadline_and_can_remove_it(t: SessionStoreUnderTest) {
    let at = now();
    let s = session(&t, Some(&user()), "d", at, Some(60));
    t.store.create(&s, at).await.unwrap();
    assert!(
        t.store
            .set_expiry(&s.id, Some(at + 7200), at)
            .await
            .unwrap()
    );
    let got = t.store.load(&s.id, at).await.unwrap().unwrap();
    assert_expiry(&t, got.expires_at, Some(at + 7200));
    assert_eq!(got.data, "d");
    assert!(t.store.set_expiry(&s.id, None, at).await.unwrap());
    assert_eq!(
        t.store.load(&s.id, at).await.unwrap().unwrap().expires_at,
        None
    );
    if t.records_expiry {
        let far = at + 10 * 365 * 24 * 3600;
        assert!(t.store.load(&s.id, far).await.unwrap().is_some());
    }
}

pub async fn sessions_end_at_their_expiry(t: SessionStoreUnderTest) {
    let at = now();
    let s = session(&t, Some(&user()), "d", at, Some(100));
    t.store.create(&s, at).await.unwrap();
    if t.records_expiry {
        assert!(t.store.load(&s.id, at + 99).await.unwrap().is_some());
        let end = at + 100;
        assert!(t.store.load(&s.id, end).await.unwrap().is_none());
        assert!(!t.store.update_data(&s.id, "x", end).await.unwrap());
        assert!(
            !t.store
                .set_expiry(&s.id, Some(end + 100), end)
                .await
                .unwrap()
        );
    } else {
        (t.expire_now)(s.id.clone()).await;
        assert!(t.store.load(&s.id, at).await.unwrap().is_none());
        assert!(!t.store.update_data(&s.id, "x", at).await.unwrap());
    }
}

pub async fn rename_moves_the_session_in_one_step(t: SessionStoreUnderTest) {
    let at = now();
    let uid = user();
    let s = session(&t, Some(&uid), "old data", at, Some(600));
    t.store.create(&s, at).await.unwrap();
    let new_id = id_for(&t);
    assert!(
        t.store
            .rename(&s.id, &new_id, Some(&uid), "new data", Some(at + 900), at)
            .await
            .unwrap()
    );
    assert!(t.store.load(&s.id, at).await.unwrap().is_none());
    let got = t.store.load(&new_id, at).await.unwrap().unwrap();
    assert_eq!(got.data, "new data");
    assert_expiry(&t, got.expires_at, Some(at + 900));
    if t.records_expiry {
        assert_eq!(got.user_id.as_deref(), Some(uid.as_str()));
        assert_eq!(got.created_at, s.created_at, "creation time is kept");
    }
    let listed: Vec<String> = t
        .store
        .list_user(&uid, at)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![new_id.clone()]);

    // Neither a dead source nor a taken target.
    let other = session(&t, Some(&uid), "other", at, Some(600));
    t.store.create(&other, at).await.unwrap();
    assert!(
        !t.store
            .rename(&s.id, &id_for(&t), Some(&uid), "x", Some(at + 60), at)
            .await
            .unwrap()
    );
    assert!(
        !t.store
            .rename(&other.id, &new_id, Some(&uid), "x", Some(at + 60), at)
            .await
            .unwrap()
    );
    assert_eq!(
        t.store.load(&new_id, at).await.unwrap().unwrap().data,
        "new data"
    );
    assert_eq!(
        t.store.load(&other.id, at).await.unwrap().unwrap().data,
        "other"
    );
}

pub async fn delete_is_idempotent(t: SessionStoreUnderTest) {
    let at = now();
    let uid = user();
    let s = session(&t, Some(&uid), "d", at, Some(600));
    t.store.create(&s, at).await.unwrap();
    assert!(t.store.delete(&s.id, Some(&uid)).await.unwrap());
    assert!(t.store.load(&s.id, at).await.unwrap().is_none());
    assert!(!t.store.delete(&s.id, Some(&uid)).await.unwrap());
    assert!(t.store.list_user(&uid, at).await.unwrap().is_empty());
}

pub async fn list_user_returns_live_sessions_and_prunes_dead_ids(t: SessionStoreUnderTest) {
    let at = now();
    let uid = user();
    let short = session(&t, Some(&uid), "short", at, Some(100));
    let long = session(&t, Some(&uid), "long", at, Some(1000));
    let forever = session(&t, Some(&uid), "forever", at, None);
    let theirs = session(&t, Some(&user()), "theirs", at, Some(1000));
    let nobodys = session(&t, None, "nobody's", at, Some(1000));
    for s in [&short, &long, &forever, &theirs, &nobodys] {
        t.store.create(s, at).await.unwrap();
    }
    let mut listed = t.store.list_user(&uid, at).await.unwrap();
    listed.sort_by(|a, b| a.data.cmp(&b.data));
    assert_eq!(
        listed.iter().map(|s| s.data.as_str()).collect::<Vec<_>>(),
        ["forever", "long", "short"]
    );
    assert!(
        listed
            .iter()
            .all(|s| s.user_id.as_deref() == Some(uid.as_str()))
    );
    // The short one dies: by the clock where expiry is recorded, by its TTL otherwise
    // (which leaves its id in the index, as the SvelteKit library always does).
    (t.expire_now)(short.id.clone()).await;
    let later = if t.records_expiry { at + 100 } else { at };
    let mut data: Vec<String> = t
        .store
        .list_user(&uid, later)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.data)
        .collect();
    data.sort();
    assert_eq!(data, ["forever", "long"]);
    // A new session for the user also prunes, and the dead id stays gone.
    let fresh = session(&t, Some(&uid), "fresh", later, Some(1000));
    t.store.create(&fresh, later).await.unwrap();
    assert_eq!(t.store.list_user(&uid, later).await.unwrap().len(), 3);
    assert!(t.store.load(&short.id, later).await.unwrap().is_none());
}

pub async fn delete_user_removes_that_users_sessions_only(t: SessionStoreUnderTest) {
    let at = now();
    let uid = user();
    let other = user();
    for _ in 0..3 {
        t.store
            .create(&session(&t, Some(&uid), "mine", at, Some(600)), at)
            .await
            .unwrap();
    }
    let theirs = session(&t, Some(&other), "theirs", at, Some(600));
    t.store.create(&theirs, at).await.unwrap();
    assert_eq!(t.store.delete_user(&uid).await.unwrap(), 3);
    assert!(t.store.list_user(&uid, at).await.unwrap().is_empty());
    assert_eq!(t.store.delete_user(&uid).await.unwrap(), 0);
    assert!(t.store.load(&theirs.id, at).await.unwrap().is_some());
    assert_eq!(t.store.list_user(&other, at).await.unwrap().len(), 1);
}

pub async fn data_is_stored_byte_for_byte(t: SessionStoreUnderTest) {
    let at = now();
    let tricky = "{\"a\":\"\\u2028 / \\\" ü 🍪\",\"n\":1e400,\"big\":12345678901234567890}";
    let s = session(&t, Some(&user()), tricky, at, Some(600));
    t.store.create(&s, at).await.unwrap();
    assert_eq!(t.store.load(&s.id, at).await.unwrap().unwrap().data, tricky);
    // Updates and expiry changes rewrite the record around the data: it must survive.
    let long = "x".repeat(100_000) + tricky;
    assert!(t.store.update_data(&s.id, &long, at).await.unwrap());
    assert!(
        t.store
            .set_expiry(&s.id, Some(at + 1200), at)
            .await
            .unwrap()
    );
    assert_eq!(t.store.load(&s.id, at).await.unwrap().unwrap().data, long);
    let new_id = id_for(&t);
    t.store
        .rename(
            &s.id,
            &new_id,
            s.user_id.as_deref(),
            tricky,
            Some(at + 60),
            at,
        )
        .await
        .unwrap();
    assert_eq!(
        t.store.load(&new_id, at).await.unwrap().unwrap().data,
        tricky
    );
}

pub async fn concurrent_creates_with_one_id_store_one_session(t: SessionStoreUnderTest) {
    let at = now();
    let id = id_for(&t);
    let uid = user();
    let attempts = (0..8).map(|i| {
        let store = t.store.clone();
        let s = StoredSession {
            id: id.clone(),
            user_id: Some(uid.clone()),
            data: format!("writer {i}"),
            created_at: Some(at),
            expires_at: Some(at + 600),
        };
        tokio::spawn(async move { store.create(&s, at).await.unwrap() })
    });
    let won = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(won, 1);
    assert_eq!(t.store.list_user(&uid, at).await.unwrap().len(), 1);
}
