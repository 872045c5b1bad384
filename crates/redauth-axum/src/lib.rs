//! redauth for axum: login, refresh, logout, sessions and administration as a router
//! you merge into your app, and extractors that protect your own routes.
//!
//! redauth keeps users, roles, login sessions and cookie sessions in Redis (or in an
//! embedded file store), caches live sessions in memory, and hears revocations from
//! every node. This crate is its HTTP face: the same code `redauth serve` runs.
//!
//! # Protect your routes
//!
//! Build the service on a store, wrap it in a [`Redauth`], and keep that in your own
//! state. [`AuthUser`] needs a live access token (`Authorization: Bearer …`);
//! [`RequirePermission`] also needs a permission, declared with [`permission!`].
//! [`router`] is redauth's whole API (`/api/auth/*`, `/api/admin/*`, `/healthz`,
//! `/readyz`), merged beside your routes:
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, extract::FromRef, routing::get};
//! use redauth_axum::{AuthUser, Redauth, RequirePermission};
//! use redauth_core::{AuthService, Secret};
//!
//! redauth_axum::permission!(ReadReports = "reports:read");
//!
//! #[derive(Clone)]
//! struct AppState { redauth: Redauth }
//! impl FromRef<AppState> for Redauth {
//!     fn from_ref(s: &AppState) -> Redauth { s.redauth.clone() }
//! }
//!
//! async fn hello(AuthUser(user): AuthUser) -> String { format!("hello, {}", user.username) }
//! async fn reports(RequirePermission(user, _): RequirePermission<ReadReports>) -> String {
//!     format!("reports for {}", user.username)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(redauth_embedded::EmbeddedStore::open("data".as_ref())?);
//! let service = AuthService::builder(store, Secret::new(std::env::var("JWT_SECRET")?)).build()?;
//! let redauth = Redauth::new(service);
//! let app: Router = Router::new()
//!     .route("/hello", get(hello))
//!     .route("/reports", get(reports))
//!     .merge(redauth_axum::router(redauth.clone()))
//!     .with_state(AppState { redauth });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! `examples/embed` in the repository is this app, with its tests.
//!
//! A revoked session (logout, log out everywhere, a password change, a disabled user,
//! a reused refresh token) is refused by these extractors on every node at once, as on
//! redauth's own routes. Rejections are redauth's stable JSON error bodies
//! (`{"error": "<code>", "message": "…"}`, see [`error`]): 401 without a valid token,
//! 403 without the permission.
//!
//! # Only the extractors
//!
//! Nothing forces the API on you: an app that issues tokens elsewhere (the CLI, another
//! redauth node) can use [`AuthUser`] and [`RequirePermission`] without merging
//! [`router`]. They read [`Redauth`] from your state through `FromRef`.
//!
//! # Cookie sessions
//!
//! With cookie sessions on ([`Redauth::with_cookie_sessions`], see [`cookie::build`]),
//! [`CookieSession<T>`] gives a route the session's user and its data as your own type.
//! Add the [`set_session_cookies`] middleware to those routes: a check may renew the
//! cookie or move the session to a new id, and the middleware sends that `Set-Cookie`
//! with your response. A cookie-authenticated request that changes state (anything but
//! GET, HEAD, OPTIONS) must pass the CSRF check ([`cross_origin`]); the extractor runs
//! it, since your routes are outside redauth's edge middleware.
//!
//! ```no_run
//! # use axum::{Router, routing::post};
//! # use redauth_axum::{CookieSession, Redauth, set_session_cookies};
//! #[derive(serde::Deserialize)]
//! struct Cart { items: Vec<String> }
//!
//! async fn checkout(session: CookieSession<Cart>) -> String {
//!     match session.user {
//!         Some(user) => format!("{} buys {} items", user.username, session.data.items.len()),
//!         None => "log in first".into(),
//!     }
//! }
//! # fn routes(redauth: Redauth) -> Router {
//! Router::new()
//!     .route("/checkout", post(checkout))
//!     .layer(axum::middleware::from_fn(set_session_cookies))
//!     .with_state(redauth)
//! # }
//! ```
//!
//! # What every redauth route does
//!
//! The edge middleware in [`router`] gives each request an id (`x-request-id`, echoed,
//! and on every log line through [`request_id`]), refuses oversized headers (431),
//! answers CORS for the origins you allow ([`HttpConfig::allowed_origins`]), runs the
//! CSRF check, sets security headers (`Cache-Control: no-store`, CSP, `X-Frame-Options`,
//! HSTS when configured) and writes one access-log line with the path only (never the
//! query or the body).
//!
//! # Serving
//!
//! `axum::serve` has no header-read timeout, idle timeout or connection cap; a few
//! hundred slow clients exhaust it. [`serve::serve`] is the accept loop `redauth serve`
//! uses, with all of them and a graceful-shutdown deadline. Either way, requests need
//! [`axum::extract::ConnectInfo`] (the client address for per-IP rate limits) unless
//! [`HttpConfig::client_ip_header`] names a header your proxy sets.

#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod client_config;
pub mod cookie;
pub mod cookie_auth;
pub mod cross_origin;
pub mod dto;
pub mod error;
pub mod extract;
pub mod guards;
pub mod openapi;
pub mod request_id;
pub mod serve;
pub mod trusted_app;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use redauth_core::AuthService;
use redauth_core::cookie::{CookieAttributes, CookieError, SameSite};

use self::dto::{FeedStatus, Health, HealthStatus, Readiness, ReadyStatus};
use self::error::{ApiError, ErrorCode};
pub use self::extract::{AdminUser, AuthUser};
pub use self::guards::{CookieSession, Permission, RequirePermission, set_session_cookies};

/// Largest request body accepted; real requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest total of request header names and values accepted (hyper's own limit is
/// hundreds of KiB). A real request with a token and cookies is well under 8 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// HTTP settings of the API: cookie names and `Secure`, where the client address comes
/// from, the origins allowed to call with credentials, HSTS. The `Default` is for HTTPS
/// without a proxy; [`HttpConfig::plain_http`] for local development.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Name of the refresh-token cookie (`REDAUTH_REFRESH_COOKIE_NAME`, else
    /// [`Self::default_refresh_cookie_name`]). A `__Secure-` name needs `cookie_secure`;
    /// a `__Host-` one cannot work, since browsers want `Path=/` for it and this cookie
    /// has [`REFRESH_COOKIE_PATH`].
    pub refresh_cookie_name: String,
    /// `Secure` on cookies. Only ever off for plain-http local development.
    pub cookie_secure: bool,
    /// Where the client IP comes from when behind a trusted proxy (see
    /// [`extract::client_info`]); `None` is the TCP peer.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Origins (`https://app.example.com`) allowed to call with credentials: CORS
    /// headers and CSRF exemption. Empty: same origin only.
    pub allowed_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (redauth is served over HTTPS, usually via a
    /// TLS-terminating proxy).
    pub hsts: bool,
    /// How long a `429 rate_limited` answer is held before it is sent (0: not held).
    /// A client over its budget that retries at once on many connections (a closed
    /// loop) would otherwise turn each refusal into the next request, and the CPU those
    /// refusals take comes out of everyone else's logins (P4's fairness row in
    /// docs/performance.md). Holding the answer costs a timer, not CPU, and a client
    /// that honours `Retry-After` never notices.
    pub rate_limited_delay: std::time::Duration,
    /// The secret the web app in front of redauth sends to be trusted with the
    /// browser's address and user agent and to pass the CSRF guard
    /// ([`trusted_app`]). `None`: no caller is trusted that way.
    pub app_secret: Option<redauth_core::Secret>,
}

/// The default of [`HttpConfig::rate_limited_delay`].
pub const DEFAULT_RATE_LIMITED_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

impl HttpConfig {
    /// The refresh cookie's name when none is configured: `__Secure-` prefixed when
    /// cookies are `Secure`, so a plain-http page (or a sibling subdomain) cannot plant
    /// one; browsers drop `__Secure-` cookies without `Secure`, hence the bare name for
    /// plain-http development.
    pub fn default_refresh_cookie_name(cookie_secure: bool) -> &'static str {
        if cookie_secure {
            "__Secure-redauth_refresh"
        } else {
            "redauth_refresh"
        }
    }
}

impl HttpConfig {
    /// For an app served over plain http (local development only): cookies without
    /// `Secure` (browsers would drop them), the bare refresh-cookie name, no HSTS.
    pub fn plain_http() -> Self {
        Self {
            refresh_cookie_name: Self::default_refresh_cookie_name(false).into(),
            cookie_secure: false,
            hsts: false,
            ..Self::default()
        }
    }
}

/// Secure cookies, same-origin only, HSTS on, the TCP peer as the client address:
/// right for redauth served over HTTPS without a proxy in front.
impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            refresh_cookie_name: Self::default_refresh_cookie_name(true).into(),
            cookie_secure: true,
            client_ip_header: None,
            allowed_origins: Vec::new(),
            hsts: true,
            rate_limited_delay: DEFAULT_RATE_LIMITED_DELAY,
            app_secret: None,
        }
    }
}

/// Everything redauth's handlers and extractors need: the service, the HTTP settings
/// and, when enabled, cookie sessions. Cheap to clone. A host app keeps it in its own
/// state and implements `FromRef<HostState> for Redauth` (or uses `Redauth` as its
/// state).
#[derive(Clone)]
pub struct Redauth {
    /// The auth service every handler and extractor calls.
    pub service: Arc<AuthService>,
    /// The HTTP settings, shared by every clone.
    pub http: Arc<HttpConfig>,
    /// `None` when cookie sessions are off.
    pub cookie_sessions: Option<Arc<cookie::CookieSessions>>,
    /// Whether the store has a revocation feed (Redis) whose state `/readyz` reports;
    /// the embedded store has a single process and nothing to subscribe to.
    pub revocation_feed: bool,
}

impl Redauth {
    /// redauth over `service` with the default [`HttpConfig`] and no cookie sessions.
    pub fn new(service: Arc<AuthService>) -> Self {
        Self {
            service,
            http: Arc::new(HttpConfig::default()),
            cookie_sessions: None,
            revocation_feed: false,
        }
    }

    /// Replaces the HTTP settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.http = Arc::new(http);
        self
    }

    /// Turns cookie sessions on (see [`cookie::build`]).
    pub fn with_cookie_sessions(mut self, sessions: Arc<cookie::CookieSessions>) -> Self {
        self.cookie_sessions = Some(sessions);
        self
    }

    /// Says the store has a revocation feed whose state `/readyz` reports (Redis).
    pub fn with_revocation_feed(mut self, has_feed: bool) -> Self {
        self.revocation_feed = has_feed;
        self
    }
}

/// The refresh cookie is scoped to the auth endpoints, so it never travels with
/// ordinary page or API requests.
pub const REFRESH_COOKIE_PATH: &str = "/api/auth";

impl HttpConfig {
    /// The refresh cookie: `HttpOnly` (page scripts never see the long-lived token),
    /// `SameSite=Strict` (no cross-site request carries it), `Path=/api/auth` and
    /// `Secure` unless turned off for local http. Rendered by the same
    /// [`CookieAttributes`] as the session cookie, so both follow one set of rules.
    pub fn refresh_cookie_attributes(&self) -> CookieAttributes {
        CookieAttributes {
            name: self.refresh_cookie_name.clone(),
            path: REFRESH_COOKIE_PATH.to_owned(),
            domain: None,
            http_only: true,
            secure: self.cookie_secure,
            same_site: SameSite::Strict,
        }
    }
}

impl Redauth {
    /// `Set-Cookie` for a refresh token valid `max_age` more seconds.
    pub fn refresh_cookie(&self, token: &str, max_age: i64) -> Result<String, CookieError> {
        self.http
            .refresh_cookie_attributes()
            .set_cookie(token, Some(max_age))
    }

    /// `Set-Cookie` that removes the refresh cookie.
    pub fn clear_refresh_cookie(&self) -> String {
        self.http.refresh_cookie_attributes().clear_cookie()
    }

    fn no_content_clearing_cookie(&self) -> Response {
        let mut res = StatusCode::NO_CONTENT.into_response();
        append_set_cookie(&mut res, &self.clear_refresh_cookie());
        res
    }
}

/// Adds a `Set-Cookie` to `res`. Every value is rendered by [`CookieAttributes`] from
/// names and attributes checked when the settings are loaded and values redauth made
/// itself (base64url tokens, encoded session ids), so this does not fail in practice;
/// if it did, the cookie is left out and the bug logged rather than the request failed.
pub(crate) fn append_set_cookie(res: &mut Response, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        Err(_) => tracing::error!("a Set-Cookie value is not a valid header; not sent"),
    }
}

/// The whole API (`/api/auth/*`, `/api/admin/*`, `/healthz`, `/readyz`) with its edge
/// middleware, for any host state `S`. It takes the [`Redauth`] value rather than
/// reading it from `S` because the edge middleware (request ids, the CSRF guard,
/// security headers) is built here, with the router, so no route can be served without
/// it.
pub fn router<S>(state: Redauth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let api = Router::new()
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/logout-all", post(auth::logout_all))
        .route("/api/auth/me", get(auth::me))
        .route("/api/auth/session", get(cookie::get_session))
        .route("/api/auth/config", get(client_config::get_config))
        .route("/api/auth/verify", get(auth::verify))
        .route("/api/auth/sessions", get(auth::sessions))
        .route("/api/auth/sessions/{sid}", delete(auth::delete_session))
        .route("/api/auth/password", post(auth::change_password))
        .route(
            "/api/admin/users",
            post(admin::create_user).get(admin::list_users),
        )
        .route(
            "/api/admin/users/{id}",
            get(admin::get_user).delete(admin::delete_user),
        )
        .route("/api/admin/users/{id}/disable", post(admin::disable_user))
        .route("/api/admin/users/{id}/enable", post(admin::enable_user))
        .route("/api/admin/users/{id}/roles", put(admin::set_user_roles))
        .route("/api/admin/roles", get(admin::list_roles))
        .route("/api/admin/roles/{name}", put(admin::put_role))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", openapi::route(&state));
    api.fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: HealthStatus::Ok,
    })
}

/// 200 when the store answers, whatever the revocation feed's state: a node whose feed
/// is lost still answers correctly (every check reads Redis), only slower. The feed's
/// state is reported for operators and for the benchmark's P6, which waits on it:
/// `subscribed` (the session cache is trusted), `lost` (not yet or no longer
/// subscribed; the cache is off), `none` (a store without a feed).
async fn readyz(State(state): State<Redauth>) -> Result<axum::Json<Readiness>, ApiError> {
    state.service.ready().await?;
    let revocation_feed = match (state.revocation_feed, state.service.cache_status().trusted) {
        (false, _) => FeedStatus::None,
        (true, true) => FeedStatus::Subscribed,
        (true, false) => FeedStatus::Lost,
    };
    Ok(axum::Json(Readiness {
        status: ReadyStatus::Ready,
        revocation_feed,
    }))
}

/// Everything every request goes through, in one middleware (four separate layers
/// cost a boxed future and a service clone each per request; see
/// docs/performance.md). In order:
///
/// 1. a request id: the caller's `x-request-id` if it is sane, else a new one; every
///    log line written for the request carries it, and the response echoes it;
/// 2. oversized headers are refused (431);
/// 3. the app secret: a request carrying the right one is marked [`trusted_app::TrustedApp`],
///    a wrong one is refused;
/// 4. cross-origin rules: CORS preflight and headers, the CSRF check
///    ([`cross_origin`]), which the app's own requests skip;
/// 5. security headers on every response, errors included;
/// 6. one access-log line. Only the path is logged: query strings and bodies never are.
async fn edge(State(state): State<Redauth>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id::from_headers(req.headers());
    let method = req.method().clone();
    let uri = req.uri().clone();
    request_id::scope(request_id.clone(), async move {
        let mut res = if headers_too_large(req.headers()) {
            ApiError::new(
                ErrorCode::RequestHeaderFieldsTooLarge,
                "request headers are too large",
            )
            .into_response()
        } else {
            let res = match trusted_app::authenticate(&state, req.headers()) {
                Ok(app) => {
                    if let Some(app) = app {
                        req.extensions_mut().insert(app);
                    }
                    cross_origin::apply(&state, req, next).await
                }
                Err(e) => e.into_response(),
            };
            hold_if_rate_limited(res.status(), state.http.rate_limited_delay).await;
            res
        };
        security_headers(&state, res.headers_mut());
        res.headers_mut().insert(request_id::HEADER, request_id);
        tracing::info!(
            method = method.as_str(),
            path = uri.path(),
            status = res.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        res
    })
    .await
}

/// Holds a `429` for about `delay` (see [`HttpConfig::rate_limited_delay`]): a uniform
/// time between half and one and a half times it. The spread matters: a storm's
/// connections all start together, and held for the same time they would come back
/// together, once a second, as a burst that everyone else's requests queue behind.
async fn hold_if_rate_limited(status: StatusCode, delay: std::time::Duration) {
    if status == StatusCode::TOO_MANY_REQUESTS && !delay.is_zero() {
        tokio::time::sleep(spread(delay, random_fraction())).await;
    }
}

/// `delay` scaled by `0.5 + fraction`, `fraction` in `[0, 1)`.
fn spread(delay: std::time::Duration, fraction: f64) -> std::time::Duration {
    delay.mul_f64(0.5 + fraction.clamp(0.0, 1.0))
}

/// A uniform fraction in `[0, 1)` from the OS generator (only refused requests pay
/// for it); the midpoint if the generator fails, which only loses the spread.
fn random_fraction() -> f64 {
    redauth_core::ids::random_bytes::<4>().map_or(0.5, |b| {
        f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
    })
}

/// Responses carry credentials or identity: nothing may cache them, sniff them, frame
/// them or leak them through a referrer.
fn security_headers(state: &Redauth, h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if state.http.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

fn headers_too_large(headers: &HeaderMap) -> bool {
    let total: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    total > MAX_HEADER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(secure: bool) -> HttpConfig {
        HttpConfig {
            refresh_cookie_name: "__Secure-redauth_refresh".into(),
            cookie_secure: secure,
            client_ip_header: None,
            allowed_origins: Vec::new(),
            hsts: false,
            rate_limited_delay: DEFAULT_RATE_LIMITED_DELAY,
            app_secret: None,
        }
    }

    /// A 429 is held between half and one and a half times the delay, and nothing
    /// else is: paused time makes the moment the answer is released exact.
    #[tokio::test(start_paused = true)]
    async fn a_429_is_held_for_about_the_delay_and_other_answers_are_not() {
        let delay = std::time::Duration::from_millis(1000);
        let limited = ApiError::new(ErrorCode::RateLimited, "slow down")
            .into_response()
            .status();
        for _ in 0..20 {
            let started = tokio::time::Instant::now();
            hold_if_rate_limited(limited, delay).await;
            let held = started.elapsed();
            assert!(held >= delay / 2 && held <= delay * 3 / 2, "{held:?}");
        }
        assert_eq!(spread(delay, 0.0), delay / 2);
        assert_eq!(spread(delay, 0.5), delay);
        let started = tokio::time::Instant::now();
        for code in [ErrorCode::InvalidCredentials, ErrorCode::Unavailable] {
            hold_if_rate_limited(ApiError::new(code, "no").into_response().status(), delay).await;
        }
        hold_if_rate_limited(StatusCode::OK, delay).await;
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
        hold_if_rate_limited(limited, std::time::Duration::ZERO).await;
        assert_eq!(
            started.elapsed(),
            std::time::Duration::ZERO,
            "0 turns it off"
        );
    }

    /// The refresh cookie, byte for byte as it was when it was formatted by hand: the
    /// attributes are what keep the long-lived token from page scripts (`HttpOnly`),
    /// from cross-site requests (`SameSite=Strict`) and from every path but the auth
    /// endpoints.
    #[test]
    fn the_refresh_cookie_attributes_are_pinned() {
        let attributes = http(true).refresh_cookie_attributes();
        attributes.validate().unwrap();
        assert_eq!(
            attributes.set_cookie("rt1.u.s.t", Some(259_200)).unwrap(),
            "__Secure-redauth_refresh=rt1.u.s.t; Max-Age=259200; Path=/api/auth; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            attributes.set_cookie("rt1.u.s.t", Some(-5)).unwrap(),
            "__Secure-redauth_refresh=rt1.u.s.t; Max-Age=0; Path=/api/auth; HttpOnly; Secure; SameSite=Strict",
            "a session already past its end gets a cookie that expires at once"
        );
        assert_eq!(
            attributes.clear_cookie(),
            "__Secure-redauth_refresh=; Max-Age=0; Path=/api/auth; HttpOnly; Secure; SameSite=Strict"
        );
        let local = HttpConfig {
            refresh_cookie_name: "redauth_refresh".into(),
            ..http(false)
        }
        .refresh_cookie_attributes();
        assert_eq!(
            local.set_cookie("t", Some(60)).unwrap(),
            "redauth_refresh=t; Max-Age=60; Path=/api/auth; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            local.clear_cookie(),
            "redauth_refresh=; Max-Age=0; Path=/api/auth; HttpOnly; SameSite=Strict"
        );
    }
}
