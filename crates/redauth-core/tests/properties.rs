//! Round-trip properties of the token and cookie codecs, over generated inputs
//! (proptest): sign→verify for access tokens, generate→parse and successor determinism
//! for refresh tokens, encode→decode and encrypt→decrypt for native cookies, and
//! sign→verify for compat cookies. The hostile-input side of the same codecs is fuzzed
//! by the targets in `fuzz/` (see `docs/fuzzing.md`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use redauth_core::cookie::compat::{CompatCodec, is_compat_id};
use redauth_core::cookie::native::{NativeCodec, NativeMode};
use redauth_core::cookie::{CookieError, percent_decode, percent_encode};
use redauth_core::ids::is_valid_id;
use redauth_core::model::Access;
use redauth_core::token::TokenKeys;
use redauth_core::token::access::{AccessTokenCodec, AccessTokenConfig};
use redauth_core::token::refresh::RefreshToken;
use redauth_core::{AuthError, Principal, Secret};

const CASES: u32 = 96;

/// A redauth id: 22 base64url characters.
fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{22}"
}

/// Times far from "now" in both directions, but clear of the `i64` edges (the issuer
/// adds the TTL to "now" without saturating; a real clock is nowhere near `i64::MAX`).
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![0i64..=4_102_444_800, -(1i64 << 62)..=(1i64 << 62),]
}

/// Secrets of at least 32 bytes (what the server insists on).
fn secret() -> impl Strategy<Value = String> {
    "\\PC{32,64}"
}

fn principal() -> impl Strategy<Value = Principal> {
    (
        id(),
        id(),
        "\\PC{0,32}",
        prop::collection::vec("\\PC{0,24}", 0..6),
    )
        .prop_map(|(user_id, session_id, username, roles)| Principal {
            user_id: user_id.into(),
            username: username.into(),
            session_id: session_id.into(),
            // Set relative to "now" by the test.
            session_expires_at: 0,
            access: Access {
                roles,
                permissions: Default::default(),
            }
            .into(),
        })
}

/// A native codec for every mode over the same secret.
fn native_codecs(secret: &str) -> [NativeCodec; 3] {
    let s = Secret::new(secret);
    [NativeMode::Plain, NativeMode::Signed, NativeMode::Encrypted]
        .map(|mode| NativeCodec::new(&s, mode).unwrap())
}

/// `value` with the character at `at` (mod length) replaced by another one from the
/// value's own wire alphabet.
fn replace_one_char(value: &str, at: usize, pick: u8) -> String {
    const WIRE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut bytes = value.as_bytes().to_vec();
    let i = at % bytes.len();
    let mut c = WIRE[usize::from(pick) % WIRE.len()];
    if c == bytes[i] {
        c = if c == b'A' { b'B' } else { b'A' };
    }
    bytes[i] = c;
    String::from_utf8(bytes).unwrap()
}

proptest! {
    // Failures print the minimal input; an integration test has no source root for
    // proptest's regression files.
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// sign→verify: what `issue` signs, `verify` returns unchanged, from `iat - leeway`
    /// up to `exp + leeway` (exclusive); before that it is refused, after it is expired;
    /// another key never verifies it.
    #[test]
    fn access_token_sign_verify_round_trip(
        mut p in principal(),
        now in time(),
        session_left in prop_oneof![3 => -2_000i64..=200_000, 1 => any::<i32>().prop_map(i64::from)],
        secret in secret(),
        other_secret in secret(),
        issuer in "\\PC{1,24}",
        audience in "\\PC{1,24}",
        ttl in 1i64..=86_400,
        leeway in 0i64..=300,
        probe in any::<u16>(),
    ) {
        // Mostly sessions that are still live at `now`, sometimes long gone.
        p.session_expires_at = now + session_left;
        let config = AccessTokenConfig { issuer, audience, ttl_secs: ttl, leeway_secs: leeway };
        let keys = TokenKeys::from_single_secret(&Secret::new(secret.clone())).unwrap();
        let codec = AccessTokenCodec::new(&keys, config.clone());
        let (token, claims) = codec.issue(&p, now).unwrap();

        prop_assert_eq!(&claims.sub, &p.user_id);
        prop_assert_eq!(&claims.sid, &p.session_id);
        prop_assert_eq!(claims.roles.as_slice(), p.roles());
        prop_assert_eq!(&claims.iss, &config.issuer);
        prop_assert_eq!(&claims.aud, &config.audience);
        prop_assert_eq!((claims.iat, claims.nbf), (now, now));
        prop_assert_eq!(claims.exp, (now + ttl).min(p.session_expires_at));
        prop_assert!(is_valid_id(&claims.jti));

        let expired_at = claims.exp + leeway;
        let at_issue = codec.verify(&token, now);
        if now < expired_at {
            prop_assert_eq!(at_issue.unwrap(), claims.clone());
            // Any moment inside the window verifies to the same claims.
            let t = now - leeway + i64::from(probe) % (expired_at - (now - leeway));
            prop_assert_eq!(codec.verify(&token, t).unwrap(), claims.clone());
        } else {
            prop_assert!(matches!(at_issue, Err(AuthError::TokenExpired)));
        }
        prop_assert!(matches!(codec.verify(&token, expired_at), Err(AuthError::TokenExpired)));
        prop_assert!(matches!(
            codec.verify(&token, expired_at.max(now) + i64::from(probe)),
            Err(AuthError::TokenExpired)
        ));
        if now - leeway - 1 < expired_at {
            prop_assert!(matches!(
                codec.verify(&token, now - leeway - 1 - i64::from(probe)),
                Err(AuthError::InvalidToken)
            ));
        }

        if other_secret != secret {
            let other = AccessTokenCodec::new(
                &TokenKeys::from_single_secret(&Secret::new(other_secret)).unwrap(),
                config,
            );
            prop_assert!(matches!(other.verify(&token, now), Err(AuthError::InvalidToken)));
        }
    }

    /// generate→parse is the identity; the successor is a pure function of the token
    /// and the key, parses, keeps user and session, and hashes differently.
    #[test]
    fn refresh_token_generate_parse_and_successor(
        user_id in id(),
        session_id in id(),
        refresh_secret in "\\PC{1,64}",
        other_secret in "\\PC{1,64}",
    ) {
        let keys = TokenKeys::from_pair(&Secret::new("a".repeat(32)), &Secret::new(refresh_secret.clone()));
        let t = RefreshToken::generate(&user_id, &session_id).unwrap();
        let parsed = RefreshToken::parse(t.as_str()).unwrap();
        prop_assert_eq!(&parsed, &t);
        prop_assert_eq!(&parsed.user_id, &user_id);
        prop_assert_eq!(&parsed.session_id, &session_id);
        prop_assert_eq!(parsed.hash(&keys), t.hash(&keys));

        let next = t.successor(&keys);
        prop_assert_eq!(&next, &t.successor(&keys));
        prop_assert_eq!(&next, &parsed.successor(&keys));
        prop_assert_eq!(&RefreshToken::parse(next.as_str()).unwrap(), &next);
        prop_assert_eq!(&next.user_id, &user_id);
        prop_assert_eq!(&next.session_id, &session_id);
        prop_assert_ne!(next.as_str(), t.as_str());
        prop_assert_ne!(t.hash(&keys), next.hash(&keys));
        // The chain goes on deterministically.
        prop_assert_eq!(next.successor(&keys), t.successor(&keys).successor(&keys));

        if other_secret != refresh_secret {
            let other = TokenKeys::from_pair(&Secret::new("a".repeat(32)), &Secret::new(other_secret));
            prop_assert_ne!(&t.successor(&other), &next);
            prop_assert_ne!(t.hash(&other), t.hash(&keys));
        }
    }

    /// encode→decode (plain, signed) and encrypt→decrypt (encrypted) give the id back;
    /// a value decodes under its own mode only; one changed character breaks it.
    #[test]
    fn native_cookie_round_trips(
        id in id(),
        secret in secret(),
        other_secret in secret(),
        at in any::<usize>(),
        pick in any::<u8>(),
    ) {
        let codecs = native_codecs(&secret);
        for (i, codec) in codecs.iter().enumerate() {
            let value = codec.encode(&id).unwrap();
            prop_assert_eq!(codec.decode(&value).unwrap(), id.clone());
            prop_assert!(value.len() <= codec.max_value_len());
            for (j, other) in codecs.iter().enumerate() {
                if i != j {
                    prop_assert_eq!(other.decode(&value), Err(CookieError::Invalid));
                }
            }
            if codec.mode() != NativeMode::Plain {
                let changed = replace_one_char(&value, at, pick);
                prop_assert_eq!(codec.decode(&changed), Err(CookieError::Invalid), "{}", changed);
            }
        }

        let encrypted = &codecs[2];
        let (a, b) = (encrypted.encode(&id).unwrap(), encrypted.encode(&id).unwrap());
        prop_assert_ne!(&a, &b, "a fresh nonce each time");
        prop_assert!(!a.contains(&id), "the id is hidden");
        prop_assert_eq!(encrypted.decode(&b).unwrap(), id.clone());

        if other_secret != secret {
            let others = native_codecs(&other_secret);
            for (codec, other) in codecs.iter().zip(&others).skip(1) {
                let value = codec.encode(&id).unwrap();
                prop_assert_eq!(other.decode(&value), Err(CookieError::Invalid));
            }
        }
    }

    /// encode only takes well-formed ids, in every mode.
    #[test]
    fn native_cookie_refuses_other_ids(s in "\\PC{0,40}") {
        prop_assume!(!is_valid_id(&s));
        for codec in native_codecs(&"k".repeat(32)) {
            prop_assert_eq!(codec.encode(&s), Err(CookieError::Invalid));
        }
    }

    /// sign→verify for the SvelteKit library's format, on the wire (percent-encoded)
    /// and unencoded; another secret does not verify; unsigned cookies are the id.
    #[test]
    fn compat_cookie_sign_verify_round_trip(
        id in "[A-Za-z0-9]{16,128}",
        secret in "\\PC{0,64}",
        other_secret in "\\PC{0,64}",
    ) {
        prop_assert!(is_compat_id(&id));
        let codec = CompatCodec::new(Secret::new(secret.clone()), true);
        let signed = codec.sign(&id);
        let (head, signature) = signed.split_once('.').unwrap();
        prop_assert_eq!(head, id.as_str());
        prop_assert_eq!(signature.len(), 44);
        let wire = codec.encode(&id).unwrap();
        prop_assert_eq!(percent_decode(&wire).unwrap(), signed.clone());
        // max_value_len is for the library's 36-character ids.
        prop_assert!(wire.len() <= codec.max_value_len() - 36 + id.len());
        prop_assert_eq!(codec.decode(&wire).unwrap(), id.clone());
        prop_assert_eq!(codec.decode(&signed).unwrap(), id.clone());

        if other_secret != secret {
            let other = CompatCodec::new(Secret::new(other_secret), true);
            prop_assert_eq!(other.decode(&wire), Err(CookieError::Invalid));
        }
        let unsigned = CompatCodec::new(Secret::new(secret), false);
        prop_assert_eq!(unsigned.encode(&id).unwrap(), id.clone());
        prop_assert_eq!(unsigned.decode(&id).unwrap(), id.clone());
        prop_assert!(unsigned.decode(&wire).is_err());
    }

    /// `percent_decode` inverts `percent_encode` (`encodeURIComponent`) for any text.
    #[test]
    fn percent_encode_decode_round_trip(s in "\\PC{0,64}|[%+/=.;, A-Za-z0-9]{0,32}") {
        let encoded = percent_encode(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)));
        prop_assert_eq!(percent_decode(&encoded).unwrap(), s);
    }
}
