//! redauth's own session-cookie format.
//!
//! | mode | cookie value |
//! |---|---|
//! | signed (default) | `v1.<id>.<base64url(HMAC-SHA256(sign key, "redauth-cookie-session\0" ‖ id))>` |
//! | encrypted | `v1e.<base64url(nonce ‖ AES-256-GCM(enc key, nonce, id, aad = "redauth-cookie-session v1"))>` |
//! | plain | `<id>` |
//!
//! The id is [`random_id`](crate::ids::random_id): 128 bits from the OS RNG, 22
//! base64url characters. Both keys come from the secret through HKDF-SHA256 with distinct
//! labels, so the secret is never used directly and the signing key never doubles as the
//! encryption key. Parsing is strict: exact segment count, known version, canonical
//! unpadded base64url (no trailing bits), and the MAC compared in constant time.
//! Encryption also hides the id, so the ids that appear in logs and session listings
//! cannot be matched to cookies.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::CookieError;
use crate::ids::{is_valid_id, random_bytes};
use crate::secret::Secret;

const SIGNED_PREFIX: &str = "v1";
const SEALED_PREFIX: &str = "v1e";
const MAC_LABEL: &[u8] = b"redauth-cookie-session\0";
const AAD: &[u8] = b"redauth-cookie-session v1";
const MAC_CHARS: usize = 43; // 32 bytes, unpadded base64url
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const ID_CHARS: usize = 22;

/// How a native cookie carries the session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeMode {
    /// The bare id. Still unguessable (128 bits), but any string of the right shape
    /// reaches the store; only for clients that cannot keep a longer cookie.
    Plain,
    /// `v1.<id>.<mac>`: the id readable, a forged value refused before the store is
    /// asked. The default.
    Signed,
    /// `v1e.<sealed>`: the id hidden and authenticated (AES-256-GCM), so ids seen in logs
    /// or session listings cannot be turned into cookies.
    Encrypted,
}

/// The two keys, derived once from the secret.
#[derive(Clone)]
pub struct NativeCodec {
    mode: NativeMode,
    sign_key: [u8; 32],
    enc_key: [u8; 32],
}

impl std::fmt::Debug for NativeCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeCodec")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl NativeCodec {
    /// Derives the signing and encryption keys from `secret` (at least
    /// [`crate::token::MIN_SECRET_BYTES`] bytes: HKDF cannot add entropy a short secret
    /// lacks).
    pub fn new(secret: &Secret, mode: NativeMode) -> Result<Self, CookieError> {
        if secret.expose().len() < crate::token::MIN_SECRET_BYTES {
            return Err(CookieError::Settings(
                "the session secret must be at least 32 bytes",
            ));
        }
        let hk = Hkdf::<Sha256>::new(
            Some(b"redauth cookie-session v1"),
            secret.expose().as_bytes(),
        );
        let mut sign_key = [0u8; 32];
        let mut enc_key = [0u8; 32];
        hk.expand(b"signing key", &mut sign_key)
            .and_then(|()| hk.expand(b"encryption key", &mut enc_key))
            .map_err(|_| CookieError::Settings("HKDF expand failed"))?;
        Ok(Self {
            mode,
            sign_key,
            enc_key,
        })
    }

    /// The mode values are encoded in. Decoding accepts only this mode's values, so
    /// changing it ends every session whose cookie was issued in another.
    pub fn mode(&self) -> NativeMode {
        self.mode
    }

    /// The longest value [`Self::encode`] produces, for checking the cookie size limit
    /// when settings are made rather than at the first login.
    pub fn max_value_len(&self) -> usize {
        match self.mode {
            NativeMode::Plain => ID_CHARS,
            NativeMode::Signed => SIGNED_PREFIX.len() + 1 + ID_CHARS + 1 + MAC_CHARS,
            NativeMode::Encrypted => {
                SEALED_PREFIX.len() + 1 + (NONCE_BYTES + ID_CHARS + TAG_BYTES).div_ceil(3) * 4
            }
        }
    }

    /// The cookie value for session `id` (safe for the wire as is: base64url and `.`).
    pub fn encode(&self, id: &str) -> Result<String, CookieError> {
        if !is_valid_id(id) {
            return Err(CookieError::Invalid);
        }
        match self.mode {
            NativeMode::Plain => Ok(id.to_owned()),
            NativeMode::Signed => Ok(format!(
                "{SIGNED_PREFIX}.{id}.{}",
                URL_SAFE_NO_PAD.encode(self.mac(id))
            )),
            NativeMode::Encrypted => {
                let nonce = random_bytes::<NONCE_BYTES>().map_err(|_| CookieError::Rng)?;
                let sealed = self
                    .cipher()?
                    .encrypt(
                        &nonce.into(),
                        Payload {
                            msg: id.as_bytes(),
                            aad: AAD,
                        },
                    )
                    .map_err(|_| CookieError::Invalid)?;
                let mut raw = nonce.to_vec();
                raw.extend_from_slice(&sealed);
                Ok(format!("{SEALED_PREFIX}.{}", URL_SAFE_NO_PAD.encode(raw)))
            }
        }
    }

    /// The session id in `value`, if this codec issued it. Every failure is the same
    /// [`CookieError::Invalid`].
    pub fn decode(&self, value: &str) -> Result<String, CookieError> {
        match self.mode {
            NativeMode::Plain => is_valid_id(value)
                .then(|| value.to_owned())
                .ok_or(CookieError::Invalid),
            NativeMode::Signed => {
                let mut parts = value.split('.');
                let (Some(SIGNED_PREFIX), Some(id), Some(mac), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(CookieError::Invalid);
                };
                let given = canonical_b64url(mac, 32)?;
                if !is_valid_id(id) || !bool::from(given.as_slice().ct_eq(&self.mac(id))) {
                    return Err(CookieError::Invalid);
                }
                Ok(id.to_owned())
            }
            NativeMode::Encrypted => {
                let (Some(SEALED_PREFIX), Some(body)) = value
                    .split_once('.')
                    .map_or((None, None), |(a, b)| (Some(a), Some(b)))
                else {
                    return Err(CookieError::Invalid);
                };
                let raw = canonical_b64url(body, NONCE_BYTES + ID_CHARS + TAG_BYTES)?;
                let (nonce, sealed) = raw.split_at(NONCE_BYTES);
                let nonce: [u8; NONCE_BYTES] =
                    nonce.try_into().map_err(|_| CookieError::Invalid)?;
                let id = self
                    .cipher()?
                    .decrypt(
                        &nonce.into(),
                        Payload {
                            msg: sealed,
                            aad: AAD,
                        },
                    )
                    .map_err(|_| CookieError::Invalid)?;
                let id = String::from_utf8(id).map_err(|_| CookieError::Invalid)?;
                is_valid_id(&id).then_some(id).ok_or(CookieError::Invalid)
            }
        }
    }

    fn mac(&self, id: &str) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps the
        // function total without an unwrap and could never verify a real cookie.
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.sign_key) else {
            return [0; 32];
        };
        m.update(MAC_LABEL);
        m.update(id.as_bytes());
        m.finalize().into_bytes().into()
    }

    fn cipher(&self) -> Result<Aes256Gcm, CookieError> {
        Aes256Gcm::new_from_slice(&self.enc_key).map_err(|_| CookieError::Settings("AES key"))
    }
}

/// Decodes unpadded base64url of exactly `len` bytes and insists that re-encoding gives
/// the same text, which rules out padding, other alphabets and non-zero trailing bits.
fn canonical_b64url(s: &str, len: usize) -> Result<Vec<u8>, CookieError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| CookieError::Invalid)?;
    if bytes.len() != len || URL_SAFE_NO_PAD.encode(&bytes) != s {
        return Err(CookieError::Invalid);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::random_id;

    fn secret(s: &str) -> Secret {
        Secret::new(format!("{s}-0123456789abcdef0123456789abcdef"))
    }

    fn codec(mode: NativeMode) -> NativeCodec {
        NativeCodec::new(&secret("a"), mode).unwrap()
    }

    #[test]
    fn round_trips_in_every_mode_within_the_announced_length() {
        for mode in [NativeMode::Plain, NativeMode::Signed, NativeMode::Encrypted] {
            let c = codec(mode);
            let id = random_id().unwrap();
            let v = c.encode(&id).unwrap();
            assert_eq!(c.decode(&v).unwrap(), id, "{mode:?}");
            assert!(v.len() <= c.max_value_len(), "{mode:?} {}", v.len());
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "wire-safe without encoding: {v}"
            );
        }
    }

    #[test]
    fn encryption_hides_the_id_and_uses_a_fresh_nonce() {
        let c = codec(NativeMode::Encrypted);
        let id = random_id().unwrap();
        let (a, b) = (c.encode(&id).unwrap(), c.encode(&id).unwrap());
        assert_ne!(a, b);
        assert!(!a.contains(&id));
        assert_eq!(c.decode(&b).unwrap(), id);
    }

    #[test]
    fn another_secret_or_mode_does_not_verify() {
        let id = random_id().unwrap();
        for mode in [NativeMode::Signed, NativeMode::Encrypted] {
            let v = codec(mode).encode(&id).unwrap();
            let other = NativeCodec::new(&secret("b"), mode).unwrap();
            assert_eq!(other.decode(&v), Err(CookieError::Invalid), "{mode:?}");
        }
        let signed = codec(NativeMode::Signed).encode(&id).unwrap();
        assert!(codec(NativeMode::Encrypted).decode(&signed).is_err());
        assert!(codec(NativeMode::Plain).decode(&signed).is_err());
        let sealed = codec(NativeMode::Encrypted).encode(&id).unwrap();
        assert!(codec(NativeMode::Signed).decode(&sealed).is_err());
    }

    #[test]
    fn signing_and_encryption_keys_differ_and_are_not_the_secret() {
        let c = codec(NativeMode::Signed);
        assert_ne!(c.sign_key, c.enc_key);
        assert_ne!(&c.sign_key[..], &secret("a").expose().as_bytes()[..32]);
    }

    #[test]
    fn malformed_signed_values_are_rejected() {
        let c = codec(NativeMode::Signed);
        let id = random_id().unwrap();
        let v = c.encode(&id).unwrap();
        let mac = v.rsplit('.').next().unwrap().to_owned();
        // The MAC's last character carries 2 unused bits; flipping them keeps the bytes
        // a lenient decoder would accept.
        let last = mac.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.find(last).unwrap();
        let sibling = alphabet.chars().nth(pos ^ 1).unwrap();
        let non_canonical = format!("v1.{id}.{}{sibling}", &mac[..42]);
        let mut flipped = v.clone().into_bytes();
        let i = flipped.len() - 5;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let bad = [
            String::new(),
            id.clone(),
            format!("{v}.extra"),
            format!("extra.{v}"),
            v.replacen("v1.", "v2.", 1),
            format!("{v}="),
            v.replace('-', "+").replace('_', "/") + "x",
            format!("v1.{}.{mac}", random_id().unwrap()),
            non_canonical,
            String::from_utf8(flipped).unwrap(),
            format!("v1.{id}"),
            format!("v1.../{mac}"),
        ];
        for b in bad {
            assert_eq!(c.decode(&b), Err(CookieError::Invalid), "{b}");
        }
    }

    #[test]
    fn malformed_sealed_and_plain_values_are_rejected() {
        let c = codec(NativeMode::Encrypted);
        let v = c.encode(&random_id().unwrap()).unwrap();
        let body = v.strip_prefix("v1e.").unwrap();
        let bad = [
            format!("v1.{body}"),
            format!("{v}.x"),
            format!("{v}A"),
            v[..v.len() - 1].to_owned(),
            format!("v1e.{}", "A".repeat(body.len())),
        ];
        for b in bad {
            assert_eq!(c.decode(&b), Err(CookieError::Invalid), "{b}");
        }
        let plain = codec(NativeMode::Plain);
        for b in ["short", "aaaaaaaaaaaaaaaaaaaa.a", "aaaaaaaaaaaaaaaaaaaaa:"] {
            assert_eq!(plain.decode(b), Err(CookieError::Invalid), "{b}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(NativeCodec::new(&Secret::new("too short"), NativeMode::Signed).is_err());
    }

    #[test]
    fn only_redauth_ids_are_encoded() {
        assert!(codec(NativeMode::Signed).encode("not an id").is_err());
    }
}
