//! Races between service operations, each forced into its worst interleaving by a
//! [`PausingStore`] (issue 10, items 1 and 2), written once and run on every backend
//! through [`service_race_tests!`](crate::service_race_tests).
//!
//! Each case holds one operation at the store call where the race used to bite (after
//! its slow password work, before its write), runs the competing operation to the end,
//! then lets the first one go.

use std::sync::Arc;

use redauth_core::clock::ManualClock;
use redauth_core::error::AuthError;
use redauth_core::password::Argon2Params;
use redauth_core::service::{BruteForceLimits, ClientInfo, NewUser, SessionPolicy};
use redauth_core::{AuthService, Role, Secret, Store, User};

use crate::pausing_store::PausingStore;

/// Generates one `#[tokio::test]` per race case; `$factory` as for
/// [`store_conformance_tests!`](crate::store_conformance_tests).
#[macro_export]
macro_rules! service_race_tests {
    ($factory:path) => {
        $crate::service_race_tests!(@each $factory;
            password_change_racing_a_role_removal_keeps_the_removal,
            password_change_racing_a_disable_leaves_the_account_disabled,
            role_grant_racing_a_role_revoke_keeps_both,
            login_racing_a_password_change_opens_no_session,
            login_racing_a_disable_opens_no_session,
            login_racing_a_delete_opens_no_session,
            login_racing_a_logout_everywhere_is_ordered_after_it,
            login_racing_a_role_change_still_succeeds_with_the_new_roles,
            a_slow_load_does_not_cache_a_session_revoked_meanwhile,
            the_last_admin_cannot_be_removed,
            two_admins_removing_each_other_at_once_leave_one,
            a_login_past_the_cap_evicts_the_ended_session_from_this_nodes_cache,
        );
    };
    (@each $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::service_races::$case(store).await;
            }
        )*
    };
}

const OLD_PASSWORD: &str = "the old password 1";
const NEW_PASSWORD: &str = "the new password 22";

struct Rig {
    store: Arc<PausingStore>,
    service: Arc<AuthService>,
    user: User,
}

async fn rig(inner: Arc<dyn Store>, roles: &[&str]) -> Rig {
    rig_with_policy(inner, roles, SessionPolicy::default()).await
}

async fn rig_with_policy(inner: Arc<dyn Store>, roles: &[&str], sessions: SessionPolicy) -> Rig {
    let store = PausingStore::new(inner);
    let service = node(&store, sessions);
    for r in ["admin", "editor", "viewer"] {
        let permission = if r == "admin" {
            redauth_core::model::ADMIN_PERMISSION.to_owned()
        } else {
            format!("{r}:use")
        };
        service
            .put_role(Role {
                name: r.into(),
                permissions: vec![permission],
            })
            .await
            .unwrap();
    }
    let user = service
        .create_user(NewUser {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: OLD_PASSWORD.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        })
        .await
        .unwrap();
    Rig {
        store,
        service,
        user,
    }
}

/// A service on `store`: one node. Two on the same store are two processes, each with
/// its own cache.
fn node(store: &Arc<PausingStore>, sessions: SessionPolicy) -> Arc<AuthService> {
    AuthService::builder(
        store.clone(),
        Secret::new("service races secret, 32 bytes or more"),
    )
    .clock(Arc::new(ManualClock::starting_now()))
    // Cheap hashes: the races are about ordering, not cost.
    .argon2(Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .hash_concurrency(2)
    .session_policy(sessions)
    .cache_capacity(1000)
    .brute_force_limits(BruteForceLimits {
        login_per_ip: None,
        login_failures_per_account: None,
        login_failures_per_account_total: None,
        password_failures_per_session: None,
        refresh_per_ip: None,
        ..BruteForceLimits::default()
    })
    .build()
    .unwrap()
}

impl Rig {
    async fn login(
        &self,
        password: &str,
    ) -> Result<redauth_core::service::IssuedTokens, AuthError> {
        self.service
            .login("alice", password, ClientInfo::default())
            .await
    }

    async fn session_count(&self) -> usize {
        self.service
            .list_all_sessions(&self.user.id)
            .await
            .unwrap()
            .len()
    }
}

pub async fn password_change_racing_a_role_removal_keeps_the_removal(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &["editor"]).await);
    let me = rig.login(OLD_PASSWORD).await.unwrap().principal;
    let mut paused = rig.store.pause_next("update_user");
    let change = tokio::spawn({
        let rig = rig.clone();
        async move {
            rig.service
                .change_password(&me, OLD_PASSWORD, NEW_PASSWORD, &ClientInfo::default())
                .await
        }
    });
    paused.reached().await;
    rig.service
        .set_user_roles(&rig.user.id, vec![])
        .await
        .unwrap();
    paused.release();
    change.await.unwrap().unwrap();

    let stored = rig.service.get_user(&rig.user.id).await.unwrap();
    assert!(stored.roles.is_empty(), "the removal stays: {stored:?}");
    assert!(
        rig.login(NEW_PASSWORD).await.is_ok(),
        "the new password stays"
    );
    assert!(rig.login(OLD_PASSWORD).await.is_err());
}

pub async fn password_change_racing_a_disable_leaves_the_account_disabled(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &[]).await);
    let me = rig.login(OLD_PASSWORD).await.unwrap().principal;
    let mut paused = rig.store.pause_next("update_user");
    let change = tokio::spawn({
        let rig = rig.clone();
        async move {
            rig.service
                .change_password(&me, OLD_PASSWORD, NEW_PASSWORD, &ClientInfo::default())
                .await
        }
    });
    paused.reached().await;
    rig.service.set_disabled(&rig.user.id, true).await.unwrap();
    paused.release();
    assert!(matches!(
        change.await.unwrap(),
        Err(AuthError::InvalidCredentials)
    ));
    let stored = rig.service.get_user(&rig.user.id).await.unwrap();
    assert!(stored.disabled, "{stored:?}");
    assert_eq!(rig.session_count().await, 0);
}

pub async fn role_grant_racing_a_role_revoke_keeps_both(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &["editor", "viewer"]).await);
    let mut paused = rig.store.pause_next("update_user");
    let grant = tokio::spawn({
        let rig = rig.clone();
        async move { rig.service.grant_role(&rig.user.id, "admin").await }
    });
    paused.reached().await;
    rig.service
        .revoke_role(&rig.user.id, "editor")
        .await
        .unwrap();
    paused.release();
    grant.await.unwrap().unwrap();
    let mut roles = rig.service.get_user(&rig.user.id).await.unwrap().roles;
    roles.sort();
    assert_eq!(roles, ["admin", "viewer"]);
}

/// Holds a login at its session creation (its password already checked), runs
/// `competitor` to the end, lets the login go and returns its result.
async fn login_paused_at_session_creation<F, Fut>(
    rig: &Arc<Rig>,
    competitor: F,
) -> Result<redauth_core::service::IssuedTokens, AuthError>
where
    F: FnOnce(Arc<Rig>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut paused = rig.store.pause_next("create_session");
    let login = tokio::spawn({
        let rig = rig.clone();
        async move { rig.login(OLD_PASSWORD).await }
    });
    paused.reached().await;
    competitor(rig.clone()).await;
    paused.release();
    login.await.unwrap()
}

pub async fn login_racing_a_password_change_opens_no_session(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &[]).await);
    let result = login_paused_at_session_creation(&rig, |rig| async move {
        rig.service
            .admin_set_password(&rig.user.id, NEW_PASSWORD)
            .await
            .unwrap();
    })
    .await;
    assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    assert_eq!(rig.session_count().await, 0);
}

pub async fn login_racing_a_disable_opens_no_session(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &[]).await);
    let result = login_paused_at_session_creation(&rig, |rig| async move {
        rig.service.set_disabled(&rig.user.id, true).await.unwrap();
    })
    .await;
    assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    assert_eq!(rig.session_count().await, 0);
}

pub async fn login_racing_a_delete_opens_no_session(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &[]).await);
    let result = login_paused_at_session_creation(&rig, |rig| async move {
        rig.service.delete_user(&rig.user.id).await.unwrap();
    })
    .await;
    assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    assert_eq!(rig.session_count().await, 0);
}

/// "Log out everywhere" (suspecting a stolen password) also stops a login that checked
/// the password a moment before.
pub async fn login_racing_a_logout_everywhere_is_ordered_after_it(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &[]).await);
    let result = login_paused_at_session_creation(&rig, |rig| async move {
        rig.service
            .revoke_all_sessions(&rig.user.id, None)
            .await
            .unwrap();
    })
    .await;
    // The password is unchanged, so the login re-checks against the fresh user and
    // succeeds, but only with a session created after the logout, which it survived.
    let tokens = result.unwrap();
    assert_eq!(rig.session_count().await, 1);
    assert_eq!(
        rig.service.list_all_sessions(&rig.user.id).await.unwrap()[0].sid,
        tokens.principal.session_id.as_str()
    );
}

/// A change that leaves the password alone (a role) does not fail a login in flight;
/// the session it opens carries the new roles.
pub async fn login_racing_a_role_change_still_succeeds_with_the_new_roles(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &["viewer"]).await);
    let result = login_paused_at_session_creation(&rig, |rig| async move {
        rig.service
            .set_user_roles(&rig.user.id, vec!["editor".into()])
            .await
            .unwrap();
    })
    .await;
    let tokens = result.unwrap();
    assert_eq!(tokens.principal.roles(), ["editor"]);
    assert_eq!(rig.session_count().await, 1);
}

/// Issue 10, item 6: a cache miss reads a live session, its reply is slow, and the
/// session is revoked meanwhile. The request may be answered (it was read before the
/// revocation), but the principal must not be cached: the next check refuses.
pub async fn a_slow_load_does_not_cache_a_session_revoked_meanwhile(store: Arc<dyn Store>) {
    let rig = rig(store, &[]).await;
    let tokens = rig.login(OLD_PASSWORD).await.unwrap();
    // A cold node: it has never seen this session, so its check reads the store.
    let cold = node(&rig.store, SessionPolicy::default());
    until_trusted(&cold).await;
    assert_eq!(cold.cache_status().entries, 0);
    let mut paused = rig.store.pause_next_reply("load_principal");
    let check = tokio::spawn({
        let cold = cold.clone();
        let token = tokens.access_token.clone();
        async move { cold.authenticate(&token).await }
    });
    paused.reached().await;
    cold.logout(Some(&tokens.access_token), None).await.unwrap();
    paused.release();
    assert!(check.await.unwrap().is_ok(), "read before the revocation");
    assert!(
        matches!(
            cold.authenticate(&tokens.access_token).await,
            Err(AuthError::InvalidToken)
        ),
        "the slow load must not have cached the revoked session"
    );
}

/// Returns once `node`'s cache is trusted: at once without a revocation feed, else when
/// the feed has subscribed. Before that the cache stores nothing, and a race about what
/// it stores would pass without being run.
async fn until_trusted(node: &AuthService) {
    let mut applied = node.cache_status().invalidations_applied;
    let subscribed = async {
        while !node.cache_status().trusted {
            applied.changed().await.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), subscribed)
        .await
        .expect("the revocation feed subscribes");
}

async fn second_user(rig: &Rig, name: &str, roles: &[&str]) -> User {
    rig.service
        .create_user(NewUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            password: OLD_PASSWORD.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        })
        .await
        .unwrap()
}

/// Issue 11, item 11: nobody could administer redauth again without direct access to
/// the store, so removing the last enabled admin is refused, whichever way.
pub async fn the_last_admin_cannot_be_removed(store: Arc<dyn Store>) {
    let rig = rig(store, &["admin"]).await;
    let admin = rig.user.id.clone();
    let last = |r: Result<User, AuthError>| matches!(r, Err(AuthError::LastAdmin));
    assert!(last(rig.service.set_user_roles(&admin, vec![]).await));
    assert!(last(rig.service.revoke_role(&admin, "admin").await));
    assert!(last(rig.service.set_disabled(&admin, true).await));
    assert!(matches!(
        rig.service.delete_user(&admin).await,
        Err(AuthError::LastAdmin)
    ));
    assert!(matches!(
        rig.service
            .put_role(Role {
                name: "admin".into(),
                permissions: vec!["nothing:much".into()],
            })
            .await,
        Err(AuthError::LastAdmin)
    ));
    let stored = rig.service.get_user(&admin).await.unwrap();
    assert!(!stored.disabled && stored.roles == ["admin"], "{stored:?}");
    // With a second admin, either may go; then the other is the last.
    let second = second_user(&rig, "bob", &["admin"]).await;
    rig.service.set_user_roles(&admin, vec![]).await.unwrap();
    assert!(last(rig.service.set_disabled(&second.id, true).await));
    rig.service.grant_role(&admin, "admin").await.unwrap();
    rig.service.delete_user(&second.id).await.unwrap();
}

/// Two admins demote each other at the same moment: each check passes (two admins),
/// but at most one demotion may stand.
pub async fn two_admins_removing_each_other_at_once_leave_one(store: Arc<dyn Store>) {
    let rig = Arc::new(rig(store, &["admin"]).await);
    let bob = second_user(&rig, "bob", &["admin"]).await;
    let mut paused = rig.store.pause_next("update_user");
    let first = tokio::spawn({
        let rig = rig.clone();
        let bob = bob.id.clone();
        async move { rig.service.set_user_roles(&bob, vec![]).await }
    });
    paused.reached().await;
    rig.service
        .set_user_roles(&rig.user.id, vec![])
        .await
        .unwrap();
    paused.release();
    assert!(matches!(first.await.unwrap(), Err(AuthError::LastAdmin)));
    let admins = [&rig.user.id, &bob.id];
    let mut left = 0;
    for id in admins {
        if rig.service.get_user(id).await.unwrap().roles == ["admin"] {
            left += 1;
        }
    }
    assert_eq!(left, 1);
}

/// The session a login ends for the cap must stop working on the node that ran the
/// login at once, whatever the feed: the embedded store has none, and a Redis node's own
/// message may arrive after the next request.
pub async fn a_login_past_the_cap_evicts_the_ended_session_from_this_nodes_cache(
    inner: Arc<dyn Store>,
) {
    let capped = SessionPolicy {
        max_sessions_per_user: 2,
        ..SessionPolicy::default()
    };
    let rig = rig_with_policy(inner, &[], capped).await;
    let mut issued = Vec::new();
    for _ in 0..2 {
        let t = rig.login(OLD_PASSWORD).await.unwrap();
        rig.service.authenticate(&t.access_token).await.unwrap();
        issued.push(t);
    }
    // Cached now: a hit never reads the store.
    for t in &issued {
        rig.service.authenticate(&t.access_token).await.unwrap();
    }
    let third = rig.login(OLD_PASSWORD).await.unwrap();
    issued.push(third);
    let live: Vec<_> = rig
        .service
        .list_all_sessions(&rig.user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(live.len(), 2, "the cap holds");
    let (ended, kept): (Vec<_>, Vec<_>) = issued.iter().partition(|t| {
        !live
            .iter()
            .any(|s| s.as_str() == t.principal.session_id.as_str())
    });
    assert_eq!(ended.len(), 1);
    assert!(
        matches!(
            rig.service.authenticate(&ended[0].access_token).await,
            Err(AuthError::InvalidToken)
        ),
        "the ended session is still served from this node's cache"
    );
    for t in kept {
        rig.service.authenticate(&t.access_token).await.unwrap();
    }
}
