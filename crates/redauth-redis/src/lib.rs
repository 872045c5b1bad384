//! redauth's [`Store`] on Redis (single node, password/ACL auth, TLS).
//!
//! Every operation is one Lua script call (see [`scripts`]); the key layout is in
//! [`keys`]. Revocations are published on a pub/sub channel and delivered to every
//! node's session cache by [`RedisStore::subscribe_invalidations`].

pub mod cookie_sessions;
mod feed;
pub mod keys;
mod rate_limit;
mod scripts;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redauth_core::clock::UnixTime;
use redauth_core::error::BoxError;
use redauth_core::model::SessionId;
use redauth_core::store::{
    EndSessions, InvalidationSink, LinkedCookieSession, PageRequest, PrincipalRecord,
    REFRESH_HISTORY_HASH_CHARS, REFRESH_HISTORY_LEN, RotateOutcome, RotateRequest, SessionCursor,
    SessionPage, UserUpdate,
};
use redauth_core::token::refresh::TokenHash;
use redauth_core::{Role, Session, Store, StoreError, User, ValidationError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Value};

pub use crate::cookie_sessions::RedisCookieSessionStore;
pub use crate::feed::{FeedStatus, Heartbeat};
use crate::keys::Keys;
pub use crate::rate_limit::RedisRateLimiter;
use crate::scripts::Scripts;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host:port[/db]` or `rediss://…` for TLS.
    pub url: redauth_core::Secret,
    /// PEM file of the CA that signed the server certificate (TLS only); without it
    /// the system roots are used.
    pub ca_file: Option<PathBuf>,
    pub key_prefix: String,
    /// A command that takes longer than this fails as `Unavailable` (503), never hangs.
    pub response_timeout: Duration,
    /// How the revocation feed proves its subscription is alive: a silent one is
    /// detected within `interval + deadline`, and the session cache is off from then
    /// until the feed has resubscribed.
    pub feed_heartbeat: Heartbeat,
    /// The most login sessions one script call ends, prunes or reads beyond the cap:
    /// bounds how long a call over a user's session index keeps Redis (single-threaded,
    /// shared by every node) busy, even for an index from before the per-user cap. The
    /// default equals the largest cap one may configure, so ending every session of a
    /// user within the cap is always one atomic call.
    pub session_batch: u32,
}

impl RedisConfig {
    pub fn new(url: &str, key_prefix: &str) -> Self {
        Self {
            url: redauth_core::Secret::new(url),
            ca_file: None,
            key_prefix: key_prefix.to_owned(),
            response_timeout: Duration::from_secs(2),
            feed_heartbeat: Heartbeat::default(),
            session_batch: redauth_core::store::MAX_SESSIONS_PER_USER_LIMIT,
        }
    }
}

/// How many times `delete_user` reads the user again when its email changed between
/// the read and the delete script.
const DELETE_ATTEMPTS: usize = 5;

pub struct RedisStore {
    client: redis::Client,
    con: ConnectionManager,
    keys: Keys,
    scripts: Arc<Scripts>,
    feed: feed::FeedState,
    heartbeat: Heartbeat,
    session_batch: u32,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Creates the store without waiting for Redis: the connection is made on first
    /// use and re-made after failures, so a Redis that is down at start makes
    /// requests fail with `Unavailable` instead of stopping the process.
    pub fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let bad = |what: &'static str, e: BoxError| {
            StoreError::unavailable_because(format!("redis configuration: {what}"), e)
        };
        let client = match &config.ca_file {
            Some(path) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let root_cert =
                    std::fs::read(path).map_err(|e| bad("cannot read CA file", e.into()))?;
                redis::Client::build_with_tls(
                    config.url.expose(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            None => {
                if config.url.expose().starts_with("rediss://") {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
                redis::Client::open(config.url.expose())
            }
        }
        .map_err(|e| bad("invalid client settings", e.into()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let con = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| bad("cannot create the connection manager", e.into()))?;
        Ok(Self {
            client,
            con,
            keys: Keys::new(&config.key_prefix),
            scripts: Arc::new(Scripts::new()),
            feed: feed::FeedState::default(),
            heartbeat: config.feed_heartbeat,
            session_batch: config.session_batch.max(1),
        })
    }

    /// Loads every script, the cookie-session ones of both layouts included, into
    /// Redis' script cache, so that later calls are exactly one `EVALSHA` each (used by
    /// tests that count round trips).
    pub async fn preload_scripts(&self) -> Result<(), StoreError> {
        for s in self.scripts.all() {
            s.prepare_invoke()
                .load_async(&mut self.con.clone())
                .await
                .map_err(map_err)?;
        }
        self.cookie_sessions(&redauth_core::cookie_store::CookieSessionLayout::Native)
            .preload_scripts()
            .await
    }

    /// Resolves once the invalidation feed is subscribed (after
    /// [`Store::subscribe_invalidations`]). Tests wait on it so that no publish is lost.
    pub async fn invalidation_feed_ready(&self) {
        self.feed.ready().await;
    }

    /// The revocation feed's state: whether it is subscribed, and how many times it
    /// subscribed and was lost. Changes are published after the session cache has
    /// applied them, so a test can await a loss and then rely on the cache being off.
    pub fn feed_state(&self) -> tokio::sync::watch::Receiver<FeedStatus> {
        self.feed.watch()
    }

    fn con(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// A rate limiter sharing this store's connection and key prefix.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.con(), &self.keys)
    }

    /// Runs one script call, once more if the connection had dropped (after a Redis
    /// restart the first command finds the old socket dead; the retry waits for the
    /// reconnect). Retrying is safe for every script here, because each one gives the
    /// same answer when run again after a run whose reply was lost: a rotation run
    /// twice by the same client is a replay that returns the same successor, a create
    /// of the same user or session finds its own earlier write, revocations and
    /// compare-and-set writes are idempotent or report the conflict. (A rate-limit
    /// charge may count twice: in the client's disfavour, never in an attacker's.)
    async fn run<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        match inv.invoke_async(&mut self.con()).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                inv.invoke_async(&mut self.con()).await.map_err(map_err)
            }
            other => other.map_err(map_err),
        }
    }

    /// [`Self::run`] for plain commands.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        match cmd.query_async(&mut self.con()).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                cmd.query_async(&mut self.con()).await.map_err(map_err)
            }
            other => other.map_err(map_err),
        }
    }
}

impl RedisStore {
    /// Ends, a batch per call, what `UPDATE_USER` or `DELETE_USER` left of a user's
    /// session index larger than one batch: every session but `keep` created under a
    /// security version below `below` (all of them with `None`). Passes over the index
    /// until one ends nothing, so ids that moved while it ran (other logins and logouts
    /// shift positions) are not missed. Returns how many sessions it ended.
    async fn end_remaining_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        below: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let mut ended_in_pass = 0u64;
            let mut start = 0u64;
            loop {
                let reply: Vec<i64> = self
                    .run(
                        self.scripts
                            .end_user_sessions
                            .key(self.keys.user_sessions(user_id))
                            .arg(self.keys.session_prefix(user_id))
                            .arg(keep.unwrap_or(""))
                            .arg(below.map(|v| v.to_string()).unwrap_or_default())
                            .arg(start)
                            .arg(self.session_batch)
                            .arg(self.keys.invalidation_channel())
                            .arg(user_id),
                    )
                    .await?;
                let [ended, kept, examined] = reply.as_slice() else {
                    return Err(corrupt("end_user_sessions reply has the wrong shape"));
                };
                ended_in_pass += u64::try_from(*ended).unwrap_or(0);
                start += u64::try_from(*kept).unwrap_or(0);
                if *examined < i64::from(self.session_batch) {
                    break;
                }
            }
            total += ended_in_pass;
            if ended_in_pass == 0 {
                return Ok(total);
            }
        }
    }
}

/// Whatever keeps redauth from using Redis (network, auth, TLS, a loading or read-only
/// server) is `Unavailable` (503); only a reply that makes no sense is `Corrupt`.
pub(crate) fn map_err(e: redis::RedisError) -> StoreError {
    use redis::ErrorKind as K;
    let operational = matches!(
        e.kind(),
        K::AuthenticationFailed | K::Io | K::Client | K::InvalidClientConfig
    );
    if operational
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
    {
        StoreError::unavailable_because("redis", e)
    } else {
        match e.code() {
            Some(
                "LOADING" | "MASTERDOWN" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "NOAUTH"
                | "WRONGPASS",
            ) => StoreError::unavailable_because("redis", e),
            _ => StoreError::corrupt_because("redis refused a command or sent a bad reply", e),
        }
    }
}

fn corrupt(what: impl Into<std::borrow::Cow<'static, str>>) -> StoreError {
    StoreError::corrupt(what)
}

fn decode_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt_because("stored JSON", e))
}

fn encode_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::corrupt_because("JSON encoding", e))
}

fn from_value<T: FromRedisValue>(v: Value) -> Result<T, StoreError> {
    T::from_redis_value(v).map_err(|e| StoreError::corrupt_because("redis reply", e))
}

/// The session hash as written by `create_session`.
fn session_fields(s: &Session, refresh: &TokenHash) -> Vec<(&'static str, String)> {
    vec![
        ("uid", s.user_id.clone()),
        ("created", s.created_at.to_string()),
        ("last_seen", s.last_seen.to_string()),
        ("abs_exp", s.absolute_expiry.to_string()),
        ("idle_exp", s.idle_expiry.to_string()),
        ("ip", s.ip.clone().unwrap_or_default()),
        ("ua", s.user_agent.clone().unwrap_or_default()),
        ("gen", s.refresh_generation.to_string()),
        ("cur", refresh.0.clone()),
        ("prev", String::new()),
        ("rot_at", "0".to_owned()),
        ("bind", String::new()),
        ("old", String::new()),
    ]
}

fn parse_session(sid: Option<&str>, flat: Vec<String>) -> Result<Session, StoreError> {
    let mut f: HashMap<String, String> = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        f.insert(k, v);
    }
    let text = |k: &str| {
        f.get(k)
            .cloned()
            .ok_or_else(|| corrupt(format!("session field {k} missing")))
    };
    let num = |k: &str| -> Result<i64, StoreError> {
        text(k)?
            .parse()
            .map_err(|_| corrupt(format!("session field {k} not a number")))
    };
    let optional = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Session {
        sid: match sid {
            Some(s) => s.to_owned(),
            None => text("sid")?,
        },
        user_id: text("uid")?,
        created_at: num("created")?,
        last_seen: num("last_seen")?,
        absolute_expiry: num("abs_exp")?,
        idle_expiry: num("idle_exp")?,
        ip: optional("ip"),
        user_agent: optional("ua"),
        refresh_generation: u64::try_from(num("gen")?)
            .map_err(|_| corrupt("negative generation"))?,
    })
}

/// Decodes `{session hash, user JSON, role JSONs}` from the principal scripts.
fn parse_principal(sid: &str, parts: Vec<Value>) -> Result<PrincipalRecord, StoreError> {
    let mut it = parts.into_iter();
    let (Some(s), Some(u), Some(r)) = (it.next(), it.next(), it.next()) else {
        return Err(corrupt("principal reply has the wrong shape"));
    };
    let session = parse_session(Some(sid), from_value(s)?)?;
    let user: User = decode_json(&from_value::<String>(u)?)?;
    let roles = from_value::<Vec<Option<String>>>(r)?
        .into_iter()
        .flatten()
        .map(|j| decode_json::<Role>(&j))
        .collect::<Result<_, _>>()?;
    Ok(PrincipalRecord {
        session,
        user,
        roles,
    })
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(&redis::cmd("PING")).await?;
        Ok(())
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        user.validate()?;
        let [name, look, legacy] = self.keys.username_claims(&user.username);
        let created: i64 = self
            .run(
                self.scripts
                    .create_user
                    .key(name)
                    .key(self.keys.user(&user.id))
                    .key(self.keys.users())
                    .key(look)
                    .key(legacy)
                    .key(self.keys.email_claim(&user.email))
                    .arg(&user.id)
                    .arg(encode_json(user)?)
                    .arg(self.keys.user_key_prefix())
                    .arg(Keys::USER_KEY_SUFFIX),
            )
            .await?;
        match created {
            1 => Ok(()),
            2 => Err(StoreError::EmailTaken),
            _ => Err(StoreError::UsernameTaken),
        }
    }

    async fn update_user(
        &self,
        user: &User,
        end: EndSessions<'_>,
    ) -> Result<UserUpdate, StoreError> {
        user.validate()?;
        let based_on = user.security_version;
        let next = based_on
            .checked_add(1)
            .ok_or_else(|| corrupt("security version overflow"))?;
        let stored = User {
            security_version: next,
            ..user.clone()
        };
        let json = encode_json(&stored)?;
        let new_claim = self.keys.email_claim(&user.email);
        // Most writes keep the email: assume the stored one is this one, and learn the
        // stored one from the script (a second call) only when it is not.
        let mut stored_email = user.email.clone();
        for _ in 0..2 {
            let old_claim = if stored_email == user.email {
                new_claim.clone()
            } else {
                self.keys.email_claim(&stored_email)
            };
            let mut inv = self.scripts.update_user.key(self.keys.user(&user.id));
            inv.key(self.keys.user_sessions(&user.id))
                .key(
                    self.keys
                        .username_skeleton(&redauth_core::model::username_skeleton(&user.username)),
                )
                .key(&new_claim)
                .key(old_claim)
                .arg(&json)
                .arg(self.keys.invalidation_channel())
                .arg(&user.id)
                .arg(based_on)
                .arg(&stored_email)
                .arg(self.keys.user_key_prefix())
                .arg(Keys::USER_KEY_SUFFIX);
            match end {
                EndSessions::None => inv.arg("0"),
                EndSessions::AllBut(keep) => inv
                    .arg("1")
                    .arg(keep.unwrap_or(""))
                    .arg(self.keys.session_prefix(&user.id))
                    .arg(self.session_batch),
            };
            let reply: Vec<Value> = self.run(&inv).await?;
            let mut it = reply.into_iter();
            let code: i64 = from_value(
                it.next()
                    .ok_or_else(|| corrupt("update_user reply is empty"))?,
            )?;
            let mut num = || -> Result<i64, StoreError> {
                from_value(
                    it.next()
                        .ok_or_else(|| corrupt("update_user reply has the wrong shape"))?,
                )
            };
            return match code {
                1 => {
                    let (ended, more) = (num()?, num()?);
                    let mut sessions_ended = u64::try_from(ended).unwrap_or(0);
                    if let (EndSessions::AllBut(keep), 1) = (end, more) {
                        // Only an index from before the cap gets here. Sessions created
                        // from now on carry the new version and are left alone.
                        sessions_ended += self
                            .end_remaining_sessions(&user.id, keep, Some(next))
                            .await?;
                    }
                    Ok(UserUpdate {
                        security_version: next,
                        sessions_ended,
                    })
                }
                0 => Err(StoreError::NotFound),
                -1 => Err(ValidationError::new("username", "cannot be changed").into()),
                -2 => Err(StoreError::Conflict),
                -3 => {
                    let Some(email) = it.next() else {
                        return Err(corrupt("update_user reply has the wrong shape"));
                    };
                    stored_email = from_value(email)?;
                    continue;
                }
                -4 => Err(StoreError::EmailTaken),
                _ => Err(corrupt("update_user reply has the wrong shape")),
            };
        }
        // The version matched both times, so the stored email cannot have moved
        // between the calls; a second mismatch is a write that raced it anyway.
        Err(StoreError::Conflict)
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let json: Option<String> = self
            .query(redis::cmd("GET").arg(self.keys.user(id)))
            .await?;
        json.map(|j| decode_json(&j)).transpose()
    }

    /// Under the NFKC key, then (a second round trip, only for a name whose lower-cased
    /// form differs, and only on a miss) under the key users made before NFKC have.
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let normalized = redauth_core::model::normalize_username(username);
        let legacy = redauth_core::model::legacy_normalized_username(username);
        for key in [&normalized, &legacy] {
            let json: Option<String> = self
                .run(
                    self.scripts
                        .find_user_by_username
                        .key(self.keys.username(key))
                        .arg(self.keys.user_key_prefix())
                        .arg(Keys::USER_KEY_SUFFIX),
                )
                .await?;
            if let Some(j) = json {
                return decode_json(&j).map(Some);
            }
            if legacy == normalized {
                break;
            }
        }
        Ok(None)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let jsons: Vec<String> = self
            .run(
                self.scripts
                    .list_users
                    .key(self.keys.users())
                    .arg(self.keys.user_key_prefix())
                    .arg(Keys::USER_KEY_SUFFIX),
            )
            .await?;
        jsons.iter().map(|j| decode_json(j)).collect()
    }

    /// Reads the user for the keys of its claims, then deletes in one script, which
    /// checks that the email is still the one read (an email change in between moved
    /// its claim): if not, it reads again.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        for _ in 0..DELETE_ATTEMPTS {
            let Some(user) = self.get_user(id).await? else {
                return Ok(false);
            };
            let [name, look, legacy] = self.keys.username_claims(&user.username);
            let deleted: i64 = self
                .run(
                    self.scripts
                        .delete_user
                        .key(self.keys.user(id))
                        .key(name)
                        .key(self.keys.users())
                        .key(self.keys.user_sessions(id))
                        .key(look)
                        .key(legacy)
                        .key(self.keys.email_claim(&user.email))
                        .arg(id)
                        .arg(self.keys.session_prefix(id))
                        .arg(self.keys.invalidation_channel())
                        .arg(self.session_batch)
                        .arg(&user.email),
                )
                .await?;
            match deleted {
                3 => continue,
                2 => {
                    // The user is gone, so none of the rest loads any more: this is
                    // cleanup.
                    self.end_remaining_sessions(id, None, None).await?;
                    return Ok(true);
                }
                n => return Ok(n == 1),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn put_role(&self, role: &Role) -> Result<(), StoreError> {
        role.validate()?;
        let _: i64 = self
            .run(
                self.scripts
                    .put_role
                    .key(self.keys.roles())
                    .arg(&role.name)
                    .arg(encode_json(role)?)
                    .arg(self.keys.invalidation_channel()),
            )
            .await?;
        Ok(())
    }

    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        let jsons: Vec<String> = self
            .query(redis::cmd("HVALS").arg(self.keys.roles()))
            .await?;
        jsons.iter().map(|j| decode_json(j)).collect()
    }

    async fn create_session(
        &self,
        session: &Session,
        refresh: &TokenHash,
        user_version: u64,
        max_sessions: u32,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        session.validate()?;
        let mut inv = self
            .scripts
            .create_session
            .key(self.keys.session(&session.user_id, &session.sid));
        inv.key(self.keys.user_sessions(&session.user_id))
            .key(self.keys.user(&session.user_id))
            .arg(now)
            .arg(&session.sid)
            .arg(session.absolute_expiry)
            .arg(session.idle_expiry)
            .arg(user_version)
            .arg(max_sessions.max(1))
            .arg(self.session_batch)
            .arg(self.keys.session_prefix(&session.user_id))
            .arg(self.keys.invalidation_channel());
        for (k, v) in session_fields(session, refresh) {
            inv.arg(k).arg(v);
        }
        let reply: Vec<Value> = self.run(&inv).await?;
        let mut it = reply.into_iter();
        match it.next().map(from_value::<i64>).transpose()? {
            Some(1) => it.map(from_value::<String>).collect(),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn load_principal(
        &self,
        user_id: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<Option<PrincipalRecord>, StoreError> {
        let reply: Option<Vec<Value>> = self
            .run(
                self.scripts
                    .load_principal
                    .key(self.keys.session(user_id, session_id))
                    .key(self.keys.user(user_id))
                    .key(self.keys.roles())
                    .arg(now),
            )
            .await?;
        reply
            .map(|parts| parse_principal(session_id, parts))
            .transpose()
    }

    async fn rotate_refresh(&self, req: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        let mut inv = self
            .scripts
            .rotate_refresh
            .key(self.keys.session(&req.user_id, &req.session_id));
        inv.key(self.keys.user(&req.user_id))
            .key(self.keys.roles())
            .key(self.keys.user_sessions(&req.user_id))
            .arg(&req.presented.0)
            .arg(&req.successor.0)
            .arg(req.now)
            .arg(req.grace_secs)
            .arg(req.idle_secs)
            .arg(self.keys.invalidation_channel())
            .arg(&req.session_id)
            .arg(&req.client_binding)
            .arg(REFRESH_HISTORY_LEN)
            .arg(REFRESH_HISTORY_HASH_CHARS);
        match &req.charge {
            Some(c) => {
                inv.key(self.keys.rate_limit(&c.key))
                    .arg("1")
                    .arg(c.now_ms)
                    .arg(c.limit.interval_ms())
                    .arg(c.limit.tolerance_ms());
            }
            None => {
                inv.arg("0");
            }
        }
        let reply: Vec<Value> = self.run(&inv).await?;
        let mut it = reply.into_iter();
        let code: i64 = from_value(it.next().ok_or_else(|| corrupt("empty rotate reply"))?)?;
        Ok(match code {
            1 => RotateOutcome::Rotated(parse_principal(&req.session_id, it.collect())?),
            2 => RotateOutcome::Replayed(parse_principal(&req.session_id, it.collect())?),
            -1 => RotateOutcome::Reused,
            -2 => RotateOutcome::ForeignReplay,
            -3 => {
                let wait_ms: i64 = it.next().map(from_value).transpose()?.unwrap_or(1000);
                match redauth_core::rate_limit::Decision::after_wait(wait_ms) {
                    redauth_core::rate_limit::Decision::Limited { retry_after_secs } => {
                        RotateOutcome::RateLimited { retry_after_secs }
                    }
                    redauth_core::rate_limit::Decision::Allowed => RotateOutcome::RateLimited {
                        retry_after_secs: 1,
                    },
                }
            }
            _ => RotateOutcome::Invalid,
        })
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        let limit = page.limit.clamp(1, redauth_core::store::MAX_SESSION_PAGE);
        let mut inv = self
            .scripts
            .list_sessions
            .key(self.keys.user_sessions(user_id));
        inv.arg(now)
            .arg(self.keys.session_prefix(user_id))
            .arg(limit);
        if let Some(after) = &page.after {
            inv.arg(after.absolute_expiry).arg(&after.sid);
        }
        let (flats, score, sid): (Vec<Vec<String>>, String, String) = self.run(&inv).await?;
        let sessions = flats
            .into_iter()
            .map(|flat| parse_session(None, flat))
            .collect::<Result<_, _>>()?;
        let next = if sid.is_empty() {
            None
        } else {
            Some(SessionCursor {
                absolute_expiry: score
                    .parse()
                    .map_err(|_| corrupt("session index score is not a whole number"))?,
                sid,
            })
        };
        Ok(SessionPage { sessions, next })
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        proof: Option<&TokenHash>,
    ) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(
                self.scripts
                    .revoke_session
                    .key(self.keys.session(user_id, session_id))
                    .key(self.keys.user_sessions(user_id))
                    .arg(session_id)
                    .arg(self.keys.invalidation_channel())
                    .arg(proof.map_or("", |p| p.0.as_str()))
                    .arg(if proof.is_some() { "1" } else { "0" }),
            )
            .await?;
        Ok(n > 0)
    }

    async fn linked_cookie_sessions(
        &self,
        user_id: &str,
    ) -> Result<Vec<LinkedCookieSession>, StoreError> {
        // A batch of the index per call, so an index from before the cap does not hold
        // Redis for one long call; within the cap it is one call.
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let reply: Vec<Value> = self
                .run(
                    self.scripts
                        .linked_cookie_sessions
                        .key(self.keys.user_sessions(user_id))
                        .arg(self.keys.session_prefix(user_id))
                        .arg(start)
                        .arg(self.session_batch),
                )
                .await?;
            let mut it = reply.into_iter();
            let examined: u64 = it
                .next()
                .map(from_value)
                .transpose()?
                .ok_or_else(|| corrupt("linked_cookie_sessions reply is empty"))?;
            while let (Some(entry), Some(stored)) = (it.next(), it.next()) {
                let (entry, stored): (String, String) = (from_value(entry)?, from_value(stored)?);
                let data = if entry.starts_with('n') {
                    cookie_sessions::envelope_data(&stored)?
                } else {
                    stored.clone()
                };
                out.push(LinkedCookieSession {
                    reference: entry,
                    data,
                    stored,
                });
            }
            if examined < u64::from(self.session_batch) {
                return Ok(out);
            }
            start += examined;
        }
    }

    async fn replace_linked_cookie_data(
        &self,
        cookie: &LinkedCookieSession,
        data: &str,
    ) -> Result<bool, StoreError> {
        let mut fields = cookie.reference.split('\t');
        let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
            return Err(corrupt("cookie-session reference has the wrong shape"));
        };
        let value = if kind == "n" {
            cookie_sessions::with_envelope_data(&cookie.stored, data)?
        } else {
            data.to_owned()
        };
        let replaced: i64 = self
            .run(
                self.scripts
                    .replace_cookie_value
                    .key(key)
                    .arg(&cookie.stored)
                    .arg(value),
            )
            .await?;
        Ok(replaced == 1)
    }

    fn rate_limiter(&self) -> Arc<dyn redauth_core::rate_limit::RateLimiter> {
        Arc::new(RedisStore::rate_limiter(self))
    }

    fn cookie_session_store(
        &self,
        layout: &redauth_core::cookie_store::CookieSessionLayout,
    ) -> Result<Arc<dyn redauth_core::cookie_store::CookieSessionStore>, StoreError> {
        Ok(Arc::new(self.cookie_sessions(layout)))
    }

    fn subscribe_invalidations(&self, sink: InvalidationSink) {
        feed::spawn(feed::Feed {
            client: self.client.clone(),
            channel: self.keys.invalidation_channel(),
            sink,
            state: self.feed.clone(),
            heartbeat: self.heartbeat,
            command: self.con(),
        });
    }
}
