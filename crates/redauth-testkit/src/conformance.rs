//! The Store conformance suite: every behaviour the auth service relies on, written
//! once against `Arc<dyn Store>` and run against each backend through
//! [`store_conformance_tests!`](crate::store_conformance_tests).
//!
//! Time is passed explicitly (`now`), as the service does, so expiry cases need no
//! sleeping. `now` starts at the real time because Redis applies real key TTLs.

use std::sync::Arc;

use redauth_core::clock::{Clock, SystemClock, UnixTime};
use redauth_core::ids::random_id;
use redauth_core::store::{
    EndSessions, MAX_SESSION_PAGE, PageRequest, REFRESH_HISTORY_LEN, RotateOutcome, RotateRequest,
    SessionCursor, SessionPage, UserUpdate,
};
use redauth_core::token::refresh::TokenHash;
use redauth_core::{Role, Session, Store, StoreError, User};

/// Generates one `#[tokio::test]` per conformance case. `$factory` is an async fn
/// returning `(Arc<dyn Store>, impl Any)`, the second value kept alive for the test
/// (a redis-server process, a temporary directory…).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::store_conformance_tests!(@each $factory;
            user_round_trip,
            username_is_unique_case_insensitively,
            usernames_are_unique_up_to_nfkc_case_folding_and_confusables,
            concurrent_creates_of_one_username_yield_one_user,
            emails_are_unique_up_to_nfkc_case_folding_and_confusables,
            an_email_change_moves_the_claim,
            concurrent_writes_of_look_alike_emails_yield_one_holder,
            invalid_models_are_never_written,
            update_user_replaces_and_rejects_unknown_or_renamed,
            update_user_is_compare_and_set_on_the_security_version,
            update_user_ends_sessions_in_the_same_write,
            create_session_requires_the_checked_user_version,
            delete_user_removes_claim_and_sessions,
            roles_put_and_list,
            load_principal_returns_session_user_and_held_roles,
            load_principal_refuses_other_users_and_dead_sessions,
            rotation_then_grace_replay_then_reuse_revokes,
            grace_window_is_anchored_to_first_rotation,
            rotation_extends_idle_but_never_past_absolute,
            rotation_of_unknown_or_expired_session_is_invalid,
            concurrent_rotations_of_one_token_form_one_lineage,
            list_sessions_prunes_dead_sessions,
            revoke_session_with_and_without_proof,
            replay_with_another_successor_is_reuse,
            same_client_gets_its_successor_until_it_is_used,
            made_up_token_for_a_real_session_changes_nothing,
            old_token_from_the_history_is_reuse,
            token_history_is_bounded,
            one_user_cannot_revoke_another_users_session,
            an_empty_proof_revokes_nothing,
            rotation_charges_its_rate_limit_in_the_same_call,
            create_session_past_the_cap_ends_the_oldest,
            list_sessions_pages_cover_every_live_session_once,
            session_cursor_round_trips_and_refuses_anything_else,
        );
    };
    (@each $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

fn now() -> UnixTime {
    SystemClock.now()
}

pub fn user(username: &str) -> User {
    let t = now();
    User {
        id: random_id().unwrap(),
        username: username.into(),
        email: format!("{}@example.com", username.to_lowercase()),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        roles: vec![],
        disabled: false,
        created_at: t,
        updated_at: t,
        password_changed_at: t,
        security_version: 0,
    }
}

pub fn session(user_id: &str, t: UnixTime, absolute_secs: i64, idle_secs: i64) -> Session {
    Session {
        sid: random_id().unwrap(),
        user_id: user_id.into(),
        created_at: t,
        last_seen: t,
        absolute_expiry: t + absolute_secs,
        idle_expiry: t + idle_secs.min(absolute_secs),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("conformance".into()),
        refresh_generation: 0,
    }
}

/// Every live session of a user, following the pages of [`Store::list_sessions`]
/// (each call examines at most [`MAX_SESSION_PAGE`] index entries).
pub async fn all_sessions(
    store: &dyn Store,
    user_id: &str,
    now: UnixTime,
) -> Result<Vec<Session>, StoreError> {
    let mut all = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: MAX_SESSION_PAGE,
    };
    loop {
        let got = store.list_sessions(user_id, now, &page).await?;
        all.extend(got.sessions);
        match got.next {
            Some(next) => page.after = Some(next),
            None => return Ok(all),
        }
    }
}

fn hash(s: &str) -> TokenHash {
    TokenHash(s.into())
}

/// The client binding of the conformance suite's own client.
const TAB: &str = "tab";

fn rotate(s: &Session, presented: &str, successor: &str, t: UnixTime) -> RotateRequest {
    rotate_from(TAB, s, presented, successor, t)
}

fn rotate_from(
    client: &str,
    s: &Session,
    presented: &str,
    successor: &str,
    t: UnixTime,
) -> RotateRequest {
    RotateRequest {
        user_id: s.user_id.clone(),
        session_id: s.sid.clone(),
        presented: hash(presented),
        successor: hash(successor),
        client_binding: client.into(),
        now: t,
        grace_secs: 10,
        idle_secs: 3600,
        charge: None,
    }
}

async fn stored_user(store: &Arc<dyn Store>, name: &str) -> User {
    store_user(store, user(name)).await
}

async fn store_user(store: &Arc<dyn Store>, u: User) -> User {
    store.create_user(&u).await.unwrap();
    u
}

pub async fn user_round_trip(store: Arc<dyn Store>) {
    let u = stored_user(&store, "Alice").await;
    assert_eq!(store.get_user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        store.find_user_by_username("alice").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store.find_user_by_username("ALICE").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(store.find_user_by_username("bob").await.unwrap(), None);
    assert_eq!(store.get_user(&random_id().unwrap()).await.unwrap(), None);
    let b = stored_user(&store, "bob").await;
    let mut ids: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    ids.sort();
    let mut want = vec![u.id, b.id];
    want.sort();
    assert_eq!(ids, want);
}

pub async fn username_is_unique_case_insensitively(store: Arc<dyn Store>) {
    stored_user(&store, "Carol").await;
    let err = store.create_user(&user("CAROL")).await.unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

/// Issue 11, item 10: `ａｌｉｃｅ` (fullwidth) and `ALICE` are `alice`; `аlice` (Cyrillic
/// а) and `alıce` (dotless ı) look like it and are refused as taken; `Kate` with a
/// Kelvin sign is `kate`. Deleting the user frees the name and its look-alikes.
pub async fn usernames_are_unique_up_to_nfkc_case_folding_and_confusables(store: Arc<dyn Store>) {
    let alice = stored_user(&store, "alice").await;
    for squatter in ["ａｌｉｃｅ", "ALICE", "\u{430}lice", "al\u{131}ce"] {
        assert!(
            matches!(
                store.create_user(&user(squatter)).await,
                Err(StoreError::UsernameTaken)
            ),
            "{squatter}"
        );
    }
    assert_eq!(
        store
            .find_user_by_username("ＡＬＩＣＥ")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(alice.id.clone())
    );
    stored_user(&store, "kate").await;
    assert!(matches!(
        store.create_user(&user("\u{212a}ate")).await,
        Err(StoreError::UsernameTaken)
    ));
    assert!(store.delete_user(&alice.id).await.unwrap());
    store.create_user(&user("\u{430}lice")).await.unwrap();
}

pub async fn concurrent_creates_of_one_username_yield_one_user(store: Arc<dyn Store>) {
    let attempts = (0..16).map(|i| {
        let store = store.clone();
        let name = if i % 2 == 0 { "dave" } else { "Dave" };
        tokio::spawn(async move { store.create_user(&user(name)).await })
    });
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::UsernameTaken))))
        .count();
    assert_eq!((ok, taken), (1, 15));
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

fn with_email(username: &str, email: &str) -> User {
    User {
        email: email.into(),
        ..user(username)
    }
}

/// Issue 11, item 10, the email half: an email is unique up to NFKC + case folding
/// (`ALICE@…`, fullwidth `ａｌｉｃｅ@…`) and refused when its UTS #39 skeleton is another
/// user's (`аlice@…` with a Cyrillic а, a Cyrillic а in the domain, a dotless ı). A
/// refused create leaves nothing behind; deleting the user frees the address.
pub async fn emails_are_unique_up_to_nfkc_case_folding_and_confusables(store: Arc<dyn Store>) {
    let alice = store_user(&store, with_email("alice", "alice@example.com")).await;
    for squatter in [
        "alice@example.com",
        "ALICE@Example.COM",
        "ａｌｉｃｅ@example.com",
        "\u{430}lice@example.com",
        "alice@ex\u{430}mple.com",
        "al\u{131}ce@example.com",
    ] {
        let err = store
            .create_user(&with_email("mallory", squatter))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::EmailTaken), "{squatter}: {err:?}");
    }
    // The refused creates claimed nothing: not the username, not an email.
    assert_eq!(store.find_user_by_username("mallory").await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    store_user(&store, with_email("mallory", "mallory@example.com")).await;
    // Another address is another address.
    store_user(&store, with_email("alicia", "alice@example.org")).await;
    assert!(store.delete_user(&alice.id).await.unwrap());
    store_user(&store, with_email("boris", "\u{430}lice@example.com")).await;
}

/// Changing the email takes the new address's claim and releases the old one in the
/// same write; a change to another user's address (or a look-alike) is refused with
/// nothing written.
pub async fn an_email_change_moves_the_claim(store: Arc<dyn Store>) {
    let alice = store_user(&store, with_email("alice", "alice@example.com")).await;
    let bob = store_user(&store, with_email("bob", "bob@example.com")).await;
    let squat = User {
        email: "\u{430}lice@example.com".into(),
        ..bob.clone()
    };
    assert!(matches!(
        store.update_user(&squat, EndSessions::None).await,
        Err(StoreError::EmailTaken)
    ));
    let stored = store.get_user(&bob.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.email.as_str(), stored.security_version),
        ("bob@example.com", 0)
    );

    let moved = User {
        email: "alice@example.org".into(),
        ..alice.clone()
    };
    assert_eq!(
        store
            .update_user(&moved, EndSessions::None)
            .await
            .unwrap()
            .security_version,
        1
    );
    // The old address is free, the new one taken.
    let err = store
        .create_user(&with_email("carl", "ＡＬＩＣＥ@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmailTaken), "{err:?}");
    let bob = User {
        email: "Alice@example.com".into(),
        ..bob
    };
    store.update_user(&bob, EndSessions::None).await.unwrap();
    store_user(&store, with_email("dan", "bob@example.com")).await;
    // A change within one skeleton (case only) keeps the claim.
    let recased = User {
        email: "ALICE@example.org".into(),
        security_version: 1,
        ..moved
    };
    store
        .update_user(&recased, EndSessions::None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_user(&with_email("erin", "alice@example.org"))
            .await,
        Err(StoreError::EmailTaken)
    ));
    // Deleting releases the claim the user holds now, not the one it had.
    assert!(store.delete_user(&alice.id).await.unwrap());
    store_user(&store, with_email("erin", "alice@example.org")).await;
    assert!(matches!(
        store
            .create_user(&with_email("fay", "alice@example.com"))
            .await,
        Err(StoreError::EmailTaken)
    ));
}

/// Sixteen writers at once, each trying to hold a look-alike of `alice@example.com`:
/// twelve creates under distinct usernames and four existing users changing their
/// email. Exactly one wins; every other gets `EmailTaken` and wrote nothing.
pub async fn concurrent_writes_of_look_alike_emails_yield_one_holder(store: Arc<dyn Store>) {
    const SPELLINGS: [&str; 4] = [
        "alice@example.com",
        "ALICE@example.com",
        "\u{430}lice@example.com",
        "ａｌｉｃｅ@example.com",
    ];
    let mut movers = Vec::new();
    for i in 0..4 {
        movers.push(
            store_user(
                &store,
                with_email(&format!("mover{i}"), &format!("m{i}@example.com")),
            )
            .await,
        );
    }
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, start) = (store.clone(), start.clone());
        let email = SPELLINGS[i % SPELLINGS.len()];
        let mover = (i < 4).then(|| User {
            email: email.into(),
            ..movers[i].clone()
        });
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            match mover {
                Some(u) => store.update_user(&u, EndSessions::None).await.map(drop),
                None => {
                    store
                        .create_user(&with_email(&format!("racer{i}"), email))
                        .await
                }
            }
        }));
    }
    let results = futures_util::future::join_all(tasks).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::EmailTaken))))
        .count();
    assert_eq!((ok, taken), (1, 15), "{results:?}");
    let users = store.list_users().await.unwrap();
    let created = users
        .iter()
        .filter(|u| u.username.starts_with("racer"))
        .count();
    assert_eq!(users.len(), 4 + created);
    assert!(created <= 1);
    let holders: Vec<_> = users
        .iter()
        .filter(|u| SPELLINGS.contains(&u.email.as_str()))
        .collect();
    assert_eq!(holders.len(), 1, "{users:?}");
}

/// The second half of the store-specific tests of users from before email claims
/// (their setup differs per store): `old` is stored without its email claim, and
/// `gone`'s record was removed without releasing its claim, as an older redauth
/// deleting it would. Until `old`'s next write a look-alike of its address can still
/// be created (the documented window); that write claims it, and look-alikes are
/// refused from then on. The orphaned claim of `gone` blocks nobody.
pub async fn email_claims_from_before_are_taken_on_write_and_orphans_are_free(
    store: &dyn Store,
    old: &User,
    gone: &User,
) {
    let early = with_email("early", &old.email.to_uppercase());
    store.create_user(&early).await.unwrap();
    assert!(store.delete_user(&early.id).await.unwrap());
    store.update_user(old, EndSessions::None).await.unwrap();
    let look_alike = old.email.replacen('o', "\u{43e}", 1);
    assert_ne!(look_alike, old.email);
    assert!(matches!(
        store.create_user(&with_email("late", &look_alike)).await,
        Err(StoreError::EmailTaken)
    ));
    store
        .create_user(&with_email("next", &gone.email))
        .await
        .unwrap();
}

pub async fn invalid_models_are_never_written(store: Arc<dyn Store>) {
    let mut bad = user("erin");
    bad.email = "not an email".into();
    assert!(matches!(
        store.create_user(&bad).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.find_user_by_username("erin").await.unwrap(), None);
    assert!(store.list_users().await.unwrap().is_empty());
    // The username claim was not left behind either.
    stored_user(&store, "erin").await;

    let role = Role {
        name: "Bad Name".into(),
        permissions: vec![],
    };
    assert!(matches!(
        store.put_role(&role).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.list_roles().await.unwrap().is_empty());

    let u = stored_user(&store, "frank").await;
    let mut s = session(&u.id, now(), 100, 200);
    s.idle_expiry = s.absolute_expiry + 1;
    assert!(matches!(
        store
            .create_session(
                &s,
                &hash("h"),
                0,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                now()
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        all_sessions(&*store, &u.id, now())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn update_user_replaces_and_rejects_unknown_or_renamed(store: Arc<dyn Store>) {
    let mut u = stored_user(&store, "gina").await;
    u.roles = vec!["editor".into()];
    u.disabled = true;
    let done = store.update_user(&u, EndSessions::None).await.unwrap();
    assert_eq!(
        done,
        UserUpdate {
            security_version: 1,
            sessions_ended: 0
        }
    );
    u.security_version = 1;
    assert_eq!(store.get_user(&u.id).await.unwrap(), Some(u.clone()));

    let ghost = user("ghost");
    assert!(matches!(
        store.update_user(&ghost, EndSessions::None).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_user(&ghost.id).await.unwrap(), None);

    let mut renamed = u.clone();
    renamed.username = "gina2".into();
    assert!(
        store
            .update_user(&renamed, EndSessions::None)
            .await
            .is_err()
    );
    assert_eq!(store.get_user(&u.id).await.unwrap(), Some(u));
}

/// Issue 10, item 1: a write based on a stale read (a password change that hashed
/// while an admin removed a role) must not put back what the other write removed.
pub async fn update_user_is_compare_and_set_on_the_security_version(store: Arc<dyn Store>) {
    let mut read_by_slow_writer = stored_user(&store, "gwen").await;
    read_by_slow_writer.roles = vec!["admin".into()];
    store
        .update_user(&read_by_slow_writer, EndSessions::None)
        .await
        .unwrap();
    read_by_slow_writer.security_version = 1;

    let mut admin_copy = read_by_slow_writer.clone();
    admin_copy.roles.clear();
    admin_copy.disabled = true;
    store
        .update_user(&admin_copy, EndSessions::None)
        .await
        .unwrap();

    let mut stale = read_by_slow_writer.clone();
    stale.password_hash = "$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3".into();
    assert!(matches!(
        store.update_user(&stale, EndSessions::AllBut(None)).await,
        Err(StoreError::Conflict)
    ));
    let stored = store.get_user(&stale.id).await.unwrap().unwrap();
    assert_eq!(stored.security_version, 2);
    assert!(stored.roles.is_empty() && stored.disabled, "{stored:?}");
    assert_eq!(stored.password_hash, read_by_slow_writer.password_hash);
}

pub async fn update_user_ends_sessions_in_the_same_write(store: Arc<dyn Store>) {
    let u = stored_user(&store, "rita").await;
    let other = stored_user(&store, "ruth").await;
    let t = now();
    let sessions: Vec<_> = (0..3).map(|_| session(&u.id, t, 3600, 3600)).collect();
    for s in &sessions {
        store
            .create_session(
                s,
                &hash("x"),
                0,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                t,
            )
            .await
            .unwrap();
    }
    let theirs = session(&other.id, t, 3600, 3600);
    store
        .create_session(
            &theirs,
            &hash("y"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    let done = store
        .update_user(&u, EndSessions::AllBut(Some(&sessions[0].sid)))
        .await
        .unwrap();
    assert_eq!(
        done,
        UserUpdate {
            security_version: 1,
            sessions_ended: 2
        }
    );
    let left: Vec<_> = all_sessions(&*store, &u.id, t)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(left, vec![sessions[0].sid.clone()]);
    let mut u = u;
    u.security_version = 1;
    let done = store
        .update_user(&u, EndSessions::AllBut(None))
        .await
        .unwrap();
    assert_eq!(done.sessions_ended, 1);
    assert!(all_sessions(&*store, &u.id, t).await.unwrap().is_empty());
    assert!(
        store
            .load_principal(&other.id, &theirs.sid, t)
            .await
            .unwrap()
            .is_some(),
        "other users untouched"
    );
}

/// Issue 10, item 2: a login that checked the password before a password change, a
/// disable or a delete must not open a session after it.
pub async fn create_session_requires_the_checked_user_version(store: Arc<dyn Store>) {
    let t = now();
    let mut u = stored_user(&store, "vera").await;
    let s = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &s,
            &hash("a"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();

    u.password_hash = "$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3".into();
    store.update_user(&u, EndSessions::None).await.unwrap();
    let late = session(&u.id, t, 3600, 3600);
    assert!(matches!(
        store
            .create_session(
                &late,
                &hash("b"),
                0,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                t
            )
            .await,
        Err(StoreError::Conflict)
    ));
    store
        .create_session(
            &late,
            &hash("b"),
            1,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();

    u.security_version = 1;
    u.disabled = true;
    store.update_user(&u, EndSessions::None).await.unwrap();
    let while_disabled = session(&u.id, t, 3600, 3600);
    assert!(matches!(
        store
            .create_session(
                &while_disabled,
                &hash("c"),
                2,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                t
            )
            .await,
        Err(StoreError::Conflict)
    ));

    assert!(store.delete_user(&u.id).await.unwrap());
    let after_delete = session(&u.id, t, 3600, 3600);
    assert!(matches!(
        store
            .create_session(
                &after_delete,
                &hash("d"),
                2,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                t
            )
            .await,
        Err(StoreError::Conflict)
    ));
    for refused in [&while_disabled, &after_delete] {
        assert!(
            store
                .load_principal(&u.id, &refused.sid, t)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(all_sessions(&*store, &u.id, t).await.unwrap().is_empty());
}

pub async fn delete_user_removes_claim_and_sessions(store: Arc<dyn Store>) {
    let u = stored_user(&store, "hank").await;
    let s = session(&u.id, now(), 3600, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            now(),
        )
        .await
        .unwrap();
    assert!(store.delete_user(&u.id).await.unwrap());
    assert!(!store.delete_user(&u.id).await.unwrap());
    assert_eq!(store.get_user(&u.id).await.unwrap(), None);
    assert_eq!(
        store.load_principal(&u.id, &s.sid, now()).await.unwrap(),
        None
    );
    assert!(store.list_users().await.unwrap().is_empty());
    // The name is free again.
    stored_user(&store, "Hank").await;
}

pub async fn roles_put_and_list(store: Arc<dyn Store>) {
    let admin = Role {
        name: "admin".into(),
        permissions: vec!["redauth:admin".into()],
    };
    let viewer = Role {
        name: "viewer".into(),
        permissions: vec![],
    };
    store.put_role(&admin).await.unwrap();
    store.put_role(&viewer).await.unwrap();
    let redefined = Role {
        name: "viewer".into(),
        permissions: vec!["docs:read".into()],
    };
    store.put_role(&redefined).await.unwrap();
    let mut roles = store.list_roles().await.unwrap();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(roles, vec![admin, redefined]);
}

pub async fn load_principal_returns_session_user_and_held_roles(store: Arc<dyn Store>) {
    let reader = Role {
        name: "reader".into(),
        permissions: vec!["docs:read".into()],
    };
    let other = Role {
        name: "other".into(),
        permissions: vec!["x:y".into()],
    };
    store.put_role(&reader).await.unwrap();
    store.put_role(&other).await.unwrap();
    let mut u = user("iris");
    u.roles = vec!["reader".into(), "undefined-role".into()];
    store.create_user(&u).await.unwrap();
    let t = now();
    let s = session(&u.id, t, 3600, 600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    let rec = store
        .load_principal(&u.id, &s.sid, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.session, s);
    assert_eq!(rec.user, u);
    assert_eq!(rec.roles, vec![reader]);
}

pub async fn load_principal_refuses_other_users_and_dead_sessions(store: Arc<dyn Store>) {
    let a = stored_user(&store, "jack").await;
    let b = stored_user(&store, "jill").await;
    let t = now();
    let s = session(&a.id, t, 3600, 600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(
        store
            .load_principal(&b.id, &s.sid, t)
            .await
            .unwrap()
            .is_none(),
        "another user's sid"
    );
    assert!(
        store
            .load_principal(&a.id, &random_id().unwrap(), t)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .load_principal(&a.id, &s.sid, t + 599)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .load_principal(&a.id, &s.sid, t + 600)
            .await
            .unwrap()
            .is_none(),
        "idle expiry"
    );
    let long_idle = session(&a.id, t, 100, 100);
    store
        .create_session(
            &long_idle,
            &hash("t1"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(
        store
            .load_principal(&a.id, &long_idle.sid, t + 100)
            .await
            .unwrap()
            .is_none(),
        "absolute expiry"
    );
}

pub async fn rotation_then_grace_replay_then_reuse_revokes(store: Arc<dyn Store>) {
    let u = stored_user(&store, "kate").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();

    let RotateOutcome::Rotated(rec) = store
        .rotate_refresh(&rotate(&s, "t0", "t1", t + 1))
        .await
        .unwrap()
    else {
        panic!("current token must rotate")
    };
    assert_eq!(rec.session.refresh_generation, 1);
    assert_eq!(rec.user.id, u.id);
    // Same old token from the same client (a second tab): same successor, no new
    // generation.
    let RotateOutcome::Replayed(rec) = store
        .rotate_refresh(&rotate(&s, "t0", "t1", t + 5))
        .await
        .unwrap()
    else {
        panic!("replay by the rotating client")
    };
    assert_eq!(rec.session.refresh_generation, 1);
    // Issue 10, item 4: another client inside the window gets nothing and changes
    // nothing (it may be the user behind a second address, or a thief riding the
    // window)...
    assert_eq!(
        store
            .rotate_refresh(&rotate_from("thief", &s, "t0", "t1", t + 5))
            .await
            .unwrap(),
        RotateOutcome::ForeignReplay
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t + 5)
            .await
            .unwrap()
            .is_some()
    );
    // ...and after the window it is theft. The session is gone for every token.
    assert_eq!(
        store
            .rotate_refresh(&rotate_from("thief", &s, "t0", "t1", t + 12))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t + 12)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .rotate_refresh(&rotate(&s, "t1", "t2", t + 13))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(
        all_sessions(&*store, &u.id, t + 13)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn grace_window_is_anchored_to_first_rotation(store: Arc<dyn Store>) {
    let u = stored_user(&store, "liam").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // Presentations inside the window, by this client or another, do not move it.
    for dt in [3, 6, 9, 10] {
        assert!(
            matches!(
                store
                    .rotate_refresh(&rotate(&s, "t0", "t1", t + dt))
                    .await
                    .unwrap(),
                RotateOutcome::Replayed(_)
            ),
            "replay at +{dt}"
        );
        assert_eq!(
            store
                .rotate_refresh(&rotate_from("other", &s, "t0", "t1", t + dt))
                .await
                .unwrap(),
            RotateOutcome::ForeignReplay,
            "foreign replay at +{dt}"
        );
    }
    assert_eq!(
        store
            .rotate_refresh(&rotate_from("other", &s, "t0", "t1", t + 11))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
}

pub async fn rotation_extends_idle_but_never_past_absolute(store: Arc<dyn Store>) {
    let u = stored_user(&store, "mona").await;
    let t = now();
    let s = session(&u.id, t, 5000, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    let RotateOutcome::Rotated(rec) = store
        .rotate_refresh(&rotate(&s, "t0", "t1", t + 1000))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(rec.session.idle_expiry, t + 4600);
    assert_eq!(rec.session.last_seen, t + 1000);
    let RotateOutcome::Rotated(rec) = store
        .rotate_refresh(&rotate(&s, "t1", "t2", t + 3000))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        rec.session.idle_expiry,
        t + 5000,
        "capped by the absolute expiry"
    );
    assert_eq!(rec.session.refresh_generation, 2);
    assert!(
        store
            .load_principal(&u.id, &s.sid, t + 4999)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t + 5000)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn rotation_of_unknown_or_expired_session_is_invalid(store: Arc<dyn Store>) {
    let u = stored_user(&store, "nina").await;
    let t = now();
    let unknown = session(&u.id, t, 100, 100);
    assert_eq!(
        store
            .rotate_refresh(&rotate(&unknown, "t0", "t1", t))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    let s = session(&u.id, t, 3600, 600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t + 600))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(
        all_sessions(&*store, &u.id, t).await.unwrap().is_empty(),
        "expired session was removed"
    );
}

pub async fn concurrent_rotations_of_one_token_form_one_lineage(store: Arc<dyn Store>) {
    let u = stored_user(&store, "omar").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    let tasks = (0..20).map(|_| {
        let store = store.clone();
        let req = rotate(&s, "t0", "t1", t + 1);
        tokio::spawn(async move { store.rotate_refresh(&req).await.unwrap() })
    });
    let outcomes: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Rotated(_)))
        .count();
    let replayed = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Replayed(_)))
        .count();
    assert_eq!((rotated, replayed), (1, 19), "{outcomes:?}");
    let rec = store
        .load_principal(&u.id, &s.sid, t + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.session.refresh_generation, 1);
    // The lineage continues from the one successor.
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t1", "t2", t + 2))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
}

pub async fn list_sessions_prunes_dead_sessions(store: Arc<dyn Store>) {
    let u = stored_user(&store, "pia").await;
    let t = now();
    let short = session(&u.id, t, 100, 100);
    let long = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &short,
            &hash("a"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    store
        .create_session(
            &long,
            &hash("b"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t + 1,
        )
        .await
        .unwrap();
    let listed: Vec<_> = all_sessions(&*store, &u.id, t + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(listed, vec![short.sid.clone(), long.sid.clone()]);
    let listed = all_sessions(&*store, &u.id, t + 100).await.unwrap();
    assert_eq!(listed, vec![long.clone()]);
    // Pruned for good, not only filtered: still gone when asked about an earlier time.
    assert_eq!(
        all_sessions(&*store, &u.id, t + 1).await.unwrap(),
        vec![long]
    );
    assert!(
        all_sessions(&*store, &random_id().unwrap(), t)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn revoke_session_with_and_without_proof(store: Arc<dyn Store>) {
    let u = stored_user(&store, "quin").await;
    let t = now();
    let s = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(
        !store
            .revoke_session(&u.id, &s.sid, Some(&hash("forged")))
            .await
            .unwrap()
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .revoke_session(&u.id, &s.sid, Some(&hash("t0")))
            .await
            .unwrap()
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store.revoke_session(&u.id, &s.sid, None).await.unwrap(),
        "idempotent"
    );

    let s2 = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &s2,
            &hash("u0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    store
        .rotate_refresh(&rotate(&s2, "u0", "u1", t))
        .await
        .unwrap();
    assert!(
        store
            .revoke_session(&u.id, &s2.sid, Some(&hash("u0")))
            .await
            .unwrap(),
        "previous token is proof too"
    );
    let s3 = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &s3,
            &hash("v0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(store.revoke_session(&u.id, &s3.sid, None).await.unwrap());
    assert!(all_sessions(&*store, &u.id, t).await.unwrap().is_empty());
}

pub async fn replay_with_another_successor_is_reuse(store: Arc<dyn Store>) {
    let u = stored_user(&store, "sam").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // Inside the window, but claiming a successor that is not the current token.
    assert_eq!(
        store
            .rotate_refresh(&rotate(&s, "t0", "other", t + 1))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t + 1)
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue 10, item 10: a client whose reply was lost (a 503 after the rotation was
/// applied, a node killed mid-request) retries the old token, after any grace window,
/// and gets its successor; once it has used the successor, the old token is theft.
pub async fn same_client_gets_its_successor_until_it_is_used(store: Arc<dyn Store>) {
    let u = stored_user(&store, "walt").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 86_400);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t + 3000))
            .await
            .unwrap(),
        RotateOutcome::Replayed(_)
    ));
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t1", "t2", t + 3001))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert_eq!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t + 3002))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
}

/// Issue 10, item 3: uid and sid are not secrets; a well-formed token this session
/// never issued must not end it, and must get the same answer as for no session.
pub async fn made_up_token_for_a_real_session_changes_nothing(store: Arc<dyn Store>) {
    let u = stored_user(&store, "xena").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    for at in [t + 1, t + 100] {
        for client in [TAB, "attacker"] {
            assert_eq!(
                store
                    .rotate_refresh(&rotate_from(client, &s, "made-up", "made-up-next", at))
                    .await
                    .unwrap(),
                RotateOutcome::Invalid
            );
        }
    }
    let unknown = session(&u.id, t, 86_400, 3600);
    assert_eq!(
        store
            .rotate_refresh(&rotate(&unknown, "made-up", "made-up-next", t + 1))
            .await
            .unwrap(),
        RotateOutcome::Invalid,
        "same answer as for a session that does not exist"
    );
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&s, "t1", "t2", t + 101))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
}

pub async fn old_token_from_the_history_is_reuse(store: Arc<dyn Store>) {
    let u = stored_user(&store, "yara").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    for (i, dt) in (0..3).zip(1..) {
        let (p, n) = (format!("t{i}"), format!("t{}", i + 1));
        assert!(matches!(
            store
                .rotate_refresh(&rotate(&s, &p, &n, t + dt))
                .await
                .unwrap(),
            RotateOutcome::Rotated(_)
        ));
    }
    assert_eq!(
        store
            .rotate_refresh(&rotate(&s, "t0", "t1", t + 10))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t + 10)
            .await
            .unwrap()
            .is_none()
    );
}

/// The history is bounded: a token older than it is refused without a verdict.
pub async fn token_history_is_bounded(store: Arc<dyn Store>) {
    let u = stored_user(&store, "zora").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    // Hashes as long as real ones, so that the stored prefixes are what is compared.
    let token = |i: usize| format!("{i:-<43}");
    store
        .create_session(
            &s,
            &hash(&token(0)),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    let rotations = REFRESH_HISTORY_LEN + 3;
    for i in 0..rotations {
        assert!(matches!(
            store
                .rotate_refresh(&rotate(&s, &token(i), &token(i + 1), t + 1))
                .await
                .unwrap(),
            RotateOutcome::Rotated(_)
        ));
    }
    // token(rotations) is current, token(rotations - 1) previous; the history holds
    // the REFRESH_HISTORY_LEN before that.
    let oldest_kept = rotations - 1 - REFRESH_HISTORY_LEN;
    for forgotten in 0..oldest_kept {
        assert_eq!(
            store
                .rotate_refresh(&rotate(&s, &token(forgotten), &token(forgotten + 1), t + 2))
                .await
                .unwrap(),
            RotateOutcome::Invalid,
            "token {forgotten}"
        );
    }
    assert_eq!(
        store
            .rotate_refresh(&rotate(
                &s,
                &token(oldest_kept),
                &token(oldest_kept + 1),
                t + 2
            ))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
}

pub async fn one_user_cannot_revoke_another_users_session(store: Arc<dyn Store>) {
    let owner = stored_user(&store, "tess").await;
    let other = stored_user(&store, "theo").await;
    let t = now();
    let s = session(&owner.id, t, 3600, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(!store.revoke_session(&other.id, &s.sid, None).await.unwrap());
    let done = store
        .update_user(&other, EndSessions::AllBut(None))
        .await
        .unwrap();
    assert_eq!(done.sessions_ended, 0);
    assert!(
        store
            .load_principal(&owner.id, &s.sid, t)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn an_empty_proof_revokes_nothing(store: Arc<dyn Store>) {
    let u = stored_user(&store, "uma").await;
    let t = now();
    let s = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    assert!(
        !store
            .revoke_session(&u.id, &s.sid, Some(&hash("")))
            .await
            .unwrap()
    );
    assert!(
        store
            .load_principal(&u.id, &s.sid, t)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn rotation_charges_its_rate_limit_in_the_same_call(store: Arc<dyn Store>) {
    use redauth_core::rate_limit::RateLimit;
    use redauth_core::store::RateCharge;
    let u = stored_user(&store, "vera").await;
    let t = now();
    let s = session(&u.id, t, 86_400, 3600);
    store
        .create_session(
            &s,
            &hash("t0"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    let charge = |key: &str| {
        Some(RateCharge {
            key: key.into(),
            limit: RateLimit {
                burst: 2,
                interval_secs: 60,
            },
            now_ms: t * 1000,
        })
    };
    let charged = |presented: &str, successor: &str, key: &str| RotateRequest {
        charge: charge(key),
        ..rotate(&s, presented, successor, t)
    };
    assert!(matches!(
        store
            .rotate_refresh(&charged("t0", "t1", "ip-a"))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(matches!(
        store
            .rotate_refresh(&charged("t1", "t2", "ip-a"))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert_eq!(
        store
            .rotate_refresh(&charged("t2", "t3", "ip-a"))
            .await
            .unwrap(),
        RotateOutcome::RateLimited {
            retry_after_secs: 60
        }
    );
    // Refused before anything was read or rotated: t2 is still current and usable.
    let RotateOutcome::Rotated(rec) = store
        .rotate_refresh(&charged("t2", "t3", "ip-b"))
        .await
        .unwrap()
    else {
        panic!("another key has its own budget and t2 was untouched")
    };
    assert_eq!(rec.session.refresh_generation, 3);
}

/// `n` sessions of `user_id` created one second apart from `t`, each living an hour:
/// the first is the oldest by creation and by absolute expiry.
async fn sessions_in_order(
    store: &Arc<dyn Store>,
    user_id: &str,
    t: UnixTime,
    n: i64,
    cap: u32,
) -> Vec<Session> {
    let mut out = Vec::new();
    for i in 0..n {
        let s = session(user_id, t + i, 3600, 3600);
        store
            .create_session(&s, &hash(&format!("c{i}")), 0, cap, t + i)
            .await
            .unwrap();
        out.push(s);
    }
    out
}

fn sids(sessions: &[Session]) -> Vec<String> {
    sessions.iter().map(|s| s.sid.clone()).collect()
}

pub async fn create_session_past_the_cap_ends_the_oldest(store: Arc<dyn Store>) {
    let u = stored_user(&store, "cappy").await;
    let t = now();
    let made = sessions_in_order(&store, &u.id, t, 3, 3).await;
    let fourth = session(&u.id, t + 3, 3600, 3600);
    let ended = store
        .create_session(&fourth, &hash("c3"), 0, 3, t + 3)
        .await
        .unwrap();
    assert_eq!(ended, vec![made[0].sid.clone()], "the oldest one ends");
    assert_eq!(
        store
            .load_principal(&u.id, &made[0].sid, t + 3)
            .await
            .unwrap(),
        None,
        "its principal no longer loads"
    );
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&made[0], "c0", "c0'", t + 3))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    ));
    let mut kept = made[1..].to_vec();
    kept.push(fourth.clone());
    assert_eq!(
        sids(&all_sessions(&*store, &u.id, t + 3).await.unwrap()),
        sids(&kept)
    );
    for s in &kept {
        assert!(
            store
                .load_principal(&u.id, &s.sid, t + 3)
                .await
                .unwrap()
                .is_some()
        );
    }

    // Only live sessions count: one that died idle makes room without ending another.
    let idle_dead = session(&u.id, t + 4, 3600, 1);
    let ended = store
        .create_session(&idle_dead, &hash("c4"), 0, 4, t + 4)
        .await
        .unwrap();
    assert!(ended.is_empty(), "4 live under a cap of 4: {ended:?}");
    let fresh = session(&u.id, t + 10, 3600, 3600);
    let ended = store
        .create_session(&fresh, &hash("c5"), 0, 4, t + 10)
        .await
        .unwrap();
    assert!(ended.is_empty(), "the idle-dead one made room: {ended:?}");

    // A lowered cap ends every session past it at once (oldest first), never the new one.
    let last = session(&u.id, t + 11, 3600, 3600);
    let ended = store
        .create_session(&last, &hash("c6"), 0, 1, t + 11)
        .await
        .unwrap();
    assert_eq!(
        ended,
        vec![
            made[1].sid.clone(),
            made[2].sid.clone(),
            fourth.sid.clone(),
            fresh.sid.clone()
        ]
    );
    assert_eq!(
        all_sessions(&*store, &u.id, t + 11).await.unwrap(),
        vec![last]
    );
}

pub async fn list_sessions_pages_cover_every_live_session_once(store: Arc<dyn Store>) {
    let u = stored_user(&store, "pager").await;
    let t = now();
    let mut made = sessions_in_order(&store, &u.id, t, 5, 100).await;
    // Three created in the same second: equal absolute expiry, ordered by id.
    for i in 0..3 {
        let s = session(&u.id, t + 5, 3600, 3600);
        store
            .create_session(&s, &hash(&format!("tie{i}")), 0, 100, t + 5)
            .await
            .unwrap();
        made.push(s);
    }
    // One that will be dead (idle) when listed: pruned, never listed.
    let dying = session(&u.id, t + 6, 3600, 2);
    store
        .create_session(&dying, &hash("dying"), 0, 100, t + 6)
        .await
        .unwrap();
    made.sort_by(|a, b| (a.absolute_expiry, &a.sid).cmp(&(b.absolute_expiry, &b.sid)));
    let at = t + 8;

    let mut listed = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 3,
    };
    let mut calls = 0;
    loop {
        let got = store.list_sessions(&u.id, at, &page).await.unwrap();
        calls += 1;
        assert!(got.sessions.len() <= 3, "page of {}", got.sessions.len());
        listed.extend(got.sessions);
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        sids(&listed),
        sids(&made),
        "every live session once, in order"
    );
    assert!(calls >= 3, "{calls} pages of at most 3 for 8 sessions");
    assert!(!listed.iter().any(|s| s.sid == dying.sid));

    // A session ending between two pages, the cursor's own included, neither skips nor
    // repeats another.
    let first = store
        .list_sessions(
            &u.id,
            at,
            &PageRequest {
                after: None,
                limit: 4,
            },
        )
        .await
        .unwrap();
    let cursor = first.next.clone().unwrap();
    assert_eq!(cursor.sid, made[3].sid);
    assert!(
        store
            .revoke_session(&u.id, &made[3].sid, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_session(&u.id, &made[1].sid, None)
            .await
            .unwrap()
    );
    let mut rest = Vec::new();
    let mut page = PageRequest {
        after: Some(cursor),
        limit: 4,
    };
    loop {
        let got = store.list_sessions(&u.id, at, &page).await.unwrap();
        rest.extend(got.sessions);
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(sids(&rest), sids(&made[4..]));

    // A limit out of range is clamped, never unbounded or empty.
    let one = store
        .list_sessions(
            &u.id,
            at,
            &PageRequest {
                after: None,
                limit: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(one.sessions.len(), 1);
    assert!(one.next.is_some());
    let unknown = store
        .list_sessions(
            &random_id().unwrap(),
            at,
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        unknown,
        SessionPage {
            sessions: vec![],
            next: None
        }
    );
}

pub async fn session_cursor_round_trips_and_refuses_anything_else(_store: Arc<dyn Store>) {
    let c = SessionCursor {
        absolute_expiry: 1_700_000_000,
        sid: random_id().unwrap(),
    };
    assert_eq!(c.to_string().parse::<SessionCursor>().unwrap(), c);
    for bad in [
        "",
        "1700000000",
        "x.AAAAAAAAAAAAAAAAAAAAAA",
        "1.short",
        "1.AAAAAAAAAAAAAAAAAAAA:A",
        "1.AAAAAAAAAAAAAAAAAAAAAA.x",
    ] {
        assert!(bad.parse::<SessionCursor>().is_err(), "{bad:?}");
    }
}
