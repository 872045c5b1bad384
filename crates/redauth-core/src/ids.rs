//! Random identifiers from the operating system's CSPRNG.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AuthError;

/// `N` bytes from the OS RNG. Failing to read the OS RNG is not recoverable in a way that
/// keeps tokens unguessable, so it surfaces as an internal error rather than a weak id.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|_| AuthError::Internal("OS random number generator failed"))?;
    Ok(buf)
}

/// 128 random bits as 22 base64url characters: the alphabet `[A-Za-z0-9_-]` never
/// contains the `.` and `:` separators used in tokens and Redis keys.
pub fn random_id() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

/// Is `s` shaped like an id produced by [`random_id`]? Checked before an id taken from a
/// token or a URL is used to build a storage key.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_well_formed() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_ne!(a, b);
        assert!(is_valid_id(&a), "{a}");
        assert!(!is_valid_id("short"));
        assert!(!is_valid_id("aaaaaaaaaaaaaaaaaaaa.a"));
    }
}
