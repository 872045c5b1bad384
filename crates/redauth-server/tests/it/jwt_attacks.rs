//! The JWT attack suite (RFC 8725 / OWASP): every forged, altered or misused token is
//! answered 401 (never 500, never a hang), and no variant is ever accepted.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::{Resp, SECRET, TestApp};

fn b64(v: &str) -> String {
    B64.encode(v)
}

fn sign(msg: &str, key: &[u8], alg: Algorithm) -> String {
    jsonwebtoken::crypto::sign(msg.as_bytes(), &EncodingKey::from_secret(key), alg).unwrap()
}

/// A token from raw header and payload JSON text, HMAC-signed with `key` and `alg`.
fn forge(header: &str, payload: &str, key: &[u8], alg: Algorithm) -> String {
    let msg = format!("{}.{}", b64(header), b64(payload));
    format!("{msg}.{}", sign(&msg, key, alg))
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn with(claims: &Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut c = claims.as_object().unwrap().clone();
    edit(&mut c);
    Value::Object(c).to_string()
}

/// Exactly the header redauth issues: verification compares these bytes, so every
/// forged header below differs from it only in what the case names.
const H: &str = r#"{"typ":"at+jwt","alg":"HS256"}"#;

async fn verify(app: &TestApp, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let call = app.send(Method::GET, "/api/auth/verify", None, &headers);
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("no hang")
}

#[tokio::test]
async fn forged_and_tampered_access_tokens_are_all_refused() {
    let app = TestApp::start().await;
    app.user("alice", &["reader"]).await;
    let (good, refresh) = app.login("alice").await;
    let key = SECRET.as_bytes();
    let c = claims_of(&good);
    let payload = c.to_string();
    let now = c["iat"].as_i64().unwrap();
    let (h64, p64, sig) = {
        let mut it = good.split('.');
        (
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
        )
    };
    assert_eq!(
        verify(&app, &good).await.status,
        StatusCode::NO_CONTENT,
        "the untouched token works"
    );
    assert_eq!(
        verify(&app, &forge(H, &payload, key, Algorithm::HS256))
            .await
            .status,
        StatusCode::NO_CONTENT,
        "the forge helper is faithful"
    );

    let mut cases: Vec<(String, String)> = Vec::new();
    let mut case = |name: &str, token: String| cases.push((name.to_owned(), token));

    for none in ["none", "None", "NONE", "nOnE"] {
        let h = format!(r#"{{"typ":"at+jwt","alg":"{none}"}}"#);
        case(
            &format!("alg {none}, empty signature"),
            format!("{}.{p64}.", b64(&h)),
        );
        case(
            &format!("alg {none}, real signature"),
            format!("{}.{p64}.{sig}", b64(&h)),
        );
    }
    case(
        "HS384 with the same secret",
        forge(
            r#"{"typ":"at+jwt","alg":"HS384"}"#,
            &payload,
            key,
            Algorithm::HS384,
        ),
    );
    case(
        "HS512 with the same secret",
        forge(
            r#"{"typ":"at+jwt","alg":"HS512"}"#,
            &payload,
            key,
            Algorithm::HS512,
        ),
    );
    for asym in ["RS256", "ES256", "PS256", "EdDSA"] {
        let h = format!(r#"{{"typ":"at+jwt","alg":"{asym}"}}"#);
        let msg = format!("{}.{p64}", b64(&h));
        case(
            &format!("{asym} header, HMAC signature (key confusion)"),
            format!("{msg}.{}", sign(&msg, key, Algorithm::HS256)),
        );
    }
    case("signature stripped", format!("{h64}.{p64}"));
    case("signature empty", format!("{h64}.{p64}."));
    case(
        "signature truncated",
        format!("{h64}.{p64}.{}", &sig[..sig.len() / 2]),
    );
    let flip = |i: usize| {
        let mut b = sig.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    case(
        "first signature char flipped",
        format!("{h64}.{p64}.{}", flip(0)),
    );
    case(
        "middle signature char flipped",
        format!("{h64}.{p64}.{}", flip(sig.len() / 2)),
    );
    case(
        "signature of another key",
        forge(
            H,
            &payload,
            b"another-secret-another-secret-xx",
            Algorithm::HS256,
        ),
    );
    case(
        "payload changed under the old signature",
        format!(
            "{h64}.{}.{sig}",
            b64(&with(&c, |m| {
                m.insert("roles".into(), json!(["admin"]));
            }))
        ),
    );
    for (name, header) in [
        (
            "kid path traversal",
            r#"{"typ":"at+jwt","alg":"HS256","kid":"../../../../dev/null"}"#,
        ),
        (
            "kid injection",
            r#"{"typ":"at+jwt","alg":"HS256","kid":"' OR '1'='1"}"#,
        ),
        (
            "jku to a foreign key set",
            r#"{"typ":"at+jwt","alg":"HS256","jku":"https://evil.example/jwks.json"}"#,
        ),
        (
            "embedded jwk",
            r#"{"typ":"at+jwt","alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}"#,
        ),
        (
            "x5u",
            r#"{"typ":"at+jwt","alg":"HS256","x5u":"https://evil.example/cert.pem"}"#,
        ),
        (
            "unknown crit",
            r#"{"typ":"at+jwt","alg":"HS256","crit":["exp"]}"#,
        ),
        (
            "nested JWT (cty)",
            r#"{"typ":"at+jwt","alg":"HS256","cty":"JWT"}"#,
        ),
        (
            "duplicate alg key",
            r#"{"typ":"at+jwt","alg":"none","alg":"HS256"}"#,
        ),
        (
            "duplicate typ key",
            r#"{"typ":"JWT","typ":"at+jwt","alg":"HS256"}"#,
        ),
        ("typ JWT", r#"{"typ":"JWT","alg":"HS256"}"#),
        ("no typ", r#"{"alg":"HS256"}"#),
        // The same header as redauth's in meaning, not in bytes: refused by design.
        ("header keys reordered", r#"{"alg":"HS256","typ":"at+jwt"}"#),
        (
            "header with whitespace",
            r#"{"typ": "at+jwt", "alg": "HS256"}"#,
        ),
    ] {
        // Signed with the real key: only the header is wrong.
        case(name, forge(header, &payload, key, Algorithm::HS256));
    }
    case(
        "nested JWT as payload",
        forge(
            H,
            &serde_json::to_string(&good).unwrap(),
            key,
            Algorithm::HS256,
        ),
    );
    let dup_sub = payload.replacen('{', &format!(r#"{{"sub":"{}","#, "A".repeat(22)), 1);
    case(
        "duplicate sub claim",
        forge(H, &dup_sub, key, Algorithm::HS256),
    );
    type ClaimEdit = Box<dyn Fn(&mut serde_json::Map<String, Value>)>;
    let edits: Vec<(&str, ClaimEdit)> = vec![
        (
            "wrong aud",
            Box::new(|m| {
                m.insert("aud".into(), json!("other-service"));
            }),
        ),
        (
            "missing aud",
            Box::new(|m| {
                m.remove("aud");
            }),
        ),
        (
            "array aud",
            Box::new(|m| {
                m.insert("aud".into(), json!(["redauth"]));
            }),
        ),
        (
            "wrong iss",
            Box::new(|m| {
                m.insert("iss".into(), json!("evil"));
            }),
        ),
        (
            "missing iss",
            Box::new(|m| {
                m.remove("iss");
            }),
        ),
        (
            "missing sub",
            Box::new(|m| {
                m.remove("sub");
            }),
        ),
        (
            "missing sid",
            Box::new(|m| {
                m.remove("sid");
            }),
        ),
        (
            "missing exp",
            Box::new(|m| {
                m.remove("exp");
            }),
        ),
        (
            "string exp",
            Box::new(|m| {
                m.insert("exp".into(), json!("9999999999"));
            }),
        ),
        (
            "float exp",
            Box::new(|m| {
                m.insert("exp".into(), json!(1e308));
            }),
        ),
        (
            "absurd exp",
            Box::new(move |m| {
                m.insert("exp".into(), json!(now + 10 * 365 * 86_400));
            }),
        ),
        (
            "max exp",
            Box::new(|m| {
                m.insert("exp".into(), json!(i64::MAX));
            }),
        ),
        (
            "nbf in the future",
            Box::new(move |m| {
                m.insert("nbf".into(), json!(now + 3600));
            }),
        ),
        (
            "iat in the future",
            Box::new(move |m| {
                m.insert("iat".into(), json!(now + 3600));
            }),
        ),
        (
            "sub of another user",
            Box::new(|m| {
                m.insert("sub".into(), json!("B".repeat(22)));
            }),
        ),
        (
            "sid not an id",
            Box::new(|m| {
                m.insert("sid".into(), json!("../../x"));
            }),
        ),
    ];
    for (name, edit) in &edits {
        case(
            name,
            forge(H, &with(&c, |m| edit(m)), key, Algorithm::HS256),
        );
    }
    case("padding on segments", format!("{h64}=.{p64}=.{sig}="));
    case(
        "standard base64 characters",
        format!(
            "{h64}.{p64}.{}",
            sig.replace('-', "+").replace('_', "/") + "+/"
        ),
    );
    case("non-base64 characters", format!("{h64}.{p64}!.{sig}"));
    case("extra segment", format!("{good}.{sig}"));
    case(
        "five segments (JWE shape)",
        format!("{h64}.{p64}.{sig}.{sig}.{sig}"),
    );
    case("one segment", h64.clone());
    case("two segments", format!("{h64}.{p64}"));
    case(
        "oversized token",
        format!("{h64}.{}.{sig}", "A".repeat(10_000)),
    );
    case("refresh token as access token", refresh.clone());
    case("empty", String::new());

    for (name, token) in &cases {
        let r = verify(&app, token).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{name} was not refused: {:?}",
            r.body
        );
        assert!(
            matches!(r.error_code(), "invalid_token" | "missing_token"),
            "{name}: {}",
            r.error_code()
        );
        let me = app.get_bearer("/api/auth/me", token).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{name} via /me");
    }

    // Expired but otherwise perfect: refused as expired, so clients know to refresh.
    let expired = forge(
        H,
        &with(&c, |m| {
            m.insert("iat".into(), json!(now - 2000));
            m.insert("nbf".into(), json!(now - 2000));
            m.insert("exp".into(), json!(now - 1000));
        }),
        key,
        Algorithm::HS256,
    );
    assert_eq!(verify(&app, &expired).await.error_code(), "token_expired");
    // An access token is not a refresh token either.
    let r = app
        .post("/api/auth/refresh", json!({"refresh_token": good}))
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
    );
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = TestApp::start().await;
    let big = "a".repeat(20_000);
    let r = app
        .send(Method::GET, "/api/auth/verify", None, &[("x-filler", &big)])
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large"
        )
    );
    let r = app
        .send(
            Method::GET,
            "/api/auth/verify",
            None,
            &[("authorization", &format!("Bearer {big}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let token = "a".repeat(5_000);
    let r = app
        .send(
            Method::GET,
            "/api/auth/verify",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "large but within header limit"
    );
}
