//! JWT access tokens (RFC 9068 profile, HS256), signed and verified here in one pass.
//!
//! The tokens are standard JWS compact serialisations (RFC 7515) with HS256 under the
//! access secret, so a service holding that secret can verify them with any JWT
//! library. redauth itself does not: verifying is on every authenticated request, and
//! `jsonwebtoken::decode`, which this module used before, parsed the claims JSON twice,
//! decoded the header three times (twice inside `decode`, once more for our own header
//! check) and re-keyed the HMAC on every call. This module is a deliberate replacement
//! of that path, doing each step once:
//!
//! 1. the token length is bounded ([`MAX_TOKEN_BYTES`]);
//! 2. the token has exactly three `.`-separated segments and the first one equals,
//!    byte for byte, the base64url of the one header redauth issues,
//!    `{"typ":"at+jwt","alg":"HS256"}`. Nothing is parsed, so no header field can steer
//!    verification: the algorithm is pinned (no `none`, no HS384, no key confusion),
//!    and `kid`, `jku`, `jwk`, `x5u`, `crit`, `cty`, duplicate keys or another `typ` are
//!    refused because they are not these bytes. This is stricter than parsing: the same
//!    header with its keys in another order or with whitespace is refused too (only
//!    redauth issues these tokens, and it always writes exactly these bytes);
//! 3. the signature is strict base64url (no padding, canonical trailing bits) of
//!    exactly 32 bytes, checked in constant time ([`Mac::verify_slice`]) against an
//!    HMAC-SHA256 keyed once when the codec is built and cloned per token, so no key
//!    schedule runs per request;
//! 4. only then is the payload decoded and its JSON parsed, once, into the claims, and
//!    the claim checks run. They are done here, not by a library, because they must
//!    read the injected [`Clock`](crate::clock::Clock) rather than the wall clock.
//!
//! Signing uses the same pre-keyed HMAC and the same header bytes, so what redauth
//! issues and what it accepts agree by construction. The tests cross-check both
//! directions against `jsonwebtoken` and against the HS256 example of RFC 7515 A.1.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Sha256;

use crate::clock::UnixTime;
use crate::error::AuthError;
use crate::ids::{is_valid_id, random_id};
use crate::model::Principal;
use crate::token::TokenKeys;

/// The `typ` header of redauth access tokens. Anything else redauth signs uses another
/// type, so one kind of token can never be replayed as another.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Longest token accepted; a real one is well under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The first segment of every token: base64url without padding of
/// `{"typ":"at+jwt","alg":"HS256"}`, the only JOSE header redauth issues and accepts,
/// byte for byte. These are the bytes `jsonwebtoken` wrote for `typ: at+jwt, alg: HS256`
/// when it signed redauth's tokens, so tokens issued before this module signed them
/// itself still verify (tested below).
const HEADER_B64: &str = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9";

/// An HS256 signature is 32 bytes: 43 base64url characters without padding.
const SIGNATURE_BYTES: usize = 32;
const SIGNATURE_B64_LEN: usize = 43;

type HmacSha256 = Hmac<Sha256>;

/// The claims of a redauth access token, all present in every token. Other services
/// holding the access secret may read them all; redauth itself finds the login session
/// by `sub` and `sid` and takes the user's rights from it, never from the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The user's [`UserId`](crate::model::UserId).
    pub sub: String,
    /// The login session the token belongs to: revoking it refuses the token on every
    /// redauth node at once, whatever `exp` says.
    pub sid: String,
    /// A random id, unique per token. redauth keeps no record of it; it is for consumers
    /// that log or deny-list tokens.
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: UnixTime,
    /// Not before, Unix seconds; equal to `iat`.
    pub nbf: UnixTime,
    /// Expiry, Unix seconds: `iat` plus the configured lifetime, or the session's end if
    /// that comes first.
    pub exp: UnixTime,
    /// [`AccessTokenConfig::issuer`]; any other is refused.
    pub iss: String,
    /// [`AccessTokenConfig::audience`]; any other is refused.
    pub aud: String,
    /// The user's roles when the token was issued, for other verifiers. redauth never
    /// reads them back: a role removed since then is already gone from its checks.
    pub roles: Vec<String>,
}

/// The claims as they arrive, before checks: only `exp` is required at this stage so
/// that an expired token is reported as expired whatever else is wrong with it.
/// Unknown claims are ignored (as RFC 7519 §4 asks); a duplicated known claim, a wrong
/// type or JSON that is not one object is a parse error.
#[derive(Deserialize)]
struct UncheckedClaims<'a> {
    exp: UnixTime,
    sub: Option<String>,
    sid: Option<String>,
    jti: Option<String>,
    iat: Option<UnixTime>,
    nbf: Option<UnixTime>,
    /// Only compared with the configuration, so borrowed from the payload when it can be.
    #[serde(borrow, default, deserialize_with = "cow_str")]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "cow_str")]
    aud: Option<Cow<'a, str>>,
    #[serde(default)]
    roles: Vec<String>,
}

/// A JSON string (or `null`), borrowed when it has no escapes and copied otherwise.
/// (`Option<Cow<str>>` on its own always copies.)
fn cow_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Str<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Str<'a>>::deserialize(d)?.map(|s| s.0))
}

/// How access tokens are issued and checked. Changing the issuer or audience refuses
/// every token issued before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenConfig {
    /// The `iss` written and required.
    pub issuer: String,
    /// The `aud` written and required.
    pub audience: String,
    /// Lifetime in seconds. Also the longest `exp - iat` accepted (plus the leeway), so a
    /// token minted elsewhere with a longer life is refused.
    pub ttl_secs: i64,
    /// Allowed clock skew between redauth nodes and token consumers: a token is still
    /// accepted this long after `exp`, and this long before `iat`/`nbf`.
    pub leeway_secs: i64,
}

impl Default for AccessTokenConfig {
    /// 15 minutes: short enough that a leaked token is soon useless, long enough that
    /// a page refreshes it a handful of times an hour. The 5 s leeway absorbs the clock
    /// skew of NTP-synchronised hosts (milliseconds) with a wide margin, while adding
    /// little to a token's life.
    fn default() -> Self {
        Self {
            issuer: "redauth".into(),
            audience: "redauth".into(),
            ttl_secs: 15 * 60,
            leeway_secs: 5,
        }
    }
}

/// Signs and verifies access tokens with an HMAC keyed once; the module documentation
/// lists what verification checks.
pub struct AccessTokenCodec {
    /// Keyed once in [`AccessTokenCodec::new`]; cloned for every token. HMAC accepts
    /// keys of any length, so this is never `None`: the `Option` only keeps `new` total
    /// without an `expect`.
    mac: Option<HmacSha256>,
    config: AccessTokenConfig,
}

impl std::fmt::Debug for AccessTokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenCodec")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AccessTokenCodec {
    /// A codec for the access key of `keys`.
    pub fn new(keys: &TokenKeys, config: AccessTokenConfig) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(&keys.access).ok(),
            config,
        }
    }

    /// The configured lifetime of new tokens, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.config.ttl_secs
    }

    /// A fresh HMAC over nothing yet, from the pre-keyed state.
    fn keyed_mac(&self) -> Result<HmacSha256, AuthError> {
        self.mac
            .clone()
            .ok_or(AuthError::Internal("HMAC key rejected"))
    }

    /// Issues a token for `principal`, never outliving its session.
    pub fn issue(
        &self,
        principal: &Principal,
        now: UnixTime,
    ) -> Result<(String, AccessClaims), AuthError> {
        let exp = (now + self.config.ttl_secs).min(principal.session_expires_at);
        let claims = AccessClaims {
            sub: principal.user_id.to_string(),
            sid: principal.session_id.to_string(),
            jti: random_id()?,
            iat: now,
            nbf: now,
            exp,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            roles: principal.roles().to_vec(),
        };
        let mut mac = self.keyed_mac()?;
        let payload =
            serde_json::to_vec(&claims).map_err(|_| AuthError::Internal("JWT encoding failed"))?;
        let mut token = String::with_capacity(
            HEADER_B64.len() + 1 + payload.len().div_ceil(3) * 4 + 1 + SIGNATURE_B64_LEN,
        );
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        Ok((token, claims))
    }

    /// Verifies the exact header (so the algorithm is HS256 and the type `at+jwt`), the
    /// signature, expiry, not-before, issued-at, a lifetime no longer than the configured
    /// one, issuer, audience and subject. Any failure is [`AuthError::InvalidToken`]
    /// except a correctly signed but expired token, which is [`AuthError::TokenExpired`]
    /// so clients know to refresh.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<AccessClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        let payload = self.signed_payload(token)?;
        let c: UncheckedClaims<'_> =
            serde_json::from_slice(&payload).map_err(|_| AuthError::InvalidToken)?;
        let leeway = self.config.leeway_secs;
        if now >= c.exp.saturating_add(leeway) {
            return Err(AuthError::TokenExpired);
        }
        let in_future = |t: Option<UnixTime>| t.is_some_and(|t| t > now.saturating_add(leeway));
        if in_future(c.nbf) || in_future(c.iat) {
            return Err(AuthError::InvalidToken);
        }
        if c.iat.is_some_and(|iat| {
            c.exp.saturating_sub(iat) > self.config.ttl_secs.saturating_add(leeway)
        }) || c.iss.as_deref() != Some(self.config.issuer.as_str())
            || c.aud.as_deref() != Some(self.config.audience.as_str())
        {
            return Err(AuthError::InvalidToken);
        }
        match (c.sub, c.sid, c.jti, c.iat, c.nbf) {
            (Some(sub), Some(sid), Some(jti), Some(iat), Some(nbf))
                if is_valid_id(&sub) && is_valid_id(&sid) =>
            {
                Ok(AccessClaims {
                    sub,
                    sid,
                    jti,
                    iat,
                    nbf,
                    exp: c.exp,
                    iss: self.config.issuer.clone(),
                    aud: self.config.audience.clone(),
                    roles: c.roles,
                })
            }
            _ => Err(AuthError::InvalidToken),
        }
    }

    /// The decoded payload of `token` if it is `HEADER_B64.payload.signature` with a
    /// correct signature; the payload is decoded only after the signature checks out.
    fn signed_payload(&self, token: &str) -> Result<Vec<u8>, AuthError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthError::InvalidToken)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(AuthError::InvalidToken)?;
        // `payload` holding a '.' would be a fourth segment.
        if header != HEADER_B64 || payload.contains('.') {
            return Err(AuthError::InvalidToken);
        }
        if !self.signature_ok(signing_input.as_bytes(), signature)? {
            return Err(AuthError::InvalidToken);
        }
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::InvalidToken)
    }

    /// Is `signature` the canonical base64url of the HS256 MAC of `signing_input`?
    /// The comparison is constant time; the length and base64 checks before it only look
    /// at the caller's bytes.
    fn signature_ok(&self, signing_input: &[u8], signature: &str) -> Result<bool, AuthError> {
        let mut tag = [0u8; SIGNATURE_BYTES];
        // The engine is strict: no padding, and non-zero trailing bits are an error.
        if signature.len() != SIGNATURE_B64_LEN
            || URL_SAFE_NO_PAD.decode_slice(signature, &mut tag) != Ok(SIGNATURE_BYTES)
        {
            return Ok(false);
        }
        let mut mac = self.keyed_mac()?;
        mac.update(signing_input);
        Ok(mac.verify_slice(&tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    /// What [`HEADER_B64`] encodes.
    const HEADER_JSON: &str = r#"{"typ":"at+jwt","alg":"HS256"}"#;

    fn codec(secret: &[u8]) -> AccessTokenCodec {
        let keys = TokenKeys {
            access: secret.to_vec(),
            refresh: vec![7; 32],
        };
        AccessTokenCodec::new(
            &keys,
            AccessTokenConfig {
                issuer: "redauth".into(),
                audience: "app".into(),
                ttl_secs: 900,
                leeway_secs: 5,
            },
        )
    }

    fn principal() -> Principal {
        Principal {
            user_id: random_id().unwrap().into(),
            username: "alice".into(),
            session_id: random_id().unwrap().into(),
            session_expires_at: 10_000_000,
            access: crate::model::Access {
                roles: vec!["admin".into()],
                permissions: Default::default(),
            }
            .into(),
        }
    }

    /// `header.payload` signed with HS256 by `jsonwebtoken`, not by the code under test.
    fn forge(key: &[u8], header: &str, payload: &str) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            &EncodingKey::from_secret(key),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{msg}.{sig}")
    }

    fn segments(token: &str) -> (String, String, String) {
        let v: Vec<&str> = token.split('.').collect();
        assert_eq!(v.len(), 3, "{token}");
        (v[0].to_owned(), v[1].to_owned(), v[2].to_owned())
    }

    /// jsonwebtoken with the algorithm pinned to HS256 and `typ` checked by the caller:
    /// what a consumer of redauth's tokens would run.
    fn jwt_lib_validation() -> Validation {
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v
    }

    const RFC7515_A1_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const RFC7515_A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    /// RFC 7515 Appendix A.1: a real HS256 JWS. Its signature must check out under the
    /// RFC's key with our pre-keyed HMAC (so the MAC is computed correctly). The token
    /// itself is refused as invalid because its header (`{"typ":"JWT",\r\n "alg":"HS256"}`)
    /// is not redauth's; its payload under redauth's header is refused as expired (2011),
    /// and its extra `http://example.com/is_root` claim does not get in the way.
    #[test]
    fn rfc7515_a1_vector() {
        let k = URL_SAFE_NO_PAD.decode(RFC7515_A1_KEY).unwrap();
        let c = codec(&k);
        let (input, sig) = RFC7515_A1_TOKEN.rsplit_once('.').unwrap();
        assert!(c.signature_ok(input.as_bytes(), sig).unwrap());
        // One signature character changed: not the MAC any more.
        let tampered = format!("{}A", &sig[..sig.len() - 1]);
        assert!(!c.signature_ok(input.as_bytes(), &tampered).unwrap());
        // jsonwebtoken agrees that the signature is valid.
        let raw: serde_json::Value = jsonwebtoken::decode(
            RFC7515_A1_TOKEN,
            &DecodingKey::from_secret(&k),
            &jwt_lib_validation(),
        )
        .unwrap()
        .claims;
        assert_eq!(raw["iss"], "joe");

        assert!(matches!(
            c.verify(RFC7515_A1_TOKEN, 1_700_000_000),
            Err(AuthError::InvalidToken)
        ));
        let payload = URL_SAFE_NO_PAD
            .decode(segments(RFC7515_A1_TOKEN).1)
            .unwrap();
        let ours = forge(&k, HEADER_JSON, std::str::from_utf8(&payload).unwrap());
        assert!(matches!(
            c.verify(&ours, 1_700_000_000),
            Err(AuthError::TokenExpired)
        ));
        let (h, p, s) = segments(&ours);
        let tampered = format!("{h}.{p}.{}A", &s[..s.len() - 1]);
        assert!(matches!(
            c.verify(&tampered, 1_700_000_000),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn header_constant_is_what_jsonwebtoken_writes() {
        assert_eq!(URL_SAFE_NO_PAD.encode(HEADER_JSON), HEADER_B64);
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        assert_eq!(serde_json::to_string(&h).unwrap(), HEADER_JSON);
    }

    /// Issuing is byte for byte what `jsonwebtoken::encode` produces for the same header
    /// and claims, and `jsonwebtoken::decode` (HS256 pinned) accepts it.
    #[test]
    fn issued_tokens_are_standard_hs256_jws() {
        let key = [3u8; 32];
        let c = codec(&key);
        let (token, claims) = c.issue(&principal(), 1_000).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        let theirs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key)).unwrap();
        assert_eq!(token, theirs);
        let decoded = jsonwebtoken::decode::<AccessClaims>(
            &token,
            &DecodingKey::from_secret(&key),
            &jwt_lib_validation(),
        )
        .unwrap();
        assert_eq!(decoded.claims, claims);
        assert_eq!(decoded.header.alg, Algorithm::HS256);
        assert_eq!(decoded.header.typ.as_deref(), Some(ACCESS_TOKEN_TYP));
        // Another key: jsonwebtoken refuses it too.
        assert!(
            jsonwebtoken::decode::<AccessClaims>(
                &token,
                &DecodingKey::from_secret(&[4u8; 32]),
                &jwt_lib_validation(),
            )
            .is_err()
        );
    }

    /// A token `jsonwebtoken::encode` signs with redauth's header verifies here.
    #[test]
    fn jsonwebtoken_signed_token_verifies() {
        let key = [5u8; 32];
        let c = codec(&key);
        let (_, claims) = c.issue(&principal(), 1_000).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        let theirs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key)).unwrap();
        assert_eq!(c.verify(&theirs, 1_000).unwrap(), claims);
        assert!(matches!(
            c.verify(&theirs, 1_905),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn round_trip_and_time_checks() {
        let c = codec(&[1; 32]);
        let p = principal();
        let (token, claims) = c.issue(&p, 1_000).unwrap();
        assert_eq!(c.verify(&token, 1_000).unwrap(), claims);
        assert_eq!(claims.exp, 1_900);
        assert!(c.verify(&token, 1_904).is_ok(), "within leeway");
        assert!(matches!(
            c.verify(&token, 1_905),
            Err(AuthError::TokenExpired)
        ));
        assert!(
            matches!(c.verify(&token, 990), Err(AuthError::InvalidToken)),
            "iat/nbf in the future"
        );
    }

    #[test]
    fn token_never_outlives_session() {
        let c = codec(&[1; 32]);
        let mut p = principal();
        p.session_expires_at = 1_100;
        let (_, claims) = c.issue(&p, 1_000).unwrap();
        assert_eq!(claims.exp, 1_100);
    }

    #[test]
    fn other_key_issuer_audience_or_type_is_rejected() {
        let p = principal();
        let (token, _) = codec(&[1; 32]).issue(&p, 1_000).unwrap();
        assert!(matches!(
            codec(&[2; 32]).verify(&token, 1_000),
            Err(AuthError::InvalidToken)
        ));

        let keys = TokenKeys::from_single_secret(&Secret::new("x".repeat(32))).unwrap();
        let cfg = |iss: &str, aud: &str| AccessTokenConfig {
            issuer: iss.into(),
            audience: aud.into(),
            ttl_secs: 900,
            leeway_secs: 5,
        };
        let issued = AccessTokenCodec::new(&keys, cfg("redauth", "app"))
            .issue(&p, 1_000)
            .unwrap()
            .0;
        assert!(
            AccessTokenCodec::new(&keys, cfg("other", "app"))
                .verify(&issued, 1_000)
                .is_err()
        );
        assert!(
            AccessTokenCodec::new(&keys, cfg("redauth", "other"))
                .verify(&issued, 1_000)
                .is_err()
        );

        // Same key and claims, but typ "JWT": not an access token.
        let c = AccessTokenCodec::new(&keys, cfg("redauth", "app"));
        let (_, claims) = c.issue(&p, 1_000).unwrap();
        let key = EncodingKey::from_secret(&keys.access);
        let plain = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        assert!(matches!(
            c.verify(&plain, 1_000),
            Err(AuthError::InvalidToken)
        ));
        // And HS384 under the same key is refused: the algorithm is pinned.
        let mut hs384 = Header::new(Algorithm::HS384);
        hs384.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        let hs384 = jsonwebtoken::encode(&hs384, &claims, &key).unwrap();
        assert!(matches!(
            c.verify(&hs384, 1_000),
            Err(AuthError::InvalidToken)
        ));
    }

    /// Only the exact header bytes pass, even when the JSON means the same thing and the
    /// signature is right, and even when the token is expired (a foreign header is
    /// invalid, not "expired").
    #[test]
    fn header_must_be_exact() {
        let key = [1u8; 32];
        let c = codec(&key);
        let (token, _) = c.issue(&principal(), 1_000).unwrap();
        let payload =
            String::from_utf8(URL_SAFE_NO_PAD.decode(segments(&token).1).unwrap()).unwrap();
        assert!(
            c.verify(&forge(&key, HEADER_JSON, &payload), 1_000).is_ok(),
            "the forge helper is faithful"
        );
        for header in [
            r#"{"alg":"HS256","typ":"at+jwt"}"#,
            r#"{"typ": "at+jwt", "alg": "HS256"}"#,
            r#" {"typ":"at+jwt","alg":"HS256"}"#,
            "{\"typ\":\"at+jwt\",\"alg\":\"HS256\"}\n",
            r#"{"typ":"at+jwt","alg":"HS256","alg":"HS256"}"#,
            r#"{"typ":"at\u002bjwt","alg":"HS256"}"#,
            r#"{"typ":"at+jwt","alg":"HS256","kid":"1"}"#,
            r#"{"typ":"AT+JWT","alg":"HS256"}"#,
            r#"{"typ":"JWT","alg":"HS256"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"typ":"at+jwt","alg":"none"}"#,
            "",
        ] {
            let forged = forge(&key, header, &payload);
            for now in [1_000, 1_000_000] {
                assert!(
                    matches!(c.verify(&forged, now), Err(AuthError::InvalidToken)),
                    "{header:?} at {now}"
                );
            }
        }
        // The right header with base64 padding, or in standard base64, is not the same
        // segment either.
        let (h, p, s) = segments(&token);
        for token in [format!("{h}=.{p}.{s}"), format!("{h}==.{p}.{s}")] {
            assert!(matches!(
                c.verify(&token, 1_000),
                Err(AuthError::InvalidToken)
            ));
        }
    }

    #[test]
    fn segments_must_be_exactly_three() {
        let c = codec(&[1; 32]);
        let (token, _) = c.issue(&principal(), 1_000).unwrap();
        let (h, p, s) = segments(&token);
        assert!(c.verify(&token, 1_000).is_ok());
        for bad in [
            format!("{token}."),
            format!("{token}.{s}"),
            format!("{token}.x"),
            format!("{h}.{p}.{p}.{s}"),
            format!("{h}..{p}.{s}"),
            format!("{h}.{p}..{s}"),
            format!(".{token}"),
            format!("{token} "),
            format!("{token}\n"),
            format!("{token}A"),
            format!("{h}.{p}"),
            format!("{h}.{s}"),
            format!("{h}.{p}{s}"),
        ] {
            assert!(
                matches!(c.verify(&bad, 1_000), Err(AuthError::InvalidToken)),
                "{bad}"
            );
        }
    }

    /// 32 bytes take 43 base64 characters, the last carrying two unused bits that must be
    /// zero; a lenient decoder maps the variants with those bits set to the same MAC.
    #[test]
    fn non_canonical_signature_encoding_is_refused() {
        let c = codec(&[1; 32]);
        let (token, _) = c.issue(&principal(), 1_000).unwrap();
        let (h, p, s) = segments(&token);
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET
            .iter()
            .position(|&b| b == s.as_bytes()[42])
            .unwrap();
        assert_eq!(last & 0b11, 0, "canonical: trailing bits are zero");
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_encode_padding(false)
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
        );
        let real = URL_SAFE_NO_PAD.decode(&s).unwrap();
        for bits in 1..=3 {
            let mut sig = s.clone().into_bytes();
            sig[42] = ALPHABET[last | bits];
            let sig = String::from_utf8(sig).unwrap();
            assert_eq!(lenient.decode(&sig).unwrap(), real, "same MAC bytes");
            assert!(matches!(
                c.verify(&format!("{h}.{p}.{sig}"), 1_000),
                Err(AuthError::InvalidToken)
            ));
        }
        // Padding, or the standard alphabet, are not canonical base64url either.
        for sig in [format!("{s}="), s.replace('-', "+").replace('_', "/")] {
            if sig != s {
                assert!(matches!(
                    c.verify(&format!("{h}.{p}.{sig}"), 1_000),
                    Err(AuthError::InvalidToken)
                ));
            }
        }
    }

    #[test]
    fn signature_of_wrong_length_is_refused() {
        let key = [1u8; 32];
        let c = codec(&key);
        let (token, _) = c.issue(&principal(), 1_000).unwrap();
        let (h, p, s) = segments(&token);
        let mac = URL_SAFE_NO_PAD.decode(&s).unwrap();
        assert_eq!(mac.len(), 32);
        let mut longer = mac.clone();
        longer.push(0);
        let hs384 = jsonwebtoken::crypto::sign(
            format!("{h}.{p}").as_bytes(),
            &EncodingKey::from_secret(&key),
            Algorithm::HS384,
        )
        .unwrap();
        for sig in [
            String::new(),
            URL_SAFE_NO_PAD.encode(&mac[..31]),
            URL_SAFE_NO_PAD.encode(&mac[..16]),
            URL_SAFE_NO_PAD.encode(&longer),
            URL_SAFE_NO_PAD.encode([mac.as_slice(), mac.as_slice()].concat()),
            s[..42].to_owned(),
            hs384,
        ] {
            assert!(
                matches!(
                    c.verify(&format!("{h}.{p}.{sig}"), 1_000),
                    Err(AuthError::InvalidToken)
                ),
                "{sig}"
            );
        }
    }

    /// Every single-bit change of the payload, under the original signature, is refused;
    /// so is every single-bit change of the signature.
    #[test]
    fn any_flipped_bit_is_refused() {
        let c = codec(&[1; 32]);
        let (token, _) = c.issue(&principal(), 1_000).unwrap();
        let (h, p, s) = segments(&token);
        let payload = URL_SAFE_NO_PAD.decode(&p).unwrap();
        let mac = URL_SAFE_NO_PAD.decode(&s).unwrap();
        for i in 0..payload.len() * 8 {
            let mut edited = payload.clone();
            edited[i / 8] ^= 1 << (i % 8);
            let forged = format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(&edited));
            assert!(
                matches!(c.verify(&forged, 1_000), Err(AuthError::InvalidToken)),
                "payload bit {i}"
            );
        }
        for i in 0..mac.len() * 8 {
            let mut edited = mac.clone();
            edited[i / 8] ^= 1 << (i % 8);
            let forged = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&edited));
            assert!(
                matches!(c.verify(&forged, 1_000), Err(AuthError::InvalidToken)),
                "signature bit {i}"
            );
        }
    }

    /// Claims, correctly signed under the exact header: unknown claims are ignored as
    /// before; duplicated or mistyped known claims, and anything but one JSON object,
    /// are refused; an expired token is expired whatever else is wrong with its claims.
    #[test]
    fn claims_parsing() {
        let key = [1u8; 32];
        let c = codec(&key);
        let (sub, sid) = (random_id().unwrap(), random_id().unwrap());
        let claims = |extra: &str| {
            format!(
                r#"{{"sub":"{sub}","sid":"{sid}","jti":"j","iat":1000,"nbf":1000,"exp":1900,"iss":"redauth","aud":"app"{extra}}}"#
            )
        };
        let ok = |payload: &str| c.verify(&forge(&key, HEADER_JSON, payload), 1_000);
        let v = ok(&claims("")).unwrap();
        assert!(v.roles.is_empty(), "roles default to none");
        assert!(
            ok(&claims(
                r#","roles":["a","b"],"scope":"x","cnf":{"a":[1,2]}"#
            ))
            .is_ok()
        );
        // Escaped but equal issuer and audience are the same strings.
        let escaped = claims("")
            .replace("\"redauth\"", r#""red\u0061uth""#)
            .replace(r#""app""#, r#""\u0061pp""#);
        assert_eq!(ok(&escaped).unwrap(), v.clone());
        for payload in [
            claims(r#","exp":1900"#),
            claims(r#","sub":"AAAAAAAAAAAAAAAAAAAAAA""#),
            claims(r#","iss":"redauth""#),
            claims(r#","roles":null"#),
            claims(r#","roles":"admin""#),
            claims(r#","iat":"1000""#),
            claims(r#","aud":["app"]"#).replacen(r#""aud":"app","#, "", 1),
            claims("").replace(r#""exp":1900"#, r#""exp":1900.0"#),
            claims("").replace(r#""iss":"redauth""#, r#""iss":null"#),
            claims("") + " x",
            format!("[{}]", claims("")),
            "null".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(ok(&payload), Err(AuthError::InvalidToken)),
                "{payload}"
            );
        }
        // Expired: reported as such even with a wrong issuer or a missing subject.
        let expired = |payload: &str| c.verify(&forge(&key, HEADER_JSON, payload), 2_000);
        assert!(matches!(expired(&claims("")), Err(AuthError::TokenExpired)));
        assert!(matches!(
            expired(&claims("").replace(r#""iss":"redauth""#, r#""iss":"evil""#)),
            Err(AuthError::TokenExpired)
        ));
        assert!(matches!(
            expired(&claims("").replace(&format!(r#""sub":"{sub}","#), "")),
            Err(AuthError::TokenExpired)
        ));
        // Without `exp` the claims do not parse at all: invalid, never expired.
        assert!(matches!(
            expired(&claims("").replace(r#","exp":1900"#, "")),
            Err(AuthError::InvalidToken)
        ));
    }

    /// `iss` and `aud` are borrowed from the payload unless they hold escapes.
    #[test]
    fn issuer_and_audience_borrow_when_they_can() {
        let c: UncheckedClaims<'_> =
            serde_json::from_slice(br#"{"exp":1,"iss":"redauth","aud":"\u0061pp"}"#).unwrap();
        assert!(matches!(c.iss, Some(Cow::Borrowed("redauth"))));
        assert!(matches!(c.aud, Some(Cow::Owned(ref a)) if a == "app"));
        let c: UncheckedClaims<'_> = serde_json::from_slice(br#"{"exp":1,"iss":null}"#).unwrap();
        assert!(c.iss.is_none() && c.aud.is_none());
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let c = codec(&[1; 32]);
        for t in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b.c.d",
            &"a".repeat(5000),
            "eyJhbGciOiJub25lIn0.e30.",
            &format!("{HEADER_B64}.."),
            &format!("{HEADER_B64}.e30."),
            &format!("{HEADER_B64}.e30.{}", "A".repeat(43)),
            &format!("{HEADER_B64}.{}.{}", "A".repeat(5000), "A".repeat(43)),
        ] {
            assert!(
                matches!(c.verify(t, 1_000), Err(AuthError::InvalidToken)),
                "{t}"
            );
        }
    }
}
