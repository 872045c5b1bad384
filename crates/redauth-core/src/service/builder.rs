//! Building an [`AuthService`]. Every part has a default, and each default lives in one
//! place, next to its type (`SessionPolicy::default()`, `AccessTokenConfig::default()`,
//! …): an embedder writes `AuthService::builder(store, secret).build()?`, and the
//! server's configuration only overrides what its settings name.

use std::sync::Arc;

use crate::cache::SessionCache;
use crate::clock::{Clock, SystemClock};
use crate::error::AuthError;
use crate::password::{Argon2Params, HashQueue, PasswordHasher, PasswordPolicy};
use crate::secret::Secret;
use crate::store::Store;
use crate::token::access::{AccessTokenCodec, AccessTokenConfig};
use crate::token::{MIN_SECRET_BYTES, TokenKeys};

use super::{AuthService, BruteForceLimits, SessionPolicy};

/// Why [`AuthServiceBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A secret shorter than HS256's key size: refused rather than used, because a
    /// short secret can be brute-forced offline from any one access token.
    #[error("the {which} secret is {len} bytes; HS256 needs at least {MIN_SECRET_BYTES}")]
    WeakSecret {
        /// `access` or `refresh`.
        which: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The access secret is shared with services that verify tokens; a refresh key
    /// equal to it would let them forge refresh-token hashes.
    #[error("the access and refresh secrets must differ")]
    SameSecrets,
    /// Argon2 parameters out of range, or no randomness for the timing-equaliser hash.
    #[error(transparent)]
    Setup(#[from] AuthError),
}

/// Collects the parts of an [`AuthService`]; see [`AuthService::builder`].
pub struct AuthServiceBuilder {
    store: Arc<dyn Store>,
    secret: Secret,
    refresh_secret: Option<Secret>,
    clock: Arc<dyn Clock>,
    access: AccessTokenConfig,
    sessions: SessionPolicy,
    password_policy: PasswordPolicy,
    argon2: Argon2Params,
    hash_concurrency: usize,
    hash_queue: HashQueue,
    cache_capacity: u64,
    cache_max_age_secs: i64,
    limits: BruteForceLimits,
}

impl std::fmt::Debug for AuthServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServiceBuilder")
            .field("access", &self.access)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service on `store` whose tokens are keyed by `secret` (at least
    /// [`MIN_SECRET_BYTES`] bytes: it is the HS256 key of access tokens, and the refresh
    /// key is derived from it unless [`AuthServiceBuilder::refresh_secret`] gives one).
    /// Everything else starts at its default and can be overridden:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use redauth_core::{AuthService, Secret, Store};
    /// # use redauth_core::service::{BuildError, SessionPolicy};
    /// fn service(store: Arc<dyn Store>, secret: Secret) -> Result<Arc<AuthService>, BuildError> {
    ///     AuthService::builder(store, secret)
    ///         .access_ttl_secs(5 * 60)
    ///         .session_policy(SessionPolicy {
    ///             idle_ttl_secs: 3600,
    ///             ..SessionPolicy::default()
    ///         })
    ///         .build()
    /// }
    /// ```
    pub fn builder(store: Arc<dyn Store>, secret: Secret) -> AuthServiceBuilder {
        AuthServiceBuilder {
            store,
            secret,
            refresh_secret: None,
            clock: Arc::new(SystemClock),
            access: AccessTokenConfig::default(),
            sessions: SessionPolicy::default(),
            password_policy: PasswordPolicy::default(),
            argon2: Argon2Params::default(),
            hash_concurrency: crate::password::default_hash_concurrency(),
            hash_queue: HashQueue::default(),
            cache_capacity: crate::cache::DEFAULT_CAPACITY,
            cache_max_age_secs: crate::cache::DEFAULT_MAX_AGE_SECS,
            limits: BruteForceLimits::default(),
        }
    }
}

impl AuthServiceBuilder {
    /// Where "now" comes from; tests pass a [`crate::ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keys refresh tokens with their own secret instead of one derived from the
    /// access secret, for deployments that hand the access secret to other verifiers.
    pub fn refresh_secret(mut self, secret: Secret) -> Self {
        self.refresh_secret = Some(secret);
        self
    }

    /// Issuer, audience, lifetime and leeway of access tokens, all at once.
    pub fn access_tokens(mut self, config: AccessTokenConfig) -> Self {
        self.access = config;
        self
    }

    /// Access-token lifetime, keeping the other access-token defaults.
    pub fn access_ttl_secs(mut self, secs: i64) -> Self {
        self.access.ttl_secs = secs;
        self
    }

    /// Session lifetimes, the refresh-token reuse window and the per-user session cap.
    pub fn session_policy(mut self, policy: SessionPolicy) -> Self {
        self.sessions = policy;
        self
    }

    /// Length limits of new passwords.
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.password_policy = policy;
        self
    }

    /// Cost of new password hashes; stored hashes keep the cost they were made with.
    pub fn argon2(mut self, params: Argon2Params) -> Self {
        self.argon2 = params;
        self
    }

    /// Password hashes running at once (at least 1 is used).
    pub fn hash_concurrency(mut self, n: usize) -> Self {
        self.hash_concurrency = n;
        self
    }

    /// How many password checks may wait for a hashing slot, for how long, and how many
    /// per client.
    pub fn hash_queue(mut self, queue: HashQueue) -> Self {
        self.hash_queue = queue;
        self
    }

    /// Login sessions cached in this process.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// No cached principal is served longer than this after it was read from the
    /// store, whatever happened to the revocation feed.
    pub fn cache_max_age_secs(mut self, secs: i64) -> Self {
        self.cache_max_age_secs = secs;
        self
    }

    /// The brute-force budgets; a `None` in them turns that one off.
    pub fn brute_force_limits(mut self, limits: BruteForceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the secrets, prepares the password hasher (one hash, to time unknown
    /// users like known ones) and subscribes the cache to the store's revocation feed.
    pub fn build(self) -> Result<Arc<AuthService>, BuildError> {
        let strong = |which: &'static str, s: &Secret| match s.expose().len() {
            len if len < MIN_SECRET_BYTES => Err(BuildError::WeakSecret { which, len }),
            _ => Ok(()),
        };
        strong("access", &self.secret)?;
        let keys = match &self.refresh_secret {
            None => TokenKeys::from_single_secret(&self.secret)?,
            Some(refresh) => {
                strong("refresh", refresh)?;
                if refresh == &self.secret {
                    return Err(BuildError::SameSecrets);
                }
                TokenKeys::from_pair(&self.secret, refresh)
            }
        };
        let passwords = PasswordHasher::new(self.argon2, self.hash_concurrency, self.hash_queue)?;
        let cache = SessionCache::new(
            self.cache_capacity,
            self.cache_max_age_secs,
            self.clock.clone(),
        );
        let sink_cache = cache.clone();
        self.store
            .subscribe_invalidations(Arc::new(move |event| sink_cache.apply_feed_event(event)));
        Ok(Arc::new(AuthService {
            limiter: self.store.rate_limiter(),
            limits: self.limits,
            store: self.store,
            clock: self.clock,
            access: AccessTokenCodec::new(&keys, self.access),
            keys,
            passwords,
            password_policy: self.password_policy,
            sessions: self.sessions,
            cache,
        }))
    }
}
