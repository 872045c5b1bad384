//! The auth service: login, refresh, logout, verification and account administration,
//! written against the [`Store`] trait and the [`Clock`]. The HTTP layer and the CLI are
//! thin wrappers around it.

use std::sync::Arc;

use crate::cache::{CacheStatus, LoadTicket, SessionCache};
use crate::clock::Clock;
use crate::cookie_store::LinkedPrincipal;
use crate::error::{AuthError, StoreError, ValidationError};
use crate::ids::random_id;
use crate::model::{
    ADMIN_PERMISSION, Principal, Role, Session, User, normalize_username, validate_email,
    validate_name, validate_username,
};
use crate::password::{PasswordHasher, PasswordPolicy, Verified};
use crate::rate_limit::{Charge, Decision, RateLimit, RateLimiter};
use crate::store::{
    EndSessions, Invalidation, MAX_SESSION_PAGE, PageRequest, RateCharge, RotateOutcome,
    RotateRequest, SessionCursor, SessionPage, Store, UserUpdate,
};
use crate::token::TokenKeys;
use crate::token::access::AccessTokenCodec;
use crate::token::refresh::{RefreshToken, client_binding};

/// How often a compare-and-set write of a user is retried on the freshest copy before
/// giving up with 503. Conflicts need another write of the same user in the same few
/// milliseconds; eight in a row means something is writing it in a loop.
const MAX_USER_WRITE_ATTEMPTS: usize = 8;

/// Brute-force limits (see [`crate::rate_limit`] and docs/security.md); `None` turns
/// one off. "Client" means a client network: an IPv4 address or an IPv6 prefix
/// ([`crate::network::client_network`]).
#[derive(Debug, Clone, Copy)]
pub struct BruteForceLimits {
    /// Every password check (login, password change) from one client, charged before
    /// the check is queued.
    pub login_per_ip: Option<RateLimit>,
    /// Failed password checks for one account from one client. Reserved before
    /// hashing and refunded when the password is right, so at most this many wrong
    /// guesses are ever evaluated, however many run at once, and the owner never
    /// spends it. Counted per client so that a guesser elsewhere cannot lock the owner
    /// out of their own network.
    pub login_failures_per_account: Option<RateLimit>,
    /// Failed password checks for one account from all clients together: the cap on a
    /// guesser who spreads over many networks. Higher than the per-client one, reserved
    /// and refunded the same way.
    pub login_failures_per_account_total: Option<RateLimit>,
    /// Wrong current passwords in `POST /api/auth/password` under one login session;
    /// past it the session ends (a stolen access token guessing the password).
    pub password_failures_per_session: Option<RateLimit>,
    /// Every refresh attempt from one client.
    pub refresh_per_ip: Option<RateLimit>,
    /// How many leading bits of an IPv6 address identify one client.
    pub ipv6_prefix_len: u8,
}

impl Default for BruteForceLimits {
    fn default() -> Self {
        Self {
            login_per_ip: Some(RateLimit {
                burst: 50,
                interval_secs: 2,
            }),
            login_failures_per_account: Some(RateLimit {
                burst: 10,
                interval_secs: 60,
            }),
            login_failures_per_account_total: Some(RateLimit {
                burst: 100,
                interval_secs: 6,
            }),
            password_failures_per_session: Some(RateLimit {
                burst: 5,
                interval_secs: 3600,
            }),
            refresh_per_ip: Some(RateLimit {
                burst: 120,
                interval_secs: 1,
            }),
            ipv6_prefix_len: crate::network::DEFAULT_IPV6_PREFIX_LEN,
        }
    }
}

/// Lifetimes of login sessions and the reuse rules of their refresh tokens.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Absolute session lifetime, fixed at login (the refresh token's hard limit).
    pub absolute_ttl_secs: i64,
    /// A session not refreshed for this long ends.
    pub idle_ttl_secs: i64,
    /// Grace window for presenting a just-rotated refresh token again.
    pub reuse_grace_secs: i64,
    /// Live login sessions one user may hold; a login past it ends the oldest. Bounds
    /// the user's session index, and with it every script that walks it.
    pub max_sessions_per_user: u32,
}

/// Default of [`SessionPolicy::max_sessions_per_user`]: far more devices and browsers
/// than a person uses at once (so only runaway clients and scripts that log in without
/// logging out meet it), small enough that ending all of a user's sessions or listing
/// them takes Redis well under a millisecond.
pub const DEFAULT_MAX_SESSIONS_PER_USER: u32 = 100;

/// Sessions per page of [`AuthService::list_sessions`] when the caller names no limit:
/// the most a page may hold, and the default cap, so that a client that never follows
/// `next_cursor` still sees every session of a user under the default cap.
pub const DEFAULT_SESSION_PAGE: usize = crate::store::MAX_SESSION_PAGE;

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            absolute_ttl_secs: 7 * 24 * 3600,
            idle_ttl_secs: 3 * 24 * 3600,
            reuse_grace_secs: 5,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
        }
    }
}

/// Where a request came from, recorded on the session it creates.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address (after a trusted proxy header, if configured): it keys the
    /// per-client brute-force limits and the refresh-token client binding, and is
    /// recorded on a new session. `None` (an embedder calling without one) turns off the
    /// per-address limits and the hash queue's per-client share, and counts failed
    /// passwords per account as if from one client.
    pub ip: Option<String>,
    /// The `User-Agent`: recorded on a new session and part of the refresh-token client
    /// binding.
    pub user_agent: Option<String>,
}

/// What login and refresh hand back to the client.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The signed JWT, for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires: the configured lifetime, or less when the
    /// session ends sooner.
    pub expires_in: i64,
    /// The token for the next refresh; the one presented (if any) is now spent, up to the
    /// reuse rules ([`crate::store::RotateOutcome`]).
    pub refresh_token: RefreshToken,
    /// Who the tokens are for, as this node now caches it.
    pub principal: Arc<Principal>,
}

/// Input for creating a user (admin API and CLI).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// 3 to 64 characters ([`validate_username`]); unique up to case, Unicode form and
    /// look-alike characters.
    pub username: String,
    /// Checked for shape ([`validate_email`]) and kept as entered; unique up to case,
    /// Unicode form and look-alike characters ([`crate::model::email_skeleton`]).
    pub email: String,
    /// Plain text, held to the [`PasswordPolicy`]; only its Argon2id hash is kept.
    pub password: String,
    /// Names of defined roles (an unknown one is refused); repeats are dropped.
    pub roles: Vec<String>,
}

/// redauth's operations over one [`Store`]: login, refresh, access-token checks, logout,
/// session listing and account administration. Built with [`AuthService::builder`] and
/// shared as an `Arc` by the HTTP layer and the CLI. Holds this process's principal
/// cache, kept in step with other nodes through the store's revocation feed.
pub struct AuthService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: TokenKeys,
    access: AccessTokenCodec,
    passwords: PasswordHasher,
    password_policy: PasswordPolicy,
    sessions: SessionPolicy,
    cache: SessionCache,
    limiter: Arc<dyn RateLimiter>,
    limits: BruteForceLimits,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

mod builder;
pub use builder::{AuthServiceBuilder, BuildError};

impl AuthService {
    /// Now by the service's clock, which judges every expiry here. Use it for anything
    /// that must agree with them, such as a cookie's `Max-Age`.
    pub fn now(&self) -> crate::clock::UnixTime {
        self.clock.now()
    }

    /// Crate-private (and the store has no accessor at all): outside the core, login
    /// sessions are reached through the service's operations,
    /// [`Self::principal_for_cookie`] and [`Self::cache_status`], so that no caller can
    /// bypass the cache's rules (load tickets, distrust) or the store's.
    pub(crate) fn cache(&self) -> &SessionCache {
        &self.cache
    }

    /// Whether the store answers (`/readyz`); the error is the one a request would get.
    pub async fn ready(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }

    /// [`Self::ready`] with the store's own error, cause included: for the start-up
    /// probe, which logs why the store cannot be reached.
    pub async fn ping_store(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// What the principal cache is doing, read-only: for `/readyz`, metrics and tests.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache.status()
    }

    /// Checks a username and password and opens a session. Unknown users, wrong
    /// passwords and disabled accounts all get `InvalidCredentials` after the same
    /// amount of hashing work.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        if password.chars().count() > self.password_policy.max_chars
            || username.chars().count() > 256
        {
            return Err(AuthError::InvalidCredentials);
        }
        let network = self.network(&client);
        let _place = self.hash_queue_place(network.as_deref())?;
        let reservation = self
            .reserve_password_check(&normalize_username(username), network.as_deref())
            .await?;
        let user = match validate_username(username) {
            Ok(()) => {
                self.store
                    .find_user_by_username(&normalize_username(username))
                    .await?
            }
            Err(_) => None,
        };
        let verified = self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let Some(user) = user.filter(|u| !u.disabled && verified != Verified::No) else {
            // The reserved failure stays charged.
            return Err(AuthError::InvalidCredentials);
        };
        self.refund(&reservation).await;
        let user = match verified {
            Verified::YesRehashed(new_hash) => {
                let checked = user.password_hash.clone();
                let (user, _) = self
                    .modify_user(&user.id, EndSessions::None, |u| {
                        require_password_hash(u, &checked)?;
                        u.password_hash = new_hash.clone();
                        Ok(())
                    })
                    .await?;
                tracing::info!(user_id = %user.id, "upgraded imported bcrypt hash to Argon2id");
                user
            }
            _ => user,
        };
        self.open_session(user, client).await
    }

    /// The client's place in the password-hash queue (a few per client, so one client's
    /// burst cannot make everyone else wait behind it). Taken before anything is
    /// charged: a check refused here (503 `Retry-After`) costs the client nothing. A
    /// request with no known client (an embedder calling without an address) is not
    /// held to it: there is no client to be fair between.
    fn hash_queue_place(
        &self,
        network: Option<&str>,
    ) -> Result<Option<crate::password::ClientPlace>, AuthError> {
        network
            .map(|net| self.passwords.client_place(net))
            .transpose()
    }

    fn network(&self, client: &ClientInfo) -> Option<String> {
        client
            .ip
            .as_deref()
            .and_then(|ip| crate::network::client_network(ip, self.limits.ipv6_prefix_len))
    }

    /// Before a password check for account `name` from `network`: charges the
    /// client's attempt budget, then reserves one failure of the account's per-client
    /// and total budgets in one atomic call, so however many checks race, no more
    /// wrong passwords are ever evaluated than the budgets allow. Returns the
    /// reservation, to [`Self::refund`] when the password turns out right.
    async fn reserve_password_check(
        &self,
        name: &str,
        network: Option<&str>,
    ) -> Result<Vec<Charge>, AuthError> {
        if let Some(net) = network {
            self.limit(self.limits.login_per_ip, &format!("login-ip:{net}"), 1)
                .await?;
        }
        // `{name}`: one hash tag, so both keys of an account share a Cluster slot.
        let per_client = self.limits.login_failures_per_account.map(|limit| Charge {
            key: format!("login-fail:{{{name}}}:{}", network.unwrap_or("-")),
            limit,
        });
        let total = self
            .limits
            .login_failures_per_account_total
            .map(|limit| Charge {
                key: format!("login-fail:{{{name}}}"),
                limit,
            });
        let charges: Vec<Charge> = per_client.into_iter().chain(total).collect();
        if charges.is_empty() {
            return Ok(charges);
        }
        match self
            .limiter
            .charge_all(&charges, self.clock.now().saturating_mul(1000))
            .await?
        {
            Decision::Allowed => Ok(charges),
            Decision::Limited { retry_after_secs } => {
                Err(AuthError::RateLimited { retry_after_secs })
            }
        }
    }

    /// Gives a reservation back (the password was right). A failure to do so costs
    /// the owner one unit of budget, never an attacker anything: logged, not returned.
    async fn refund(&self, reservation: &[Charge]) {
        if reservation.is_empty() {
            return;
        }
        if let Err(e) = self
            .limiter
            .refund(reservation, self.clock.now().saturating_mul(1000))
            .await
        {
            tracing::warn!(error = %crate::error::Chain(&e), "could not refund a password-check reservation");
        }
    }

    /// Charges `cost` (0 = look only) to `key`; `RateLimited` when over the limit.
    async fn limit(&self, limit: Option<RateLimit>, key: &str, cost: u32) -> Result<(), AuthError> {
        let Some(limit) = limit else { return Ok(()) };
        match self
            .limiter
            .check(key, limit, cost, self.clock.now().saturating_mul(1000))
            .await?
        {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after_secs } => {
                Err(AuthError::RateLimited { retry_after_secs })
            }
        }
    }

    /// Creates the login session of a user whose password was checked against
    /// `user.password_hash`. The store creates it only if the user is unchanged since
    /// (same security version); if something else changed (a role, another session's
    /// logout everywhere), the check is repeated on the fresh user, and a changed
    /// password, a disabled or a deleted account refuse the login.
    async fn open_session(
        &self,
        mut user: User,
        client: ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now();
        let absolute_expiry = now + self.sessions.absolute_ttl_secs;
        let session = Session {
            sid: random_id()?,
            user_id: user.id.clone(),
            created_at: now,
            last_seen: now,
            absolute_expiry,
            idle_expiry: (now + self.sessions.idle_ttl_secs).min(absolute_expiry),
            ip: client.ip.map(|ip| truncate(ip, 64)),
            user_agent: client.user_agent.map(|ua| truncate(ua, 512)),
            refresh_generation: 0,
        };
        let refresh = RefreshToken::generate(&user.id, &session.sid)?;
        let refresh_hash = refresh.hash(&self.keys);
        // Taken before the session exists: a revocation of it (a disable racing this
        // login, on any node) that lands before the insert below keeps it out of the
        // cache.
        let mut ticket = self.cache.load_ticket();
        let mut attempts = 0;
        loop {
            match self
                .store
                .create_session(
                    &session,
                    &refresh_hash,
                    user.security_version,
                    self.sessions.max_sessions_per_user,
                    now,
                )
                .await
            {
                Ok(ended) => {
                    // The store told other nodes; this one must not serve them either.
                    for sid in ended {
                        tracing::info!(user_id = %user.id, session_id = %sid,
                            "session ended: over the per-user session cap");
                        self.cache.invalidate(&Invalidation::Session(sid));
                    }
                    break;
                }
                Err(StoreError::Conflict) if attempts < MAX_USER_WRITE_ATTEMPTS => {
                    attempts += 1;
                    let checked = std::mem::take(&mut user.password_hash);
                    user = self
                        .store
                        .get_user(&user.id)
                        .await?
                        .filter(|fresh| require_password_hash(fresh, &checked).is_ok())
                        .ok_or(AuthError::InvalidCredentials)?;
                    ticket = self.cache.load_ticket();
                }
                Err(StoreError::Conflict) => return Err(AuthError::Unavailable),
                Err(e) => return Err(e.into()),
            }
        }
        let roles = self.store.list_roles().await?;
        let principal = self
            .cache
            .insert_loaded(ticket, Principal::from_parts(&session, &user, &roles));
        tracing::info!(user_id = %user.id, session_id = %session.sid, "login");
        self.issue(principal, refresh)
    }

    fn issue(
        &self,
        principal: Arc<Principal>,
        refresh_token: RefreshToken,
    ) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now();
        let (access_token, claims) = self.access.issue(&principal, now)?;
        Ok(IssuedTokens {
            access_token,
            expires_in: claims.exp - now,
            refresh_token,
            principal,
        })
    }

    /// Rotates a refresh token: one atomic store call. See [`RotateOutcome`].
    pub async fn refresh(
        &self,
        presented: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        let token = RefreshToken::parse(presented)?;
        // Charged inside the rotation call, so a refresh stays one round trip.
        let network = self.network(client);
        let charge = match (&network, self.limits.refresh_per_ip) {
            (Some(net), Some(limit)) => Some(RateCharge {
                key: format!("refresh-ip:{net}"),
                limit,
                now_ms: self.clock.now().saturating_mul(1000),
            }),
            _ => None,
        };
        let successor = token.successor(&self.keys);
        let req = RotateRequest {
            user_id: token.user_id.clone(),
            session_id: token.session_id.clone(),
            presented: token.hash(&self.keys),
            successor: successor.hash(&self.keys),
            client_binding: client_binding(
                &self.keys,
                network.as_deref(),
                client.user_agent.as_deref(),
            ),
            now: self.clock.now(),
            grace_secs: self.sessions.reuse_grace_secs,
            idle_secs: self.sessions.idle_ttl_secs,
            charge,
        };
        let ticket = self.cache.load_ticket();
        match self.store.rotate_refresh(&req).await? {
            RotateOutcome::Rotated(rec) | RotateOutcome::Replayed(rec) => {
                if rec.user.disabled {
                    self.revoke(&rec.user.id, &rec.session.sid).await?;
                    return Err(AuthError::InvalidRefreshToken);
                }
                let principal = self.cache.insert_loaded(
                    ticket,
                    Principal::from_parts(&rec.session, &rec.user, &rec.roles),
                );
                self.issue(principal, successor)
            }
            RotateOutcome::Reused => {
                self.cache
                    .invalidate(&Invalidation::Session(token.session_id.clone()));
                tracing::warn!(user_id = %token.user_id, session_id = %token.session_id,
                    "refresh token reused after rotation; session revoked");
                Err(AuthError::RefreshTokenReused)
            }
            RotateOutcome::ForeignReplay => {
                tracing::warn!(user_id = %token.user_id, session_id = %token.session_id,
                    "just-rotated refresh token presented by another client; refused");
                Err(AuthError::InvalidRefreshToken)
            }
            RotateOutcome::Invalid => Err(AuthError::InvalidRefreshToken),
            RotateOutcome::RateLimited { retry_after_secs } => {
                Err(AuthError::RateLimited { retry_after_secs })
            }
        }
    }

    /// The principal behind a bearer access token. The hot path: signature and claims,
    /// then the in-process cache; only a cache miss reads the store (one round trip).
    pub async fn authenticate(&self, access_token: &str) -> Result<Arc<Principal>, AuthError> {
        let now = self.clock.now();
        let claims = self.access.verify(access_token, now)?;
        if let Some(p) = self.cache.get(&claims.sub, &claims.sid) {
            return Ok(p);
        }
        // Taken before the read: an invalidation that arrives while the read is in
        // flight (a logout on another node) wins over it (issue 10, item 6).
        let ticket = self.cache.load_ticket();
        let rec = self
            .store
            .load_principal(&claims.sub, &claims.sid, now)
            .await?;
        match rec {
            Some(rec) if !rec.user.disabled => Ok(self.cache.insert_loaded(
                ticket,
                Principal::from_parts(&rec.session, &rec.user, &rec.roles),
            )),
            _ => Err(AuthError::InvalidToken),
        }
    }

    /// Begins reading the principal of a login session for a cookie-session check:
    /// the one way cookie-session code reaches login sessions. Call it before the
    /// store read that may bring the principal along (the cookie session read with
    /// [`crate::cookie_store::CookieSessionStore::load_with_principal`]): it takes the
    /// load ticket, so a revocation that arrives while that read is in flight keeps
    /// what it read out of the cache, as for [`Self::authenticate`].
    pub fn principal_for_cookie(&self) -> PrincipalForCookie<'_> {
        PrincipalForCookie {
            service: self,
            ticket: self.cache.load_ticket(),
        }
    }

    /// Ends the session named by either token. Idempotent: unknown, expired or
    /// malformed tokens end nothing and are not an error.
    pub async fn logout(
        &self,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(token) = refresh_token.and_then(|t| RefreshToken::parse(t).ok()) {
            let proof = token.hash(&self.keys);
            self.store
                .revoke_session(&token.user_id, &token.session_id, Some(&proof))
                .await?;
            self.cache
                .invalidate(&Invalidation::Session(token.session_id.clone()));
        }
        if let Some(claims) =
            access_token.and_then(|t| self.access.verify(t, self.clock.now()).ok())
        {
            self.revoke(&claims.sub, &claims.sid).await?;
        }
        Ok(())
    }

    async fn revoke(&self, user_id: &str, session_id: &str) -> Result<bool, AuthError> {
        let existed = self.store.revoke_session(user_id, session_id, None).await?;
        self.cache
            .invalidate(&Invalidation::Session(session_id.to_owned()));
        Ok(existed)
    }

    /// Ends every session of the user except `keep`. Also a new security version, so a
    /// login whose password check was in flight cannot open a session afterwards.
    pub async fn revoke_all_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, AuthError> {
        let (_, done) = self
            .modify_user(user_id, EndSessions::AllBut(keep), |_| Ok(()))
            .await?;
        Ok(done.sessions_ended)
    }

    /// Read-modify-write of a user as a compare-and-set loop: `change` is applied to
    /// the freshest stored copy each time, so a concurrent write (an admin removing a
    /// role while a password change hashes) is never undone. The sessions `end` names
    /// end in the same atomic write; cached principals of the user are dropped here and,
    /// through the store's feed, on every node.
    async fn modify_user(
        &self,
        user_id: &str,
        end: EndSessions<'_>,
        mut change: impl FnMut(&mut User) -> Result<(), AuthError>,
    ) -> Result<(User, UserUpdate), AuthError> {
        for _ in 0..MAX_USER_WRITE_ATTEMPTS {
            let mut user = self
                .store
                .get_user(user_id)
                .await?
                .ok_or(AuthError::NotFound)?;
            change(&mut user)?;
            user.updated_at = self.clock.now().max(user.created_at);
            match self.store.update_user(&user, end).await {
                Ok(done) => {
                    user.security_version = done.security_version;
                    self.cache
                        .invalidate(&Invalidation::User(user_id.to_owned()));
                    return Ok((user, done));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::Unavailable)
    }

    /// One page of the user's live sessions. `limit` (default [`DEFAULT_SESSION_PAGE`])
    /// must be 1 to [`MAX_SESSION_PAGE`]; `cursor` is a `next_cursor` an earlier page
    /// returned. Either one malformed is `InvalidRequest`.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<SessionPage, AuthError> {
        let limit = limit.unwrap_or(DEFAULT_SESSION_PAGE);
        if !(1..=MAX_SESSION_PAGE).contains(&limit) {
            return Err(ValidationError::new("limit", "must be 1 to 100").into());
        }
        const _: () = assert!(MAX_SESSION_PAGE == 100, "update the message above");
        let after = cursor.map(str::parse::<SessionCursor>).transpose()?;
        let page = PageRequest { after, limit };
        Ok(self
            .store
            .list_sessions(user_id, self.clock.now(), &page)
            .await?)
    }

    /// Every live session of the user, read page by page (each store call bounded), for
    /// the admin CLI.
    pub async fn list_all_sessions(&self, user_id: &str) -> Result<Vec<Session>, AuthError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_sessions(user_id, None, cursor.as_deref()).await?;
            all.extend(page.sessions);
            match page.next {
                Some(next) => cursor = Some(next.to_string()),
                None => return Ok(all),
            }
        }
    }

    /// Revokes one of the user's own sessions; `NotFound` if it is not theirs or gone.
    pub async fn revoke_session(&self, user_id: &str, session_id: &str) -> Result<(), AuthError> {
        if !crate::ids::is_valid_id(session_id) || !self.revoke(user_id, session_id).await? {
            return Err(AuthError::NotFound);
        }
        Ok(())
    }

    /// Changes the caller's password after checking the current one, then ends every
    /// other session of the user.
    ///
    /// The current-password check is a password check like a login: it pays the same
    /// budgets (a stolen access token must not become an unlimited guessing oracle),
    /// and too many wrong current passwords in one session end that session.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self
            .store
            .get_user(&principal.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let network = self.network(client);
        let _place = self.hash_queue_place(network.as_deref())?;
        let reservation = self
            .reserve_password_check(&normalize_username(&user.username), network.as_deref())
            .await?;
        if current.chars().count() > self.password_policy.max_chars
            || self
                .passwords
                .verify(current, Some(&user.password_hash))
                .await?
                == Verified::No
        {
            let key = format!("password-fail:{}", principal.session_id);
            let limit = self.limits.password_failures_per_session;
            // The failure that spends the budget ends the session.
            let spent = matches!(
                self.limit(limit, &key, 1).await,
                Err(AuthError::RateLimited { .. })
            ) || matches!(
                self.limit(limit, &key, 0).await,
                Err(AuthError::RateLimited { .. })
            );
            if spent {
                self.revoke(&user.id, &principal.session_id).await?;
                tracing::warn!(user_id = %user.id, session_id = %principal.session_id,
                    "too many wrong current passwords; session ended");
            }
            return Err(AuthError::InvalidCredentials);
        }
        self.refund(&reservation).await;
        self.set_password(
            &user.id,
            new,
            Some(&principal.session_id),
            Some(&user.password_hash),
        )
        .await
    }

    /// Sets a new password and ends every session but `keep_session`, in one atomic
    /// write. With `checked_hash`, only if the stored hash still is the one the
    /// caller's current password was checked against.
    async fn set_password(
        &self,
        user_id: &str,
        new: &str,
        keep_session: Option<&str>,
        checked_hash: Option<&str>,
    ) -> Result<(), AuthError> {
        self.password_policy.check(new)?;
        let new_hash = self.passwords.hash(new).await?;
        let now = self.clock.now();
        self.modify_user(user_id, EndSessions::AllBut(keep_session), |u| {
            if let Some(checked) = checked_hash {
                require_password_hash(u, checked)?;
            }
            u.password_hash = new_hash.clone();
            u.password_changed_at = now;
            Ok(())
        })
        .await?;
        Ok(())
    }

    // ---- administration (admin API and CLI) ----

    /// Creates an enabled user after checking the username, the email, the password
    /// policy and that every role exists. `UsernameTaken` when the name, or one that
    /// normalizes or looks the same, is taken; `EmailTaken` likewise for the email.
    pub async fn create_user(&self, new: NewUser) -> Result<User, AuthError> {
        validate_username(&new.username)?;
        validate_email(&new.email)?;
        self.password_policy.check(&new.password)?;
        self.ensure_roles_exist(&new.roles).await?;
        let now = self.clock.now();
        let user = User {
            id: random_id()?,
            username: new.username,
            email: new.email,
            password_hash: self.passwords.hash(&new.password).await?,
            roles: dedup(new.roles),
            disabled: false,
            created_at: now,
            updated_at: now,
            password_changed_at: now,
            security_version: 0,
        };
        self.store.create_user(&user).await?;
        tracing::info!(user_id = %user.id, "user created");
        Ok(user)
    }

    /// The user with this username, in any case or Unicode form (it is normalized first);
    /// `NotFound` otherwise, also for a name that could never be valid.
    pub async fn find_user(&self, username: &str) -> Result<User, AuthError> {
        validate_username(username)?;
        self.store
            .find_user_by_username(&normalize_username(username))
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// The user with this id; `NotFound` for an unknown or malformed id.
    pub async fn get_user(&self, id: &str) -> Result<User, AuthError> {
        if !crate::ids::is_valid_id(id) {
            return Err(AuthError::NotFound);
        }
        self.store.get_user(id).await?.ok_or(AuthError::NotFound)
    }

    /// Every user, sorted by username. Reads them all: for the admin API and the CLI.
    pub async fn list_users(&self) -> Result<Vec<User>, AuthError> {
        let mut users = self.store.list_users().await?;
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    /// Disabling also ends every session, so access stops on the next request.
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<User, AuthError> {
        if !crate::ids::is_valid_id(user_id) {
            return Err(AuthError::NotFound);
        }
        let end = if disabled {
            EndSessions::AllBut(None)
        } else {
            EndSessions::None
        };
        let guarded = disabled
            && self
                .refuse_leaving_no_admin(|users, _| {
                    users
                        .iter_mut()
                        .filter(|u| u.id == user_id)
                        .for_each(|u| u.disabled = true);
                })
                .await?;
        let (user, _) = self
            .modify_user(user_id, end, |u| {
                u.disabled = disabled;
                Ok(())
            })
            .await?;
        if self.no_admin_left(guarded).await? {
            self.modify_user(user_id, EndSessions::None, |u| {
                u.disabled = false;
                Ok(())
            })
            .await?;
            return Err(AuthError::LastAdmin);
        }
        Ok(user)
    }

    /// Refuses a change (applied by `change` to copies of every user and role) that
    /// would take the number of enabled users holding the admin permission from at
    /// least one to none: nobody could administer redauth afterwards but with direct
    /// access to the store. A deployment without any admin (before the first one is
    /// made) is not held to it. Returns whether the guard applies (there was an
    /// admin), for [`Self::no_admin_left`] after the write.
    async fn refuse_leaving_no_admin(
        &self,
        change: impl FnOnce(&mut Vec<User>, &mut Vec<Role>),
    ) -> Result<bool, AuthError> {
        let mut users = self.store.list_users().await?;
        let mut roles = self.store.list_roles().await?;
        if count_admins(&users, &roles) == 0 {
            return Ok(false);
        }
        change(&mut users, &mut roles);
        if count_admins(&users, &roles) == 0 {
            return Err(AuthError::LastAdmin);
        }
        Ok(true)
    }

    /// After a write that passed [`Self::refuse_leaving_no_admin`] found the guard applies: true if no admin
    /// is left anyway (two admins removed each other at the same moment). The caller
    /// then undoes its own write; if both race, both undo, which errs on the side of
    /// keeping an administrator.
    async fn no_admin_left(&self, guarded: bool) -> Result<bool, AuthError> {
        if !guarded {
            return Ok(false);
        }
        let users = self.store.list_users().await?;
        let roles = self.store.list_roles().await?;
        Ok(count_admins(&users, &roles) == 0)
    }

    /// Sets a user's password without the current one (admin API and CLI), held to the
    /// password policy, and ends every session of the user in the same write.
    pub async fn admin_set_password(&self, user_id: &str, new: &str) -> Result<(), AuthError> {
        if !crate::ids::is_valid_id(user_id) {
            return Err(AuthError::NotFound);
        }
        self.set_password(user_id, new, None, None).await
    }

    /// Replaces the user's roles with `roles` (each must exist; repeats dropped).
    /// `LastAdmin` if that would leave no enabled admin. The user's sessions go on with
    /// the new rights: cached principals are dropped on every node, and linked cookie
    /// sessions narrowed.
    pub async fn set_user_roles(
        &self,
        user_id: &str,
        roles: Vec<String>,
    ) -> Result<User, AuthError> {
        self.ensure_roles_exist(&roles).await?;
        let roles = dedup(roles);
        self.change_roles(user_id, |held| *held = roles.clone())
            .await
    }

    /// Adds one role, keeping whatever else the user holds at the moment of the write.
    pub async fn grant_role(&self, user_id: &str, role: &str) -> Result<User, AuthError> {
        self.ensure_roles_exist(&[role.to_owned()]).await?;
        self.change_roles(user_id, |held| {
            if !held.iter().any(|r| r == role) {
                held.push(role.to_owned());
            }
        })
        .await
    }

    /// Removes one role, keeping whatever else the user holds at the moment of the write.
    pub async fn revoke_role(&self, user_id: &str, role: &str) -> Result<User, AuthError> {
        self.change_roles(user_id, |held| held.retain(|r| r != role))
            .await
    }

    async fn change_roles(
        &self,
        user_id: &str,
        mut change: impl FnMut(&mut Vec<String>),
    ) -> Result<User, AuthError> {
        if !crate::ids::is_valid_id(user_id) {
            return Err(AuthError::NotFound);
        }
        let guarded = self
            .refuse_leaving_no_admin(|users, _| {
                users
                    .iter_mut()
                    .filter(|u| u.id == user_id)
                    .for_each(|u| change(&mut u.roles));
            })
            .await?;
        let mut previous = Vec::new();
        let (user, _) = self
            .modify_user(user_id, EndSessions::None, |u| {
                previous.clone_from(&u.roles);
                change(&mut u.roles);
                Ok(())
            })
            .await?;
        if self.no_admin_left(guarded).await? {
            self.modify_user(user_id, EndSessions::None, |u| {
                u.roles.clone_from(&previous);
                Ok(())
            })
            .await?;
            return Err(AuthError::LastAdmin);
        }
        self.narrow_cookie_links(&user).await?;
        Ok(user)
    }

    /// Writes a user's rights into the cookie sessions linked to their login sessions,
    /// so that a SvelteKit app reading them straight from the store (compat layout)
    /// stops trusting a role or permission the user lost. It only ever narrows: a link
    /// keeps the rights it showed that the user still holds. A grant shows up when
    /// redauth next checks the session and moves it to a new id (a copy of the old
    /// cookie never gains rights). A session written concurrently (renewed, moved) is
    /// read again, a few times; what ended is skipped.
    async fn narrow_cookie_links(&self, user: &User) -> Result<(), AuthError> {
        const ATTEMPTS: usize = 3;
        let mut permissions = None;
        for _ in 0..ATTEMPTS {
            let cookies = self.store.linked_cookie_sessions(&user.id).await?;
            let mut all_written = true;
            for cookie in cookies {
                let permissions = match &permissions {
                    Some(p) => p,
                    None => permissions.insert(self.permissions_of(user).await?),
                };
                let Some(narrowed) = narrowed_link_data(&cookie.data, user, permissions) else {
                    continue;
                };
                all_written &= self
                    .store
                    .replace_linked_cookie_data(&cookie, &narrowed)
                    .await?;
            }
            if all_written {
                return Ok(());
            }
        }
        Err(AuthError::Unavailable)
    }

    async fn permissions_of(
        &self,
        user: &User,
    ) -> Result<std::collections::BTreeSet<String>, AuthError> {
        Ok(self
            .store
            .list_roles()
            .await?
            .into_iter()
            .filter(|r| user.roles.contains(&r.name))
            .flat_map(|r| r.permissions)
            .collect())
    }

    /// Deleting an admin first disables them under the last-admin guard, so two admins
    /// deleting each other at once cannot both succeed.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), AuthError> {
        if !crate::ids::is_valid_id(user_id) {
            return Err(AuthError::NotFound);
        }
        let users = self.store.list_users().await?;
        let roles = self.store.list_roles().await?;
        if users
            .iter()
            .any(|u| u.id == user_id && !u.disabled && is_admin(u, &roles))
        {
            self.set_disabled(user_id, true).await?;
        }
        if !self.store.delete_user(user_id).await? {
            return Err(AuthError::NotFound);
        }
        self.cache
            .invalidate(&Invalidation::User(user_id.to_owned()));
        Ok(())
    }

    /// Creates or replaces the role `role.name` (repeated permissions dropped). Every
    /// node drops every cached principal, since any may hold the role; `LastAdmin` if the
    /// change would leave no enabled admin.
    pub async fn put_role(&self, role: Role) -> Result<Role, AuthError> {
        let role = Role {
            name: role.name,
            permissions: dedup(role.permissions),
        };
        role.validate()?;
        let previous = self
            .store
            .list_roles()
            .await?
            .into_iter()
            .find(|r| r.name == role.name);
        let guarded = self
            .refuse_leaving_no_admin(|_, roles| {
                roles.retain(|r| r.name != role.name);
                roles.push(role.clone());
            })
            .await?;
        self.store.put_role(&role).await?;
        self.cache.invalidate(&Invalidation::All);
        if self.no_admin_left(guarded).await? {
            if let Some(previous) = previous {
                self.store.put_role(&previous).await?;
                self.cache.invalidate(&Invalidation::All);
            }
            return Err(AuthError::LastAdmin);
        }
        for user in self.store.list_users().await? {
            if user.roles.contains(&role.name) {
                self.narrow_cookie_links(&user).await?;
            }
        }
        Ok(role)
    }

    /// Every role, sorted by name.
    pub async fn list_roles(&self) -> Result<Vec<Role>, AuthError> {
        let mut roles = self.store.list_roles().await?;
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    async fn ensure_roles_exist(&self, roles: &[String]) -> Result<(), AuthError> {
        if roles.is_empty() {
            return Ok(());
        }
        for r in roles {
            validate_name("roles", r)?;
        }
        let defined = self.store.list_roles().await?;
        if roles.iter().all(|r| defined.iter().any(|d| &d.name == r)) {
            Ok(())
        } else {
            Err(ValidationError::new("roles", "names a role that is not defined").into())
        }
    }
}

/// A principal load begun by [`AuthService::principal_for_cookie`], before the store
/// read it may use; spent by [`Self::load`]. One load, one ticket.
#[must_use = "a principal load is spent by load()"]
pub struct PrincipalForCookie<'a> {
    service: &'a AuthService,
    ticket: LoadTicket,
}

impl PrincipalForCookie<'_> {
    /// The principal of login session `session_id` of `user_id`: the cached one, else
    /// `read` (what the cookie-session store read together with the cookie session)
    /// when it is for these very ids, else one store read. `None` when the login
    /// session has ended or its user is gone or disabled. What was read is cached
    /// unless an invalidation arrived since the load began.
    pub async fn load(
        self,
        user_id: &str,
        session_id: &str,
        read: Option<LinkedPrincipal>,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let service = self.service;
        if let Some(p) = service.cache.get(user_id, session_id) {
            return Ok(Some(p));
        }
        let record = match read {
            Some(l) if l.user_id == user_id && l.session_id == session_id => l.record,
            _ => {
                service
                    .store
                    .load_principal(user_id, session_id, service.clock.now())
                    .await?
            }
        };
        Ok(record.filter(|r| !r.user.disabled).map(|r| {
            let principal = Principal::from_parts(&r.session, &r.user, &r.roles);
            service.cache.insert_loaded(self.ticket, principal)
        }))
    }
}

/// The serialized cookie-session `data` with its link narrowed to what `user` still
/// holds, or `None` when there is nothing to change (no link of this user, not JSON,
/// or nothing lost).
fn narrowed_link_data(
    data: &str,
    user: &User,
    permissions: &std::collections::BTreeSet<String>,
) -> Option<String> {
    use crate::cookie_store::{CookieSessionLink, LINK_KEY};
    let serde_json::Value::Object(mut fields) = serde_json::from_str(data).ok()? else {
        return None;
    };
    let link: CookieSessionLink = serde_json::from_value(fields.get(LINK_KEY)?.clone()).ok()?;
    if link.user_id != user.id {
        return None;
    }
    let mut narrowed = link.clone();
    narrowed.roles.retain(|r| user.roles.contains(r));
    narrowed.permissions.retain(|p| permissions.contains(p));
    if narrowed == link {
        return None;
    }
    fields.insert(LINK_KEY.into(), serde_json::to_value(narrowed).ok()?);
    serde_json::to_string(&fields).ok()
}

/// Does `user` hold the admin permission through one of `roles`?
fn is_admin(user: &User, roles: &[Role]) -> bool {
    roles.iter().any(|r| {
        user.roles.contains(&r.name) && r.permissions.iter().any(|p| p == ADMIN_PERMISSION)
    })
}

/// Enabled users holding the admin permission.
fn count_admins(users: &[User], roles: &[Role]) -> usize {
    users
        .iter()
        .filter(|u| !u.disabled && is_admin(u, roles))
        .count()
}

/// A password checked against `checked` still opens this account only if the account
/// still has that hash and is enabled.
fn require_password_hash(user: &User, checked: &str) -> Result<(), AuthError> {
    if user.disabled || user.password_hash != checked {
        return Err(AuthError::InvalidCredentials);
    }
    Ok(())
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

fn truncate(mut s: String, max_bytes: usize) -> String {
    if s.len() > max_bytes {
        let mut cut = max_bytes;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
