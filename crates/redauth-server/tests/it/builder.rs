//! `AuthService::builder` as an embedder uses it: `builder(store, secret).build()` gives
//! a working service whose every default is its core type's `Default`, overrides reach
//! the service, and bad secrets are refused with an error, never a panic.

use std::sync::Arc;

use redauth_core::service::{BuildError, ClientInfo, NewUser, SessionPolicy};
use redauth_core::token::access::AccessTokenConfig;
use redauth_core::{AuthError, AuthService, ManualClock, Secret, Store};
use redauth_redis::{RedisConfig, RedisStore};
use redauth_testkit::RedisServer;

use crate::support::{PASSWORD, SECRET};

fn store(redis: &RedisServer) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(&RedisConfig::new(&redis.url(), "b:")).unwrap())
}

async fn alice(service: &AuthService) -> String {
    service
        .create_user(NewUser {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: PASSWORD.into(),
            roles: vec![],
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn a_service_built_with_no_overrides_runs_on_the_core_defaults() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::starting_now());
    let service = AuthService::builder(store(&redis), Secret::new(SECRET))
        .clock(clock.clone())
        .build()
        .unwrap();
    let access = AccessTokenConfig::default();
    let sessions = SessionPolicy::default();

    let too_short = "x".repeat(redauth_core::password::PasswordPolicy::default().min_chars - 1);
    let refused = service
        .create_user(NewUser {
            username: "bob".into(),
            email: "bob@example.com".into(),
            password: too_short,
            roles: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, AuthError::InvalidRequest(_)), "{refused}");

    let user_id = alice(&service).await;
    let issued = service
        .login("alice", PASSWORD, ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(issued.expires_in, access.ttl_secs);
    let session = &service.list_all_sessions(&user_id).await.unwrap()[0];
    assert_eq!(
        session.absolute_expiry - session.created_at,
        sessions.absolute_ttl_secs
    );
    assert_eq!(
        session.idle_expiry - session.created_at,
        sessions.idle_ttl_secs
    );

    // The access token outlives `exp` by exactly the default leeway.
    clock.advance(access.ttl_secs + access.leeway_secs - 1);
    service.authenticate(&issued.access_token).await.unwrap();
    clock.advance(1);
    assert!(matches!(
        service.authenticate(&issued.access_token).await,
        Err(AuthError::TokenExpired)
    ));
}

#[tokio::test]
async fn overrides_reach_the_service() {
    let redis = RedisServer::start();
    let service = AuthService::builder(store(&redis), Secret::new(SECRET))
        .clock(Arc::new(ManualClock::starting_now()))
        .access_ttl_secs(60)
        .session_policy(SessionPolicy {
            idle_ttl_secs: 600,
            ..SessionPolicy::default()
        })
        .refresh_secret(Secret::new("another secret, also 32 bytes or more"))
        .build()
        .unwrap();
    let user_id = alice(&service).await;
    let issued = service
        .login("alice", PASSWORD, ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(issued.expires_in, 60);
    let session = &service.list_all_sessions(&user_id).await.unwrap()[0];
    assert_eq!(session.idle_expiry - session.created_at, 600);
    // The refresh key is the separate secret's, not one derived from the access
    // secret: a node without it cannot rotate the token, one with it can.
    let single_secret = AuthService::builder(store(&redis), Secret::new(SECRET))
        .build()
        .unwrap();
    assert!(matches!(
        single_secret
            .refresh(issued.refresh_token.as_str(), &ClientInfo::default())
            .await,
        Err(AuthError::InvalidRefreshToken)
    ));
    service
        .refresh(issued.refresh_token.as_str(), &ClientInfo::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn weak_or_equal_secrets_are_refused_with_an_error() {
    let redis = RedisServer::start();
    let short = Secret::new("x".repeat(redauth_core::token::MIN_SECRET_BYTES - 1));
    let e = AuthService::builder(store(&redis), short.clone())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::WeakSecret {
                which: "access",
                len: 31
            }
        ),
        "{e}"
    );
    let e = AuthService::builder(store(&redis), Secret::new(SECRET))
        .refresh_secret(short)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::WeakSecret {
                which: "refresh",
                ..
            }
        ),
        "{e}"
    );
    let e = AuthService::builder(store(&redis), Secret::new(SECRET))
        .refresh_secret(Secret::new(SECRET))
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::SameSecrets), "{e}");
}
