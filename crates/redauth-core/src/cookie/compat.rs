//! The cookie of `@ethercorps/sveltekit-redis-session` 1.x (see
//! `shared/compat/sveltekit-redis-session.md` and `docs/sessions.md`).
//!
//! Signed (the library's default): `<id>.<base64(HMAC-SHA256(key = secret, msg = id))>`,
//! standard alphabet with `=` padding, the secret used directly as the key; on the wire
//! SvelteKit percent-encodes it (`+` `/` `=` become `%2B` `%2F` `%3D`). Unsigned: the id.
//!
//! The library's own verifier is lax: it ignores segments after the second, accepts a
//! signature without padding or with non-zero trailing bits, and accepts any id. redauth
//! accepts every value the library *produces* and nothing else: exactly two segments, an
//! id of 16 to 128 ASCII letters and digits (the library makes 36), a canonical padded
//! 32-byte signature, compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{CookieError, percent_decode, percent_encode};
use crate::ids::random_bytes;
use crate::secret::Secret;

/// Length of the ids the library (and redauth in compat mode) generates.
pub const COMPAT_ID_CHARS: usize = 36;
const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890";
const SIGNATURE_CHARS: usize = 44; // 32 bytes, padded standard base64

/// Encodes, and strictly decodes, cookie values in the SvelteKit library's format, signed
/// or not.
#[derive(Clone)]
pub struct CompatCodec {
    secret: Secret,
    signed: bool,
}

impl std::fmt::Debug for CompatCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompatCodec")
            .field("signed", &self.signed)
            .finish_non_exhaustive()
    }
}

/// A new id in the library's shape: 36 characters of `[A-Za-z0-9]`, drawn uniformly
/// (rejection sampling over OS random bytes), so about 214 bits.
pub fn compat_random_id() -> Result<String, CookieError> {
    let mut id = String::with_capacity(COMPAT_ID_CHARS);
    while id.len() < COMPAT_ID_CHARS {
        for b in random_bytes::<64>().map_err(|_| CookieError::Rng)? {
            // 248 = 4 × 62: keeping only bytes below it makes every character equally likely.
            if b < 248
                && id.len() < COMPAT_ID_CHARS
                && let Some(&c) = ALPHABET.get(usize::from(b % 62))
            {
                id.push(char::from(c));
            }
        }
    }
    Ok(id)
}

/// Is `id` one redauth will look up in compat mode? Letters and digits only, so it can
/// never reach another key through the `:` that joins prefix and id.
pub fn is_compat_id(id: &str) -> bool {
    (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl CompatCodec {
    /// `secret` is the library's `secret` option, used as the HMAC key as is (that is
    /// the format); the server insists on 32 bytes or more, the crate leaves it to you.
    pub fn new(secret: Secret, signed: bool) -> Self {
        Self { secret, signed }
    }

    /// Whether values carry the HMAC (the library's `signed` option). Unsigned, the bare
    /// id is the credential.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// Longest wire value [`Self::encode`] produces for a library-shaped id.
    pub fn max_value_len(&self) -> usize {
        if self.signed {
            // Each of the up to 3 characters `+ / =` of the signature may become `%XX`.
            COMPAT_ID_CHARS + 1 + SIGNATURE_CHARS * 3
        } else {
            COMPAT_ID_CHARS
        }
    }

    /// The unencoded value the library stores in the cookie jar (`signSessionKey`).
    pub fn sign(&self, id: &str) -> String {
        format!("{id}.{}", STANDARD.encode(self.mac(id)))
    }

    /// The value as SvelteKit puts it on the wire: [`Self::sign`] (or the id, unsigned)
    /// through `encodeURIComponent`.
    pub fn encode(&self, id: &str) -> Result<String, CookieError> {
        if !is_compat_id(id) {
            return Err(CookieError::Invalid);
        }
        Ok(if self.signed {
            percent_encode(&self.sign(id))
        } else {
            id.to_owned()
        })
    }

    /// The id in a cookie value as received (percent-encoded or not).
    pub fn decode(&self, wire_value: &str) -> Result<String, CookieError> {
        let value = percent_decode(wire_value)?;
        if !self.signed {
            return is_compat_id(&value)
                .then_some(value)
                .ok_or(CookieError::Invalid);
        }
        let (id, signature) = value.split_once('.').ok_or(CookieError::Invalid)?;
        if !is_compat_id(id) || signature.len() != SIGNATURE_CHARS {
            return Err(CookieError::Invalid);
        }
        let given = STANDARD
            .decode(signature)
            .map_err(|_| CookieError::Invalid)?;
        // Re-encoding must give the same text: rejects non-zero trailing bits and any
        // other spelling of the same bytes. `.` in the signature fails the decode above,
        // so extra segments are rejected too.
        if STANDARD.encode(&given) != signature
            || !bool::from(given.as_slice().ct_eq(&self.mac(id)))
        {
            return Err(CookieError::Invalid);
        }
        Ok(id.to_owned())
    }

    fn mac(&self, id: &str) -> [u8; 32] {
        // Any key length is valid for HMAC; the fallback can never verify a cookie.
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose().as_bytes())
        else {
            return [0; 32];
        };
        m.update(id.as_bytes());
        m.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SECRET: &str = "your-secret-key";
    const VECTOR_ID: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
    const VECTOR_VALUE: &str =
        "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789.M16IAoNimnVj7EsZGSns+whdpNp8Sma+p9bl4kj2IOg=";
    const VECTOR_WIRE: &str =
        "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789.M16IAoNimnVj7EsZGSns%2BwhdpNp8Sma%2Bp9bl4kj2IOg%3D";

    fn vector_codec() -> CompatCodec {
        CompatCodec::new(Secret::new(VECTOR_SECRET), true)
    }

    /// The shared test vector of `shared/compat/sveltekit-redis-session.md`.
    #[test]
    fn shared_test_vector() {
        let c = vector_codec();
        assert_eq!(c.sign(VECTOR_ID), VECTOR_VALUE);
        assert_eq!(VECTOR_VALUE.len(), 81);
        assert_eq!(c.encode(VECTOR_ID).unwrap(), VECTOR_WIRE);
        assert_eq!(c.decode(VECTOR_WIRE).unwrap(), VECTOR_ID);
        assert_eq!(c.decode(VECTOR_VALUE).unwrap(), VECTOR_ID, "unencoded too");
        let cookie = crate::cookie::CookieAttributes::default()
            .set_cookie(&c.encode(VECTOR_ID).unwrap(), Some(86400))
            .unwrap();
        assert_eq!(
            cookie,
            format!(
                "session={VECTOR_WIRE}; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Strict"
            )
        );
    }

    #[test]
    fn lax_variants_the_library_would_accept_are_rejected() {
        let c = vector_codec();
        let sig = VECTOR_VALUE.split_once('.').unwrap().1;
        // The signature ends in "g=": 'g' carries 2 unused bits; 'h' keeps the bytes.
        let trailing_bits = VECTOR_VALUE.replace("IOg=", "IOh=");
        let bad = [
            format!("{VECTOR_VALUE}.extra"),
            VECTOR_VALUE.trim_end_matches('=').to_owned(),
            trailing_bits,
            VECTOR_VALUE.replace('+', "-"),
            format!("{VECTOR_ID}x.{sig}"),
            format!("{}.{sig}", &VECTOR_ID[..35]),
            format!("ab:cd{}.{sig}", &VECTOR_ID[5..]),
            VECTOR_ID.to_owned(),
            format!("{VECTOR_ID}."),
            String::new(),
            "%zz".into(),
            VECTOR_WIRE.replace("%2B", "%2"),
        ];
        for b in bad {
            assert_eq!(c.decode(&b), Err(CookieError::Invalid), "{b}");
        }
        let other = CompatCodec::new(Secret::new("another-secret"), true);
        assert_eq!(other.decode(VECTOR_WIRE), Err(CookieError::Invalid));
    }

    #[test]
    fn unsigned_cookies_are_the_bare_id() {
        let c = CompatCodec::new(Secret::new(VECTOR_SECRET), false);
        assert_eq!(c.encode(VECTOR_ID).unwrap(), VECTOR_ID);
        assert_eq!(c.decode(VECTOR_ID).unwrap(), VECTOR_ID);
        assert!(
            c.decode(VECTOR_VALUE).is_err(),
            "a signed value is not an id"
        );
        assert!(c.decode("../../etc").is_err());
    }

    #[test]
    fn generated_ids_have_the_library_shape() {
        let a = compat_random_id().unwrap();
        let b = compat_random_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), COMPAT_ID_CHARS);
        assert!(is_compat_id(&a));
        let c = vector_codec();
        assert!(c.encode(&a).unwrap().len() <= c.max_value_len());
        assert_eq!(c.decode(&c.encode(&a).unwrap()).unwrap(), a);
    }
}
