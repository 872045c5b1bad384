//! The web app in front of redauth (a SvelteKit server, say) calling it server to
//! server on behalf of its browsers.
//!
//! Such an app shares a secret with redauth (`REDAUTH_APP_SECRET`) and sends it in
//! [`APP_SECRET_HEADER`]. A request that carries it is the app's, and only then does
//! redauth believe three things the request says:
//!
//! - **the browser's address** ([`CLIENT_IP_HEADER`]) and **user agent**
//!   ([`CLIENT_USER_AGENT_HEADER`]): recorded on sessions, used for per-client rate
//!   limits and for the refresh-token reuse window. Without the secret these headers
//!   are ignored, so no caller can pick the address its attempts are counted under;
//! - **that it is not a browser request**: the CSRF guard does not apply to it. A
//!   browser cannot attach the secret (it never sees it), so a forged cross-site
//!   request still meets the guard;
//! - **the session cookie it forwards as the caller's identity** on the endpoints that
//!   otherwise take only a Bearer token (`/api/auth/sessions`, `/api/auth/logout-all`,
//!   …), so an app using cookie sessions can list and end sessions too.
//!
//! A request whose secret is wrong, or that sends one to a redauth that has none, is
//! refused (401 `invalid_app_secret`) rather than served as an ordinary request: a
//! mistyped secret must show up at the first call, not as every user sharing one
//! address.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use redauth_core::Principal;
use subtle::ConstantTimeEq as _;

use crate::Redauth;
use crate::error::ApiError;

/// Carries `REDAUTH_APP_SECRET`.
pub const APP_SECRET_HEADER: HeaderName = HeaderName::from_static("x-redauth-app-secret");
/// The browser's IP address, as the app saw it (one address, no list).
pub const CLIENT_IP_HEADER: HeaderName = HeaderName::from_static("x-redauth-client-ip");
/// The browser's `User-Agent`, as the app received it.
pub const CLIENT_USER_AGENT_HEADER: HeaderName =
    HeaderName::from_static("x-redauth-client-user-agent");

/// Put in the request's extensions by the edge middleware when the request carries the
/// right app secret; its presence is the only proof of that.
#[derive(Debug, Clone)]
pub struct TrustedApp {
    /// `None`: the app forwarded no address; the TCP peer (or proxy header) is used.
    pub client_ip: Option<IpAddr>,
    /// `None`: the app forwarded no user agent; none is recorded (the app's own would
    /// be the same for every user).
    pub user_agent: Option<String>,
}

fn invalid_secret(message: &'static str) -> ApiError {
    ApiError::new(crate::error::ErrorCode::InvalidAppSecret, message)
}

/// Whether the request is the app's: `Ok(None)` without [`APP_SECRET_HEADER`],
/// `Ok(Some)` with the right secret, `Err` with a wrong one or malformed forwarded
/// values.
pub(crate) fn authenticate(
    state: &Redauth,
    headers: &HeaderMap,
) -> Result<Option<TrustedApp>, ApiError> {
    let Some(presented) = headers.get(APP_SECRET_HEADER) else {
        return Ok(None);
    };
    let Some(secret) = &state.http.app_secret else {
        return Err(invalid_secret(
            "this redauth has no REDAUTH_APP_SECRET; set the same secret on both sides",
        ));
    };
    if !bool::from(presented.as_bytes().ct_eq(secret.expose().as_bytes())) {
        return Err(invalid_secret(
            "the app secret is wrong (REDAUTH_APP_SECRET differs between the app and redauth)",
        ));
    }
    let client_ip = match headers.get(CLIENT_IP_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_request(format!("{CLIENT_IP_HEADER}: not an IP address"))
                })?,
        ),
    };
    let user_agent = headers
        .get(CLIENT_USER_AGENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Some(TrustedApp {
        client_ip,
        user_agent,
    }))
}

/// The principal behind the session cookie the app forwarded, for the endpoints that
/// otherwise take only a Bearer token. `Ok(None)` when the request is not the app's,
/// cookie sessions are off or no session cookie came.
pub(crate) async fn forwarded_session_principal(
    parts: &Parts,
    state: &Redauth,
) -> Result<Option<Arc<Principal>>, ApiError> {
    if parts.extensions.get::<TrustedApp>().is_none() {
        return Ok(None);
    }
    let Some(sessions) = state.cookie_sessions.as_deref() else {
        return Ok(None);
    };
    let Some(presented) = crate::extract::cookie(parts, sessions.auth.cookie_name())? else {
        return Ok(None);
    };
    let check = sessions.auth.check(Some(presented)).await?;
    // A session no redauth login made has nobody behind it.
    check
        .principal
        .map(Some)
        .ok_or_else(|| redauth_core::AuthError::InvalidToken.into())
}
