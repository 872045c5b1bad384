//! `RefreshToken::parse` on hostile input.
//!
//! The first byte picks a mode: the rest as a token string; or a token assembled from
//! fuzzed parts (prefix, ids, secret in canonical or non-canonical base64url), then
//! edited.
//!
//! Properties: parse never panics and only fails with `InvalidRefreshToken`; a parsed
//! token is exactly its input (`as_str`), names the ids in it, has the shape
//! `rt1.<id>.<id>.<canonical 32-byte base64url>` and re-parses to itself; its
//! successor is deterministic, parses, keeps the user and session and differs from it;
//! hashing is deterministic and tells a token from its successor.

#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Unstructured;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use redauth_core::AuthError;
use redauth_core::ids::is_valid_id;
use redauth_core::secret::Secret;
use redauth_core::token::TokenKeys;
use redauth_core::token::refresh::RefreshToken;

fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        TokenKeys::from_single_secret(&Secret::new("fuzz-refresh-secret-0123456789abcdef")).unwrap()
    })
}

fn check(s: &str) {
    let t = match RefreshToken::parse(s) {
        Ok(t) => t,
        Err(AuthError::InvalidRefreshToken) => return,
        Err(e) => panic!("parse failed with {e:?} for {s:?}"),
    };
    assert_eq!(t.as_str(), s);
    assert!(is_valid_id(&t.user_id) && is_valid_id(&t.session_id));
    let parts: Vec<&str> = s.split('.').collect();
    assert_eq!(parts.len(), 4, "{s:?}");
    assert_eq!(parts[0], "rt1");
    assert_eq!(parts[1], t.user_id);
    assert_eq!(parts[2], t.session_id);
    let secret = URL_SAFE_NO_PAD
        .decode(parts[3])
        .expect("secret is base64url");
    assert_eq!(secret.len(), 32);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&secret),
        parts[3],
        "non-canonical secret"
    );
    assert_eq!(RefreshToken::parse(t.as_str()).ok().as_ref(), Some(&t));

    let next = t.successor(keys());
    assert_eq!(next, t.successor(keys()), "successor is deterministic");
    assert_eq!(
        RefreshToken::parse(next.as_str()).ok().as_ref(),
        Some(&next)
    );
    assert_eq!(next.user_id, t.user_id);
    assert_eq!(next.session_id, t.session_id);
    assert_ne!(next.as_str(), t.as_str());
    assert_eq!(t.hash(keys()), t.hash(keys()));
    assert_ne!(t.hash(keys()), next.hash(keys()));
}

fn assembled(u: &mut Unstructured<'_>) {
    let id = |u: &mut Unstructured<'_>| {
        if u.ratio(7u8, 8).unwrap_or(true) {
            common::string_from(u, common::ID_ALPHABET, 22)
        } else {
            let len = u.int_in_range(0..=30usize).unwrap_or(0);
            String::from_utf8_lossy(u.bytes(len).unwrap_or(&[])).into_owned()
        }
    };
    let uid = id(u);
    let sid = id(u);
    let prefix = *u
        .choose(&["rt1", "rt1", "rt1", "rt2", "RT1", "rt", ""])
        .unwrap_or(&"rt1");
    let raw: [u8; 32] = u.arbitrary().unwrap_or([0; 32]);
    let secret = match u.int_in_range(0..=5u8).unwrap_or(0) {
        0..=2 => URL_SAFE_NO_PAD.encode(raw),
        3 => base64::engine::general_purpose::URL_SAFE.encode(raw),
        4 => base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw),
        _ => {
            // Non-zero trailing bits: the same bytes spelled another way.
            let mut s = URL_SAFE_NO_PAD.encode(raw);
            if let Some(last) = s.pop() {
                let alphabet = common::ID_ALPHABET;
                let pos = alphabet.iter().position(|&c| char::from(c) == last);
                let bump = u.int_in_range(1..=3usize).unwrap_or(1);
                s.push(char::from(alphabet[(pos.unwrap_or(0) + bump) % 64]));
            }
            s
        }
    };
    let token = format!("{prefix}.{uid}.{sid}.{secret}");
    check(&token);
    check(&common::mutate(u, &token));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(s) = std::str::from_utf8(rest) {
            check(s);
        }
    } else {
        assembled(&mut Unstructured::new(rest));
    }
});
