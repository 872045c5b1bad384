//! `AccessTokenCodec::verify` on hostile input.
//!
//! The first byte picks a mode:
//! - raw: the rest of the input is the token string;
//! - signed raw: the rest is split into header and payload bytes, which are base64url'd
//!   and signed with the right key, so arbitrary JSON gets past the signature check;
//! - structured: header and claims built field by field (missing, right, wrong value,
//!   wrong type, duplicated, extra), signed with the right key, at a fuzzed "now", so
//!   every claim check is reached;
//! - tampered: a valid token edited after signing.
//!
//! Properties: verify never panics; it fails only with `InvalidToken` or
//! `TokenExpired`, and `TokenExpired` only for a correctly signed token; a success
//! implies a canonical three-segment token with exactly the redauth header, a correct
//! HS256 signature (checked independently here), claims that pass every documented
//! check and agree with the payload, and a token re-encoded from the returned claims
//! verifies to the same claims; an edited valid token never verifies.

#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Unstructured;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use redauth_core::AuthError;
use redauth_core::ids::is_valid_id;
use redauth_core::secret::Secret;
use redauth_core::token::TokenKeys;
use redauth_core::token::access::{
    ACCESS_TOKEN_TYP, AccessClaims, AccessTokenCodec, AccessTokenConfig, MAX_TOKEN_BYTES,
};
use serde_json::Value;
use sha2::Sha256;

const ACCESS_SECRET: &str = "fuzz-access-secret-0123456789abcdef";
const ISSUER: &str = "redauth";
const AUDIENCE: &str = "app";
const TTL: i64 = 900;
const LEEWAY: i64 = 5;
const NOW: i64 = 1_700_000_000;
const CANONICAL_HEADER: &str = r#"{"typ":"at+jwt","alg":"HS256"}"#;
const SUB: &str = "AAAAAAAAAAAAAAAAAAAAAA";
const SID: &str = "BBBBBBBBBBBBBBBBBBBBBB";

fn codec() -> &'static AccessTokenCodec {
    static CODEC: OnceLock<AccessTokenCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        // from_pair uses the access secret as the HS256 key as is, so this target can
        // sign tokens itself.
        let keys = TokenKeys::from_pair(
            &Secret::new(ACCESS_SECRET),
            &Secret::new("fuzz-refresh-secret-0123456789abcdef"),
        );
        AccessTokenCodec::new(
            &keys,
            AccessTokenConfig {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                ttl_secs: TTL,
                leeway_secs: LEEWAY,
            },
        )
    })
}

fn hs256(signing_input: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(ACCESS_SECRET.as_bytes()).unwrap();
    m.update(signing_input);
    m.finalize().into_bytes().to_vec()
}

fn sign(header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = URL_SAFE_NO_PAD.encode(hs256(input.as_bytes()));
    format!("{input}.{sig}")
}

/// Does `token` carry a correct HS256 signature under our key (independent oracle)?
fn signature_ok(token: &str) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(sig)
        .is_ok_and(|s| s == hs256(input.as_bytes()))
}

fn check(token: &str, now: i64) {
    let result = codec().verify(token, now);
    let claims = match result {
        Ok(c) => c,
        Err(AuthError::InvalidToken) => return,
        Err(AuthError::TokenExpired) => {
            assert!(
                signature_ok(token),
                "TokenExpired for a badly signed token: {token:?}"
            );
            return;
        }
        Err(e) => panic!("unexpected error {e:?} for {token:?}"),
    };
    check_accepted(token, now, &claims);
}

fn check_accepted(token: &str, now: i64, c: &AccessClaims) {
    assert!(token.len() <= MAX_TOKEN_BYTES);
    assert!(signature_ok(token), "accepted a badly signed token");
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "accepted {token:?}");
    for s in &segments {
        let bytes = URL_SAFE_NO_PAD.decode(s).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), *s, "non-canonical segment");
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).unwrap())
        .expect("accepted header is JSON");
    assert_eq!(
        header,
        serde_json::json!({"alg": "HS256", "typ": ACCESS_TOKEN_TYP}),
        "accepted a non-redauth header"
    );

    assert_eq!(c.iss, ISSUER);
    assert_eq!(c.aud, AUDIENCE);
    assert!(is_valid_id(&c.sub) && is_valid_id(&c.sid), "{c:?}");
    assert!(
        now < c.exp.saturating_add(LEEWAY),
        "expired but accepted: {c:?}"
    );
    assert!(
        c.iat <= now.saturating_add(LEEWAY),
        "iat in the future: {c:?}"
    );
    assert!(
        c.nbf <= now.saturating_add(LEEWAY),
        "nbf in the future: {c:?}"
    );
    assert!(
        c.exp.saturating_sub(c.iat) <= TTL + LEEWAY,
        "lifetime over the TTL: {c:?}"
    );

    // The returned claims are the signed ones.
    // Extra claims are ignored by design (the RFC 7515 A.1 vector has one), and one may
    // hold a number `Value` cannot represent; then only the typed claims are compared.
    let Ok(payload) = serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(segments[1]).unwrap()) else {
        return;
    };
    assert_eq!(payload["sub"], c.sub.as_str());
    assert_eq!(payload["sid"], c.sid.as_str());
    assert_eq!(payload["jti"], c.jti.as_str());
    assert_eq!(payload["iss"], ISSUER);
    assert_eq!(payload["aud"], AUDIENCE);
    assert_eq!(payload["exp"], c.exp);
    assert_eq!(payload["iat"], c.iat);
    assert_eq!(payload["nbf"], c.nbf);
    match payload.get("roles") {
        None => assert!(c.roles.is_empty()),
        Some(r) => assert_eq!(*r, serde_json::json!(c.roles)),
    }

    // Re-encoding the claims the way redauth issues them round-trips.
    let again = sign(CANONICAL_HEADER.as_bytes(), &serde_json::to_vec(c).unwrap());
    assert_eq!(
        codec().verify(&again, now).ok().as_ref(),
        Some(c),
        "re-encoded"
    );
}

/// A JSON value for one claim: the right one, a wrong one of the right type, one of a
/// wrong type, or arbitrary text.
fn claim_value(u: &mut Unstructured<'_>, good: &str) -> String {
    match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 | 1 => good.to_owned(),
        2 => {
            let len = u.int_in_range(0..=24usize).unwrap_or(22);
            serde_json::to_string(&common::string_from(u, common::ID_ALPHABET, len)).unwrap()
        }
        3 => u
            .choose(&[
                "null",
                "true",
                "0",
                "-1",
                "1.5",
                "1e400",
                "[]",
                "{}",
                "\"\"",
                "[\"redauth\"]",
                "[\"app\"]",
                "9223372036854775807",
                "-9223372036854775808",
                "9223372036854775808",
                "\"1700000000\"",
            ])
            .map_or("null", |s| s)
            .to_owned(),
        4 => serde_json::to_string(&common::mutate(u, good.trim_matches('"'))).unwrap(),
        _ => {
            let len = u.int_in_range(0..=16usize).unwrap_or(0);
            String::from_utf8_lossy(u.bytes(len).unwrap_or(&[])).into_owned()
        }
    }
}

/// A time claim: relative to `now` (small offsets around the boundaries) or extreme.
fn time_value(u: &mut Unstructured<'_>, around: i64) -> String {
    match u.int_in_range(0..=4u8).unwrap_or(0) {
        0..=2 => around
            .saturating_add(i64::from(u.int_in_range(-1000..=1000i16).unwrap_or(0)))
            .to_string(),
        3 => u.arbitrary::<i64>().unwrap_or(0).to_string(),
        _ => claim_value(u, &around.to_string()),
    }
}

fn structured(u: &mut Unstructured<'_>) {
    let now = match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => u.arbitrary::<i64>().unwrap_or(NOW),
        _ => NOW,
    };
    let iat_base = now.saturating_sub(i64::from(u.int_in_range(0..=2000u16).unwrap_or(0)));
    let lifetime = i64::from(u.int_in_range(0..=2000u16).unwrap_or(900));
    let good_roles = r#"["admin","user"]"#;
    let fields: [(&str, String); 9] = [
        ("sub", claim_value(u, &format!("\"{SUB}\""))),
        ("sid", claim_value(u, &format!("\"{SID}\""))),
        ("jti", claim_value(u, "\"CCCCCCCCCCCCCCCCCCCCCC\"")),
        ("iat", time_value(u, iat_base)),
        ("nbf", time_value(u, iat_base)),
        ("exp", time_value(u, iat_base.saturating_add(lifetime))),
        ("iss", claim_value(u, &format!("\"{ISSUER}\""))),
        ("aud", claim_value(u, &format!("\"{AUDIENCE}\""))),
        ("roles", claim_value(u, good_roles)),
    ];
    let mut parts = Vec::new();
    for (name, value) in &fields {
        match u.int_in_range(0..=9u8).unwrap_or(0) {
            0 => {} // missing
            1 => {
                // duplicated, the second time with another value
                parts.push(format!("\"{name}\":{value}"));
                parts.push(format!("\"{name}\":{}", claim_value(u, value)));
            }
            _ => parts.push(format!("\"{name}\":{value}")),
        }
    }
    if u.ratio(1u8, 8).unwrap_or(false) {
        let extra = *u
            .choose(&["typ", "cnf", "scope", "client_id", "act", "roles2", ""])
            .unwrap_or(&"x");
        parts.push(format!("\"{extra}\":{}", claim_value(u, "1")));
    }
    let order = u.int_in_range(0..=parts.len()).unwrap_or(0);
    parts.rotate_left(order);
    let payload = format!("{{{}}}", parts.join(","));

    let header = match u.int_in_range(0..=15u8).unwrap_or(0) {
        0..=7 => CANONICAL_HEADER.to_owned(),
        8 => r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
        9 => r#"{"alg":"HS256"}"#.to_owned(),
        10 => r#"{"alg":"HS256","typ":"AT+JWT"}"#.to_owned(),
        11 => r#"{"alg":"HS256","typ":"at+jwt","kid":"../../etc/passwd"}"#.to_owned(),
        12 => r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#.to_owned(),
        13 => r#"{"alg":"none","typ":"at+jwt","alg":"HS256"}"#.to_owned(),
        14 => r#"{"alg":"HS256","typ":"at+jwt","cty":"JWT"}"#.to_owned(),
        _ => common::mutate(u, CANONICAL_HEADER),
    };
    let token = sign(header.as_bytes(), payload.as_bytes());
    let token = if u.ratio(1u8, 4).unwrap_or(false) {
        common::mutate(u, &token)
    } else {
        token
    };
    check(&token, now);
}

/// A token redauth would issue, edited: it must never verify unless unchanged.
fn tampered(u: &mut Unstructured<'_>) {
    let payload = format!(
        r#"{{"sub":"{SUB}","sid":"{SID}","jti":"j","iat":{NOW},"nbf":{NOW},"exp":{},"iss":"{ISSUER}","aud":"{AUDIENCE}","roles":["admin"]}}"#,
        NOW + TTL
    );
    let token = sign(CANONICAL_HEADER.as_bytes(), payload.as_bytes());
    assert!(
        codec().verify(&token, NOW).is_ok(),
        "the base token verifies"
    );
    let edited = common::mutate(u, &token);
    if edited != token {
        assert!(
            codec().verify(&edited, NOW).is_err(),
            "an edited token verified: {edited:?}"
        );
    }
    check(&edited, NOW);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check(token, NOW);
            }
        }
        1 => {
            let split = rest.first().map_or(0, |&b| usize::from(b)).min(rest.len());
            let (header, payload) = rest.split_at(split);
            check(&sign(header, payload), NOW);
        }
        2 => structured(&mut Unstructured::new(rest)),
        _ => tampered(&mut Unstructured::new(rest)),
    }
});
