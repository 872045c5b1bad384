//! The one place where errors become HTTP responses. Every error body is
//! `{"error": "<stable_code>", "message": "<human text>"}` ([`ErrorBody`]); codes never
//! change meaning, and each has exactly one status ([`ErrorCode::status`]).
//!
//! A failure of the store or of redauth itself (503 `unavailable`, 500 `internal`) is
//! logged here, once, with its whole cause chain ([`Chain`]): the client learns only
//! the code, the operator learns why (a refused connection and a wrong Redis password
//! are both `unavailable`, and only the log tells them apart). Nothing below this
//! module logs the errors it returns.

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redauth_core::cookie::CookieError;
use redauth_core::cookie_session::CookieSessionError;
use redauth_core::error::Chain;
use redauth_core::{AuthError, StoreError};

pub use crate::dto::ErrorBody;

/// Declares [`ErrorCode`] from one table, so the list of every code
/// ([`ErrorCode::ALL`]), the wire strings and the statuses cannot drift apart.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident => $status:ident, $code:literal; )*) => {
        /// The stable `error` of an error body. Adding one means adding it to the
        /// README's table too (a test reads the table).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of the table above.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code on the wire (`"invalid_request"`).
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The one status every response with this code has.
            pub const fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }
        }
    };
}

error_codes! {
    /// A malformed or invalid request: bad JSON, a field out of range, two different
    /// cookies of one name.
    InvalidRequest => BAD_REQUEST, "invalid_request";
    /// Wrong username or password (or a disabled account: the same answer).
    InvalidCredentials => UNAUTHORIZED, "invalid_credentials";
    /// No `Authorization: Bearer` token.
    MissingToken => UNAUTHORIZED, "missing_token";
    /// A forged, malformed or revoked access token (its session has ended).
    InvalidToken => UNAUTHORIZED, "invalid_token";
    /// An expired access token: refresh it and retry.
    TokenExpired => UNAUTHORIZED, "token_expired";
    /// An unknown, expired or malformed refresh token, or a just-rotated one presented
    /// by another client.
    InvalidRefreshToken => UNAUTHORIZED, "invalid_refresh_token";
    /// An already-rotated refresh token came back: the session has been revoked.
    RefreshTokenReused => UNAUTHORIZED, "refresh_token_reused";
    /// `GET /api/auth/session` without the session cookie.
    MissingSession => UNAUTHORIZED, "missing_session";
    /// A forged, unknown, expired or revoked session cookie (one code for all, so the
    /// client cannot learn which).
    InvalidSession => UNAUTHORIZED, "invalid_session";
    /// An `x-redauth-app-secret` that is wrong, or sent to a redauth that trusts no
    /// app ([`trusted_app`](crate::trusted_app)).
    InvalidAppSecret => UNAUTHORIZED, "invalid_app_secret";
    /// Authenticated, without the permission.
    Forbidden => FORBIDDEN, "forbidden";
    /// A cross-site request with cookies from an origin not allowed.
    CsrfRejected => FORBIDDEN, "csrf_rejected";
    /// No such user, session, role or endpoint (or cookie sessions are off).
    NotFound => NOT_FOUND, "not_found";
    /// The endpoint exists, not with this method.
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method_not_allowed";
    /// The username, or one that normalizes or looks the same, is taken.
    UsernameTaken => CONFLICT, "username_taken";
    /// The email address, or one that normalizes or looks the same, is another user's.
    EmailTaken => CONFLICT, "email_taken";
    /// The change would leave no enabled administrator.
    LastAdmin => CONFLICT, "last_admin";
    /// A body over [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload_too_large";
    /// A body that is not `Content-Type: application/json`.
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type";
    /// Too many attempts; `Retry-After` says when to try again.
    RateLimited => TOO_MANY_REQUESTS, "rate_limited";
    /// Request headers over [`MAX_HEADER_BYTES`](crate::MAX_HEADER_BYTES) in total.
    RequestHeaderFieldsTooLarge => REQUEST_HEADER_FIELDS_TOO_LARGE, "request_header_fields_too_large";
    /// Corrupt stored data or a failure of redauth itself; the cause is in the log.
    Internal => INTERNAL_SERVER_ERROR, "internal";
    /// The store is unreachable, or too much work is queued (then with
    /// `Retry-After`). Retrying is safe.
    Unavailable => SERVICE_UNAVAILABLE, "unavailable";
    /// Not answered within the request timeout; retrying is safe.
    Timeout => SERVICE_UNAVAILABLE, "timeout";
}

impl ErrorCode {
    /// The code for the wire string `s`, if it is one.
    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// Failures of a Bearer or refresh token, which RFC 6750 §3 answers with a
    /// `WWW-Authenticate: Bearer` challenge. Wrong credentials and cookie-session
    /// failures are not token failures and get none.
    pub(crate) fn is_token_failure(self) -> bool {
        matches!(
            self,
            Self::MissingToken
                | Self::InvalidToken
                | Self::TokenExpired
                | Self::InvalidRefreshToken
                | Self::RefreshTokenReused
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Self::from_code(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown error code {s:?}")))
    }
}

/// An error response: a code (which fixes the status), a message for humans and,
/// for 429 and some 503s, a `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    /// The code; it fixes the status.
    pub code: ErrorCode,
    /// The body's `message`, for people. Keep secrets and values the client sent out of
    /// it: it goes back verbatim.
    pub message: Cow<'static, str>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `code` (and so its status) and `message`, without `Retry-After`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_request` with `message`.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// The status, fixed by the code.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 500 with a message that says nothing of the cause (which is logged instead).
    fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The response to a failed store: 503, or 500 for data that does not decode.
    /// The log line is the only place the cause goes.
    fn storage(e: &StoreError) -> Self {
        if matches!(e, StoreError::Corrupt { .. }) {
            tracing::error!(error = %Chain(e), "stored data cannot be read");
            Self::internal()
        } else {
            tracing::error!(error = %Chain(e), "store failed");
            Self::new(ErrorCode::Unavailable, "storage unavailable")
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use ErrorCode as C;
        let code = match &e {
            AuthError::InvalidRequest(_) => C::InvalidRequest,
            AuthError::InvalidCredentials => C::InvalidCredentials,
            AuthError::MissingToken => C::MissingToken,
            AuthError::InvalidToken => C::InvalidToken,
            AuthError::TokenExpired => C::TokenExpired,
            AuthError::InvalidRefreshToken => C::InvalidRefreshToken,
            AuthError::RefreshTokenReused => C::RefreshTokenReused,
            AuthError::Forbidden => C::Forbidden,
            AuthError::NotFound => C::NotFound,
            AuthError::UsernameTaken => C::UsernameTaken,
            AuthError::EmailTaken => C::EmailTaken,
            AuthError::LastAdmin => C::LastAdmin,
            AuthError::RateLimited { .. } => C::RateLimited,
            AuthError::Busy { .. } => C::Unavailable,
            AuthError::Unavailable => {
                tracing::warn!(error = %e, "gave up: concurrent writes kept conflicting");
                C::Unavailable
            }
            AuthError::Storage(store) => return Self::storage(store),
            AuthError::Internal(what) => {
                tracing::error!(error = what, "internal error");
                return Self::internal();
            }
        };
        let retry_after = match e {
            AuthError::RateLimited { retry_after_secs } | AuthError::Busy { retry_after_secs } => {
                Some(retry_after_secs)
            }
            _ => None,
        };
        Self {
            code,
            message: e.to_string().into(),
            retry_after,
        }
    }
}

impl From<CookieSessionError> for ApiError {
    fn from(e: CookieSessionError) -> Self {
        match e {
            CookieSessionError::Auth(a) => a.into(),
            CookieSessionError::Store(s) => AuthError::from(s).into(),
            CookieSessionError::Missing => {
                Self::new(ErrorCode::MissingSession, "no session cookie was presented")
            }
            // One code for forged, unknown and ended: the client cannot learn which.
            CookieSessionError::InvalidCookie | CookieSessionError::NotFound => Self::new(
                ErrorCode::InvalidSession,
                "the session is invalid or has ended",
            ),
            CookieSessionError::Encode(why) => {
                Self::invalid_request(format!("session_data: {why}"))
            }
            CookieSessionError::Decode(_) | CookieSessionError::Cookie(_) => {
                tracing::error!(error = %Chain(&e), "cookie session failure");
                Self::internal()
            }
        }
    }
}

/// Only rendering a `Set-Cookie` fails with a [`CookieError`] here, and only through a
/// bug (a value past the size browsers keep): a 500, with the cause in the log.
impl From<CookieError> for ApiError {
    fn from(e: CookieError) -> Self {
        tracing::error!(error = %Chain(&e), "cannot render a cookie");
        Self::internal()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(ErrorCode::PayloadTooLarge, "request body is too large")
        } else {
            Self::invalid_request("could not read the request body")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.code.status(),
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code.is_token_failure() {
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

/// The router's fallback: 404 `not_found` for a path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// 405 `method_not_allowed` for a route that exists with other methods.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_string() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: Option<ErrorCode> = serde_json::from_str(&json).ok();
            assert_eq!(back, Some(code));
        }
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
    }

    /// `(status, code)` of every row of the README's error table: rows that start
    /// with `| <3 digits> | \`<code>\` |`.
    fn readme_error_table(readme: &str) -> Vec<(u16, &str)> {
        let section = readme
            .split("\n### Error codes\n")
            .nth(1)
            .and_then(|s| s.split("\n#").next())
            .unwrap_or("");
        section
            .lines()
            .filter_map(|line| {
                let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
                let status = cells.next()?.parse().ok()?;
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((status, code))
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_every_error_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        let rows = readme_error_table(readme);
        assert!(
            !rows.is_empty(),
            "no \"### Error codes\" table in the README"
        );
        for &code in ErrorCode::ALL {
            let listed: Vec<u16> = rows
                .iter()
                .filter(|(_, c)| *c == code.as_str())
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(
                listed,
                [code.status().as_u16()],
                "README error table: `{code}` must be listed once, with {}",
                code.status()
            );
        }
        for (status, code) in &rows {
            assert!(
                ErrorCode::from_code(code).is_some(),
                "README lists `{code}` ({status}), which no response carries"
            );
        }
        assert!(
            !readme.contains("never a 500"),
            "500 `internal` exists: the README must not promise otherwise"
        );
    }
}
