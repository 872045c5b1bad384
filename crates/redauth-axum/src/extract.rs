//! Request extractors: the authenticated principal, strict JSON bodies, client info
//! and cookies.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use redauth_core::cookie::find_cookie;
use redauth_core::model::ADMIN_PERMISSION;
use redauth_core::service::ClientInfo;
use redauth_core::{AuthError, Principal};
use serde::de::DeserializeOwned;

use crate::Redauth;
use crate::error::{ApiError, ErrorCode};

/// The caller, authenticated by `Authorization: Bearer <access token>`.
pub struct AuthUser(pub Arc<Principal>);

/// The bearer token, if the request has one; `Err(InvalidToken)` for a malformed
/// `Authorization` header.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, AuthError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::InvalidToken),
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Redauth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let redauth = Redauth::from_ref(state);
        let Some(token) = bearer_token(parts)? else {
            // The app may name the user by the session cookie it forwards instead.
            return crate::trusted_app::forwarded_session_principal(parts, &redauth)
                .await?
                .map(Self)
                .ok_or_else(|| AuthError::MissingToken.into());
        };
        Ok(Self(redauth.service.authenticate(token).await?))
    }
}

/// An authenticated caller holding the admin permission.
pub struct AdminUser(pub Arc<Principal>);

impl<S> FromRequestParts<S> for AdminUser
where
    Redauth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let AuthUser(p) = AuthUser::from_request_parts(parts, state).await?;
        if !p.has_permission(ADMIN_PERMISSION) {
            return Err(AuthError::Forbidden.into());
        }
        Ok(Self(p))
    }
}

/// A JSON body whose rejections use our error format (400/413/415).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// `Content-Type: application/json` (parameters such as `charset` allowed).
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// 415 for a body that is not `Content-Type: application/json`.
pub(crate) fn unsupported_media_type() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "expected Content-Type: application/json",
    )
}

/// Strict JSON into `T`. The error says what is wrong and where, with every value the
/// client sent (and every key, which may be the client's too) redacted.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde lets a struct be read from an array (`["alice", "pw"]`); bodies are
    // objects, so anything else is refused before it can fit by position. (Found by
    // the json_bodies fuzz target.)
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid_request("the JSON body must be an object"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_request(format!(
            "invalid JSON body: {}",
            crate::error::redact_values(&e.to_string())
        ))
    })
}

/// Client IP and user agent: recorded on new sessions and used for per-IP limits.
/// For a request of the app ([`crate::trusted_app`]) they are what the app forwarded.
/// Otherwise the IP is the TCP peer, unless a trusted proxy header is configured
/// (`REDAUTH_CLIENT_IP_HEADER`); then it is that header (the last entry of a list, the
/// one the proxy appended), falling back to the peer when the header is absent. Only
/// configure it behind a proxy that overwrites the header.
pub fn client_info(parts: &Parts, http: &crate::HttpConfig) -> ClientInfo {
    let app = parts.extensions.get::<crate::trusted_app::TrustedApp>();
    let forwarded_ip = app.and_then(|a| a.client_ip).map(|ip| ip.to_string());
    let from_header = http.client_ip_header.as_ref().and_then(|name| {
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .rev()
            .find_map(|v| v.to_str().ok())?;
        let last = value.rsplit(',').next()?.trim();
        last.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| ip.to_string())
    });
    ClientInfo {
        ip: forwarded_ip.or(from_header).or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        }),
        user_agent: match app {
            Some(app) => app.user_agent.clone(),
            None => parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
    }
}

/// The value of cookie `name` from the request's `Cookie` headers, read by
/// [`find_cookie`]: two cookies of that name with different values are a 400 (see
/// there why neither may be picked). Header values that are not text are skipped.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    let headers = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    find_cookie(headers, name).map_err(|e| ApiError::invalid_request(e.to_string()))
}
