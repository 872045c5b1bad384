//! What only the Redis backend has: wire round trips, auth and TLS, the pub/sub
//! revocation feed, and the documented key layout.

use std::sync::Arc;

use redauth_core::Store;
use redauth_core::store::{EndSessions, FeedEvent, Invalidation, RotateOutcome, RotateRequest};
use redauth_core::token::refresh::TokenHash;
use redauth_redis::{RedisConfig, RedisStore};
use redauth_testkit::conformance::{session, user};
use redauth_testkit::{CountingProxy, RedisServer};

fn now() -> i64 {
    redauth_core::Clock::now(&redauth_core::SystemClock)
}

#[tokio::test]
async fn principal_load_and_rotation_are_one_round_trip_each() {
    let server = RedisServer::start();
    let proxy = CountingProxy::start(server.port()).await;
    let store = RedisStore::connect(&RedisConfig::new(&proxy.url(), "rt:")).unwrap();
    store.preload_scripts().await.unwrap();
    let u = user("alice");
    store.create_user(&u).await.unwrap();
    let s = session(&u.id, now(), 3600, 3600);
    store
        .create_session(
            &s,
            &TokenHash("t0".into()),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            now(),
        )
        .await
        .unwrap();

    let before = proxy.round_trips();
    let rec = store
        .load_principal(&u.id, &s.sid, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.user, u);
    assert_eq!(proxy.round_trips() - before, 1);

    let before = proxy.round_trips();
    let req = RotateRequest {
        client_binding: "test".into(),
        user_id: u.id.clone(),
        session_id: s.sid.clone(),
        presented: TokenHash("t0".into()),
        successor: TokenHash("t1".into()),
        now: now(),
        grace_secs: 5,
        idle_secs: 3600,
        // With a per-IP budget charged, as in production: still one round trip.
        charge: Some(redauth_core::store::RateCharge {
            key: "refresh-ip:192.0.2.1".into(),
            limit: redauth_core::rate_limit::RateLimit {
                burst: 10,
                interval_secs: 1,
            },
            now_ms: now() * 1000,
        }),
    };
    assert!(matches!(
        store.rotate_refresh(&req).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert_eq!(proxy.round_trips() - before, 1);
}

#[tokio::test]
async fn acl_user_authentication_works_and_a_wrong_password_is_unavailable() {
    let server = RedisServer::start_with_acl_user("redauth", "acl-secret-pw");
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "acl:")).unwrap();
    store.ping().await.unwrap();
    store.create_user(&user("alice")).await.unwrap();
    let wrong = format!("redis://redauth:wrong@127.0.0.1:{}/", server.port());
    let bad = RedisStore::connect(&RedisConfig::new(&wrong, "acl:")).unwrap();
    assert!(matches!(
        bad.ping().await,
        Err(redauth_core::StoreError::Unavailable { .. })
    ));
    let anonymous = format!("redis://127.0.0.1:{}/", server.port());
    let anon = RedisStore::connect(&RedisConfig::new(&anonymous, "acl:")).unwrap();
    assert!(anon.ping().await.is_err());
}

#[tokio::test]
async fn password_authentication_works() {
    let server = RedisServer::start_with_password("plain-pass");
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "pw:")).unwrap();
    store.ping().await.unwrap();
    let anon = RedisStore::connect(&RedisConfig::new(
        &format!("redis://127.0.0.1:{}/", server.port()),
        "pw:",
    ))
    .unwrap();
    assert!(matches!(
        anon.ping().await,
        Err(redauth_core::StoreError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn tls_with_a_ca_file_works_and_an_untrusted_certificate_is_refused() {
    let server = RedisServer::start_tls();
    let mut config = RedisConfig::new(&server.url(), "tls:");
    config.ca_file = server.ca_file();
    let store = RedisStore::connect(&config).unwrap();
    store.ping().await.unwrap();
    let u = user("alice");
    store.create_user(&u).await.unwrap();
    assert_eq!(store.get_user(&u.id).await.unwrap(), Some(u));

    // Without the CA the server certificate is not trusted.
    let untrusted = RedisStore::connect(&RedisConfig::new(&server.url(), "tls:")).unwrap();
    assert!(matches!(
        untrusted.ping().await,
        Err(redauth_core::StoreError::Unavailable { .. })
    ));
    // And plain redis:// to a TLS port does not work either.
    let plain = RedisStore::connect(&RedisConfig::new(
        &format!("redis://127.0.0.1:{}/", server.port()),
        "tls:",
    ))
    .unwrap();
    assert!(plain.ping().await.is_err());
}

#[tokio::test]
async fn revocations_on_one_store_reach_the_feed_of_another() {
    let server = RedisServer::start();
    let writer = RedisStore::connect(&RedisConfig::new(&server.url(), "feed:")).unwrap();
    let listener = RedisStore::connect(&RedisConfig::new(&server.url(), "feed:")).unwrap();
    let other_prefix = RedisStore::connect(&RedisConfig::new(&server.url(), "elsewhere:")).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    listener.subscribe_invalidations(Arc::new(move |inv| {
        let _ = tx.send(inv);
    }));
    listener.invalidation_feed_ready().await;
    assert_eq!(
        rx.recv().await,
        Some(FeedEvent::Lost),
        "nothing is delivered before the subscription is confirmed"
    );
    assert_eq!(
        rx.recv().await,
        Some(FeedEvent::Subscribed),
        "a (re)subscription clears the cache and trusts it again"
    );
    let inv = |i: Invalidation| Some(FeedEvent::Invalidate(i));

    let u = user("alice");
    writer.create_user(&u).await.unwrap();
    let s = session(&u.id, now(), 3600, 3600);
    writer
        .create_session(
            &s,
            &TokenHash("t".into()),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            now(),
        )
        .await
        .unwrap();
    // A store with another key prefix is another deployment: its events stay apart.
    other_prefix
        .put_role(&redauth_core::Role {
            name: "x".into(),
            permissions: vec![],
        })
        .await
        .unwrap();
    writer.revoke_session(&u.id, &s.sid, None).await.unwrap();
    assert_eq!(rx.recv().await, inv(Invalidation::Session(s.sid.clone())));
    let done = writer
        .update_user(&u, EndSessions::AllBut(None))
        .await
        .unwrap();
    assert_eq!(rx.recv().await, inv(Invalidation::User(u.id.clone())));
    writer
        .put_role(&redauth_core::Role {
            name: "r".into(),
            permissions: vec![],
        })
        .await
        .unwrap();
    assert_eq!(rx.recv().await, inv(Invalidation::All));
    let mut changed = u.clone();
    changed.disabled = true;
    changed.security_version = done.security_version;
    writer
        .update_user(&changed, EndSessions::None)
        .await
        .unwrap();
    assert_eq!(rx.recv().await, inv(Invalidation::User(u.id.clone())));
}

#[tokio::test]
async fn keys_follow_the_documented_layout_and_expiry() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "lay:")).unwrap();
    let u = user("alice");
    store.create_user(&u).await.unwrap();
    store
        .put_role(&redauth_core::Role {
            name: "r".into(),
            permissions: vec![],
        })
        .await
        .unwrap();
    let s = session(&u.id, now(), 7200, 3600);
    store
        .create_session(
            &s,
            &TokenHash("t".into()),
            0,
            redauth_core::service::DEFAULT_MAX_SESSIONS_PER_USER,
            now(),
        )
        .await
        .unwrap();

    let mut con = server.client().get_connection().unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    let mut want = vec![
        format!("lay:{{u:{}}}:user", u.id),
        format!("lay:{{u:{}}}:s:{}", u.id, s.sid),
        format!("lay:{{u:{}}}:sessions", u.id),
        "lay:username:alice".to_owned(),
        "lay:username-look:alice".to_owned(),
        // The UTS #39 skeleton: "m" looks like "rn".
        "lay:email-look:alice@exarnple.corn".to_owned(),
        "lay:users".to_owned(),
        "lay:roles".to_owned(),
    ];
    want.sort();
    assert_eq!(keys, want);
    let ttl = |k: &str| -> i64 {
        redis::cmd("TTL")
            .arg(k)
            .query(&mut server.client().get_connection().unwrap())
            .unwrap()
    };
    let session_ttl = ttl(&format!("lay:{{u:{}}}:s:{}", u.id, s.sid));
    assert!(
        (3590..=3600).contains(&session_ttl),
        "session expires at its idle expiry: {session_ttl}"
    );
    let index_ttl = ttl(&format!("lay:{{u:{}}}:sessions", u.id));
    assert!(
        (7190..=7200).contains(&index_ttl),
        "index expires with its last absolute expiry: {index_ttl}"
    );
    assert_eq!(ttl(&format!("lay:{{u:{}}}:user", u.id)), -1);
    assert_eq!(
        ttl(&format!(
            "lay:email-look:{}",
            redauth_core::model::email_skeleton(&u.email)
        )),
        -1
    );
    // Refresh tokens are stored only as hashes: no field holds a token.
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("lay:{{u:{}}}:s:{}", u.id, s.sid))
        .query(&mut con)
        .unwrap();
    assert!(fields.iter().all(|f| f != "token" && f != "refresh_token"));
}

/// Issue 11, item 1 (store part): a reservation over several keys is all-or-nothing and
/// never overspends, however many callers race; a refund gives one unit back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_over_several_keys_never_overspend_and_refund() {
    use redauth_core::rate_limit::{Charge, Decision, RateLimit, RateLimiter};
    let server = RedisServer::start();
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "rl:")).unwrap();
    let limiter = Arc::new(store.rate_limiter());
    let per_client = RateLimit {
        burst: 10,
        interval_secs: 60,
    };
    let total = RateLimit {
        burst: 15,
        interval_secs: 60,
    };
    let charges = |client: &str| {
        vec![
            Charge {
                key: format!("t:{{a}}:{client}"),
                limit: per_client,
            },
            Charge {
                key: "t:{a}".into(),
                limit: total,
            },
        ]
    };
    let t = now() * 1000;
    let racers = (0..40).map(|i| {
        let limiter = limiter.clone();
        let c = charges(if i % 2 == 0 { "x" } else { "y" });
        async move { limiter.charge_all(&c, t).await.unwrap() }
    });
    let allowed = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .filter(|d| *d == Decision::Allowed)
        .count();
    assert_eq!(allowed, 15, "the total caps both clients together");
    // Client z has its own budget left but the total is spent: nothing is charged.
    assert!(matches!(
        limiter.charge_all(&charges("z"), t).await.unwrap(),
        Decision::Limited { .. }
    ));
    limiter.refund(&charges("z"), t).await.unwrap();
    assert_eq!(
        limiter.charge_all(&charges("z"), t).await.unwrap(),
        Decision::Allowed,
        "the refund gave one unit of the total back"
    );
}

/// Issue 11, item 10: a user stored before NFKC (under the lower-cased key, with no
/// skeleton) is still found, and claims its skeleton on its next write.
#[tokio::test]
async fn users_from_before_nfkc_are_found_and_claim_their_skeleton_on_write() {
    use redauth_core::store::EndSessions;
    let server = RedisServer::start();
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "old:")).unwrap();
    let u = user("Straße");
    store.create_user(&u).await.unwrap();
    // As an older redauth left it: the lower-cased key, no skeleton key.
    let mut con = server.client().get_connection().unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("old:username:strasse")
        .arg("old:username:straße")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg("old:username-look:strasse")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        store
            .find_user_by_username("STRAßE")
            .await
            .unwrap()
            .map(|f| f.id),
        Some(u.id.clone())
    );
    store.update_user(&u, EndSessions::None).await.unwrap();
    assert!(matches!(
        store.create_user(&user("STRASSE")).await,
        Err(redauth_core::StoreError::UsernameTaken)
    ));
}

/// Issue 11, item 10 (emails): a user stored before email claims claims its address on
/// its next write, and a claim whose holder is gone is free (the checks are in the
/// testkit, shared with the embedded store).
#[tokio::test]
async fn users_from_before_email_claims_claim_theirs_on_write_and_orphans_are_free() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "old:")).unwrap();
    let (old, gone) = (user("olga"), user("gone"));
    store.create_user(&old).await.unwrap();
    store.create_user(&gone).await.unwrap();
    // As an older redauth leaves it: no claim for olga; gone deleted, its claim left.
    let mut con = server.client().get_connection().unwrap();
    for key in [
        format!(
            "old:email-look:{}",
            redauth_core::model::email_skeleton(&old.email)
        ),
        format!("old:{{u:{}}}:user", gone.id),
    ] {
        let n: i64 = redis::cmd("DEL").arg(&key).query(&mut con).unwrap();
        assert_eq!(n, 1, "{key}");
    }
    redauth_testkit::conformance::email_claims_from_before_are_taken_on_write_and_orphans_are_free(
        &store, &old, &gone,
    )
    .await;
}
