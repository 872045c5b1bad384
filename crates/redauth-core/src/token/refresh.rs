//! Refresh tokens: `rt1.<user id>.<session id>.<256 random bits, base64url>`.
//!
//! Self-locating: the token names the user and session, so the store goes straight to
//! the session's keys without a global token index. Only an HMAC of the token is ever
//! stored. A token's successor is derived from it (`HMAC(key, "next" || token)`), so a
//! client that presents the same token twice within the grace window gets the same
//! successor back without any plaintext token being kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::AuthError;
use crate::ids::{is_valid_id, random_bytes};
use crate::model::{SessionId, UserId};
use crate::token::TokenKeys;

const PREFIX: &str = "rt1";
const SECRET_CHARS: usize = 43; // 32 bytes in unpadded base64url

/// The stored form of a refresh token: base64url HMAC-SHA256. Comparing two of these
/// in the store leaks nothing useful through timing, because learning a prefix of an
/// HMAC output does not help to forge a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

/// An opaque refresh token, `rt1.<user id>.<session id>.<secret>`. `Debug` shows the ids
/// only: the whole token is a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The user the token names: a claim until the store finds the token's hash in the
    /// session, not a proof.
    pub user_id: UserId,
    /// The login session the token names: the only one the store looks the hash up in.
    pub session_id: SessionId,
    encoded: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A new token for this session with 256 random bits from the OS RNG (`Internal` if
    /// it fails).
    pub fn generate(user_id: &str, session_id: &str) -> Result<Self, AuthError> {
        Ok(Self::with_secret(
            user_id,
            session_id,
            &random_bytes::<32>()?,
        ))
    }

    fn with_secret(user_id: &str, session_id: &str, secret: &[u8]) -> Self {
        Self {
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            encoded: format!(
                "{PREFIX}.{user_id}.{session_id}.{}",
                URL_SAFE_NO_PAD.encode(secret)
            ),
        }
    }

    /// Strict parse: exactly four segments, known version, well-formed ids and a
    /// canonical 32-byte base64url secret. Anything else is `InvalidRefreshToken`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let mut parts = s.split('.');
        let (Some(PREFIX), Some(uid), Some(sid), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthError::InvalidRefreshToken);
        };
        let canonical = secret.len() == SECRET_CHARS
            && URL_SAFE_NO_PAD
                .decode(secret)
                .is_ok_and(|b| b.len() == 32 && URL_SAFE_NO_PAD.encode(&b) == secret);
        if !is_valid_id(uid) || !is_valid_id(sid) || !canonical {
            return Err(AuthError::InvalidRefreshToken);
        }
        Ok(Self {
            user_id: uid.to_owned(),
            session_id: sid.to_owned(),
            encoded: s.to_owned(),
        })
    }

    /// The token as the client receives it. A credential: never log it.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// The HMAC stored and compared in its place, never the token itself ([`TokenHash`]).
    pub fn hash(&self, keys: &TokenKeys) -> TokenHash {
        TokenHash(URL_SAFE_NO_PAD.encode(mac(keys, b"hash", &self.encoded)))
    }

    /// The token that replaces this one on rotation. Deterministic, see module docs.
    pub fn successor(&self, keys: &TokenKeys) -> Self {
        Self::with_secret(
            &self.user_id,
            &self.session_id,
            &mac(keys, b"next", &self.encoded),
        )
    }
}

/// Who presented a refresh token, as far as the server can tell: the client's network
/// ([`crate::network::client_network`]: an IPv4 address, or the IPv6 prefix one device
/// rotates its addresses within) and its user agent, as an HMAC so the stored value says
/// nothing by itself. A rotation records it; the previous token comes back with its
/// successor only from the same binding (see [`crate::store::RotateOutcome::Replayed`]).
///
/// This is not a device key: a thief on the same network prefix who copies the user
/// agent is indistinguishable from the user's second tab (docs/security.md).
pub fn client_binding(keys: &TokenKeys, network: Option<&str>, user_agent: Option<&str>) -> String {
    let subject = format!("{}\n{}", network.unwrap_or(""), user_agent.unwrap_or(""));
    URL_SAFE_NO_PAD.encode(mac(keys, b"bind", &subject))
}

fn mac(keys: &TokenKeys, label: &[u8], token: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the
    // function total without an unwrap.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&keys.refresh) else {
        return [0; 32];
    };
    m.update(label);
    m.update(b"\0");
    m.update(token.as_bytes());
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::random_id;

    fn keys(k: u8) -> TokenKeys {
        TokenKeys {
            access: vec![0; 32],
            refresh: vec![k; 32],
        }
    }

    #[test]
    fn generate_parse_round_trip() {
        let (u, s) = (random_id().unwrap(), random_id().unwrap());
        let t = RefreshToken::generate(&u, &s).unwrap();
        let parsed = RefreshToken::parse(t.as_str()).unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.user_id, u);
        assert_eq!(parsed.session_id, s);
        assert_ne!(RefreshToken::generate(&u, &s).unwrap().as_str(), t.as_str());
    }

    #[test]
    fn successor_is_deterministic_and_key_dependent() {
        let t = RefreshToken::generate(&random_id().unwrap(), &random_id().unwrap()).unwrap();
        assert_eq!(t.successor(&keys(1)), t.successor(&keys(1)));
        assert_ne!(t.successor(&keys(1)), t.successor(&keys(2)));
        assert_ne!(t.successor(&keys(1)), t);
        assert_ne!(t.hash(&keys(1)), t.successor(&keys(1)).hash(&keys(1)));
        assert_ne!(t.hash(&keys(1)), t.hash(&keys(2)));
    }

    #[test]
    fn client_binding_separates_networks_agents_and_keys() {
        let k = keys(1);
        let b = |net: &str, ua: &str| client_binding(&k, Some(net), Some(ua));
        assert_eq!(b("192.0.2.1", "ua"), b("192.0.2.1", "ua"));
        assert_ne!(b("192.0.2.1", "ua"), b("192.0.2.2", "ua"));
        assert_ne!(b("192.0.2.1", "ua"), b("192.0.2.1", "other"));
        assert_ne!(
            client_binding(&k, Some("192.0.2.1"), None),
            client_binding(&keys(2), Some("192.0.2.1"), None)
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let t = RefreshToken::generate(&random_id().unwrap(), &random_id().unwrap()).unwrap();
        let s = t.as_str();
        let bad = [
            String::new(),
            format!("{s}.extra"),
            s.replacen("rt1", "rt2", 1),
            s[..s.len() - 1].to_owned(),
            format!("{s}="),
            s.replace('.', ":"),
            format!("rt1.{}.{}.{}", "x", t.session_id, &s[s.len() - 43..]),
        ];
        for b in bad {
            assert!(RefreshToken::parse(&b).is_err(), "{b}");
        }
        // 43 base64url chars carry 258 bits; the last char's low 2 bits must be zero.
        let secret = format!("{}B", "A".repeat(42));
        let forged = format!("rt1.{}.{}.{secret}", t.user_id, t.session_id);
        assert!(RefreshToken::parse(&forged).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = RefreshToken::generate(&random_id().unwrap(), &random_id().unwrap()).unwrap();
        assert!(!format!("{t:?}").contains(&t.as_str()[60..]));
    }
}
