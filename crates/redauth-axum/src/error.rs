//! The one place where errors become HTTP responses. Every error body is
//! `{"error": "<stable_code>", "message": "<human text>"}`; codes never change meaning.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redauth_core::AuthError;
use redauth_core::cookie_session::CookieSessionError;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            AuthError::InvalidRequest(_) => (S::BAD_REQUEST, "invalid_request"),
            AuthError::InvalidCredentials => (S::UNAUTHORIZED, "invalid_credentials"),
            AuthError::MissingToken => (S::UNAUTHORIZED, "missing_token"),
            AuthError::InvalidToken => (S::UNAUTHORIZED, "invalid_token"),
            AuthError::TokenExpired => (S::UNAUTHORIZED, "token_expired"),
            AuthError::InvalidRefreshToken => (S::UNAUTHORIZED, "invalid_refresh_token"),
            AuthError::RefreshTokenReused => (S::UNAUTHORIZED, "refresh_token_reused"),
            AuthError::Forbidden => (S::FORBIDDEN, "forbidden"),
            AuthError::NotFound => (S::NOT_FOUND, "not_found"),
            AuthError::UsernameTaken => (S::CONFLICT, "username_taken"),
            AuthError::LastAdmin => (S::CONFLICT, "last_admin"),
            AuthError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited"),
            AuthError::Unavailable | AuthError::Busy { .. } => {
                (S::SERVICE_UNAVAILABLE, "unavailable")
            }
            AuthError::Internal(what) => {
                tracing::error!(error = what, "internal error");
                (S::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = match &e {
            AuthError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let retry_after = match e {
            AuthError::RateLimited { retry_after_secs } | AuthError::Busy { retry_after_secs } => {
                Some(retry_after_secs)
            }
            _ => None,
        };
        Self {
            status,
            code,
            message,
            retry_after,
        }
    }
}

impl From<CookieSessionError> for ApiError {
    fn from(e: CookieSessionError) -> Self {
        use StatusCode as S;
        match e {
            CookieSessionError::Auth(a) => a.into(),
            CookieSessionError::Store(s) => AuthError::from(s).into(),
            CookieSessionError::Missing => Self::new(
                S::UNAUTHORIZED,
                "missing_session",
                "no session cookie was presented",
            ),
            // One code for forged, unknown and ended: the client cannot learn which.
            CookieSessionError::InvalidCookie | CookieSessionError::NotFound => Self::new(
                S::UNAUTHORIZED,
                "invalid_session",
                "the session is invalid or has ended",
            ),
            CookieSessionError::Encode(why) => {
                Self::invalid_request(format!("session_data: {why}"))
            }
            CookieSessionError::Decode(_) | CookieSessionError::Cookie(_) => {
                tracing::error!(error = %e, "cookie session failure");
                Self::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is too large",
            )
        } else {
            Self::invalid_request("could not read the request body")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(Body {
                error: self.code,
                message: &self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        let cookie_session = matches!(self.code, "missing_session" | "invalid_session");
        if self.status == StatusCode::UNAUTHORIZED
            && self.code != "invalid_credentials"
            && !cookie_session
        {
            // RFC 6750 §3: tells clients the Bearer scheme and why the token failed.
            let value = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.code
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}

/// serde's messages quote the offending input (`invalid type: string "…"`, ``unknown
/// variant `…` ``); a password typed into the wrong field must not come back in an
/// error body. Field names and expected types stay; quoted values become `…`.
pub fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
