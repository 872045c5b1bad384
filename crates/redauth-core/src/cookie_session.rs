//! Cookie sessions for applications: [`CookieSessionManager`] issues, reads, renews,
//! rotates and ends sessions that hold arbitrary JSON data, on any
//! [`CookieSessionStore`], in redauth's native format or in the format of
//! `@ethercorps/sveltekit-redis-session` 1.x.
//!
//! ```
//! # use std::sync::Arc;
//! # use redauth_core::cookie::native::{NativeCodec, NativeMode};
//! # use redauth_core::cookie_session::*;
//! # use redauth_core::cookie_store::MemoryCookieSessionStore;
//! # use redauth_core::{Secret, SystemClock};
//! # async fn demo() -> Result<(), CookieSessionError> {
//! let secret = Secret::new("a secret of at least thirty-two bytes!!");
//! let sessions = CookieSessionManager::new(
//!     Arc::new(MemoryCookieSessionStore::default()),
//!     CookieFormat::Native(NativeCodec::new(&secret, NativeMode::Signed)?),
//!     CookieSessionOptions::default(),
//!     Arc::new(SystemClock),
//! )?;
//! let issued = sessions.create(serde_json::json!({"cart": [1, 2]}), Some("user-1")).await?;
//! // send issued.set_cookie as a Set-Cookie header; on the next request:
//! let cookie_value = issued.set_cookie.split(';').next().and_then(|kv| kv.split_once('='));
//! let loaded = sessions.get(cookie_value.map(|(_, v)| v).unwrap_or("")).await?;
//! assert_eq!(loaded.session.data["cart"][1], 2);
//! # Ok(()) }
//! ```
//!
//! Every method takes the time from the injected [`Clock`]. Nothing here logs a session
//! id or a cookie value.

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use crate::clock::{Clock, UnixTime};
use crate::cookie::compat::{CompatCodec, compat_random_id, is_compat_id};
use crate::cookie::native::NativeCodec;
use crate::cookie::{CookieAttributes, CookieError};
use crate::cookie_store::{CookieSessionStore, LinkedPrincipal, StoredCookieSession, redacted};
use crate::error::{AuthError, StoreError};
use crate::ids::{is_valid_id, random_id};

/// Everything a cookie-session operation can fail with.
#[derive(Debug, Error)]
pub enum CookieSessionError {
    /// No cookie was presented, or an empty one (401 `missing_session` over HTTP).
    #[error("no session cookie was presented")]
    Missing,
    /// Malformed, forged, or issued under another secret or format.
    #[error("the session cookie is invalid")]
    InvalidCookie,
    /// A well-formed cookie whose session does not exist (ended, expired, never did).
    #[error("the session has ended or never existed")]
    NotFound,
    /// The data could not be serialized; the serializer's reason (400 `invalid_request`
    /// for login's `session_data`).
    #[error("session data cannot be serialized: {0}")]
    Encode(String),
    /// Stored data the serializer cannot read: written by something else, or corrupt.
    #[error("stored session data cannot be read: {0}")]
    Decode(String),
    /// Rendering the `Set-Cookie` failed: the settings or the OS RNG, never the client's
    /// input (500).
    #[error(transparent)]
    Cookie(CookieError),
    /// The store failed (503, or 500 for data that does not decode) or refused a value
    /// (400).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// From the login and principal checks of the server glue.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<CookieError> for CookieSessionError {
    fn from(e: CookieError) -> Self {
        match e {
            CookieError::Invalid => Self::InvalidCookie,
            other => Self::Cookie(other),
        }
    }
}

/// Turns session data into the string a store keeps, and back. JSON by default; the
/// compat layout needs whatever serializer the SvelteKit app passes to the library.
pub trait CookieSessionSerializer: Send + Sync + 'static {
    /// The string to store for `data`; `Err` holds a reason, reported as
    /// [`CookieSessionError::Encode`].
    fn serialize(&self, data: &Value) -> Result<String, String>;
    /// The data back from a stored string (written by redauth or by the SvelteKit app);
    /// `Err` holds a reason, reported as [`CookieSessionError::Decode`].
    fn deserialize(&self, stored: &str) -> Result<Value, String>;
}

/// `JSON.stringify` / `JSON.parse`, the library's default.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSerializer;

impl CookieSessionSerializer for JsonSerializer {
    fn serialize(&self, data: &Value) -> Result<String, String> {
        serde_json::to_string(data).map_err(|e| e.to_string())
    }

    fn deserialize(&self, stored: &str) -> Result<Value, String> {
        serde_json::from_str(stored).map_err(|e| e.to_string())
    }
}

/// Which cookie value format, and with it which id shape.
#[derive(Debug, Clone)]
pub enum CookieFormat {
    /// redauth's format: 128-bit ids, HKDF-derived keys, signed or AES-256-GCM sealed.
    Native(NativeCodec),
    /// The SvelteKit library's: 36-character ids, `id.base64(HMAC(secret, id))`.
    Compat(CompatCodec),
}

impl CookieFormat {
    fn new_id(&self) -> Result<String, CookieSessionError> {
        match self {
            Self::Native(_) => random_id().map_err(|_| CookieError::Rng.into()),
            Self::Compat(_) => Ok(compat_random_id()?),
        }
    }

    fn encode(&self, id: &str) -> Result<String, CookieError> {
        match self {
            Self::Native(c) => c.encode(id),
            Self::Compat(c) => c.encode(id),
        }
    }

    fn decode(&self, value: &str) -> Result<String, CookieError> {
        match self {
            Self::Native(c) => c.decode(value),
            Self::Compat(c) => c.decode(value),
        }
    }

    fn is_id(&self, id: &str) -> bool {
        match self {
            Self::Native(_) => is_valid_id(id),
            Self::Compat(_) => is_compat_id(id),
        }
    }

    fn max_value_len(&self) -> usize {
        match self {
            Self::Native(c) => c.max_value_len(),
            Self::Compat(c) => c.max_value_len(),
        }
    }
}

/// Options, named after the library's where they mean the same.
#[derive(Debug, Clone)]
pub struct CookieSessionOptions {
    /// Cookie name and attributes (`cookieName`, `cookiesOptions`).
    pub cookie: CookieAttributes,
    /// Session lifetime: the cookie's `Max-Age` and the store's expiry (`maxAge`).
    pub ttl_secs: i64,
    /// Give stored sessions an expiry (`useTTL`). Without it they live until deleted
    /// and only the cookie's `Max-Age` ends them in the browser.
    pub use_ttl: bool,
    /// Sliding expiry (`renewSessionBeforeExpire`): a read that finds less than
    /// `renew_before_secs` left pushes the expiry to a full `ttl_secs` again and
    /// re-sets the cookie.
    pub renew_before_expire: bool,
    /// With `renew_before_expire`: a read renews the session once fewer than this many
    /// seconds are left (`renewBeforeSeconds`).
    pub renew_before_secs: i64,
    /// Where the user id sits in the data (a JSON pointer such as `/userId`), for
    /// layouts that store none beside it (compat). Native sessions carry their own.
    pub user_id_pointer: Option<String>,
}

impl Default for CookieSessionOptions {
    /// The library's defaults: `session`, one day, TTL on, no renewal, 30 minutes.
    fn default() -> Self {
        Self {
            cookie: CookieAttributes::default(),
            ttl_secs: 86_400,
            use_ttl: true,
            renew_before_expire: false,
            renew_before_secs: 1_800,
            user_id_pointer: None,
        }
    }
}

/// A cookie session with its data decoded.
#[derive(Clone, PartialEq)]
pub struct CookieSession {
    /// The store key's id. A bearer credential when cookies are unsigned: keep it out
    /// of logs (`Debug` shows four characters).
    pub id: String,
    /// The owner: stored beside the data, or read from the data at
    /// [`CookieSessionOptions::user_id_pointer`]; `None` for an anonymous session.
    pub user_id: Option<String>,
    /// The application's data, decoded. A session made by a redauth login also holds its
    /// link to the login session here, under [`LINK_KEY`](crate::cookie_store::LINK_KEY).
    pub data: Value,
    /// Unix seconds; `None` where the layout does not record it (compat).
    pub created_at: Option<UnixTime>,
    /// Unix seconds; `None` for a session without an expiry (`use_ttl` off).
    pub expires_at: Option<UnixTime>,
}

impl std::fmt::Debug for CookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSession")
            .field("id", &redacted(&self.id))
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A session and the `Set-Cookie` value that hands it to the browser.
#[derive(Debug, Clone)]
pub struct IssuedCookieSession {
    /// The session as now stored.
    pub session: CookieSession,
    /// The `Set-Cookie` header value to send. The session only works once the browser
    /// holds it.
    pub set_cookie: String,
}

/// A session read from a cookie; `set_cookie` is `Some` when it was renewed.
#[derive(Debug, Clone)]
pub struct LoadedCookieSession {
    /// The session, with its new expiry if it was renewed.
    pub session: CookieSession,
    /// The `Set-Cookie` to send when the session was renewed; `None`: the browser's
    /// cookie is still right.
    pub set_cookie: Option<String>,
}

/// Issues, reads, renews, rotates and ends cookie sessions: one cookie format, one store,
/// one set of options. Share it behind an `Arc`; the module documentation has an example.
pub struct CookieSessionManager {
    store: Arc<dyn CookieSessionStore>,
    format: CookieFormat,
    options: CookieSessionOptions,
    clock: Arc<dyn Clock>,
    serializer: Arc<dyn CookieSessionSerializer>,
}

impl std::fmt::Debug for CookieSessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSessionManager")
            .field("format", &self.format)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// How many attempts at a fresh id before giving up: a collision of 128-bit ids means
/// the RNG is broken, and looping forever would hide that.
const ID_ATTEMPTS: usize = 3;

impl CookieSessionManager {
    /// Checks the options, including that the longest cookie this format can produce
    /// fits in [`crate::cookie::MAX_SET_COOKIE_BYTES`] with these attributes, so a bad
    /// cookie name or domain fails at start rather than at the first login.
    pub fn new(
        store: Arc<dyn CookieSessionStore>,
        format: CookieFormat,
        options: CookieSessionOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CookieSessionError> {
        options.cookie.validate()?;
        if options.ttl_secs < 1 {
            return Err(CookieError::Settings("ttl_secs must be at least 1").into());
        }
        if options.renew_before_expire && options.renew_before_secs < 1 {
            return Err(CookieError::Settings("renew_before_secs must be at least 1").into());
        }
        if let Some(p) = &options.user_id_pointer
            && !(p.is_empty() || p.starts_with('/'))
        {
            return Err(CookieError::Settings("user_id_pointer must be a JSON pointer").into());
        }
        let longest = "x".repeat(format.max_value_len());
        options
            .cookie
            .set_cookie(&longest, Some(options.ttl_secs))?;
        Ok(Self {
            store,
            format,
            options,
            clock,
            serializer: Arc::new(JsonSerializer),
        })
    }

    /// Replaces the JSON serializer.
    pub fn with_serializer(mut self, serializer: Arc<dyn CookieSessionSerializer>) -> Self {
        self.serializer = serializer;
        self
    }

    /// The options it was built with.
    pub fn options(&self) -> &CookieSessionOptions {
        &self.options
    }

    /// The name of the session cookie, to find it in a request's `Cookie` header.
    pub fn cookie_name(&self) -> &str {
        &self.options.cookie.name
    }

    /// Now by the manager's clock, which judges its expiries.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The session id in a cookie value, checked without touching the store: the
    /// signature (or seal) and the shape. Use it to reject garbage before any I/O.
    pub fn validate_cookie(&self, value: &str) -> Result<String, CookieSessionError> {
        if value.is_empty() {
            return Err(CookieSessionError::Missing);
        }
        Ok(self.format.decode(value)?)
    }

    /// Starts a session holding `data` (any JSON) for `user_id` (or nobody). Always a
    /// new id from the OS RNG: no value the client sent can become a session id.
    pub async fn create(
        &self,
        data: Value,
        user_id: Option<&str>,
    ) -> Result<IssuedCookieSession, CookieSessionError> {
        self.create_until(data, user_id, None).await
    }

    /// [`Self::create`] with the expiry capped at `not_after` (a session that must not
    /// outlive the login it belongs to).
    pub async fn create_until(
        &self,
        data: Value,
        user_id: Option<&str>,
        not_after: Option<UnixTime>,
    ) -> Result<IssuedCookieSession, CookieSessionError> {
        if let Some(uid) = user_id {
            check_user_id(uid)?;
        }
        let now = self.clock.now();
        let serialized = self.serialize(&data)?;
        let expires_at = self.expiry_from(now, not_after);
        for _ in 0..ID_ATTEMPTS {
            let stored = StoredCookieSession {
                id: self.format.new_id()?,
                user_id: user_id.map(str::to_owned),
                data: serialized.clone(),
                created_at: Some(now),
                expires_at,
            };
            if self.store.create(&stored, now).await? {
                let session = CookieSession {
                    id: stored.id,
                    user_id: stored.user_id,
                    data,
                    created_at: stored.created_at,
                    expires_at,
                };
                let set_cookie = self.set_cookie(&session.id, expires_at, now)?;
                return Ok(IssuedCookieSession {
                    session,
                    set_cookie,
                });
            }
        }
        Err(CookieError::Rng.into())
    }

    /// The session named by a cookie value, renewed if the options ask for it and it
    /// is close to expiry.
    pub async fn get(&self, cookie_value: &str) -> Result<LoadedCookieSession, CookieSessionError> {
        let id = self.validate_cookie(cookie_value)?;
        let session = self.get_by_id(&id).await?;
        self.renew_if_due(session, None).await
    }

    /// The live session `id`, without renewal.
    pub async fn get_by_id(&self, id: &str) -> Result<CookieSession, CookieSessionError> {
        if !self.format.is_id(id) {
            return Err(CookieSessionError::InvalidCookie);
        }
        let stored = self
            .store
            .load(id, self.clock.now())
            .await?
            .ok_or(CookieSessionError::NotFound)?;
        self.decode(stored)
    }

    /// [`Self::get_by_id`] together with the principal of the login session the data
    /// links to, in one store round trip where the backend can
    /// ([`CookieSessionStore::load_with_principal`]).
    pub async fn get_by_id_with_principal(
        &self,
        id: &str,
    ) -> Result<(CookieSession, Option<LinkedPrincipal>), CookieSessionError> {
        if !self.format.is_id(id) {
            return Err(CookieSessionError::InvalidCookie);
        }
        let (stored, linked) = self
            .store
            .load_with_principal(id, self.clock.now())
            .await?
            .ok_or(CookieSessionError::NotFound)?;
        Ok((self.decode(stored)?, linked))
    }

    /// Renews `session` when [`CookieSessionOptions::renew_before_expire`] is on and less
    /// than `renew_before_secs` remain: the expiry moves to a full TTL from now (capped
    /// at `not_after`) and a `Set-Cookie` is returned.
    pub async fn renew_if_due(
        &self,
        session: CookieSession,
        not_after: Option<UnixTime>,
    ) -> Result<LoadedCookieSession, CookieSessionError> {
        let now = self.clock.now();
        let due = self.options.renew_before_expire
            && session
                .expires_at
                .is_none_or(|e| e - now < self.options.renew_before_secs);
        if !due {
            return Ok(LoadedCookieSession {
                session,
                set_cookie: None,
            });
        }
        let renewed = self.extend(session, not_after).await?;
        Ok(LoadedCookieSession {
            session: renewed.session,
            set_cookie: Some(renewed.set_cookie),
        })
    }

    /// Replaces the data, keeping the id and the expiry.
    pub async fn update_data(
        &self,
        cookie_value: &str,
        data: Value,
    ) -> Result<CookieSession, CookieSessionError> {
        let id = self.validate_cookie(cookie_value)?;
        self.update_data_by_id(&id, data).await
    }

    /// [`Self::update_data`] for an id already taken from a cookie
    /// ([`Self::validate_cookie`]). `NotFound` when the session is not live.
    pub async fn update_data_by_id(
        &self,
        id: &str,
        data: Value,
    ) -> Result<CookieSession, CookieSessionError> {
        let now = self.clock.now();
        if !self
            .store
            .update_data(id, &self.serialize(&data)?, now)
            .await?
        {
            return Err(CookieSessionError::NotFound);
        }
        let mut session = self.get_by_id(id).await?;
        session.data = data;
        Ok(session)
    }

    /// Pushes the expiry to a full TTL from now and re-sets the cookie
    /// (`updateSessionExpiry`).
    pub async fn update_expiry(
        &self,
        cookie_value: &str,
    ) -> Result<IssuedCookieSession, CookieSessionError> {
        let id = self.validate_cookie(cookie_value)?;
        let session = self.get_by_id(&id).await?;
        self.extend(session, None).await
    }

    /// [`Self::update_expiry`] for a session already loaded, capped at `not_after`.
    pub async fn extend(
        &self,
        mut session: CookieSession,
        not_after: Option<UnixTime>,
    ) -> Result<IssuedCookieSession, CookieSessionError> {
        let now = self.clock.now();
        let expires_at = self.expiry_from(now, not_after);
        if !self.store.set_expiry(&session.id, expires_at, now).await? {
            return Err(CookieSessionError::NotFound);
        }
        session.expires_at = expires_at;
        let set_cookie = self.set_cookie(&session.id, expires_at, now)?;
        Ok(IssuedCookieSession {
            session,
            set_cookie,
        })
    }

    /// Gives the session a new id (same data, fresh expiry) and ends the old one in the
    /// same step. Call it when the privileges behind a session change.
    pub async fn rotate(
        &self,
        cookie_value: &str,
    ) -> Result<IssuedCookieSession, CookieSessionError> {
        let id = self.validate_cookie(cookie_value)?;
        let session = self.get_by_id(&id).await?;
        self.rotate_session(session, None, None).await
    }

    /// Moves `session` to a new id, optionally with new `data`.
    pub async fn rotate_session(
        &self,
        session: CookieSession,
        data: Option<Value>,
        not_after: Option<UnixTime>,
    ) -> Result<IssuedCookieSession, CookieSessionError> {
        let now = self.clock.now();
        let data = data.unwrap_or(session.data);
        let serialized = self.serialize(&data)?;
        let expires_at = self.expiry_from(now, not_after);
        for _ in 0..ID_ATTEMPTS {
            let new_id = self.format.new_id()?;
            if self
                .store
                .rename(
                    &session.id,
                    &new_id,
                    session.user_id.as_deref(),
                    &serialized,
                    expires_at,
                    now,
                )
                .await?
            {
                let set_cookie = self.set_cookie(&new_id, expires_at, now)?;
                return Ok(IssuedCookieSession {
                    session: CookieSession {
                        id: new_id,
                        user_id: session.user_id,
                        data,
                        created_at: session.created_at,
                        expires_at,
                    },
                    set_cookie,
                });
            }
            if self.store.load(&session.id, now).await?.is_none() {
                return Err(CookieSessionError::NotFound);
            }
        }
        Err(CookieError::Rng.into())
    }

    /// Ends the session and returns the `Set-Cookie` that clears the cookie.
    pub async fn delete(&self, cookie_value: &str) -> Result<String, CookieSessionError> {
        let id = self.validate_cookie(cookie_value)?;
        let session = self.get_by_id(&id).await?;
        self.delete_session(&session).await?;
        Ok(self.delete_cookie())
    }

    /// Ends `session` in the store. True if it was still stored.
    pub async fn delete_session(
        &self,
        session: &CookieSession,
    ) -> Result<bool, CookieSessionError> {
        Ok(self
            .store
            .delete(&session.id, session.user_id.as_deref())
            .await?)
    }

    /// The `Set-Cookie` that clears the cookie, leaving the stored session alone
    /// (`deleteCookie`).
    pub fn delete_cookie(&self) -> String {
        self.options.cookie.clear_cookie()
    }

    /// Live sessions of a user (`getSessionsByUserId`).
    pub async fn list_user(&self, user_id: &str) -> Result<Vec<CookieSession>, CookieSessionError> {
        check_user_id(user_id)?;
        self.store
            .list_user(user_id, self.clock.now())
            .await?
            .into_iter()
            .map(|s| self.decode(s))
            .collect()
    }

    /// Ends every session of a user (`deleteSessionsByUserId`). Returns how many.
    pub async fn delete_user(&self, user_id: &str) -> Result<u64, CookieSessionError> {
        check_user_id(user_id)?;
        Ok(self.store.delete_user(user_id).await?)
    }

    fn expiry_from(&self, now: UnixTime, not_after: Option<UnixTime>) -> Option<UnixTime> {
        self.options.use_ttl.then(|| {
            let full = now.saturating_add(self.options.ttl_secs);
            not_after.map_or(full, |cap| full.min(cap))
        })
    }

    fn set_cookie(
        &self,
        id: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<String, CookieSessionError> {
        let max_age = expires_at.map_or(self.options.ttl_secs, |e| e - now);
        if max_age <= 0 {
            return Err(CookieSessionError::NotFound);
        }
        Ok(self
            .options
            .cookie
            .set_cookie(&self.format.encode(id)?, Some(max_age))?)
    }

    fn serialize(&self, data: &Value) -> Result<String, CookieSessionError> {
        self.serializer
            .serialize(data)
            .map_err(CookieSessionError::Encode)
    }

    fn decode(&self, stored: StoredCookieSession) -> Result<CookieSession, CookieSessionError> {
        let data = self
            .serializer
            .deserialize(&stored.data)
            .map_err(CookieSessionError::Decode)?;
        let user_id = stored.user_id.or_else(|| {
            let pointer = self.options.user_id_pointer.as_deref()?;
            data.pointer(pointer)?.as_str().map(str::to_owned)
        });
        Ok(CookieSession {
            id: stored.id,
            user_id,
            data,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
        })
    }
}

/// User ids become parts of storage keys: printable, no spaces, at most 256 bytes.
fn check_user_id(uid: &str) -> Result<(), CookieSessionError> {
    if (1..=256).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(CookieSessionError::Store(StoreError::Invalid(
            crate::error::ValidationError::new("user_id", "must be 1 to 256 printable characters"),
        )))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::cookie::native::NativeMode;
    use crate::cookie::{SameSite, find_cookie};
    use crate::cookie_store::MemoryCookieSessionStore;
    use crate::secret::Secret;

    const SECRET: &str = "unit-test-secret-0123456789abcdef0123";

    struct Fixture {
        clock: Arc<ManualClock>,
        store: Arc<MemoryCookieSessionStore>,
        manager: CookieSessionManager,
    }

    fn fixture_with(format: CookieFormat, options: CookieSessionOptions) -> Fixture {
        let clock = Arc::new(ManualClock::starting_now());
        let store = Arc::new(MemoryCookieSessionStore::default());
        let manager =
            CookieSessionManager::new(store.clone(), format, options, clock.clone()).unwrap();
        Fixture {
            clock,
            store,
            manager,
        }
    }

    fn native(mode: NativeMode) -> CookieFormat {
        CookieFormat::Native(NativeCodec::new(&Secret::new(SECRET), mode).unwrap())
    }

    fn fixture(options: CookieSessionOptions) -> Fixture {
        fixture_with(native(NativeMode::Signed), options)
    }

    /// The cookie value a browser would send back for a `Set-Cookie`.
    fn value(set_cookie: &str) -> String {
        let pair = set_cookie.split(';').next().unwrap();
        let name = pair.split_once('=').unwrap().0;
        find_cookie([pair], name).unwrap().unwrap().to_owned()
    }

    fn max_age(set_cookie: &str) -> i64 {
        set_cookie
            .split("; ")
            .find_map(|a| a.strip_prefix("Max-Age="))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn create_get_update_delete_round_trip() {
        let f = fixture(CookieSessionOptions::default());
        let issued = f
            .manager
            .create(json!({"cart": [1, 2], "n": null}), Some("u1"))
            .await
            .unwrap();
        assert!(issued.set_cookie.starts_with("session=v1."));
        assert_eq!(max_age(&issued.set_cookie), 86_400);
        let cookie = value(&issued.set_cookie);
        let loaded = f.manager.get(&cookie).await.unwrap();
        assert_eq!(loaded.session, issued.session);
        assert!(loaded.set_cookie.is_none(), "renewal is off by default");
        assert_eq!(loaded.session.user_id.as_deref(), Some("u1"));

        let updated = f.manager.update_data(&cookie, json!("text")).await.unwrap();
        assert_eq!(updated.data, json!("text"));
        assert_eq!(updated.expires_at, issued.session.expires_at, "expiry kept");
        assert_eq!(
            f.manager.get(&cookie).await.unwrap().session.data,
            json!("text")
        );

        let clear = f.manager.delete(&cookie).await.unwrap();
        assert_eq!(clear, f.manager.delete_cookie());
        assert!(clear.contains("Max-Age=0"));
        assert!(matches!(
            f.manager.get(&cookie).await,
            Err(CookieSessionError::NotFound)
        ));
        assert!(matches!(
            f.manager.delete(&cookie).await,
            Err(CookieSessionError::NotFound)
        ));
    }

    #[tokio::test]
    async fn missing_forged_and_unknown_cookies_are_told_apart_from_store_errors() {
        let f = fixture(CookieSessionOptions::default());
        assert!(matches!(
            f.manager.get("").await,
            Err(CookieSessionError::Missing)
        ));
        assert!(matches!(
            f.manager.get("v1.garbage.garbage").await,
            Err(CookieSessionError::InvalidCookie)
        ));
        let other = fixture(CookieSessionOptions::default());
        let foreign = other.manager.create(json!({}), None).await.unwrap();
        assert!(matches!(
            f.manager.get(&value(&foreign.set_cookie)).await,
            Err(CookieSessionError::NotFound)
        ));
        let id = f
            .manager
            .validate_cookie(&value(&foreign.set_cookie))
            .unwrap();
        assert_eq!(id, foreign.session.id, "same secret: signature verifies");
        assert!(matches!(
            f.manager.update_data_by_id(&id, json!(1)).await,
            Err(CookieSessionError::NotFound)
        ));
        assert!(
            f.store.load(&id, f.clock.now()).await.unwrap().is_none(),
            "update never creates a session"
        );
    }

    #[tokio::test]
    async fn sessions_expire_by_the_clock_and_update_expiry_extends() {
        let f = fixture(CookieSessionOptions {
            ttl_secs: 100,
            ..Default::default()
        });
        let issued = f.manager.create(json!({}), None).await.unwrap();
        let cookie = value(&issued.set_cookie);
        f.clock.advance(60);
        let extended = f.manager.update_expiry(&cookie).await.unwrap();
        assert_eq!(extended.session.expires_at, Some(f.clock.now() + 100));
        assert_eq!(
            value(&extended.set_cookie),
            cookie,
            "same cookie, new Max-Age"
        );
        assert_eq!(max_age(&extended.set_cookie), 100);
        f.clock.advance(99);
        f.manager.get(&cookie).await.unwrap();
        f.clock.advance(1);
        assert!(matches!(
            f.manager.get(&cookie).await,
            Err(CookieSessionError::NotFound)
        ));
    }

    #[tokio::test]
    async fn sliding_renewal_only_inside_the_window() {
        let f = fixture(CookieSessionOptions {
            ttl_secs: 1000,
            renew_before_expire: true,
            renew_before_secs: 300,
            ..Default::default()
        });
        let issued = f.manager.create(json!({}), None).await.unwrap();
        let cookie = value(&issued.set_cookie);
        f.clock.advance(700);
        let early = f.manager.get(&cookie).await.unwrap();
        assert!(
            early.set_cookie.is_none(),
            "300 s left is not less than 300"
        );
        f.clock.advance(1);
        let due = f.manager.get(&cookie).await.unwrap();
        let set = due.set_cookie.expect("renewed");
        assert_eq!(value(&set), cookie);
        assert_eq!(max_age(&set), 1000);
        assert_eq!(due.session.expires_at, Some(f.clock.now() + 1000));
        f.clock.advance(999);
        assert!(
            f.manager.get(&cookie).await.is_ok(),
            "alive thanks to the renewal"
        );
    }

    #[tokio::test]
    async fn renewal_is_capped() {
        let f = fixture(CookieSessionOptions {
            ttl_secs: 1000,
            renew_before_expire: true,
            renew_before_secs: 900,
            ..Default::default()
        });
        let cap = f.clock.now() + 500;
        let issued = f
            .manager
            .create_until(json!({}), None, Some(cap))
            .await
            .unwrap();
        assert_eq!(issued.session.expires_at, Some(cap));
        assert_eq!(max_age(&issued.set_cookie), 500);
        let renewed = f
            .manager
            .renew_if_due(issued.session, Some(cap))
            .await
            .unwrap();
        assert_eq!(renewed.session.expires_at, Some(cap));
    }

    #[tokio::test]
    async fn without_ttl_sessions_never_expire_in_the_store() {
        let f = fixture(CookieSessionOptions {
            use_ttl: false,
            ttl_secs: 10,
            ..Default::default()
        });
        let issued = f.manager.create(json!({}), None).await.unwrap();
        assert_eq!(issued.session.expires_at, None);
        assert_eq!(
            max_age(&issued.set_cookie),
            10,
            "the cookie still has Max-Age"
        );
        f.clock.advance(1_000_000);
        assert!(f.manager.get(&value(&issued.set_cookie)).await.is_ok());
    }

    #[tokio::test]
    async fn rotation_moves_data_to_a_new_id_and_kills_the_old() {
        let f = fixture(CookieSessionOptions::default());
        let issued = f.manager.create(json!({"a": 1}), Some("u1")).await.unwrap();
        let old = value(&issued.set_cookie);
        let rotated = f.manager.rotate(&old).await.unwrap();
        assert_ne!(rotated.session.id, issued.session.id);
        assert_eq!(rotated.session.data, json!({"a": 1}));
        assert!(matches!(
            f.manager.get(&old).await,
            Err(CookieSessionError::NotFound)
        ));
        let new = value(&rotated.set_cookie);
        assert_eq!(
            f.manager.get(&new).await.unwrap().session.data,
            json!({"a": 1})
        );
        let listed = f.manager.list_user("u1").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, rotated.session.id);
    }

    #[tokio::test]
    async fn list_and_delete_by_user() {
        let f = fixture(CookieSessionOptions {
            ttl_secs: 100,
            ..Default::default()
        });
        f.manager.create(json!(1), Some("u1")).await.unwrap();
        f.clock.advance(50);
        f.manager.create(json!(2), Some("u1")).await.unwrap();
        f.manager.create(json!(3), Some("u2")).await.unwrap();
        f.manager.create(json!(4), None).await.unwrap();
        assert_eq!(f.manager.list_user("u1").await.unwrap().len(), 2);
        f.clock.advance(50);
        let left = f.manager.list_user("u1").await.unwrap();
        assert_eq!(left.len(), 1, "expired one pruned");
        assert_eq!(left[0].data, json!(2));
        assert_eq!(f.manager.delete_user("u1").await.unwrap(), 1);
        assert!(f.manager.list_user("u1").await.unwrap().is_empty());
        assert_eq!(f.manager.list_user("u2").await.unwrap().len(), 1);
        assert!(f.manager.list_user("bad user").await.is_err());
    }

    #[tokio::test]
    async fn encrypted_and_plain_cookies_work_end_to_end() {
        for mode in [NativeMode::Encrypted, NativeMode::Plain] {
            let f = fixture_with(native(mode), CookieSessionOptions::default());
            let issued = f.manager.create(json!({"m": 1}), None).await.unwrap();
            let cookie = value(&issued.set_cookie);
            assert_eq!(
                cookie.contains(&issued.session.id),
                mode == NativeMode::Plain
            );
            assert_eq!(
                f.manager.get(&cookie).await.unwrap().session.data,
                json!({"m": 1})
            );
        }
    }

    #[tokio::test]
    async fn compat_format_with_user_id_pointer() {
        let f = fixture_with(
            CookieFormat::Compat(CompatCodec::new(Secret::new("your-secret-key"), true)),
            CookieSessionOptions {
                user_id_pointer: Some("/userId".into()),
                ..Default::default()
            },
        );
        let issued = f
            .manager
            .create(json!({"userId": "u9"}), None)
            .await
            .unwrap();
        assert_eq!(issued.session.id.len(), 36);
        let wire = value(&issued.set_cookie);
        assert!(
            wire.contains("%3D"),
            "percent-encoded like SvelteKit: {wire}"
        );
        let loaded = f.manager.get(&wire).await.unwrap();
        assert_eq!(loaded.session.user_id.as_deref(), Some("u9"));
    }

    #[tokio::test]
    async fn a_custom_serializer_is_used_both_ways() {
        struct Reversed;
        impl CookieSessionSerializer for Reversed {
            fn serialize(&self, data: &Value) -> Result<String, String> {
                Ok(data.to_string().chars().rev().collect())
            }
            fn deserialize(&self, stored: &str) -> Result<Value, String> {
                serde_json::from_str(&stored.chars().rev().collect::<String>())
                    .map_err(|e| e.to_string())
            }
        }
        let clock = Arc::new(ManualClock::starting_now());
        let store = Arc::new(MemoryCookieSessionStore::default());
        let manager = CookieSessionManager::new(
            store.clone(),
            native(NativeMode::Signed),
            CookieSessionOptions::default(),
            clock.clone(),
        )
        .unwrap()
        .with_serializer(Arc::new(Reversed));
        let issued = manager.create(json!({"k": "v"}), None).await.unwrap();
        let raw = store
            .load(&issued.session.id, clock.now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(raw.data, "}\"v\":\"k\"{");
        let cookie = value(&issued.set_cookie);
        assert_eq!(
            manager.get(&cookie).await.unwrap().session.data,
            json!({"k": "v"})
        );
        store
            .update_data(&issued.session.id, "not reversed json", clock.now())
            .await
            .unwrap();
        assert!(matches!(
            manager.get(&cookie).await,
            Err(CookieSessionError::Decode(_))
        ));
    }

    #[tokio::test]
    async fn cookie_attributes_are_applied() {
        let f = fixture(CookieSessionOptions {
            cookie: CookieAttributes {
                name: "app_sid".into(),
                path: "/app".into(),
                domain: Some("example.com".into()),
                http_only: true,
                secure: true,
                same_site: SameSite::Lax,
            },
            ..Default::default()
        });
        let issued = f.manager.create(json!({}), None).await.unwrap();
        assert!(issued.set_cookie.starts_with("app_sid=v1."));
        assert!(
            issued.set_cookie.ends_with(
                "; Max-Age=86400; Domain=example.com; Path=/app; HttpOnly; Secure; SameSite=Lax"
            ),
            "{}",
            issued.set_cookie
        );
        assert_eq!(
            f.manager.delete_cookie(),
            "app_sid=; Max-Age=0; Domain=example.com; Path=/app; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn bad_options_are_refused_at_construction() {
        let store = Arc::new(MemoryCookieSessionStore::default());
        let clock = Arc::new(ManualClock::starting_now());
        let build = |options: CookieSessionOptions| {
            CookieSessionManager::new(
                store.clone(),
                native(NativeMode::Encrypted),
                options,
                clock.clone(),
            )
        };
        let cases = [
            CookieSessionOptions {
                ttl_secs: 0,
                ..Default::default()
            },
            CookieSessionOptions {
                renew_before_expire: true,
                renew_before_secs: 0,
                ..Default::default()
            },
            CookieSessionOptions {
                user_id_pointer: Some("userId".into()),
                ..Default::default()
            },
            CookieSessionOptions {
                cookie: CookieAttributes {
                    domain: Some("d".repeat(4000)),
                    ..Default::default()
                },
                ..Default::default()
            },
            CookieSessionOptions {
                cookie: CookieAttributes {
                    name: "__Host-s".into(),
                    secure: false,
                    ..Default::default()
                },
                ..Default::default()
            },
        ];
        for options in cases {
            assert!(build(options.clone()).is_err(), "{options:?}");
        }
        assert!(build(CookieSessionOptions::default()).is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_whole_id() {
        let s = CookieSession {
            id: "abcdefghijklmnopqrstuv".into(),
            user_id: None,
            data: json!({"secret": "x"}),
            created_at: None,
            expires_at: None,
        };
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("abcdefghij") && !dbg.contains("secret"),
            "{dbg}"
        );
    }
}
