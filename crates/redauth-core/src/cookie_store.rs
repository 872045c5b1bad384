//! The storage boundary of cookie sessions: [`CookieSessionStore`].
//!
//! Separate from [`crate::store::Store`] (users and login sessions) because its records
//! are opaque application data, and because one backend offers it in two layouts:
//! redauth's native one and the key layout of `@ethercorps/sveltekit-redis-session`
//! ([`CookieSessionLayout`]). Every backend passes the suite in
//! `redauth_testkit::cookie_conformance`.
//!
//! Time is passed in as `now`, as for `Store`. Layouts that record an expiry time judge
//! liveness by it; the compat layout records none (the library keeps only a Redis TTL),
//! so there a session lives exactly as long as its key.
//!
//! A cookie session may be *linked* to a login session (the entity of
//! [`crate::store::Store`]): its data then holds a [`CookieSessionLink`] under
//! [`LINK_KEY`]. The link is part of the store contract (see [`CookieSessionStore`]), so
//! every backend finds it the same way: [`link_ids`] in Rust, and the key handed to
//! Redis scripts as an argument rather than spelled in them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::store::PrincipalRecord;

/// A cookie session as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCookieSession {
    /// The id in the cookie and in the store key: a [`random_id`](crate::ids::random_id)
    /// (native) or 36 letters and digits (compat). A bearer credential when cookies are
    /// unsigned.
    pub id: String,
    /// The user the session belongs to (the key of the per-user index), if any.
    pub user_id: Option<String>,
    /// The serialized session data (see `CookieSessionSerializer`): opaque to stores.
    pub data: String,
    /// `None` where the layout does not record it (compat).
    pub created_at: Option<UnixTime>,
    /// `None`: no expiry (the library's `useTTL: false`).
    pub expires_at: Option<UnixTime>,
}

impl std::fmt::Debug for StoredCookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a bearer credential when cookies are unsigned: never print it whole.
        f.debug_struct("StoredCookieSession")
            .field("id", &redacted(&self.id))
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The first four characters of a session id, enough to tell sessions apart in a log.
pub fn redacted(id: &str) -> String {
    format!("{}…", id.get(..4).unwrap_or(""))
}

impl StoredCookieSession {
    /// Whether the session is live at `now` by its recorded expiry; always, without one
    /// (the compat layout relies on the key's TTL instead).
    pub fn is_live(&self, now: UnixTime) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

/// The login session a cookie session's data links to, as a backend read it in the same
/// round trip as the cookie session ([`CookieSessionStore::load_with_principal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedPrincipal {
    /// The ids the backend found in the data (see [`link_ids`]); the caller checks them
    /// against the link it decodes itself before trusting `record`.
    pub user_id: String,
    /// The login session's id, as found in the data.
    pub session_id: String,
    /// What [`crate::Store::load_principal`] would have returned for these ids at the
    /// same `now`: `None` if the login session is unknown, dead or its user is gone.
    pub record: Option<PrincipalRecord>,
}

/// The data key under which a cookie session holds its [`CookieSessionLink`]: the one
/// place it is spelled (backends take it from here, scripts as an argument). Clients may
/// not write it. Changing it orphans the links of every stored cookie session, and a
/// SvelteKit app reads `data.redauth`: it is as fixed as a key layout.
pub const LINK_KEY: &str = "redauth";

/// Which login session a cookie session belongs to, and the rights it was issued with,
/// as of its last check: what the cookie session's data holds under [`LINK_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookieSessionLink {
    /// The redauth user the login session belongs to.
    pub user_id: String,
    /// The login session (`sid`) whose revocation ends this cookie session.
    pub session_id: String,
    /// The user's name at the last check, for an app that reads the session directly.
    pub username: String,
    /// The roles the user held at the last check. Between checks redauth only ever
    /// narrows them (a lost role disappears at once), never widens them.
    pub roles: Vec<String>,
    /// What those roles granted at the last check; narrowed like `roles`.
    pub permissions: Vec<String>,
}

impl CookieSessionLink {
    /// The link for a login session's principal.
    pub fn of(p: &crate::model::Principal) -> Self {
        Self {
            user_id: p.user_id.to_string(),
            session_id: p.session_id.to_string(),
            username: p.username.to_string(),
            roles: p.roles().to_vec(),
            permissions: p.permissions().iter().cloned().collect(),
        }
    }

    /// The link stored in `data`, if any and well-formed.
    pub fn from_data(data: &Value) -> Option<Self> {
        serde_json::from_value(data.get(LINK_KEY)?.clone()).ok()
    }
}

/// The user id and login-session id of the link ([`LINK_KEY`]) in
/// serialized session data, if the data is a JSON object holding one with both ids as
/// strings. Data a custom serializer wrote usually is not JSON: then `None`, and the
/// caller reads the principal separately.
pub fn link_ids(data: &str) -> Option<(String, String)> {
    let data: Value = serde_json::from_str(data).ok()?;
    let (user_id, session_id) = decoded_link_ids(&data)?;
    Some((user_id.to_owned(), session_id.to_owned()))
}

/// [`link_ids`] of session data already decoded, borrowed from it.
pub fn decoded_link_ids(data: &Value) -> Option<(&str, &str)> {
    let link = data.as_object()?.get(LINK_KEY)?;
    let id = |k: &str| link.get(k)?.as_str();
    Some((id("user_id")?, id("session_id")?))
}

/// Which keys a backend uses for cookie sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieSessionLayout {
    /// redauth's own layout, under the store's key prefix.
    Native,
    /// Exactly `@ethercorps/sveltekit-redis-session` 1.x: `<session_prefix>:<id>` holds
    /// the serialized data, `<user_sessions_prefix>:<user id>` is a set of bare ids.
    Compat {
        /// Prefix of the session keys (the library's `sessionPrefix`).
        session_prefix: String,
        /// Prefix of the per-user index keys (the library's `userSessionsPrefix`).
        user_sessions_prefix: String,
    },
}

/// The library's default `sessionPrefix`.
pub const COMPAT_SESSION_PREFIX: &str = "sk_ioredis_session";
/// The library's default `userSessionsPrefix`.
pub const COMPAT_USER_SESSIONS_PREFIX: &str = "sk_ioredis_user_sessions";

impl CookieSessionLayout {
    /// The library's default prefixes, so a SvelteKit app left at its defaults shares
    /// its sessions with redauth without configuring either side.
    pub fn compat_defaults() -> Self {
        Self::Compat {
            session_prefix: COMPAT_SESSION_PREFIX.into(),
            user_sessions_prefix: COMPAT_USER_SESSIONS_PREFIX.into(),
        }
    }
}

/// Persistence of cookie sessions. Every method is one round trip to the backend and
/// atomic with respect to the others.
///
/// # The link to a login session
///
/// Data that holds, under [`LINK_KEY`], an object with `user_id` and `session_id`
/// strings ([`link_ids`]; the rest of the [`CookieSessionLink`] is not the store's
/// business) links its cookie session to that login session of the backend's
/// [`crate::store::Store`]. A backend that lives beside a `Store`
/// ([`crate::store::Store::cookie_session_store`]) keeps the link in both directions:
///
/// - [`Self::create`] and [`Self::rename`] record the link in the same atomic step as
///   the write, where the login session lives, so that ending the login session
///   (logout, revocation, theft, a user write ending sessions, deletion: through the
///   `Store`, in any process, whatever its cookie-session settings) deletes the cookie
///   session and its index entry in the same step;
/// - [`Self::load_with_principal`] reads the principal of the login session the link
///   names in the same round trip and snapshot as the cookie session;
/// - [`crate::store::Store::linked_cookie_sessions`] finds the linked cookie sessions
///   of a user (to narrow the rights a link shows).
///
/// A link is changed by moving the cookie session ([`Self::rename`], as a privilege
/// change does), never in place: what [`Self::update_data`] does to a link is
/// backend-specific (Redis keeps the one recorded at the last create or rename, the
/// embedded file reads the current data). Data a backend cannot read as JSON (a custom
/// serializer's) carries no link a store can see: such a cookie session outlives its
/// login session in the store until whoever checks it next finds the login session
/// gone and deletes it. `redauth_testkit::cookie_conformance` holds these rules for
/// every backend.
#[async_trait]
pub trait CookieSessionStore: Send + Sync + 'static {
    /// Stores a new session and adds it to its user's index (pruning ids that died).
    /// Never overwrites: `Ok(false)` if the id is taken.
    async fn create(
        &self,
        session: &StoredCookieSession,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// The session if it is live at `now`.
    async fn load(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<StoredCookieSession>, StoreError>;
    /// [`Self::load`] and, in the same round trip and snapshot, the principal of the
    /// login session the data links to ([`link_ids`]): what a cookie-session check
    /// needs from storage, read at once. The second part is `None` when the data names
    /// no login session, or when the backend does not read principals: the default,
    /// for stores that keep no users beside their cookie sessions, is a plain `load`,
    /// and the caller then reads the principal with a second call.
    async fn load_with_principal(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<(StoredCookieSession, Option<LinkedPrincipal>)>, StoreError> {
        Ok(self.load(id, now).await?.map(|s| (s, None)))
    }
    /// Replaces the data of a live session, keeping its expiry. Never creates one: an id
    /// the server did not issue stays unknown. `Ok(false)` if not live.
    async fn update_data(&self, id: &str, data: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Moves the expiry of a live session (`None`: never). `Ok(false)` if not live.
    async fn set_expiry(
        &self,
        id: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Moves a live session to `new_id` with `data` and `expires_at`, in one step: the
    /// old id stops working at the moment the new one starts. `user_id` is a hint for
    /// layouts whose values do not name their user. `Ok(false)` if `old_id` is not live
    /// or `new_id` is taken.
    async fn rename(
        &self,
        old_id: &str,
        new_id: &str,
        user_id: Option<&str>,
        data: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Deletes a session and its index entry (`user_id` as in [`Self::rename`]).
    /// True if it was stored.
    async fn delete(&self, id: &str, user_id: Option<&str>) -> Result<bool, StoreError>;
    /// Live sessions of a user, with `user_id` set; dead ids are pruned from the index.
    async fn list_user(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<StoredCookieSession>, StoreError>;
    /// Deletes every session of a user and the index. Returns how many were stored.
    async fn delete_user(&self, user_id: &str) -> Result<u64, StoreError>;
}

/// A [`CookieSessionStore`] in process memory: for tests and single-process embedders
/// that accept losing sessions on restart.
#[derive(Debug, Default)]
pub struct MemoryCookieSessionStore {
    inner: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    sessions: BTreeMap<String, StoredCookieSession>,
    by_user: BTreeMap<String, BTreeSet<String>>,
}

impl MemoryCookieSessionStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> Result<T, StoreError> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::unavailable("memory session store poisoned"))?;
        Ok(f(&mut guard))
    }
}

impl MemoryState {
    fn live(&self, id: &str, now: UnixTime) -> Option<&StoredCookieSession> {
        self.sessions.get(id).filter(|s| s.is_live(now))
    }

    fn remove(&mut self, id: &str) -> Option<StoredCookieSession> {
        let s = self.sessions.remove(id)?;
        if let Some(uid) = &s.user_id
            && let Some(ids) = self.by_user.get_mut(uid)
        {
            ids.remove(id);
        }
        Some(s)
    }

    fn prune(&mut self, user_id: &str, now: UnixTime) {
        let dead: Vec<String> = self
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|id| self.live(id, now).is_none())
            .cloned()
            .collect();
        for id in dead {
            self.remove(&id);
            if let Some(ids) = self.by_user.get_mut(user_id) {
                ids.remove(&id);
            }
        }
    }

    fn insert(&mut self, s: StoredCookieSession) {
        if let Some(uid) = &s.user_id {
            self.by_user
                .entry(uid.clone())
                .or_default()
                .insert(s.id.clone());
        }
        self.sessions.insert(s.id.clone(), s);
    }
}

#[async_trait]
impl CookieSessionStore for MemoryCookieSessionStore {
    async fn create(
        &self,
        session: &StoredCookieSession,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.with(|st| {
            if let Some(uid) = &session.user_id {
                st.prune(uid, now);
            }
            if st.live(&session.id, now).is_some() {
                return false;
            }
            st.remove(&session.id);
            st.insert(session.clone());
            true
        })
    }

    async fn load(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<StoredCookieSession>, StoreError> {
        self.with(|st| st.live(id, now).cloned())
    }

    async fn update_data(&self, id: &str, data: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.with(
            |st| match st.sessions.get_mut(id).filter(|s| s.is_live(now)) {
                Some(s) => {
                    s.data = data.to_owned();
                    true
                }
                None => false,
            },
        )
    }

    async fn set_expiry(
        &self,
        id: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.with(
            |st| match st.sessions.get_mut(id).filter(|s| s.is_live(now)) {
                Some(s) => {
                    s.expires_at = expires_at;
                    true
                }
                None => false,
            },
        )
    }

    async fn rename(
        &self,
        old_id: &str,
        new_id: &str,
        _user_id: Option<&str>,
        data: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.with(|st| {
            if st.live(old_id, now).is_none() || st.live(new_id, now).is_some() {
                return false;
            }
            let Some(mut s) = st.remove(old_id) else {
                return false;
            };
            st.remove(new_id);
            s.id = new_id.to_owned();
            s.data = data.to_owned();
            s.expires_at = expires_at;
            st.insert(s);
            true
        })
    }

    async fn delete(&self, id: &str, _user_id: Option<&str>) -> Result<bool, StoreError> {
        self.with(|st| st.remove(id).is_some())
    }

    async fn list_user(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<StoredCookieSession>, StoreError> {
        self.with(|st| {
            st.prune(user_id, now);
            st.by_user
                .get(user_id)
                .into_iter()
                .flatten()
                .filter_map(|id| st.sessions.get(id).cloned())
                .collect()
        })
    }

    async fn delete_user(&self, user_id: &str) -> Result<u64, StoreError> {
        self.with(|st| {
            let ids = st.by_user.remove(user_id).unwrap_or_default();
            ids.iter().filter(|id| st.remove(id).is_some()).count() as u64
        })
    }
}
