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
    /// The login session, live at the time of the read.
    pub session: Session,
    /// Its owner, as stored: disabled or not, which the caller checks.
    pub user: User,
    /// Definitions of the roles the user holds (missing definitions are left out).
    pub roles: Vec<Role>,
}

/// Everything [`Store::rotate_refresh`] needs to rotate a refresh token in one atomic
/// call.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// From the presented token; only this user's session is looked at.
    pub user_id: UserId,
    /// From the presented token.
    pub session_id: SessionId,
    /// HMAC of the presented token, compared with the session's current, previous and
    /// older token hashes.
    pub presented: TokenHash,
    /// HMAC of the token that becomes current on success. Deterministic (derived from the
    /// presented token), so a legitimate replay is answered with the same successor.
    pub successor: TokenHash,
    /// Who is asking ([`crate::token::refresh::client_binding`]). A rotation records
    /// it; the previous token presented again gets the successor back only from the
    /// same client binding (two tabs of one browser, a retry after a lost reply).
    pub client_binding: String,
    /// Unix seconds, from the service's clock.
    pub now: UnixTime,
    /// How long after a rotation the previous token, presented from *another* client
    /// binding, is refused without ending the session (it may be the same user behind
    /// a second address). After it, such a presentation is theft. Anchored to the
    /// rotation.
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
    /// The key charged, as in [`crate::rate_limit::Charge::key`].
    pub key: String,
    /// The limit the key is held to.
    pub limit: crate::rate_limit::RateLimit,
    /// Unix milliseconds from the service's clock (the limiter's unit).
    pub now_ms: i64,
}

/// What [`Store::rotate_refresh`] did with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was current; its successor is now current.
    Rotated(PrincipalRecord),
    /// The presented token was the previous one, from the client binding that
    /// rotated it, and its successor was never used: the successor stays current and
    /// is handed out again (two tabs refreshing at once, or a client retrying after it
    /// lost the reply). Not limited in time: it ends when the successor is used.
    Replayed(PrincipalRecord),
    /// The previous token, from another client binding, within the grace window:
    /// refused, nothing changed, nothing handed out.
    ForeignReplay,
    /// A token that really was issued for this session and has since been rotated
    /// (the previous one from another client after the grace window, or an older
    /// one): someone else may hold the session's tokens, so it has been revoked.
    Reused,
    /// Unknown session, expired, or a token this session never issued (a made-up
    /// token changes nothing, whatever ids it names).
    Invalid,
    /// The charge was refused: nothing was read or rotated.
    RateLimited {
        /// Whole seconds, rounded up, until a refresh may be allowed again.
        retry_after_secs: u64,
    },
}

/// A message on the revocation feed: what every node must drop from its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One login session ended (logout, revocation, theft detection).
    Session(SessionId),
    /// Something about the user changed (password, roles, disabled, deleted): drop every
    /// principal of the user.
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

/// Which login sessions a user write ends, in the same atomic step as the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSessions<'a> {
    /// End no session.
    None,
    /// Every session of the user except the one named, if any.
    AllBut(Option<&'a str>),
}

/// A cookie session linked to one of a user's login sessions, as
/// [`Store::linked_cookie_sessions`] found it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkedCookieSession {
    /// Where the backend keeps it, opaque to callers.
    pub reference: String,
    /// The serialized session data (`cookie_store::StoredCookieSession::data`).
    pub data: String,
    /// The stored value the data was read from, opaque: a replacement applies only if
    /// it is still exactly this.
    pub stored: String,
}

impl std::fmt::Debug for LinkedCookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The reference holds a cookie-session id, a bearer credential.
        f.debug_struct("LinkedCookieSession")
            .finish_non_exhaustive()
    }
}

/// What a successful [`Store::update_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserUpdate {
    /// The security version the user now has.
    pub security_version: u64,
    /// Login sessions ended by the write.
    pub sessions_ended: u64,
}

/// How many hashes of rotated refresh tokens a login session keeps, besides the
/// previous one, so an old token presented again is recognised as this session's
/// (theft) rather than as a made-up token (ignored). 32 rotations at the default
/// 15-minute access lifetime cover 8 hours of continuous use; an older token is
/// refused without ending the session.
pub const REFRESH_HISTORY_LEN: usize = 32;
/// Characters of each history hash kept (of 43): 96 bits, enough that no made-up
/// token matches by chance, a third of the space.
pub const REFRESH_HISTORY_HASH_CHARS: usize = 16;

/// The largest cap on live login sessions per user that may be configured
/// (`REDAUTH_MAX_SESSIONS_PER_USER`). Also the default number of sessions one Redis
/// script call ends or prunes at most, so that, whatever cap is configured, ending all
/// the sessions of a user within the cap stays one atomic call.
pub const MAX_SESSIONS_PER_USER_LIMIT: u32 = 10_000;

/// Most sessions one [`Store::list_sessions`] call returns; a larger limit is clamped.
/// Each listed session is read in full, so this bounds how long one page keeps Redis
/// busy (about 15 µs per session).
pub const MAX_SESSION_PAGE: usize = 100;

/// Where a page of [`Store::list_sessions`] starts: just after the session with this
/// absolute expiry and id, in index order (absolute expiry, then id bytes). A position
/// in the order, not an offset, so sessions ending between two calls neither skip nor
/// repeat any other. Shown to clients as `<absolute expiry>.<sid>`, opaque to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    /// The absolute expiry of the last session of the previous page.
    pub absolute_expiry: UnixTime,
    /// Its id, which orders sessions with the same expiry.
    pub sid: SessionId,
}

impl std::fmt::Display for SessionCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.absolute_expiry, self.sid)
    }
}

impl std::str::FromStr for SessionCursor {
    type Err = crate::error::ValidationError;

    /// Only what [`Display`](std::fmt::Display) writes: a cursor is client input and its
    /// id becomes part of a storage key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || crate::error::ValidationError::new("cursor", "is not a cursor this server returned");
        let (expiry, sid) = s.split_once('.').ok_or_else(bad)?;
        if !crate::ids::is_valid_id(sid) {
            return Err(bad());
        }
        Ok(Self {
            absolute_expiry: expiry.parse().map_err(|_| bad())?,
            sid: sid.to_owned(),
        })
    }
}

/// Which page of a user's sessions [`Store::list_sessions`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// `None`: from the oldest.
    pub after: Option<SessionCursor>,
    /// How many index entries the call examines, 1 to [`MAX_SESSION_PAGE`] (clamped).
    pub limit: usize,
}

/// One page of a user's live sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPage {
    /// Oldest first. May hold fewer than the limit even when more follow: dead
    /// sessions met on the page are pruned, not replaced.
    pub sessions: Vec<Session>,
    /// Where the next page starts; `None` when this page reached the end.
    pub next: Option<SessionCursor>,
}

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

    /// Fails with `UsernameTaken` if another user has the same normalized username or
    /// one that looks alike, and with `EmailTaken` if another user has an email with the
    /// same [`crate::model::email_skeleton`] (which covers the same normalized email);
    /// also under concurrent creates. The claims are taken in the same atomic step as
    /// the write.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Compare-and-set: replaces the stored user with `user` only if the stored
    /// security version still is `user.security_version` (else `Conflict`, nothing
    /// written), storing it with the version incremented; in the same atomic step it
    /// ends the sessions `end` names and tells every node. The username cannot change.
    /// The email can: the new one's claim is taken and the old one's released in the
    /// same step (`EmailTaken`, nothing written, if another user holds it). A user
    /// stored before email claims existed claims its email here. `NotFound` if absent.
    async fn update_user(
        &self,
        user: &User,
        end: EndSessions<'_>,
    ) -> Result<UserUpdate, StoreError>;
    /// The user with this id, or `None`.
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// The user whose normalized username ([`crate::model::normalize_username`]) is that
    /// of `username`, so callers may pass any form; failing that, the user stored under
    /// its lower-cased form (accounts made before NFKC normalization); else `None`.
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Every user. Administrative: it reads them all.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Deletes the user, its username and email claims and all its sessions.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError>;

    /// Creates or replaces the role named `role.name`, and tells every node to drop its
    /// cached principals ([`Invalidation::All`]).
    async fn put_role(&self, role: &Role) -> Result<(), StoreError>;
    /// Every role definition, in no particular order.
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;

    /// Stores a new session whose current refresh token hashes to `refresh`, adds it to
    /// the user's index and prunes expired ids from that index; only if the user still
    /// exists, is enabled and has security version `user_version` (the one its
    /// password was checked under), else `Conflict` and nothing is written.
    ///
    /// In the same atomic step it holds the user to `max_sessions` live sessions: while
    /// more are live, the oldest other one (lowest absolute expiry, which is the
    /// earliest created while the absolute lifetime is unchanged) ends as a revocation
    /// does, cookie sessions linked to it included, and every node is told. Returns
    /// the ids of the sessions it ended, so the caller can evict them from its own
    /// cache. An index far over the cap (sessions from before it, or a lowered cap)
    /// shrinks by a bounded batch per call rather than all at once (see the backend).
    async fn create_session(
        &self,
        session: &Session,
        refresh: &TokenHash,
        user_version: u64,
        max_sessions: u32,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError>;
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
    /// One page of a user's live sessions, oldest first (by absolute expiry, then id);
    /// prunes the dead ids it meets from the index. One call reads at most
    /// `page.limit` sessions, however many the user has; follow
    /// [`SessionPage::next`] for the rest.
    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError>;
    /// Deletes one session. With `proof`, only if it hashes to the current or previous
    /// refresh token (so a forged token cannot log anyone out). True if it existed.
    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        proof: Option<&TokenHash>,
    ) -> Result<bool, StoreError>;

    /// The cookie sessions linked to the user's login sessions (the ones ending a login
    /// session ends), wherever they live and whatever this process's cookie-session
    /// configuration, so a change of the user's rights can be written into the copy of
    /// them that a SvelteKit app reads from the store.
    async fn linked_cookie_sessions(
        &self,
        user_id: &str,
    ) -> Result<Vec<LinkedCookieSession>, StoreError>;
    /// Replaces the data of `cookie`, keeping its expiry, if its stored value is still
    /// `cookie.stored` (else `Ok(false)`, nothing written: it changed or ended).
    async fn replace_linked_cookie_data(
        &self,
        cookie: &LinkedCookieSession,
        data: &str,
    ) -> Result<bool, StoreError>;

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
        layout: &crate::cookie_store::CookieSessionLayout,
    ) -> Result<Arc<dyn crate::cookie_store::CookieSessionStore>, StoreError> {
        let _ = layout;
        Err(StoreError::unavailable(
            "this store keeps no cookie sessions",
        ))
    }

    /// The brute-force limiter that fits this backend: shared by every node for Redis,
    /// in-process for single-node backends.
    fn rate_limiter(&self) -> Arc<dyn crate::rate_limit::RateLimiter> {
        Arc::new(crate::rate_limit::MemoryRateLimiter::default())
    }
}
