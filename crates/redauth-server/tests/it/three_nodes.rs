//! Issue 10: three nodes on one redis-server. Every path that revokes, run on node A,
//! makes nodes B and C refuse what they were serving from their caches; and with B's
//! revocation feed black-holed (a half-open subscription), B refuses once its
//! heartbeat notices, within the documented bound.
//!
//! Nothing here sleeps: a node is checked after its cache has applied the
//! invalidation (or, black-holed, after its feed reported the loss), awaited on watch
//! channels with a limit so that a lost message fails the test instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use redauth_core::ManualClock;
use redauth_redis::FeedStatus;
use redauth_server::config::Settings;
use redauth_testkit::{CountingProxy, RedisServer};
use serde_json::json;
use tokio::sync::watch;

use crate::support::{Node, PASSWORD};

/// A revocation path, run on node A against `victim` (a logged-in user with the
/// `admin` role), given the victim's tokens and another session of the same user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Logout,
    LogoutAll,
    PasswordChange,
    Disable,
    Delete,
    RoleRemoval,
    Theft,
}

const PATHS: [Path; 7] = [
    Path::Logout,
    Path::LogoutAll,
    Path::PasswordChange,
    Path::Disable,
    Path::Delete,
    Path::RoleRemoval,
    Path::Theft,
];

struct Cluster {
    _redis: RedisServer,
    proxy: CountingProxy,
    clock: Arc<ManualClock>,
    a: Node,
    /// Reaches Redis through `proxy`, whose subscriber connections can be black-holed.
    b: Node,
    c: Node,
}

impl Cluster {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let proxy = CountingProxy::start(redis.port()).await;
        let clock = Arc::new(ManualClock::starting_now());
        let a = Node::start(&redis.url(), Settings::default(), clock.clone()).await;
        let b = Node::start(&proxy.url(), Settings::default(), clock.clone()).await;
        let c = Node::start(&redis.url(), Settings::default(), clock.clone()).await;
        Self {
            _redis: redis,
            proxy,
            clock,
            a,
            b,
            c,
        }
    }

    fn others(&self) -> [(&'static str, &Node); 2] {
        [("B", &self.b), ("C", &self.c)]
    }
}

/// What node B or C must refuse after the revocation: the session itself, or for a
/// role removal the right the role gave.
async fn allowed(node: &Node, path: Path, token: &str) -> bool {
    let (route, ok) = match path {
        Path::RoleRemoval => ("/api/admin/users", StatusCode::OK),
        _ => ("/api/auth/verify", StatusCode::NO_CONTENT),
    };
    let r = node.get_bearer(route, token).await;
    assert!(
        r.status == ok || r.status.is_client_error(),
        "{route}: {} {:?}",
        r.status,
        r.body
    );
    r.status == ok
}

async fn revoke_on_a(cluster: &Cluster, path: Path, user: &str, refresh: &str) {
    let a = &cluster.a;
    let uid = a.service.find_user(user).await.unwrap().id;
    match path {
        Path::Logout => {
            let r = a
                .send(
                    Method::POST,
                    "/api/auth/logout",
                    None,
                    &[("cookie", &format!("redauth_refresh={refresh}"))],
                )
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        }
        Path::LogoutAll => {
            let (other, _) = a.login(user).await;
            let r = a
                .send(
                    Method::POST,
                    "/api/auth/logout-all",
                    None,
                    &[("authorization", &format!("Bearer {other}"))],
                )
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        }
        Path::PasswordChange => {
            let (other, _) = a.login(user).await;
            let r = a
                .send(
                    Method::POST,
                    "/api/auth/password",
                    Some(json!({
                        "current_password": PASSWORD,
                        "new_password": "a completely new password",
                    })),
                    &[("authorization", &format!("Bearer {other}"))],
                )
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        }
        Path::Disable => {
            a.service.set_disabled(&uid, true).await.unwrap();
        }
        Path::Delete => a.service.delete_user(&uid).await.unwrap(),
        Path::RoleRemoval => {
            a.service.set_user_roles(&uid, vec![]).await.unwrap();
        }
        Path::Theft => {
            let from = |agent: &'static str, rt: String| async move {
                a.send(
                    Method::POST,
                    "/api/auth/refresh",
                    None,
                    &[
                        ("cookie", &format!("redauth_refresh={rt}")),
                        ("user-agent", agent),
                    ],
                )
                .await
            };
            let rotated = from("victim", refresh.to_owned()).await;
            assert_eq!(rotated.status, StatusCode::OK);
            cluster.clock.advance(60);
            let stolen = from("thief", refresh.to_owned()).await;
            assert_eq!(stolen.error_code(), "refresh_token_reused");
        }
    }
}

/// Waits until a node's cache has applied at least one invalidation after `seen`.
async fn applied_after(seen: &mut watch::Receiver<u64>, what: &str) {
    tokio::time::timeout(Duration::from_secs(10), seen.changed())
        .await
        .unwrap_or_else(|_| panic!("{what}: no invalidation reached the node"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revocation_path_on_one_node_is_refused_by_the_other_two() {
    let cluster = Cluster::start().await;
    for (i, path) in PATHS.into_iter().enumerate() {
        let user = format!("user{i}");
        cluster.a.user(&user, &["admin"]).await;
        let (token, refresh) = cluster.a.login(&user).await;
        for (name, node) in cluster.others() {
            assert!(allowed(node, path, &token).await, "{path:?}: {name} warm");
            assert!(allowed(node, path, &token).await, "{path:?}: {name} cached");
        }
        let mut seen = cluster
            .others()
            .map(|(_, n)| n.service.cache_status().invalidations_applied);
        for rx in &mut seen {
            rx.borrow_and_update();
        }

        revoke_on_a(&cluster, path, &user, &refresh).await;

        for ((name, node), rx) in cluster.others().into_iter().zip(&mut seen) {
            applied_after(rx, &format!("{path:?} on {name}")).await;
            assert!(
                !allowed(node, path, &token).await,
                "{path:?}: {name} still serves what A revoked"
            );
        }
        assert!(
            !allowed(&cluster.a, path, &token).await,
            "{path:?}: A itself"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_feed_black_holed_a_node_refuses_once_its_heartbeat_notices() {
    let cluster = Cluster::start().await;
    let mut state = cluster.b.store.feed_state();
    for (i, path) in [Path::Logout, Path::RoleRemoval, Path::Disable]
        .into_iter()
        .enumerate()
    {
        tokio::time::timeout(
            Duration::from_secs(20),
            state.wait_for(|s: &FeedStatus| s.subscribed),
        )
        .await
        .expect("B subscribed")
        .unwrap();
        let user = format!("dark{i}");
        cluster.a.user(&user, &["admin"]).await;
        let (token, refresh) = cluster.a.login(&user).await;
        assert!(allowed(&cluster.b, path, &token).await);
        assert!(allowed(&cluster.c, path, &token).await);
        let losses = state.borrow().losses;
        let mut c_seen = cluster.c.service.cache_status().invalidations_applied;
        c_seen.borrow_and_update();

        cluster.proxy.blackhole_subscribers(true);
        revoke_on_a(&cluster, path, &user, &refresh).await;
        // C hears it at once; B hears nothing and must notice the silence (1 s
        // heartbeat + 2 s deadline by default), then stop trusting its cache.
        applied_after(&mut c_seen, &format!("{path:?} on C")).await;
        assert!(!allowed(&cluster.c, path, &token).await, "{path:?}: C");
        tokio::time::timeout(
            Duration::from_secs(10),
            state.wait_for(|s: &FeedStatus| s.losses > losses),
        )
        .await
        .unwrap_or_else(|_| panic!("{path:?}: B never noticed its silent feed"))
        .unwrap();
        assert!(
            !allowed(&cluster.b, path, &token).await,
            "{path:?}: B still serves what A revoked after noticing its feed is dead"
        );
        cluster.proxy.blackhole_subscribers(false);
    }
}
