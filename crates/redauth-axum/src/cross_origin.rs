//! What browsers may do across origins.
//!
//! **CSRF.** A request that carries cookies and changes state (any method but GET,
//! HEAD, OPTIONS) must come from this origin or an allowed one. Browsers say where a
//! request comes from in `Sec-Fetch-Site` and `Origin`; a request with neither is not
//! from a browser (curl, a server) and cannot carry a victim's cookies, so it passes.
//! `SameSite` on redauth's cookies is the second line. Requests that carry the app
//! secret ([`crate::trusted_app`]) are the app's server calling, not a browser: they
//! skip the check.
//!
//! **CORS.** Only origins in `REDAUTH_ALLOWED_ORIGINS` get CORS headers, always with
//! credentials allowed and `Vary: Origin`; everyone else gets none, so browsers keep
//! them out.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Redauth;
use crate::error::{ApiError, ErrorCode};

fn is_allowed(state: &Redauth, origin: &str) -> bool {
    state.http.allowed_origins.iter().any(|o| o == origin)
}

/// `Origin` names this server when its scheme is the one this server is reached by
/// and its host and port match the request's `Host`. The scheme matters: a page on
/// `http://app` (no TLS, so anyone on the path may have written it) is not the same
/// origin as `https://app`. The server's scheme is `https` when its cookies are
/// `Secure` (it is served over TLS, perhaps through a proxy), else `http`.
fn is_same_origin(state: &Redauth, headers: &HeaderMap, origin: &str) -> bool {
    let ours = if state.http.cookie_secure {
        "https"
    } else {
        "http"
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    match origin.split_once("://") {
        Some((scheme, authority)) if scheme.eq_ignore_ascii_case(ours) => {
            without_default_port(ours, authority)
                .eq_ignore_ascii_case(without_default_port(ours, host))
        }
        _ => false,
    }
}

/// `host:443` is `host` for https (`:80` for http), as browsers write origins.
fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// The CSRF rule above, for one request. Also run by [`crate::guards::CookieSession`]
/// on host routes, which the edge middleware does not cover.
pub(crate) fn csrf_verdict(
    state: &Redauth,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || !headers.contains_key(header::COOKIE) {
        return Ok(());
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let trusted_origin =
        origin.is_some_and(|o| is_allowed(state, o) || is_same_origin(state, headers, o));
    let ok = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin" | "none") => origin.is_none() || trusted_origin,
        Some(_) => trusted_origin,
        None => origin.is_none() || trusted_origin,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::CsrfRejected,
            "cross-site request with cookies refused; add the origin to REDAUTH_ALLOWED_ORIGINS if it is yours",
        ))
    }
}

/// Answers a CORS preflight, or runs the request if the CSRF check passes; either way
/// adds the CORS headers an allowed origin gets.
pub async fn apply(state: &Redauth, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed_origin = origin.filter(|o| is_allowed(state, o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        let mut res = StatusCode::NO_CONTENT.into_response();
        if allowed_origin.is_some() {
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, x-request-id"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        res
    } else if req
        .extensions()
        .get::<crate::trusted_app::TrustedApp>()
        .is_some()
    {
        // The app's server, proven by the app secret: not a browser, so no CSRF.
        next.run(req).await
    } else {
        match csrf_verdict(state, req.method(), req.headers()) {
            Ok(()) => next.run(req).await,
            Err(e) => e.into_response(),
        }
    };
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed_origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, retry-after"),
        );
    }
    res
}
