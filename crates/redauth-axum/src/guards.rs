//! Extractors for the host app's own routes: [`RequirePermission`] for Bearer tokens
//! with a permission, and [`CookieSession`] for cookie sessions, with the
//! [`set_session_cookies`] middleware that sends the cookies a check renews.
//!
//! They give a host route the same guarantees redauth's own routes have: a revoked
//! session is refused on every node, errors are the stable JSON bodies of
//! [`crate::error`], and a cookie-authenticated request that changes state must pass
//! the CSRF check (a host route is outside redauth's router and its edge middleware,
//! so the extractor runs the check itself).

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redauth_core::{AuthError, Principal};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Redauth;
use crate::error::ApiError;
use crate::extract::AuthUser;

/// A permission, as a type, for [`RequirePermission`]. Declare one with
/// [`permission!`](crate::permission): stable Rust has no `&str` const generics, so
/// the name travels in an associated constant.
pub trait Permission {
    /// The permission's name, as roles grant it (`"reports:read"`).
    const NAME: &'static str;
}

/// Declares a [`Permission`] type: `permission!(pub ReadReports = "reports:read");`.
#[macro_export]
macro_rules! permission {
    ($(#[$meta:meta])* $vis:vis $name:ident = $permission:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::guards::Permission for $name {
            const NAME: &'static str = $permission;
        }
    };
}

/// The caller, authenticated by `Authorization: Bearer <access token>`, holding
/// permission `P`: 401 without a valid token, 403 `forbidden` without the permission.
pub struct RequirePermission<P: Permission>(pub Arc<Principal>, pub PhantomData<P>);

impl<P: Permission> RequirePermission<P> {
    /// The authenticated principal.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.0
    }
}

impl<S, P> FromRequestParts<S> for RequirePermission<P>
where
    Redauth: FromRef<S>,
    S: Send + Sync,
    P: Permission,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        if !principal.has_permission(P::NAME) {
            return Err(AuthError::Forbidden.into());
        }
        Ok(Self(principal, PhantomData))
    }
}

/// The request's cookie session, checked as `GET /api/auth/session` checks it:
/// `user` is the logged-in principal (`None` for an anonymous session), `data` the
/// session data (without redauth's link) read as `T`.
///
/// Rejections: 401 `missing_session` without the cookie; 401 `invalid_session` with
/// the cookie cleared for a forged, unknown or ended one; 403 `csrf_rejected` for a
/// cross-site request that changes state; 404 when cookie sessions are not enabled;
/// 500 `internal` when the data is not a `T`, or when the route lacks the
/// [`set_session_cookies`] middleware (without it a renewed or re-issued cookie would
/// never reach the browser, and the user would be logged out at the next request).
#[derive(Debug, Clone)]
pub struct CookieSession<T = Value> {
    /// `None` for a session that no redauth login created.
    pub user: Option<Arc<Principal>>,
    /// The session's data.
    pub data: T,
}

/// Where [`CookieSession`] leaves a `Set-Cookie` for [`set_session_cookies`] to send.
#[derive(Clone, Default)]
struct PendingCookies(Arc<Mutex<Vec<HeaderValue>>>);

/// Middleware for host routes that take a [`CookieSession`]: sends the `Set-Cookie`
/// headers their checks produce (a renewal near expiry, a new id after a privilege
/// change, a cleared cookie for an ended session). Add it with
/// `.layer(axum::middleware::from_fn(redauth_axum::guards::set_session_cookies))`.
pub async fn set_session_cookies(mut req: Request, next: Next) -> Response {
    let pending = PendingCookies::default();
    req.extensions_mut().insert(pending.clone());
    let mut res = next.run(req).await;
    let cookies = std::mem::take(&mut *pending.0.lock().unwrap_or_else(PoisonError::into_inner));
    for value in cookies {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
    res
}

fn queue_cookie(parts: &Parts, value: &str) {
    if let (Some(pending), Ok(value)) = (
        parts.extensions.get::<PendingCookies>(),
        HeaderValue::from_str(value),
    ) {
        pending
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(value);
    }
}

impl<S, T> FromRequestParts<S> for CookieSession<T>
where
    Redauth: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let redauth = Redauth::from_ref(state);
        let sessions = crate::cookie::enabled(&redauth).map_err(IntoResponse::into_response)?;
        if parts.extensions.get::<PendingCookies>().is_none() {
            tracing::error!(
                "a route takes CookieSession without the set_session_cookies middleware"
            );
            return Err(internal());
        }
        crate::cross_origin::csrf_verdict(&redauth, &parts.method, &parts.headers)
            .map_err(IntoResponse::into_response)?;
        let check = sessions.check_request(parts).await?;
        if let Some(set) = &check.set_cookie {
            queue_cookie(parts, set);
        }
        // The error is not logged: serde's message would quote the session's data.
        let data = serde_json::from_value(check.data).map_err(|_| {
            tracing::error!(
                expected = std::any::type_name::<T>(),
                "cookie-session data is not of the route's type"
            );
            internal()
        })?;
        Ok(Self {
            user: check.principal,
            data,
        })
    }
}

fn internal() -> Response {
    ApiError::new(crate::error::ErrorCode::Internal, "internal error").into_response()
}
