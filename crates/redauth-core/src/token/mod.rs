//! The two tokens redauth issues: short-lived JWT access tokens and opaque,
//! rotating refresh tokens.

pub mod access;
pub mod refresh;

use hkdf::Hkdf;
use sha2::Sha256;

use crate::error::AuthError;
use crate::secret::Secret;

/// HS256 needs a key at least as long as its output (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Key material for both token kinds.
#[derive(Clone)]
pub struct TokenKeys {
    /// Used as-is as the HS256 key, so another service holding the same secret can
    /// verify redauth's access tokens with any JWT library.
    pub(crate) access: Vec<u8>,
    /// Keys the HMAC that hashes refresh tokens and derives their successors.
    pub(crate) refresh: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys([redacted])")
    }
}

impl TokenKeys {
    /// One secret for everything (`JWT_SECRET`): the refresh key is derived from it with
    /// HKDF so the two uses never share a key.
    pub fn from_single_secret(secret: &Secret) -> Result<Self, AuthError> {
        let mut refresh = vec![0u8; 32];
        Hkdf::<Sha256>::new(Some(b"redauth v1"), secret.expose().as_bytes())
            .expand(b"refresh-token hmac key", &mut refresh)
            .map_err(|_| AuthError::Internal("HKDF expand failed"))?;
        Ok(Self {
            access: secret.expose().as_bytes().to_vec(),
            refresh,
        })
    }

    /// Separate secrets (`JWT_ACCESS_SECRET` + `JWT_REFRESH_SECRET`).
    pub fn from_pair(access: &Secret, refresh: &Secret) -> Self {
        Self {
            access: access.expose().as_bytes().to_vec(),
            refresh: refresh.expose().as_bytes().to_vec(),
        }
    }
}
