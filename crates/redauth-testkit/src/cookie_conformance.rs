//! The conformance suite of [`CookieSessionStore`]: every behaviour
//! `CookieSessionManager` relies on, written once and run against each backend and
//! layout through [`cookie_store_conformance_tests!`](crate::cookie_store_conformance_tests).
//!
//! Layouts that record expiry times are judged at the `now` each call passes, so tests
//! move `now` instead of sleeping. The compat layout records only a Redis TTL; for it
//! the harness's [`CookieStoreUnderTest::expire_now`] ends a key the way its TTL would,
//! and expiry readbacks are compared with one second of slack (Redis' clock ticks).

use std::any::Any;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use redauth_core::clock::{Clock, SystemClock, UnixTime};
use redauth_core::cookie_store::{CookieSessionStore, LinkedPrincipal, StoredCookieSession};
use redauth_core::ids::random_id;
use redauth_core::store::{EndSessions, RotateOutcome, RotateRequest};
use redauth_core::token::refresh::TokenHash;
use redauth_core::{Role, Store};

/// Generates one `#[tokio::test]` per case. `$factory` is an async fn returning a
/// [`CookieStoreUnderTest`].
#[macro_export]
macro_rules! cookie_store_conformance_tests {
    ($factory:path) => {
        $crate::cookie_store_conformance_tests!(@each $factory;
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
            load_with_principal_reads_the_linked_login_session,
            load_with_principal_without_a_link_reads_no_principal,
            load_with_principal_reports_dead_and_foreign_login_sessions,
            load_with_principal_of_a_dead_cookie_session_is_none,
            ending_a_login_session_ends_its_cookie_sessions,
            linked_cookie_sessions_are_found_and_replaced_by_compare_and_set,
        );
    };
    (@each $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let under_test = $factory().await;
                $crate::cookie_conformance::$case(under_test).await;
            }
        )*
    };
}

/// One backend and layout, ready for a test.
pub struct CookieStoreUnderTest {
    pub store: Arc<dyn CookieSessionStore>,
    /// True when the layout stores expiry times (native, embedded): a later `now` ends
    /// sessions. False when only the key's TTL does (compat).
    pub records_expiry: bool,
    /// Makes the backend drop session `id` as its own TTL would, leaving any index
    /// entry behind (what Redis does when a key expires). A no-op where nothing
    /// expires behind the store's back (the embedded store).
    pub expire_now: Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
    /// The store of users and login sessions that `load_with_principal` reads the
    /// linked principal from (the one that made `store`). `None` for a backend that
    /// reads no principals: its `load_with_principal` must then be `load` with `None`.
    pub auth: Option<Arc<dyn Store>>,
    /// Kept alive for the test: a redis-server, a temporary directory…
    pub guard: Box<dyn Any + Send>,
}

fn now() -> UnixTime {
    SystemClock.now()
}

fn id_for(t: &CookieStoreUnderTest) -> String {
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
    t: &CookieStoreUnderTest,
    user: Option<&str>,
    data: &str,
    at: UnixTime,
    ttl: Option<i64>,
) -> StoredCookieSession {
    StoredCookieSession {
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
fn assert_expiry(t: &CookieStoreUnderTest, got: Option<UnixTime>, want: Option<UnixTime>) {
    match (got, want) {
        (Some(g), Some(w)) if !t.records_expiry => {
            assert!((w - 1..=w).contains(&g), "expiry {g}, want {w}")
        }
        _ => assert_eq!(got, want),
    }
}

/// What a load must give back: the layout may drop what it cannot record.
fn assert_same(t: &CookieStoreUnderTest, got: &StoredCookieSession, want: &StoredCookieSession) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.data, want.data);
    assert_expiry(t, got.expires_at, want.expires_at);
    if t.records_expiry {
        assert_eq!(got.user_id, want.user_id);
        assert_eq!(got.created_at, want.created_at);
    }
}

pub async fn create_and_load_round_trip(t: CookieStoreUnderTest) {
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

pub async fn create_never_overwrites_a_live_id(t: CookieStoreUnderTest) {
    let at = now();
    let s = session(&t, None, "first", at, Some(3600));
    assert!(t.store.create(&s, at).await.unwrap());
    let again = StoredCookieSession {
        data: "second".into(),
        ..s.clone()
    };
    assert!(!t.store.create(&again, at).await.unwrap());
    assert_eq!(
        t.store.load(&s.id, at).await.unwrap().unwrap().data,
        "first"
    );
}

pub async fn unknown_ids_load_as_none(t: CookieStoreUnderTest) {
    let at = now();
    let id = id_for(&t);
    assert!(t.store.load(&id, at).await.unwrap().is_none());
    assert!(!t.store.delete(&id, None).await.unwrap());
    assert!(!t.store.set_expiry(&id, Some(at + 10), at).await.unwrap());
}

pub async fn update_data_keeps_expiry_and_never_creates(t: CookieStoreUnderTest) {
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

pub async fn set_expiry_moves_the_deadline_and_can_remove_it(t: CookieStoreUnderTest) {
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

pub async fn sessions_end_at_their_expiry(t: CookieStoreUnderTest) {
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

pub async fn rename_moves_the_session_in_one_step(t: CookieStoreUnderTest) {
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

pub async fn delete_is_idempotent(t: CookieStoreUnderTest) {
    let at = now();
    let uid = user();
    let s = session(&t, Some(&uid), "d", at, Some(600));
    t.store.create(&s, at).await.unwrap();
    assert!(t.store.delete(&s.id, Some(&uid)).await.unwrap());
    assert!(t.store.load(&s.id, at).await.unwrap().is_none());
    assert!(!t.store.delete(&s.id, Some(&uid)).await.unwrap());
    assert!(t.store.list_user(&uid, at).await.unwrap().is_empty());
}

pub async fn list_user_returns_live_sessions_and_prunes_dead_ids(t: CookieStoreUnderTest) {
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

pub async fn delete_user_removes_that_users_sessions_only(t: CookieStoreUnderTest) {
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

pub async fn data_is_stored_byte_for_byte(t: CookieStoreUnderTest) {
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

pub async fn concurrent_creates_with_one_id_store_one_session(t: CookieStoreUnderTest) {
    let at = now();
    let id = id_for(&t);
    let uid = user();
    let attempts = (0..8).map(|i| {
        let store = t.store.clone();
        let s = StoredCookieSession {
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

/// Session data linking to login session `sid` of `uid`, as `CookieAuth` writes it.
fn linked_data(uid: &str, sid: &str) -> String {
    format!(
        r#"{{"theme":"dark","redauth":{{"user_id":"{uid}","session_id":"{sid}","username":"u","roles":["reader"],"permissions":["docs:read"]}}}}"#
    )
}

/// A user holding the role `reader`, with a login session live for `idle` seconds.
async fn logged_in(auth: &Arc<dyn Store>, at: UnixTime, idle: i64) -> (String, String) {
    let reader = Role {
        name: "reader".into(),
        permissions: vec!["docs:read".into()],
    };
    auth.put_role(&reader).await.unwrap();
    let mut u = crate::conformance::user(&format!(
        "u{}",
        &random_id().unwrap().replace(['-', '_'], "x")[..8]
    ));
    u.roles = vec!["reader".into()];
    auth.create_user(&u).await.unwrap();
    let s = crate::conformance::session(&u.id, at, 3600, idle);
    auth.create_session(
        &s,
        &TokenHash("t0".into()),
        0,
        redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
        at,
    )
    .await
    .unwrap();
    (u.id, s.sid)
}

/// `load_with_principal` at `at`, checked against `load` at the same time: the same
/// session, and a principal only from backends that read them.
async fn load_both(
    t: &CookieStoreUnderTest,
    id: &str,
    at: UnixTime,
) -> Option<(StoredCookieSession, Option<LinkedPrincipal>)> {
    let got = t.store.load_with_principal(id, at).await.unwrap();
    let plain = t.store.load(id, at).await.unwrap();
    match (&got, &plain) {
        (Some((s, _)), Some(p)) => assert_same(t, s, p),
        (None, None) => {}
        _ => panic!("load_with_principal and load disagree on whether {id} is live"),
    }
    if t.auth.is_none() {
        assert!(got.as_ref().is_none_or(|(_, l)| l.is_none()));
    }
    got
}

pub async fn load_with_principal_reads_the_linked_login_session(t: CookieStoreUnderTest) {
    let at = now();
    let Some(auth) = t.auth.clone() else {
        let s = session(&t, None, &linked_data("u", "s"), at, Some(600));
        t.store.create(&s, at).await.unwrap();
        load_both(&t, &s.id, at).await.expect("stored");
        return;
    };
    let (uid, sid) = logged_in(&auth, at, 600).await;
    let s = session(&t, Some(&uid), &linked_data(&uid, &sid), at, Some(3600));
    t.store.create(&s, at).await.unwrap();
    let (got, linked) = load_both(&t, &s.id, at).await.expect("stored");
    assert_same(&t, &got, &s);
    let want = auth.load_principal(&uid, &sid, at).await.unwrap();
    assert!(want.is_some());
    assert_eq!(
        linked,
        Some(LinkedPrincipal {
            user_id: uid.clone(),
            session_id: sid.clone(),
            record: want,
        }),
        "the same record load_principal reads"
    );
    let roles = &linked.unwrap().record.unwrap().roles;
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].name, "reader");
}

pub async fn load_with_principal_without_a_link_reads_no_principal(t: CookieStoreUnderTest) {
    let at = now();
    for data in [
        "{}",
        r#"{"cart":[1,2]}"#,
        "null",
        "[1,2]",
        "not json at all",
        "}\"v\":\"k\"{",
        r#"{"redauth":"someone"}"#,
        r#"{"redauth":{"user_id":"u"}}"#,
        r#"{"redauth":{"user_id":7,"session_id":"s"}}"#,
        r#"[{"redauth":{"user_id":"u","session_id":"s"}}]"#,
    ] {
        let s = session(&t, Some(&user()), data, at, Some(600));
        t.store.create(&s, at).await.unwrap();
        let (got, linked) = load_both(&t, &s.id, at).await.expect("stored");
        assert_eq!(got.data, data, "byte for byte");
        assert_eq!(linked, None, "{data}");
    }
}

pub async fn load_with_principal_reports_dead_and_foreign_login_sessions(t: CookieStoreUnderTest) {
    let at = now();
    let Some(auth) = t.auth.clone() else {
        return;
    };
    let (uid, sid) = logged_in(&auth, at, 600).await;
    let (other_uid, other_sid) = logged_in(&auth, at, 600).await;
    let unknown_sid = random_id().unwrap();
    let cases = [
        (uid.clone(), unknown_sid.clone(), "unknown login session"),
        (
            other_uid.clone(),
            sid.clone(),
            "another user's login session",
        ),
        (
            uid.clone(),
            other_sid.clone(),
            "another user's login session",
        ),
        (user(), sid.clone(), "a user that does not exist"),
    ];
    for (link_uid, link_sid, what) in cases {
        let s = session(
            &t,
            Some(&uid),
            &linked_data(&link_uid, &link_sid),
            at,
            Some(3600),
        );
        t.store.create(&s, at).await.unwrap();
        let (_, linked) = load_both(&t, &s.id, at).await.expect("stored");
        assert_eq!(
            linked,
            Some(LinkedPrincipal {
                user_id: link_uid,
                session_id: link_sid,
                record: None,
            }),
            "{what}"
        );
    }
    // A cookie session may outlive its login session's idle expiry (until it is read
    // or swept): its principal is reported dead.
    let s = session(&t, Some(&uid), &linked_data(&uid, &sid), at, Some(3600));
    t.store.create(&s, at).await.unwrap();
    let linked = |l: Option<(StoredCookieSession, Option<LinkedPrincipal>)>| l.expect("stored").1;
    let live = linked(load_both(&t, &s.id, at + 599).await).expect("a link");
    assert!(live.record.is_some());
    let idle = linked(load_both(&t, &s.id, at + 600).await).expect("a link");
    assert_eq!(idle.record, None, "login session idle-expired");
}

/// Issue 10, item 8: ending a login session, by whatever path and whatever process
/// (one that has no cookie-session configuration, like the admin CLI), ends the cookie
/// sessions linked to it, renamed ones included; others stay.
pub async fn ending_a_login_session_ends_its_cookie_sessions(t: CookieStoreUnderTest) {
    let at = now();
    let Some(auth) = t.auth.clone() else {
        return;
    };
    type End = fn(Arc<dyn Store>, String, String) -> BoxFuture<'static, ()>;
    let paths: [(&str, End); 4] = [
        ("revoke", |auth, uid, sid| {
            Box::pin(async move {
                assert!(auth.revoke_session(&uid, &sid, None).await.unwrap());
            })
        }),
        ("user write ending sessions", |auth, uid, _| {
            Box::pin(async move {
                let u = auth.get_user(&uid).await.unwrap().unwrap();
                let done = auth
                    .update_user(&u, EndSessions::AllBut(None))
                    .await
                    .unwrap();
                assert_eq!(done.sessions_ended, 2);
            })
        }),
        ("theft", |auth, uid, sid| {
            Box::pin(async move {
                let now = SystemClock.now();
                let rotate = |p: &str, n: &str, client: &str| RotateRequest {
                    user_id: uid.clone(),
                    session_id: sid.clone(),
                    presented: TokenHash(p.into()),
                    successor: TokenHash(n.into()),
                    client_binding: client.into(),
                    now,
                    grace_secs: 0,
                    idle_secs: 3600,
                    charge: None,
                };
                auth.rotate_refresh(&rotate("t0", "t1", "a")).await.unwrap();
                auth.rotate_refresh(&rotate("t1", "t2", "a")).await.unwrap();
                assert_eq!(
                    auth.rotate_refresh(&rotate("t0", "t1", "b")).await.unwrap(),
                    RotateOutcome::Reused
                );
            })
        }),
        ("delete user", |auth, uid, _| {
            Box::pin(async move {
                assert!(auth.delete_user(&uid).await.unwrap());
            })
        }),
    ];
    for (what, end) in paths {
        let (uid, sid) = logged_in(&auth, at, 3600).await;
        let (_, other_sid) = {
            let s = crate::conformance::session(&uid, at, 3600, 3600);
            auth.create_session(
                &s,
                &TokenHash("o".into()),
                0,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                at,
            )
            .await
            .unwrap();
            (uid.clone(), s.sid)
        };
        let linked = session(&t, Some(&uid), &linked_data(&uid, &sid), at, Some(3600));
        t.store.create(&linked, at).await.unwrap();
        // A privilege change moves a cookie session to a new id: still registered.
        let moved = session(&t, Some(&uid), &linked_data(&uid, &sid), at, Some(3600));
        t.store.create(&moved, at).await.unwrap();
        let moved_to = id_for(&t);
        assert!(
            t.store
                .rename(
                    &moved.id,
                    &moved_to,
                    Some(&uid),
                    &linked_data(&uid, &sid),
                    Some(at + 3600),
                    at
                )
                .await
                .unwrap()
        );
        let unrelated = session(
            &t,
            Some(&uid),
            &linked_data(&uid, &other_sid),
            at,
            Some(3600),
        );
        t.store.create(&unrelated, at).await.unwrap();
        let anonymous = session(&t, Some(&uid), r#"{"cart":[]}"#, at, Some(3600));
        t.store.create(&anonymous, at).await.unwrap();

        end(auth.clone(), uid.clone(), sid.clone()).await;

        for gone in [&linked.id, &moved_to] {
            assert!(
                t.store.load(gone, at).await.unwrap().is_none(),
                "{what}: a linked cookie session survived"
            );
        }
        let listed: Vec<String> = t
            .store
            .list_user(&uid, at)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert!(
            !listed.contains(&linked.id) && !listed.contains(&moved_to),
            "{what}"
        );
        // The user write and the delete end the user's other login session too.
        let ends_all = matches!(what, "delete user" | "user write ending sessions");
        assert_eq!(
            t.store.load(&unrelated.id, at).await.unwrap().is_none(),
            ends_all,
            "{what}: the cookie session of the other login session"
        );
        assert!(
            t.store.load(&anonymous.id, at).await.unwrap().is_some(),
            "{what}: a cookie session linked to no login session ended"
        );
    }
}

pub async fn load_with_principal_of_a_dead_cookie_session_is_none(t: CookieStoreUnderTest) {
    let at = now();
    let (uid, sid) = match &t.auth {
        Some(auth) => logged_in(auth, at, 3000).await,
        None => (user(), random_id().unwrap()),
    };
    assert!(load_both(&t, &id_for(&t), at).await.is_none(), "unknown id");
    let s = session(&t, Some(&uid), &linked_data(&uid, &sid), at, Some(100));
    t.store.create(&s, at).await.unwrap();
    assert!(load_both(&t, &s.id, at).await.is_some());
    let later = if t.records_expiry {
        at + 100
    } else {
        (t.expire_now)(s.id.clone()).await;
        at
    };
    assert!(
        load_both(&t, &s.id, later).await.is_none(),
        "expired, although its login session is live"
    );
    if let Some(auth) = &t.auth {
        assert!(
            auth.load_principal(&uid, &sid, later)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(t.store.delete(&s.id, Some(&uid)).await.unwrap() || !t.records_expiry);
    assert!(load_both(&t, &s.id, at).await.is_none(), "deleted");
}

/// Issue 10, item 7 (store part): the cookie sessions linked to a user's login sessions
/// are found without this process's cookie configuration, and their data is replaced
/// only if unchanged since read, keeping the expiry.
pub async fn linked_cookie_sessions_are_found_and_replaced_by_compare_and_set(
    t: CookieStoreUnderTest,
) {
    let at = now();
    let Some(auth) = t.auth.clone() else {
        return;
    };
    let (uid, sid) = logged_in(&auth, at, 3600).await;
    let linked = session(&t, Some(&uid), &linked_data(&uid, &sid), at, Some(600));
    t.store.create(&linked, at).await.unwrap();
    let anonymous = session(&t, Some(&uid), r#"{"cart":[]}"#, at, Some(600));
    t.store.create(&anonymous, at).await.unwrap();

    let found = auth.linked_cookie_sessions(&uid).await.unwrap();
    assert_eq!(found.len(), 1, "only the linked one");
    let cookie = &found[0];
    assert_eq!(cookie.data, linked.data);

    let narrowed = linked.data.replace(r#""docs:read""#, "");
    assert!(
        auth.replace_linked_cookie_data(cookie, &narrowed)
            .await
            .unwrap()
    );
    let loaded = t.store.load(&linked.id, at).await.unwrap().unwrap();
    assert_eq!(loaded.data, narrowed);
    assert_expiry(&t, loaded.expires_at, Some(at + 600));
    assert!(
        !auth.replace_linked_cookie_data(cookie, "{}").await.unwrap(),
        "a stale read replaces nothing"
    );
    assert_eq!(
        t.store.load(&linked.id, at).await.unwrap().unwrap().data,
        narrowed
    );
    assert!(
        auth.linked_cookie_sessions(&user())
            .await
            .unwrap()
            .is_empty()
    );
}
