//! Domain errors. The HTTP layer maps these to status codes and stable error codes in
//! one place; nothing below it knows about HTTP.

use thiserror::Error;

/// A model or input field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl ValidationError {
    pub fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// What a [`crate::store::Store`] can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time. Maps to 503.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("username is already taken")]
    UsernameTaken,
    #[error("not found")]
    NotFound,
    /// A compare-and-set write found a newer version than the one it was based on:
    /// someone else wrote in between, and nothing was written.
    #[error("the record changed since it was read")]
    Conflict,
    #[error("invalid data: {0}")]
    Invalid(#[from] ValidationError),
    /// Stored data that does not decode: a bug or tampering, never user input.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Everything the auth service can refuse or fail with.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] ValidationError),
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("no access token was presented")]
    MissingToken,
    #[error("the access token is invalid")]
    InvalidToken,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// An already-rotated refresh token came back after its grace window: someone
    /// else may hold the token, so the whole session has been revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("missing permission")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("username is already taken")]
    UsernameTaken,
    /// The change would leave no enabled user with the admin permission.
    #[error("refused: this would leave no administrator")]
    LastAdmin,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("storage unavailable")]
    Unavailable,
    /// Too much work is queued (password checks): answered at once, without doing it.
    #[error("busy; retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => AuthError::Unavailable,
            StoreError::UsernameTaken => AuthError::UsernameTaken,
            StoreError::NotFound => AuthError::NotFound,
            // Callers that can retry a conflict do so before it gets here.
            StoreError::Conflict => AuthError::Unavailable,
            StoreError::Invalid(v) => AuthError::InvalidRequest(v),
            StoreError::Corrupt(_) => AuthError::Internal("corrupt stored data"),
        }
    }
}
