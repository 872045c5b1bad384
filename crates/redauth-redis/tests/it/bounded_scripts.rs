//! Issue 11, item 6: no script walks a user's whole session index. A user whose index
//! holds thousands of ids (written straight into Redis, as data from before the
//! per-user cap) is listed, logged in and logged out everywhere in calls that each
//! touch a bounded number of sessions, counted from `INFO commandstats` (commands run
//! by scripts are counted there too).

use std::collections::BTreeMap;

use redauth_core::Store;
use redauth_core::ids::random_id;
use redauth_core::store::{EndSessions, PageRequest};
use redauth_core::token::refresh::TokenHash;
use redauth_redis::keys::Keys;
use redauth_redis::{RedisConfig, RedisStore};
use redauth_testkit::RedisServer;
use redauth_testkit::conformance::{all_sessions, session, user};

const PREFIX: &str = "b:";
/// Sessions in the index from before the cap.
const LEGACY: usize = 5_000;
/// The store's per-call batch in these tests (the default is 10,000).
const BATCH: u32 = 100;

fn now() -> i64 {
    redauth_core::Clock::now(&redauth_core::SystemClock)
}

fn store_on(server: &RedisServer) -> RedisStore {
    let mut config = RedisConfig::new(&server.url(), PREFIX);
    config.session_batch = BATCH;
    RedisStore::connect(&config).unwrap()
}

/// Writes `n` live sessions of `uid` the way `create_session` did before the cap (no
/// `ver` field), scored one second apart from `t + 3600`. Returns their ids, oldest
/// first.
async fn seed_legacy_sessions(server: &RedisServer, uid: &str, t: i64, n: usize) -> Vec<String> {
    let keys = Keys::new(PREFIX);
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut sids = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(1000) {
        let mut pipe = redis::pipe();
        for i in chunk * 1000..((chunk + 1) * 1000).min(n) {
            let sid = random_id().unwrap();
            let abs = t + 3600 + i64::try_from(i).unwrap();
            let fields: [(&str, String); 13] = [
                ("uid", uid.to_owned()),
                ("created", t.to_string()),
                ("last_seen", t.to_string()),
                ("abs_exp", abs.to_string()),
                ("idle_exp", (t + 3600).to_string()),
                ("ip", String::new()),
                ("ua", "legacy".into()),
                ("gen", "0".into()),
                ("cur", format!("h{i}")),
                ("prev", String::new()),
                ("rot_at", "0".into()),
                ("bind", String::new()),
                ("old", String::new()),
            ];
            pipe.hset_multiple(keys.session(uid, &sid), &fields)
                .ignore()
                .zadd(keys.user_sessions(uid), &sid, abs)
                .ignore();
            sids.push(sid);
        }
        let () = pipe.query_async(&mut con).await.unwrap();
    }
    sids
}

async fn index_len(server: &RedisServer, uid: &str) -> usize {
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("ZCARD")
        .arg(Keys::new(PREFIX).user_sessions(uid))
        .query_async(&mut con)
        .await
        .unwrap()
}

fn calls_since(server: &RedisServer, before: &BTreeMap<String, u64>, command: &str) -> u64 {
    server.command_calls().get(command).copied().unwrap_or(0)
        - before.get(command).copied().unwrap_or(0)
}

/// Script calls, whichever way the client sent them.
fn script_calls_since(server: &RedisServer, before: &BTreeMap<String, u64>) -> u64 {
    calls_since(server, before, "evalsha") + calls_since(server, before, "eval")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_huge_index_reads_one_page_per_call() {
    let server = RedisServer::start();
    let store = store_on(&server);
    let u = user("hoarder");
    store.create_user(&u).await.unwrap();
    let t = now();
    let sids = seed_legacy_sessions(&server, &u.id, t, LEGACY).await;

    let before = server.command_calls();
    let page = store
        .list_sessions(
            &u.id,
            t,
            &PageRequest {
                after: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.sessions.len(), 50);
    assert_eq!(page.sessions[0].sid, sids[0], "oldest first");
    assert!(page.next.is_some());
    let read = calls_since(&server, &before, "hgetall");
    assert!(read <= 50, "one page of 50 read {read} sessions");

    // Paging through still finds every one of them, once.
    let listed = all_sessions(&store, &u.id, t).await.unwrap();
    let listed: Vec<_> = listed.into_iter().map(|s| s.sid).collect();
    assert_eq!(listed, sids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_over_a_huge_index_trims_a_bounded_batch_per_call() {
    let server = RedisServer::start();
    let store = store_on(&server);
    let u = user("hoarder");
    store.create_user(&u).await.unwrap();
    let t = now();
    seed_legacy_sessions(&server, &u.id, t, LEGACY).await;
    const CAP: u32 = 10;
    let per_call = usize::try_from(CAP + BATCH).unwrap();

    let mut logins = 0;
    let mut len = index_len(&server, &u.id).await;
    while len > usize::try_from(CAP).unwrap() {
        let before = server.command_calls();
        let s = session(&u.id, t, 7200, 7200);
        let ended = store
            .create_session(&s, &TokenHash(format!("n{logins}")), 0, CAP, t)
            .await
            .unwrap();
        let read = calls_since(&server, &before, "hmget");
        assert!(
            read <= u64::from(CAP + BATCH),
            "one login read {read} sessions"
        );
        assert!(ended.len() <= per_call, "one login ended {}", ended.len());
        let after = index_len(&server, &u.id).await;
        assert!(
            len + 1 - after <= per_call && after < len,
            "index {len} -> {after} in one login"
        );
        len = after;
        logins += 1;
        assert!(logins <= LEGACY / per_call + 2, "the index does not shrink");
    }
    assert!(logins > 1, "the trimming took more than one call");
    assert_eq!(len, 10);
    // From here on every login ends exactly the oldest one.
    let s = session(&u.id, t + 1, 7200, 7200);
    let ended = store
        .create_session(&s, &TokenHash("last".into()), 0, CAP, t + 1)
        .await
        .unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(all_sessions(&store, &u.id, t + 1).await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_and_delete_over_a_huge_index_end_everything_in_bounded_calls() {
    let server = RedisServer::start();
    let store = store_on(&server);
    let u = user("hoarder");
    store.create_user(&u).await.unwrap();
    let t = now();
    let keep = session(&u.id, t, 3600, 3600);
    store
        .create_session(&keep, &TokenHash("keep".into()), 0, 10_000, t)
        .await
        .unwrap();
    let legacy = seed_legacy_sessions(&server, &u.id, t, LEGACY).await;
    // A session that a login made while the logout-all was still ending the rest:
    // created under the new version, newest in the index. It must survive.
    let later = session(&u.id, t + 7200, 7200, 7200);
    {
        let keys = Keys::new(PREFIX);
        let mut con = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let () = redis::pipe()
            .hset_multiple(
                keys.session(&u.id, &later.sid),
                &[
                    ("uid", u.id.clone()),
                    ("created", later.created_at.to_string()),
                    ("last_seen", later.created_at.to_string()),
                    ("abs_exp", later.absolute_expiry.to_string()),
                    ("idle_exp", later.idle_expiry.to_string()),
                    ("gen", "0".into()),
                    ("cur", "later".into()),
                    ("ver", "1".into()),
                ],
            )
            .zadd(keys.user_sessions(&u.id), &later.sid, later.absolute_expiry)
            .query_async(&mut con)
            .await
            .unwrap();
    }

    let before = server.command_calls();
    let done = store
        .update_user(&u, EndSessions::AllBut(Some(&keep.sid)))
        .await
        .unwrap();
    assert_eq!(done.sessions_ended, u64::try_from(LEGACY).unwrap());
    let calls = script_calls_since(&server, &before);
    assert!(
        calls >= u64::try_from(LEGACY).unwrap() / u64::from(BATCH),
        "{LEGACY} sessions ended in {calls} script calls of at most {BATCH}"
    );
    for sid in [&legacy[0], &legacy[LEGACY / 2], &legacy[LEGACY - 1]] {
        assert_eq!(store.load_principal(&u.id, sid, t).await.unwrap(), None);
    }
    let left: Vec<_> = all_sessions(&store, &u.id, t)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(left, vec![keep.sid.clone(), later.sid.clone()]);

    let legacy = seed_legacy_sessions(&server, &u.id, t, LEGACY).await;
    let before = server.command_calls();
    assert!(store.delete_user(&u.id).await.unwrap());
    let calls = script_calls_since(&server, &before);
    assert!(
        calls >= u64::try_from(LEGACY).unwrap() / u64::from(BATCH),
        "{LEGACY} sessions deleted in {calls} script calls of at most {BATCH}"
    );
    assert_eq!(index_len(&server, &u.id).await, 0);
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = Keys::new(PREFIX);
    for sid in [&legacy[0], &legacy[LEGACY - 1], &keep.sid] {
        let exists: bool = redis::cmd("EXISTS")
            .arg(keys.session(&u.id, sid))
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(!exists, "session hash {sid} outlived its user");
    }
}
