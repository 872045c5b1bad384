//! `GET /api/auth/config`: the settings a client library must agree with, read from
//! redauth instead of configured twice. `@redauth/sveltekit` reads it once at start,
//! so the session cookie's name, `Secure` and `SameSite` in the app are always the
//! ones redauth uses (they used to be two settings that could silently disagree).
//!
//! Nothing here is secret: the same facts are in every `Set-Cookie` redauth sends.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use redauth_core::cookie::SameSite;
use serde::Serialize;

use crate::Redauth;
use crate::trusted_app::TrustedApp;

/// The body of `GET /api/auth/config`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientConfig {
    /// Bumped if a field changes meaning.
    version: u32,
    /// `tokens` (no cookie sessions), `session` or `both`.
    login_issues: &'static str,
    /// `null` when cookie sessions are off.
    session_cookie: Option<SessionCookieView>,
    /// `Secure` on every cookie redauth sets (`false` only for plain-http development).
    cookie_secure: bool,
    /// The refresh cookie redauth sets for browsers talking to it directly.
    refresh_cookie: RefreshCookieView,
    /// Whether redauth has an app secret, and whether this request carried it: an app
    /// that sends one learns at start that forwarding works.
    app_secret: AppSecretView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SessionCookieView {
    /// `native` or `compat` (`@ethercorps/sveltekit-redis-session`).
    mode: &'static str,
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: &'static str,
    /// The cookie's `Max-Age` and the session's lifetime without renewal.
    max_age: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RefreshCookieView {
    name: String,
    path: &'static str,
    same_site: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AppSecretView {
    configured: bool,
    /// This request carried the right secret.
    trusted: bool,
}

fn same_site(s: SameSite) -> &'static str {
    match s {
        SameSite::Strict => "strict",
        SameSite::Lax => "lax",
        SameSite::None => "none",
    }
}

/// `GET /api/auth/config`: [`ClientConfig`], for every caller (it holds nothing secret).
pub async fn get_config(State(state): State<Redauth>, parts: Parts) -> Json<ClientConfig> {
    let sessions = state.cookie_sessions.as_deref();
    let login_issues = match sessions {
        None => "tokens",
        Some(s) if s.issues_session && s.issues_tokens => "both",
        Some(s) if s.issues_session => "session",
        Some(_) => "tokens",
    };
    let session_cookie = sessions.map(|s| {
        let options = s.auth.manager().options();
        let c = &options.cookie;
        SessionCookieView {
            mode: if s.compat { "compat" } else { "native" },
            name: c.name.clone(),
            path: c.path.clone(),
            domain: c.domain.clone(),
            secure: c.secure,
            http_only: c.http_only,
            same_site: same_site(c.same_site),
            max_age: options.ttl_secs,
        }
    });
    Json(ClientConfig {
        version: 1,
        login_issues,
        session_cookie,
        cookie_secure: state.http.cookie_secure,
        refresh_cookie: RefreshCookieView {
            name: state.http.refresh_cookie_name.clone(),
            path: crate::REFRESH_COOKIE_PATH,
            same_site: "strict",
        },
        app_secret: AppSecretView {
            configured: state.http.app_secret.is_some(),
            trusted: parts.extensions.get::<TrustedApp>().is_some(),
        },
    })
}
