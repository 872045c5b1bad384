//! Logging in with a cookie session: the glue between [`AuthService`] (users, login
//! sessions, principals) and [`CookieSessionManager`] (cookie sessions), used by the
//! server's login, logout and `GET /api/auth/session`.
//!
//! A cookie session created at login is *linked* to the login session it came from:
//! its data holds, under the reserved key [`LINK_KEY`], the user id, the login session
//! id and the privileges it was issued with ([`CookieSessionLink`]). Keeping the link in the
//! data (not beside it) is what lets the compat layout carry it, and it gives a
//! SvelteKit app that reads the session straight from Redis the user's name and roles.
//!
//! - Login always mints a new cookie-session id; a cookie the client presented is
//!   ended, never promoted (no fixation). Data of an anonymous session carries over only
//!   with [`CookieAuthOptions::carry_anonymous_data`].
//! - Cookie sessions have their own cache ([`CookieSessionCache`]), owned here. It
//!   serves a cookie session only while the principal of its login session is cached
//!   in the service; revoking the login session (logout, log out everywhere, disable,
//!   password change, theft detection) evicts that principal on every node, so the
//!   next check reads both again and fails. The service is reached for principals
//!   through one method, [`AuthService::principal_for_cookie`].
//! - When the privileges behind a session change, the next check moves the session to
//!   a new id ([`CookieSessionManager::rotate_session`]).
//! - Ending a login session deletes its cookie sessions in the same atomic store
//!   operation, whichever process ends it (the store records the link when the cookie
//!   session is written), so an app reading Redis directly sees them go too.

use std::sync::Arc;

use serde_json::{Map, Value};

use redauth_core::clock::UnixTime;
use redauth_core::cookie_cache::CookieSessionCache;
use redauth_core::cookie_session::{CookieSession, CookieSessionError, CookieSessionManager};
use redauth_core::cookie_store::{CookieSessionLink, LINK_KEY};
use redauth_core::error::AuthError;
use redauth_core::model::Principal;
use redauth_core::service::{AuthService, ClientInfo, IssuedTokens};

/// What a successful cookie login hands back.
#[derive(Debug)]
pub struct CookieLogin {
    /// Issued as for any login; the caller decides whether the client gets them.
    pub tokens: IssuedTokens,
    /// The new cookie session, linked to the new login session.
    pub session: CookieSession,
    /// The `Set-Cookie` that gives the browser the session cookie.
    pub set_cookie: String,
}

/// What a session check found.
#[derive(Debug, Clone)]
pub struct CookieCheck {
    /// `None` for a session no redauth login created (an anonymous or app-made one).
    pub principal: Option<Arc<Principal>>,
    /// The session data without [`LINK_KEY`].
    pub data: Value,
    /// When the cookie session ends, Unix seconds; `None` for one without an expiry.
    pub expires_at: Option<UnixTime>,
    /// `Some` when the cookie must be re-set: renewed, or moved to a new id.
    pub set_cookie: Option<String>,
}

/// Cookie sessions tied to redauth logins: login, check and logout, with their own cache
/// ([`CookieSessionCache`]). The rules are in the module documentation. Build one with
/// [`CookieAuth::new`], or from settings with [`crate::cookie::build`].
pub struct CookieAuth {
    service: Arc<AuthService>,
    manager: Arc<CookieSessionManager>,
    cache: CookieSessionCache,
    cache_secs: i64,
    carry_anonymous_data: bool,
}

/// How [`CookieAuth`] treats cookie sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieAuthOptions {
    /// How long a node serves a cookie session from memory without reading it again
    /// (0: never cache). It matters for changes redauth does not make itself: the
    /// SvelteKit app deleting a compat session in Redis.
    pub cache_secs: i64,
    /// Whether a login keeps the data of the anonymous session it replaces (a cart
    /// filled before login). Off by default: anyone who can plant a cookie in the
    /// victim's browser (a sibling subdomain, a shared machine) would otherwise plant
    /// data in the victim's logged-in session.
    pub carry_anonymous_data: bool,
}

impl std::fmt::Debug for CookieAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieAuth")
            .field("manager", &self.manager)
            .field("cache_secs", &self.cache_secs)
            .finish_non_exhaustive()
    }
}

impl CookieAuth {
    /// Cookie sessions of `manager`, for logins of `service`, cached in a cache that
    /// depends on `service`'s principal cache.
    pub fn new(
        service: Arc<AuthService>,
        manager: Arc<CookieSessionManager>,
        options: CookieAuthOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            cache: CookieSessionCache::new(&service),
            service,
            manager,
            cache_secs: options.cache_secs.max(0),
            carry_anonymous_data: options.carry_anonymous_data,
        })
    }

    /// The manager, for what this type does not wrap (listing a user's cookie sessions,
    /// replacing data).
    pub fn manager(&self) -> &CookieSessionManager {
        &self.manager
    }

    /// The session cookie's name, to find it in a request.
    pub fn cookie_name(&self) -> &str {
        self.manager.cookie_name()
    }

    /// Cookie sessions this node holds in memory (expired ones until evicted), for
    /// tests and metrics.
    pub fn cached_sessions(&self) -> u64 {
        self.cache.len()
    }

    /// The `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        self.manager.delete_cookie()
    }

    /// Checks the password, opens a login session and a new cookie session linked to
    /// it holding `data` (a JSON object, without [`LINK_KEY`]). `presented` is the
    /// session cookie the request carried: it is ended, and its data carried over if it
    /// was anonymous and [`CookieAuthOptions::carry_anonymous_data`] is on.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: ClientInfo,
        data: Option<Value>,
        presented: Option<&str>,
    ) -> Result<CookieLogin, CookieSessionError> {
        let mut fields = match data {
            None => Map::new(),
            Some(Value::Object(m)) if !m.contains_key(LINK_KEY) => m,
            Some(_) => {
                return Err(
                    AuthError::InvalidRequest(redauth_core::ValidationError::new(
                        "session_data",
                        "must be a JSON object without the key \"redauth\"",
                    ))
                    .into(),
                );
            }
        };
        let tokens = self.service.login(username, password, client).await?;
        if let Some(old) = self.presented_session(presented).await? {
            match CookieSessionLink::from_data(&old.data) {
                None if !self.carry_anonymous_data => {}
                None => {
                    if let Value::Object(previous) = &old.data {
                        for (k, v) in previous {
                            fields.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
                Some(link) => self.end_login_session(&link).await?,
            }
            self.cache.evict(&old.id);
            self.manager.delete_session(&old).await?;
        }
        let p = &tokens.principal;
        fields.insert(LINK_KEY.into(), link_value(p)?);
        let issued = self
            .manager
            .create_until(
                Value::Object(fields),
                Some(&p.user_id),
                Some(p.session_expires_at),
            )
            .await?;
        self.cache(&issued.session, Some(p));
        tracing::info!(user_id = %p.user_id, session_id = %p.session_id, "cookie session opened");
        Ok(CookieLogin {
            tokens,
            session: issued.session,
            set_cookie: issued.set_cookie,
        })
    }

    /// The principal and data of the session named by the cookie value `presented`.
    /// Served from memory when both the cookie session and its principal are cached.
    pub async fn check(&self, presented: Option<&str>) -> Result<CookieCheck, CookieSessionError> {
        let id = self
            .manager
            .validate_cookie(presented.ok_or(CookieSessionError::Missing)?)?;
        let (mut session, principal, mut fresh) = match self.cache.get(&id) {
            // Served wholly from memory: nothing read, no load begun.
            Some(hit) => (hit.entry.session.clone(), hit.principal, false),
            None => {
                let (session, principal) = self.read(&id).await?;
                (session, principal, true)
            }
        };
        let cap = principal.as_ref().map(|p| p.session_expires_at);
        let mut set_cookie = None;
        if let Some(p) = &principal
            && CookieSessionLink::from_data(&session.data) != Some(CookieSessionLink::of(p))
        {
            // Privileges changed since the cookie was issued: a new id for the new
            // privilege level, so a copy of the old cookie grants nothing.
            let mut data = session.data.clone();
            if let Value::Object(m) = &mut data {
                m.insert(LINK_KEY.into(), link_value(p)?);
            }
            let old_id = session.id.clone();
            let rotated = self
                .manager
                .rotate_session(session, Some(data), cap)
                .await?;
            self.cache.evict(&old_id);
            tracing::info!(user_id = %p.user_id, session_id = %p.session_id,
                "cookie session moved to a new id after a privilege change");
            session = rotated.session;
            set_cookie = Some(rotated.set_cookie);
            fresh = true;
        }
        let renewed = self.manager.renew_if_due(session, cap).await?;
        if renewed.set_cookie.is_some() {
            fresh = true;
            set_cookie = renewed.set_cookie;
        }
        let session = renewed.session;
        if fresh {
            self.cache(&session, principal.as_deref());
        }
        let mut data = session.data;
        if let Value::Object(m) = &mut data {
            m.remove(LINK_KEY);
        }
        Ok(CookieCheck {
            principal,
            data,
            expires_at: session.expires_at,
            set_cookie,
        })
    }

    /// Ends the session named by the cookie value and the login session it links to.
    /// Idempotent: a missing, forged or unknown cookie ends nothing and is not an error.
    pub async fn logout(&self, presented: Option<&str>) -> Result<(), CookieSessionError> {
        let session = match self.presented_session(presented).await? {
            Some(s) => s,
            None => return Ok(()),
        };
        self.cache.evict(&session.id);
        self.manager.delete_session(&session).await?;
        if let Some(link) = CookieSessionLink::from_data(&session.data) {
            self.end_login_session(&link).await?;
        }
        Ok(())
    }

    /// The live session behind a presented cookie, or `None` for anything else.
    async fn presented_session(
        &self,
        presented: Option<&str>,
    ) -> Result<Option<CookieSession>, CookieSessionError> {
        let Some(id) = presented.and_then(|v| self.manager.validate_cookie(v).ok()) else {
            return Ok(None);
        };
        match self.manager.get_by_id(&id).await {
            Ok(s) => Ok(Some(s)),
            Err(CookieSessionError::NotFound | CookieSessionError::InvalidCookie) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn end_login_session(&self, link: &CookieSessionLink) -> Result<(), CookieSessionError> {
        match self
            .service
            .revoke_session(&link.user_id, &link.session_id)
            .await
        {
            Ok(()) | Err(AuthError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads cookie session `id` from the store with the principal of the login
    /// session it links to (`None` for one no login made). A cookie session whose login
    /// session has ended is deleted and `NotFound`.
    ///
    /// One round trip: the store reads the cookie session and that principal together,
    /// or, when the principal this cookie session was last seen linked to is cached,
    /// only the cookie session (a plain `GET`). Either way the link is taken from the
    /// data read; should it name another login session, that principal is loaded too.
    async fn read(
        &self,
        id: &str,
    ) -> Result<(CookieSession, Option<Arc<Principal>>), CookieSessionError> {
        // Before the read, which may bring the principal along.
        let load = self.service.principal_for_cookie();
        let (session, read) = match self.cache.linked_principal(id) {
            Some(_) => (self.manager.get_by_id(id).await?, None),
            None => self.manager.get_by_id_with_principal(id).await?,
        };
        let Some(link) = CookieSessionLink::from_data(&session.data) else {
            return Ok((session, None));
        };
        match load.load(&link.user_id, &link.session_id, read).await? {
            Some(p) => Ok((session, Some(p))),
            None => {
                self.cache.evict(id);
                self.manager.delete_session(&session).await?;
                Err(CookieSessionError::NotFound)
            }
        }
    }

    fn cache(&self, session: &CookieSession, principal: Option<&Principal>) {
        if let Some(p) = principal {
            let until = session
                .expires_at
                .map_or(p.session_expires_at, |e| e.min(p.session_expires_at));
            self.cache
                .remember_link(&session.id, &p.user_id, &p.session_id, until);
        }
        if self.cache_secs > 0 {
            let until = self.service.now().saturating_add(self.cache_secs);
            self.cache.insert(session.clone(), until);
        }
    }
}

fn link_value(p: &Principal) -> Result<Value, CookieSessionError> {
    serde_json::to_value(CookieSessionLink::of(p))
        .map_err(|e| CookieSessionError::Encode(e.to_string()))
}
