//! redauth's HTTP layer for axum.
//!
//! (The embedder's guide is written in the next step of issue 12.)

pub mod admin;
pub mod auth;
pub mod client_config;
pub mod cookie;
pub mod cookie_auth;
pub mod cross_origin;
pub mod error;
pub mod extract;
pub mod guards;
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

use self::error::ApiError;

/// Largest request body accepted; real requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest total of request header names and values accepted (hyper's own limit is
/// hundreds of KiB). A real request with a token and cookies is well under 8 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct HttpConfig {
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
    /// The secret the web app in front of redauth sends to be trusted with the
    /// browser's address and user agent and to pass the CSRF guard
    /// ([`trusted_app`]). `None`: no caller is trusted that way.
    pub app_secret: Option<redauth_core::Secret>,
}

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
    pub service: Arc<AuthService>,
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
pub(crate) const REFRESH_COOKIE_PATH: &str = "/api/auth";

impl Redauth {
    fn cookie_attributes(&self) -> String {
        let secure = if self.http.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        format!("; Path={REFRESH_COOKIE_PATH}; HttpOnly{secure}; SameSite=Strict")
    }

    pub fn refresh_cookie(&self, token: &str, max_age: i64) -> String {
        format!(
            "{}={token}; Max-Age={max_age}{}",
            self.http.refresh_cookie_name,
            self.cookie_attributes()
        )
    }

    pub fn clear_refresh_cookie(&self) -> String {
        format!(
            "{}=; Max-Age=0{}",
            self.http.refresh_cookie_name,
            self.cookie_attributes()
        )
    }

    fn no_content_clearing_cookie(&self) -> Response {
        let mut res = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&self.clear_refresh_cookie()) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
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
        .route("/readyz", get(readyz));
    api.fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// 200 when the store answers, whatever the revocation feed's state: a node whose feed
/// is lost still answers correctly (every check reads Redis), only slower. The feed's
/// state is reported for operators and for the benchmark's P6, which waits on it:
/// `subscribed` (the session cache is trusted), `lost` (not yet or no longer
/// subscribed; the cache is off), `none` (a store without a feed).
async fn readyz(State(state): State<Redauth>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    state.service.ready().await?;
    let feed = match (state.revocation_feed, state.service.cache().is_trusted()) {
        (false, _) => "none",
        (true, true) => "subscribed",
        (true, false) => "lost",
    };
    Ok(axum::Json(
        serde_json::json!({ "status": "ready", "revocation_feed": feed }),
    ))
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
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
                "request headers are too large",
            )
            .into_response()
        } else {
            match trusted_app::authenticate(&state, req.headers()) {
                Ok(app) => {
                    if let Some(app) = app {
                        req.extensions_mut().insert(app);
                    }
                    cross_origin::apply(&state, req, next).await
                }
                Err(e) => e.into_response(),
            }
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
