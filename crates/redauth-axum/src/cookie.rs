//! Cookie sessions over HTTP (see `docs/sessions.md`): `GET /api/auth/session`, what a
//! SvelteKit `hooks.server.ts` calls to fill `event.locals`, and the session-cookie side
//! of login and logout. The logic is in [`CookieAuth`]; this file only moves cookies
//! and JSON.

use std::sync::Arc;

use crate::cookie_auth::{CookieAuth, CookieAuthOptions, CookieCheck};
use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use redauth_core::cookie::CookieAttributes;
use redauth_core::cookie::compat::CompatCodec;
use redauth_core::cookie::native::{NativeCodec, NativeMode};
use redauth_core::cookie_session::{
    CookieFormat, CookieSessionError, CookieSessionManager, CookieSessionOptions,
};
use redauth_core::cookie_store::CookieSessionLayout;
use redauth_core::cookie_store::CookieSessionStore;
use redauth_core::cookie_store::LINK_KEY;
use redauth_core::service::ClientInfo;
use redauth_core::{AuthService, Clock, Secret};
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;

use crate::auth::token_response;
use crate::dto::{CookieLoginResponse, CookieSessionInfo, CookieSessionView, Delivery, UserView};
use crate::error::{ApiError, ErrorCode};
use crate::extract::cookie;
use crate::{Redauth, append_set_cookie};

/// Cookie sessions as configured for the HTTP API.
#[derive(Debug)]
pub struct CookieSessions {
    /// Cookie-session checks, login and logout.
    pub auth: Arc<CookieAuth>,
    /// Login also returns access and refresh tokens (`REDAUTH_LOGIN_ISSUES=both`).
    pub issues_tokens: bool,
    /// Login sets a session cookie (`session` or `both`).
    pub issues_session: bool,
    /// The `@ethercorps/sveltekit-redis-session` format rather than redauth's own.
    pub compat: bool,
}

impl CookieSessions {
    fn presented<'a>(&self, parts: &'a Parts) -> Result<Option<&'a str>, ApiError> {
        cookie(parts, self.auth.cookie_name())
    }

    /// The request's cookie session, checked. The refusal is the whole answer: 401
    /// `missing_session` without the cookie, 401 `invalid_session` with the cookie
    /// cleared for a forged, unknown or ended one. `GET /api/auth/session` and the
    /// [`CookieSession`](crate::CookieSession) extractor both answer this way.
    pub(crate) async fn check_request(&self, parts: &Parts) -> Result<CookieCheck, Response> {
        let presented = self.presented(parts).map_err(IntoResponse::into_response)?;
        match self.auth.check(presented).await {
            Ok(check) => Ok(check),
            Err(e @ (CookieSessionError::InvalidCookie | CookieSessionError::NotFound)) => {
                let mut res = ApiError::from(e).into_response();
                append_set_cookie(&mut res, &self.auth.clear_cookie());
                Err(res)
            }
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// The server's cookie sessions, or 404 `not_found` when they are off.
pub(crate) fn enabled(state: &Redauth) -> Result<&CookieSessions, ApiError> {
    state.cookie_sessions.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "cookie sessions are not enabled (REDAUTH_SESSION_COOKIE_MODE)",
        )
    })
}

/// `GET /api/auth/session`: 200 with `user` (null for a session no redauth login
/// made), `session` and `data`; 401 `missing_session` without the cookie, 401
/// `invalid_session` (and a cleared cookie) for a forged, unknown or ended one.
pub async fn get_session(
    State(state): State<Redauth>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    // Taken apart rather than extracted as `Parts`, which would copy every header.
    let (parts, _) = req.into_parts();
    let sessions = enabled(&state)?;
    let mut check = match sessions.check_request(&parts).await {
        Ok(check) => check,
        Err(refusal) => return Ok(refusal),
    };
    let set_cookie = check.set_cookie.take();
    let mut res = Json(view(check)).into_response();
    if let Some(set) = &set_cookie {
        append_set_cookie(&mut res, set);
    }
    Ok(res)
}

fn view(check: CookieCheck) -> CookieSessionView {
    CookieSessionView {
        user: check.principal.as_deref().map(UserView::from),
        session: CookieSessionInfo {
            id: check.principal.as_ref().map(|p| p.session_id.to_string()),
            expires_at: check.expires_at,
        },
        data: check.data,
    }
}

/// The login handler's path when login sets a session cookie.
pub(super) async fn login(
    state: &Redauth,
    sessions: &CookieSessions,
    parts: &Parts,
    credentials: (&str, &str),
    client: ClientInfo,
    data: Option<Value>,
    delivery: Delivery,
) -> Result<Response, ApiError> {
    let login = sessions
        .auth
        .login(
            credentials.0,
            credentials.1,
            client,
            data,
            sessions.presented(parts)?,
        )
        .await?;
    let mut res = if sessions.issues_tokens {
        token_response(state, &login.tokens, delivery)?
    } else {
        let p = &login.tokens.principal;
        Json(CookieLoginResponse {
            user: p.as_ref().into(),
            session: CookieSessionInfo {
                id: Some(p.session_id.to_string()),
                expires_at: login.session.expires_at,
            },
        })
        .into_response()
    };
    append_set_cookie(&mut res, &login.set_cookie);
    Ok(res)
}

/// The logout handler's part: ends the presented cookie session (and its login
/// session) and clears the cookie. Idempotent.
pub(super) async fn logout(
    sessions: &CookieSessions,
    parts: &Parts,
    res: &mut Response,
) -> Result<(), ApiError> {
    sessions.auth.logout(sessions.presented(parts)?).await?;
    append_set_cookie(res, &sessions.auth.clear_cookie());
    Ok(())
}

/// What a successful login returns when cookie sessions are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginIssues {
    /// Access and refresh tokens only, as without cookie sessions.
    Tokens,
    /// A session cookie instead of tokens.
    Session,
    /// Both.
    Both,
}

impl FromStr for LoginIssues {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "tokens" => Ok(Self::Tokens),
            "session" => Ok(Self::Session),
            "both" => Ok(Self::Both),
            _ => Err(()),
        }
    }
}

/// Validated cookie-session settings (see docs/sessions.md for each).
#[derive(Debug, Clone)]
pub struct CookieSessionConfig {
    /// Share sessions with a SvelteKit app that uses
    /// `@ethercorps/sveltekit-redis-session`: its key layout and cookie format instead of
    /// redauth's (`REDAUTH_SESSION_COOKIE_MODE`).
    pub compat: bool,
    /// What a login returns (`REDAUTH_LOGIN_ISSUES`).
    pub login_issues: LoginIssues,
    /// Name and attributes of the session cookie, already checked
    /// ([`CookieAttributes::validate`]).
    pub cookie: CookieAttributes,
    /// Sign cookie values (`REDAUTH_SESSION_COOKIE_SIGNED`). Unsigned, any well-formed id
    /// reaches the store.
    pub signed: bool,
    /// Seal the id with AES-256-GCM instead, hiding it (native only; wins over `signed`;
    /// `REDAUTH_SESSION_COOKIE_ENCRYPTED`).
    pub encrypted: bool,
    /// Session lifetime in seconds: the cookie's `Max-Age` and the stored expiry, never
    /// past the end of the linked login session (`REDAUTH_SESSION_TTL_SECS`).
    pub ttl_secs: i64,
    /// Sliding expiry: a check close to the end renews the session
    /// (`REDAUTH_SESSION_RENEW`).
    pub renew: bool,
    /// With `renew`: renew once fewer than this many seconds are left
    /// (`REDAUTH_SESSION_RENEW_BEFORE_SECS`).
    pub renew_before_secs: i64,
    /// How long a node serves a cookie session from memory before reading it again, in
    /// seconds; 0 never caches (`REDAUTH_SESSION_CACHE_SECS`).
    pub cache_secs: i64,
    /// Whether a login carries over the data of the anonymous session it replaces.
    pub carry_anonymous_data: bool,
    /// Native: `None` derives the keys from the JWT secret. Compat: always set.
    pub secret: Option<Secret>,
    /// Where sessions live: redauth's own keys, or the library's prefixes in compat mode.
    pub layout: CookieSessionLayout,
}

/// Why cookie sessions could not be set up from their settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Compat mode without `secret`: the library signs with a secret both sides must
    /// share.
    #[error("cookie sessions: compat mode needs REDAUTH_SESSION_SECRET")]
    CompatNeedsSecret,
    /// Native mode with neither `secret` nor a JWT secret to derive the keys from.
    #[error("cookie sessions: no secret to derive keys from")]
    NoSecret,
    /// The secret or the cookie settings were refused: a secret under 32 bytes,
    /// attributes browsers would reject, a cookie that would be too large.
    #[error("cookie sessions: {0}")]
    Codec(#[source] CookieSessionError),
}

/// Builds the cookie-session side of the server from its settings. Native keys derive
/// from `REDAUTH_SESSION_SECRET`, else from the JWT secret (HKDF keeps the uses apart);
/// compat uses `REDAUTH_SESSION_SECRET` as the library does.
pub fn build(
    config: &CookieSessionConfig,
    service: &Arc<AuthService>,
    store: Arc<dyn CookieSessionStore>,
    clock: Arc<dyn Clock>,
    jwt_secret: Option<&Secret>,
) -> Result<Arc<CookieSessions>, SetupError> {
    let bad = SetupError::Codec;
    let format = if config.compat {
        let secret = config.secret.clone().ok_or(SetupError::CompatNeedsSecret)?;
        CookieFormat::Compat(CompatCodec::new(secret, config.signed))
    } else {
        let secret = config
            .secret
            .as_ref()
            .or(jwt_secret)
            .ok_or(SetupError::NoSecret)?;
        let mode = match (config.encrypted, config.signed) {
            (true, _) => NativeMode::Encrypted,
            (false, true) => NativeMode::Signed,
            (false, false) => NativeMode::Plain,
        };
        CookieFormat::Native(NativeCodec::new(secret, mode).map_err(|e| bad(e.into()))?)
    };
    let options = CookieSessionOptions {
        cookie: config.cookie.clone(),
        ttl_secs: config.ttl_secs,
        use_ttl: true,
        renew_before_expire: config.renew,
        renew_before_secs: config.renew_before_secs,
        user_id_pointer: Some(format!("/{LINK_KEY}/user_id")),
    };
    let manager = CookieSessionManager::new(store, format, options, clock).map_err(bad)?;
    Ok(Arc::new(CookieSessions {
        auth: CookieAuth::new(
            service.clone(),
            Arc::new(manager),
            CookieAuthOptions {
                cache_secs: config.cache_secs,
                carry_anonymous_data: config.carry_anonymous_data,
            },
        ),
        issues_tokens: config.login_issues != LoginIssues::Session,
        issues_session: config.login_issues != LoginIssues::Tokens,
        compat: config.compat,
    }))
}
