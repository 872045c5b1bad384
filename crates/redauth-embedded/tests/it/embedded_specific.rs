//! What the conformance suite cannot see: the file outlives the process, it is locked
//! against a second opener, and dead sessions are reclaimed in the background.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use redauth_core::clock::{Clock, ManualClock, SystemClock, UnixTime};
use redauth_core::store::{RotateOutcome, RotateRequest};
use redauth_core::token::refresh::TokenHash;
use redauth_core::{Role, Session, Store, StoreError};
use redauth_embedded::{DATA_FILE, EmbeddedStore};
use redauth_testkit::conformance::{session, user};

use crate::temp_dir::TempDir;

fn hash(s: &str) -> TokenHash {
    TokenHash(s.into())
}

fn rotate(s: &Session, presented: &str, successor: &str, now: UnixTime) -> RotateRequest {
    RotateRequest {
        client_binding: "test".into(),
        user_id: s.user_id.clone(),
        session_id: s.sid.clone(),
        presented: hash(presented),
        successor: hash(successor),
        now,
        grace_secs: 10,
        idle_secs: 3600,
        charge: None,
    }
}

fn assert_in_use(result: Result<EmbeddedStore, StoreError>, dir: &Path) {
    let expected = format!(
        "data file {} is already in use by another redauth process",
        dir.join(DATA_FILE).display()
    );
    match result {
        Err(StoreError::Unavailable { message, .. }) => assert_eq!(message, expected),
        other => panic!("expected the in-use error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("not").join("yet").join("there");
    let t = SystemClock.now();
    let role = Role {
        name: "reader".into(),
        permissions: vec!["docs:read".into()],
    };
    let mut u = user("Uma");
    u.roles = vec!["reader".into()];
    let s = session(&u.id, t, 86_400, 3600);
    {
        let store = EmbeddedStore::open(&dir).unwrap();
        store.put_role(&role).await.unwrap();
        store.create_user(&u).await.unwrap();
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
    }

    let store = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(store.get_user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        store.find_user_by_username("uma").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(store.list_roles().await.unwrap(), vec![role.clone()]);
    let rec = store
        .load_principal(&u.id, &s.sid, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.session, s);
    assert_eq!(rec.roles, vec![role.clone()]);
    let RotateOutcome::Rotated(rec) = store
        .rotate_refresh(&rotate(&s, "t0", "t1", t + 1))
        .await
        .unwrap()
    else {
        panic!("the token stored before the restart must rotate")
    };
    assert_eq!(rec.session.refresh_generation, 1);
    let rotated = rec.session;
    drop(store);

    // The rotation state (previous token, its time) was persisted too.
    let store = EmbeddedStore::open(&dir).unwrap();
    let RotateOutcome::Replayed(rec) = store
        .rotate_refresh(&rotate(&s, "t0", "t1", t + 2))
        .await
        .unwrap()
    else {
        panic!("replay within the grace window after a restart")
    };
    assert_eq!(rec.session, rotated);
    assert_eq!(
        redauth_testkit::conformance::all_sessions(&store, &u.id, t + 2)
            .await
            .unwrap(),
        vec![rotated]
    );
}

#[test]
fn a_second_open_fails_until_the_first_is_dropped() {
    let tmp = TempDir::new();
    let first = EmbeddedStore::open(tmp.path()).unwrap();
    assert_in_use(EmbeddedStore::open(tmp.path()), tmp.path());
    drop(first);
    EmbeddedStore::open(tmp.path()).unwrap();
}

const PROBE_DIR: &str = "REDAUTH_EMBEDDED_PROBE_DIR";
const PROBE_EXPECT: &str = "REDAUTH_EMBEDDED_PROBE_EXPECT";

/// Runs [`open_probe_for_child_process`] in a new process of this test binary.
fn probe_in_child(dir: &Path, expect: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "embedded_specific::open_probe_for_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_DIR, dir)
        .env(PROBE_EXPECT, expect)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child probe ({expect}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_second_process_cannot_open_the_same_file() {
    let tmp = TempDir::new();
    let store = EmbeddedStore::open(tmp.path()).unwrap();
    probe_in_child(tmp.path(), "in-use");
    drop(store);
    probe_in_child(tmp.path(), "free");
}

#[test]
#[ignore = "run in a child process by a_second_process_cannot_open_the_same_file"]
fn open_probe_for_child_process() {
    let (Some(dir), Ok(expect)) = (std::env::var_os(PROBE_DIR), std::env::var(PROBE_EXPECT)) else {
        return; // run by hand: there is no file to probe
    };
    let dir = Path::new(&dir);
    match expect.as_str() {
        "in-use" => assert_in_use(EmbeddedStore::open(dir), dir),
        "free" => drop(EmbeddedStore::open(dir).unwrap()),
        other => panic!("unknown probe expectation {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_expired_deletes_only_dead_sessions() {
    let tmp = TempDir::new();
    let store = EmbeddedStore::open(tmp.path()).unwrap();
    let u = user("sara");
    let v = user("sven");
    store.create_user(&u).await.unwrap();
    store.create_user(&v).await.unwrap();
    let t = SystemClock.now();
    let absolute_dies = session(&u.id, t, 100, 100);
    let idle_dies = session(&u.id, t, 3600, 50);
    let live = session(&u.id, t, 3600, 3600);
    // Would die at t+60, but a refresh at t+30 moves its idle expiry to t+3600: the
    // sweeper must follow the move.
    let refreshed = session(&u.id, t, 3600, 60);
    let theirs = session(&v.id, t, 100, 100);
    for (s, h) in [
        (&absolute_dies, "a"),
        (&idle_dies, "b"),
        (&live, "c"),
        (&refreshed, "d"),
        (&theirs, "e"),
    ] {
        store
            .create_session(
                s,
                &hash(h),
                0,
                redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
                t,
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&refreshed, "d", "d1", t + 30))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));

    assert_eq!(store.sweep_expired(t + 49).await.unwrap(), 0);
    assert_eq!(store.sweep_expired(t + 100).await.unwrap(), 3);
    assert_eq!(
        store.sweep_expired(t + 100).await.unwrap(),
        0,
        "index pruned"
    );

    // Deleted, not only hidden: gone even when asked about a moment they were alive.
    for s in [&absolute_dies, &idle_dies, &theirs] {
        assert_eq!(
            store
                .load_principal(&s.user_id, &s.sid, t + 1)
                .await
                .unwrap(),
            None,
            "{}",
            s.sid
        );
    }
    assert!(
        redauth_testkit::conformance::all_sessions(&store, &v.id, t + 1)
            .await
            .unwrap()
            .is_empty()
    );
    let mut listed: Vec<_> = redauth_testkit::conformance::all_sessions(&store, &u.id, t + 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    listed.sort();
    let mut want = vec![live.sid.clone(), refreshed.sid.clone()];
    want.sort();
    assert_eq!(listed, want);
    for s in [&live, &refreshed] {
        assert!(
            store
                .load_principal(&u.id, &s.sid, t + 100)
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sweeper_sweeps_and_ends_with_the_store() {
    let tmp = TempDir::new();
    let store = Arc::new(EmbeddedStore::open(tmp.path()).unwrap());
    let clock = Arc::new(ManualClock::starting_now());
    let t = clock.now();
    let u = user("tess");
    store.create_user(&u).await.unwrap();
    let dying = session(&u.id, t, 3600, 60);
    let staying = session(&u.id, t, 3600, 3600);
    store
        .create_session(
            &dying,
            &hash("a"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    store
        .create_session(
            &staying,
            &hash("b"),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            t,
        )
        .await
        .unwrap();
    clock.advance(60);

    // A zero period is raised to the minimum instead of making tokio panic.
    let sweeper = store.spawn_sweeper(clock.clone(), Duration::ZERO).unwrap();
    // The first sweep runs at once. Asking about `t`, when both were alive, tells a
    // deleted session from a merely expired one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store
        .load_principal(&u.id, &dying.sid, t)
        .await
        .unwrap()
        .is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "sweeper never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store
            .load_principal(&u.id, &staying.sid, t)
            .await
            .unwrap()
            .is_some()
    );

    drop(store);
    tokio::time::timeout(Duration::from_secs(10), sweeper)
        .await
        .expect("the sweeper ends once the store is dropped")
        .unwrap();
    EmbeddedStore::open(tmp.path()).expect("the sweeper no longer holds the file");
}

#[test]
fn spawn_sweeper_outside_a_runtime_spawns_nothing() {
    let tmp = TempDir::new();
    let store = Arc::new(EmbeddedStore::open(tmp.path()).unwrap());
    assert!(
        store
            .spawn_sweeper(Arc::new(SystemClock), Duration::from_secs(60))
            .is_none()
    );
}

#[cfg(unix)]
#[test]
fn a_new_directory_and_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new();
    let dir = tmp.path().join("data");
    let store = EmbeddedStore::open(&dir).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(store.path()), 0o600);
}

/// Issue 11, item 10 (emails): a user stored before the `emails` table claims its
/// address on its next write, and a claim whose holder is gone is free (the checks are
/// in the testkit, shared with the Redis store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_from_before_email_claims_claim_theirs_on_write_and_orphans_are_free() {
    use redauth_core::model::email_skeleton;
    const EMAILS: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("emails");
    const USERS: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("users");
    let tmp = TempDir::new();
    let dir = tmp.path().join("data");
    let (old, gone) = (user("olga"), user("gone"));
    {
        let store = EmbeddedStore::open(&dir).unwrap();
        store.create_user(&old).await.unwrap();
        store.create_user(&gone).await.unwrap();
    }
    {
        // As an older redauth leaves it: no claim for olga; gone deleted, its claim left.
        let db = redb::Database::create(dir.join(DATA_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut emails = txn.open_table(EMAILS).unwrap();
            let skeleton = email_skeleton(&old.email);
            assert!(emails.remove(skeleton.as_str()).unwrap().is_some());
            let mut users = txn.open_table(USERS).unwrap();
            assert!(users.remove(gone.id.as_str()).unwrap().is_some());
        }
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&dir).unwrap();
    redauth_testkit::conformance::email_claims_from_before_are_taken_on_write_and_orphans_are_free(
        &store, &old, &gone,
    )
    .await;
}
