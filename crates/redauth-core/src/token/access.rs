//! JWT access tokens (RFC 9068 profile, HS256).
//!
//! Signature checking is done by `jsonwebtoken` with the algorithm pinned to HS256;
//! the time and claim checks are done here because they must read the injected
//! [`Clock`](crate::clock::Clock) rather than the wall clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: UnixTime,
    pub nbf: UnixTime,
    pub exp: UnixTime,
    pub iss: String,
    pub aud: String,
    pub roles: Vec<String>,
}

/// The claims as they arrive, before checks: only `exp` is required at this stage so
/// that an expired token is reported as expired whatever else is wrong with it.
#[derive(Deserialize)]
struct UncheckedClaims {
    exp: UnixTime,
    sub: Option<String>,
    sid: Option<String>,
    jti: Option<String>,
    iat: Option<UnixTime>,
    nbf: Option<UnixTime>,
    iss: Option<String>,
    aud: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// The only header redauth issues. Anything else (`kid`, `jku`, `jwk`, `x5u`, `crit`,
/// `cty` for nested tokens, duplicate keys, another type) is refused outright, so no
/// header field can ever steer verification.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    typ: String,
}

fn has_strict_header(token: &str) -> bool {
    use base64::Engine as _;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<StrictHeader>(&bytes).ok())
        .is_some_and(|h| h.alg == "HS256" && h.typ == ACCESS_TOKEN_TYP)
}

#[derive(Debug, Clone)]
pub struct AccessTokenConfig {
    pub issuer: String,
    pub audience: String,
    pub ttl_secs: i64,
    /// Allowed clock skew between redauth nodes and token consumers.
    pub leeway_secs: i64,
}

pub struct AccessTokenCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
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
    pub fn new(keys: &TokenKeys, config: AccessTokenConfig) -> Self {
        // Signature and algorithm only; every claim check is ours (see module docs).
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        Self {
            encoding: EncodingKey::from_secret(&keys.access),
            decoding: DecodingKey::from_secret(&keys.access),
            validation,
            header,
            config,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.config.ttl_secs
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
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)
            .map_err(|_| AuthError::Internal("JWT encoding failed"))?;
        Ok((token, claims))
    }

    /// Verifies signature (HS256 only), expiry, not-before, issued-at, the exact header,
    /// a lifetime no longer than the configured one, issuer, audience and subject. Any failure is [`AuthError::InvalidToken`] except a valid
    /// but expired token, which is [`AuthError::TokenExpired`] so clients know to refresh.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<AccessClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        let data = jsonwebtoken::decode::<UncheckedClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?;
        let c = data.claims;
        let leeway = self.config.leeway_secs;
        if now >= c.exp.saturating_add(leeway) {
            return Err(AuthError::TokenExpired);
        }
        let in_future = |t: Option<UnixTime>| t.is_some_and(|t| t > now.saturating_add(leeway));
        if in_future(c.nbf) || in_future(c.iat) {
            return Err(AuthError::InvalidToken);
        }
        if !has_strict_header(token)
            || c.iat.is_some_and(|iat| {
                c.exp.saturating_sub(iat) > self.config.ttl_secs.saturating_add(leeway)
            })
            || c.iss.as_deref() != Some(self.config.issuer.as_str())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use base64::Engine as _;

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

    /// RFC 7515 Appendix A.1: a real HS256 JWS. Its signature must verify under the
    /// RFC's key, and redauth must still refuse it because it expired in 2011.
    #[test]
    fn rfc7515_a1_vector_signature_valid_but_expired() {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = codec(&k);
        // Signature valid: jsonwebtoken accepts it with time checks off.
        let raw: serde_json::Value = jsonwebtoken::decode(token, &c.decoding, &c.validation)
            .unwrap()
            .claims;
        assert_eq!(raw["iss"], "joe");
        assert!(matches!(
            c.verify(token, 1_700_000_000),
            Err(AuthError::TokenExpired)
        ));
        // The same token with one signature character changed is not even "expired".
        let tampered = format!("{}A", &token[..token.len() - 1]);
        assert!(matches!(
            c.verify(&tampered, 1_700_000_000),
            Err(AuthError::InvalidToken)
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
        let plain =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &c.encoding).unwrap();
        assert!(matches!(
            c.verify(&plain, 1_000),
            Err(AuthError::InvalidToken)
        ));
        // And HS384 under the same key is refused: the algorithm is pinned.
        let hs384 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims, &c.encoding).unwrap();
        assert!(matches!(
            c.verify(&hs384, 1_000),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let c = codec(&[1; 32]);
        for t in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            &"a".repeat(5000),
            "eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert!(
                matches!(c.verify(t, 1_000), Err(AuthError::InvalidToken)),
                "{t}"
            );
        }
    }
}
