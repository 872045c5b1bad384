//! A small axum app with routes of its own, protected by redauth, on the embedded store
//! (no Redis needed). The integration is [`app`]: two extractors and one `merge`.
//!
//! - `GET /hello` needs a live access token (`Authorization: Bearer …`);
//! - `GET /reports` needs one whose user holds `reports:read`;
//! - `/api/auth/*` and `/api/admin/*` are redauth's API, merged in: login, refresh,
//!   logout, sessions, administration.
//!
//! Run it with `cargo run -p redauth-example-embed`; its tests are in `tests/`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::get;
use redauth_axum::{AuthUser, Redauth, RequirePermission};
use redauth_core::{AuthService, Secret};

redauth_axum::permission!(
    /// What `GET /reports` asks for.
    pub ReadReports = "reports:read"
);

/// The app's own state, with redauth's inside it.
#[derive(Clone)]
pub struct AppState {
    /// What redauth's extractors and routes need.
    pub redauth: Redauth,
    /// Something of the app's own.
    pub greeting: String,
}

impl FromRef<AppState> for Redauth {
    fn from_ref(state: &AppState) -> Self {
        state.redauth.clone()
    }
}

/// The app's routes and redauth's API in one router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/reports", get(reports))
        .merge(redauth_axum::router(state.redauth.clone()))
        .with_state(state)
}

async fn hello(State(state): State<AppState>, AuthUser(user): AuthUser) -> String {
    format!("{}, {}", state.greeting, user.username)
}

async fn reports(RequirePermission(user, _): RequirePermission<ReadReports>) -> String {
    format!("reports for {}", user.username)
}

/// redauth on the embedded store in `data_dir`, its tokens signed with `secret`.
/// Plain-http cookie settings only because the example is served over plain http.
pub fn redauth(data_dir: &Path, secret: Secret) -> Result<Redauth, Box<dyn std::error::Error>> {
    let store = Arc::new(redauth_embedded::EmbeddedStore::open(data_dir)?);
    let service = AuthService::builder(store, secret).build()?;
    Ok(Redauth::new(service).with_http(redauth_axum::HttpConfig::plain_http()))
}
