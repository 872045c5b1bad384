//! The storage boundary. The service talks only to [`Store`]; Redis and the embedded
//! database implement it, and one conformance suite (in `redauth-testkit`) holds every
//! behaviour the service relies on.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::model::{Role, Session, SessionId, User, UserId};
use crate::token::refresh::TokenHash;

/// Session + user + roles, read together in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    pub session: Session,
    pub user: User,
    /// Definitions of the roles the user holds (missing definitions are left out).
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone)]
pub struct RotateRequest {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub presented: TokenHash,
    pub successor: TokenHash,
    pub now: UnixTime,
    /// How long after a rotation the previous token may be presented again and get
    /// the same successor back. Anchored to the first rotation.
    pub grace_secs: i64,
    /// How far a successful rotation pushes the idle expiry (capped by the absolute one).
    pub idle_secs: i64,
    /// A brute-force budget to charge in the same atomic call, so a limited refresh
    /// still costs one round trip (see [`crate::rate_limit`]).
    pub charge: Option<RateCharge>,
}

/// One unit charged to a rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCharge {
    pub key: String,
    pub limit: crate::rate_limit::RateLimit,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was current; its successor is now current.
    Rotated(PrincipalRecord),
    /// The presented token was the previous one, within the grace window: the
    /// successor stays current and is handed out again.
    Replayed(PrincipalRecord),
    /// The presented token is neither current nor a fresh previous: the session has
    /// been revoked (possible theft).
    Reused,
    /// Unknown session, or expired.
    Invalid,
    /// The charge was refused: nothing was read or rotated.
    RateLimited { retry_after_secs: u64 },
}

/// A message on the revocation feed: what every node must drop from its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Session(SessionId),
    User(UserId),
    /// Role definitions changed: every cached principal may hold stale permissions.
    All,
}

/// What a revocation feed tells the session cache. Pub/sub is fire-and-forget, so the
/// feed reports not only messages but also whether it can vouch that none was missed:
/// a cache may only serve entries while its feed is subscribed and proven alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// Another node revoked something: drop it.
    Invalidate(Invalidation),
    /// The feed cannot prove it delivers every message (not yet subscribed, the
    /// connection closed, a heartbeat went unanswered, subscribing fails). Messages
    /// published from now on may be lost, so the cache flushes and serves nothing
    /// until [`FeedEvent::Subscribed`].
    Lost,
    /// (Re)subscribed and delivering again. Messages sent while lost are gone for good,
    /// so the cache flushes once more before it trusts what it loads from now on.
    Subscribed,
}

/// Where a store's revocation feed delivers its [`FeedEvent`]s (the session cache).
pub type InvalidationSink = Arc<dyn Fn(FeedEvent) + Send + Sync>;

/// Persistent state of users, roles and login sessions.
///
/// Every method the request path uses (`load_principal`, `rotate_refresh`,
/// `create_session`, `find_user_by_username`, the revocations) is one round trip to the
/// backend; administrative ones may take two. Methods that change what a principal may
/// do also publish an [`Invalidation`] to other nodes. Revocation counts are of stored
/// sessions: one that expired but was not yet swept may still be counted.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Fails with `UsernameTaken` if another user has the same normalized username,
    /// also under concurrent creates.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Replaces an existing user (the username cannot change). `NotFound` if absent.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Deletes the user, its username claim and all its sessions.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError>;

    async fn put_role(&self, role: &Role) -> Result<(), StoreError>;
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;

    /// Stores a new session whose current refresh token hashes to `refresh`, adds it to
    /// the user's index and prunes expired ids from that index.
    async fn create_session(
        &self,
        session: &Session,
        refresh: &TokenHash,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// The live session with its user and roles, or `None` (unknown, expired, or the
    /// session belongs to another user).
    async fn load_principal(
        &self,
        user_id: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<Option<PrincipalRecord>, StoreError>;
    /// Atomic refresh-token rotation with reuse detection (see [`RotateOutcome`]).
    async fn rotate_refresh(&self, req: &RotateRequest) -> Result<RotateOutcome, StoreError>;
    /// Live sessions of a user, oldest first; prunes dead ids from the index.
    async fn list_sessions(&self, user_id: &str, now: UnixTime)
    -> Result<Vec<Session>, StoreError>;
    /// Deletes one session. With `proof`, only if it hashes to the current or previous
    /// refresh token (so a forged token cannot log anyone out). True if it existed.
    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        proof: Option<&TokenHash>,
    ) -> Result<bool, StoreError>;
    /// Deletes all sessions of a user except `keep`. Returns how many were deleted.
    async fn revoke_all_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;

    /// Starts delivering invalidations published by other nodes to `sink`, with the
    /// feed's state ([`FeedEvent::Lost`] at once, [`FeedEvent::Subscribed`] once it is
    /// delivering). Backends with a single process (the embedded store) have nothing
    /// to deliver and never send anything: their cache stays trusted.
    fn subscribe_invalidations(&self, _sink: InvalidationSink) {}

    /// The cookie-session store that lives beside this one (same connection or file),
    /// in `layout`. A backend that cannot hold `layout` says why: the compat layout
    /// means keys shared with a SvelteKit app, which only Redis has.
    fn cookie_session_store(
        &self,
        layout: &crate::session_store::CookieSessionLayout,
    ) -> Result<Arc<dyn crate::session_store::CookieSessionStore>, StoreError> {
        let _ = layout;
        Err(StoreError::Unavailable(
            "this store keeps no cookie sessions".into(),
        ))
    }

    /// The brute-force limiter that fits this backend: shared by every node for Redis,
    /// in-process for single-node backends.
    fn rate_limiter(&self) -> Arc<dyn crate::rate_limit::RateLimiter> {
        Arc::new(crate::rate_limit::MemoryRateLimiter::default())
    }
}
