//! Domain errors. The HTTP layer maps these to status codes and stable error codes in
//! one place; nothing below it knows about HTTP.
//!
//! A backend failure keeps its cause: [`StoreError::Unavailable`] and
//! [`StoreError::Corrupt`] say what redauth was doing in their message and hold the
//! backend's own error (a `redis::RedisError`, a redb or I/O error) as their
//! [`source`](std::error::Error::source). Their `Display` is the message alone, as
//! error-chain conventions want, so whoever logs one must log the chain: [`Chain`].
//! The HTTP layer does that once, where it turns the error into a response; the
//! response itself never carries the cause.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use thiserror::Error;

/// The cause a [`StoreError`] carries: any backend error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A model or input field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The field's name on the wire (`username`, `password`, `limit`…), shown to the
    /// client.
    pub field: &'static str,
    /// What is wrong, phrased to follow the field name (`must be 3 to 64 characters`).
    pub reason: &'static str,
}

impl ValidationError {
    /// Both parts are `'static`, so no client input can reach an error message through
    /// them.
    pub fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// What a [`crate::store::Store`] can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time. Maps to 503.
    /// `message` says what redauth was doing; `source` is why it failed (a refused
    /// connection and a wrong password are both `Unavailable`, and only the source
    /// tells an operator which).
    #[error("storage unavailable: {message}")]
    Unavailable {
        /// What redauth was doing.
        message: Cow<'static, str>,
        /// Why it failed: the backend's own error, for the log.
        #[source]
        source: Option<BoxError>,
    },
    /// A create found the normalized username (or a look-alike) already claimed.
    #[error("username is already taken")]
    UsernameTaken,
    /// A create or an email change found the normalized email (or a look-alike) already
    /// claimed by another user.
    #[error("email is already taken")]
    EmailTaken,
    /// The record to change or delete does not exist.
    #[error("not found")]
    NotFound,
    /// A compare-and-set write found a newer version than the one it was based on:
    /// someone else wrote in between, and nothing was written.
    #[error("the record changed since it was read")]
    Conflict,
    /// The store refused to write a value that fails validation.
    #[error("invalid data: {0}")]
    Invalid(#[from] ValidationError),
    /// Stored data that does not decode: a bug or tampering, never user input.
    #[error("corrupt stored data: {message}")]
    Corrupt {
        /// Which data could not be decoded.
        message: Cow<'static, str>,
        /// The decoder's error, for the log.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// `Unavailable` with no underlying error (the message is the whole story).
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// `Unavailable` because of `source`, kept for the log.
    pub fn unavailable_because(
        message: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// `Corrupt` with no underlying error.
    pub fn corrupt(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Corrupt {
            message: message.into(),
            source: None,
        }
    }

    /// `Corrupt` because of `source` (a decoder's error, say), kept for the log.
    pub fn corrupt_because(
        message: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Corrupt {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The same error with `prefix: ` before its message: context added on the way up
    /// (which data file) without nesting a second `StoreError` into the chain.
    #[must_use]
    pub fn prefixed(self, prefix: &str) -> Self {
        match self {
            Self::Unavailable { message, source } => Self::Unavailable {
                message: format!("{prefix}: {message}").into(),
                source,
            },
            Self::Corrupt { message, source } => Self::Corrupt {
                message: format!("{prefix}: {message}").into(),
                source,
            },
            other => other,
        }
    }
}

/// An error and its sources on one line, `outer: cause: root cause`: the form every
/// log line about a failure uses, so the cause is never lost. Not every library leaves
/// its source out of its own `Display` (a `redis::RedisError` for a refused connection
/// ends with the I/O error it also returns as its source), so a source whose text the
/// previous link already ends with is not printed again.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            let text = e.to_string();
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything the auth service can refuse or fail with.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Input that fails validation (400 `invalid_request`, naming the field).
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] ValidationError),
    /// Wrong username or password, a disabled account, or a password over the length
    /// limit: one answer for all (401).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// No Bearer token was presented (401).
    #[error("no access token was presented")]
    MissingToken,
    /// An access token that is forged, malformed, for another issuer or audience, or
    /// whose session has ended (401).
    #[error("the access token is invalid")]
    InvalidToken,
    /// A correctly signed access token past its `exp` (plus the leeway): the client
    /// should refresh (401).
    #[error("the access token has expired")]
    TokenExpired,
    /// A refresh token that is malformed, unknown or expired, or one just rotated
    /// presented by another client within the grace window (401).
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// An already-rotated refresh token came back after its grace window: someone
    /// else may hold the token, so the whole session has been revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// Authenticated, without the permission (403).
    #[error("missing permission")]
    Forbidden,
    /// No such user, session or endpoint (404); a malformed id is one too.
    #[error("not found")]
    NotFound,
    /// The username, or one that normalizes or looks the same, belongs to another user
    /// (409).
    #[error("username is already taken")]
    UsernameTaken,
    /// The email address, or one that normalizes or looks the same, belongs to another
    /// user (409).
    #[error("email is already taken")]
    EmailTaken,
    /// The change would leave no enabled user with the admin permission.
    #[error("refused: this would leave no administrator")]
    LastAdmin,
    /// A brute-force budget is spent (429 with `Retry-After`).
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds, rounded up, until an attempt may be allowed again.
        retry_after_secs: u64,
    },
    /// Could not be done now, with no backend error behind it (a write that kept
    /// meeting concurrent writes). Maps to 503.
    #[error("storage unavailable")]
    Unavailable,
    /// The store failed: unreachable (503) or holding data that does not decode (500).
    /// Carries the [`StoreError`] whole, so the HTTP layer can log its cause.
    #[error(transparent)]
    Storage(StoreError),
    /// Too much work is queued (password checks): answered at once, without doing it.
    #[error("busy; retry in {retry_after_secs} s")]
    Busy {
        /// Seconds for `Retry-After`: the queue's longest wait, or 1 when the client
        /// already has its share of the queue.
        retry_after_secs: u64,
    },
    /// A failure of redauth itself (the OS RNG, a poisoned lock, a failed task). The text
    /// is for the log, never the client (500).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            e @ (StoreError::Unavailable { .. } | StoreError::Corrupt { .. }) => {
                AuthError::Storage(e)
            }
            StoreError::UsernameTaken => AuthError::UsernameTaken,
            StoreError::EmailTaken => AuthError::EmailTaken,
            StoreError::NotFound => AuthError::NotFound,
            // Callers that can retry a conflict do so before it gets here.
            StoreError::Conflict => AuthError::Unavailable,
            StoreError::Invalid(v) => AuthError::InvalidRequest(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let store = StoreError::unavailable_because("redis", io);
        assert_eq!(store.to_string(), "storage unavailable: redis");
        assert_eq!(
            Chain(&store).to_string(),
            "storage unavailable: redis: refused"
        );
        let auth = AuthError::from(store);
        assert!(matches!(auth, AuthError::Storage(_)));
        assert_eq!(
            Chain(&auth).to_string(),
            "storage unavailable: redis: refused",
            "the AuthError adds no link of its own"
        );
        let prefixed =
            StoreError::corrupt_because("stored user", std::fmt::Error).prefixed("data file /x");
        assert_eq!(
            Chain(&prefixed).to_string(),
            "corrupt stored data: data file /x: stored user: an error occurred when formatting an argument"
        );
        assert_eq!(
            Chain(&StoreError::unavailable("no cause")).to_string(),
            "storage unavailable: no cause"
        );
    }

    /// An error that prints its source itself, as `redis::RedisError` does.
    #[derive(Debug, Error)]
    #[error("io error: {0}")]
    struct Echoing(#[source] std::io::Error);

    #[test]
    fn a_source_already_printed_by_its_parent_is_not_printed_twice() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::unavailable_because("redis", Echoing(io));
        assert_eq!(
            Chain(&e).to_string(),
            "storage unavailable: redis: io error: refused"
        );
    }
}
