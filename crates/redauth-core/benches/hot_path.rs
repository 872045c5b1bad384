//! Micro-benchmarks of the per-request work in redauth-core: what one
//! `GET /api/auth/verify` costs before the HTTP layer (access-token verify, cache hit),
//! what a refresh costs besides its Redis call (parse + hash), signing, and building a
//! principal from a store record, and the session-cookie codecs (sign/verify,
//! encrypt/decrypt, and the SvelteKit-compatible format). Run with `cargo bench -p redauth-core`; the
//! end-to-end figures live in `bench/` and `docs/performance.md`.

// Setup failures in a benchmark are bugs in the benchmark; failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use redauth_core::cache::SessionCache;
use redauth_core::cookie::compat::{CompatCodec, compat_random_id};
use redauth_core::cookie::native::{NativeCodec, NativeMode};
use redauth_core::ids::random_id;
use redauth_core::model::Access;
use redauth_core::token::TokenKeys;
use redauth_core::token::access::{AccessTokenCodec, AccessTokenConfig};
use redauth_core::token::refresh::RefreshToken;
use redauth_core::{Clock, ManualClock, Principal, Role, Secret, Session, User};

fn keys() -> TokenKeys {
    TokenKeys::from_single_secret(&Secret::new("bench-secret-0123456789-0123456789-abcdef"))
        .unwrap()
}

fn codec() -> AccessTokenCodec {
    AccessTokenCodec::new(&keys(), AccessTokenConfig::default())
}

/// Shaped like a real principal: random ids, one role with one permission.
fn principal(expires: i64) -> Principal {
    Principal {
        user_id: random_id().unwrap().into(),
        username: "alice@example.com".into(),
        session_id: random_id().unwrap().into(),
        session_expires_at: expires,
        access: Access {
            roles: vec!["reader".into()],
            permissions: ["reader:use".to_owned()].into_iter().collect(),
        }
        .into(),
    }
}

fn access_token(c: &mut Criterion) {
    let codec = codec();
    let now = ManualClock::starting_now().now();
    let p = principal(now + 3600);
    c.bench_function("access_token/sign", |b| {
        b.iter(|| codec.issue(black_box(&p), now).unwrap())
    });
    let (token, _) = codec.issue(&p, now).unwrap();
    c.bench_function("access_token/verify", |b| {
        b.iter(|| codec.verify(black_box(&token), now).unwrap())
    });
}

fn cache_hit(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::starting_now());
    let cache = SessionCache::new(100_000, 3600, clock.clone());
    // A populated cache, so the hit is not served from a tiny, always-hot table.
    for _ in 0..10_000 {
        cache.insert_loaded(cache.load_ticket(), principal(clock.now() + 3600));
    }
    let p = cache.insert_loaded(cache.load_ticket(), principal(clock.now() + 3600));
    let (uid, sid) = (p.user_id.clone(), p.session_id.clone());
    c.bench_function("cache/hit", |b| {
        b.iter(|| cache.get(black_box(&uid), black_box(&sid)).unwrap())
    });
}

fn refresh_token(c: &mut Criterion) {
    let keys = keys();
    let token = RefreshToken::generate(&random_id().unwrap(), &random_id().unwrap()).unwrap();
    let presented = token.as_str().to_owned();
    c.bench_function("refresh_token/parse_and_hash", |b| {
        b.iter(|| {
            let t = RefreshToken::parse(black_box(&presented)).unwrap();
            t.hash(&keys)
        })
    });
}

fn principal_decode(c: &mut Criterion) {
    let user = User {
        id: random_id().unwrap(),
        username: "alice@example.com".into(),
        email: "alice@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".into(),
        roles: vec!["reader".into(), "writer".into()],
        disabled: false,
        created_at: 0,
        updated_at: 0,
        password_changed_at: 0,
        security_version: 0,
    };
    let session = Session {
        sid: random_id().unwrap(),
        user_id: user.id.clone(),
        created_at: 0,
        last_seen: 0,
        absolute_expiry: 7 * 24 * 3600,
        idle_expiry: 3 * 24 * 3600,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("Mozilla/5.0".into()),
        refresh_generation: 0,
    };
    let roles: Vec<Role> = ["admin", "reader", "writer"]
        .into_iter()
        .map(|name| Role {
            name: name.into(),
            permissions: vec![format!("{name}:use"), format!("{name}:list")],
        })
        .collect();
    c.bench_function("principal/from_parts", |b| {
        b.iter(|| Principal::from_parts(black_box(&session), black_box(&user), black_box(&roles)))
    });
}

fn cookies(c: &mut Criterion) {
    let secret = Secret::new("bench-cookie-secret-0123456789-0123456789");
    let id = random_id().unwrap();
    let signed = NativeCodec::new(&secret, NativeMode::Signed).unwrap();
    let value = signed.encode(&id).unwrap();
    c.bench_function("cookie/native_sign", |b| {
        b.iter(|| signed.encode(black_box(&id)).unwrap())
    });
    c.bench_function("cookie/native_verify", |b| {
        b.iter(|| signed.decode(black_box(&value)).unwrap())
    });
    let sealed = NativeCodec::new(&secret, NativeMode::Encrypted).unwrap();
    let value = sealed.encode(&id).unwrap();
    // Includes drawing the nonce from the OS RNG, as every real encryption does.
    c.bench_function("cookie/native_encrypt", |b| {
        b.iter(|| sealed.encode(black_box(&id)).unwrap())
    });
    c.bench_function("cookie/native_decrypt", |b| {
        b.iter(|| sealed.decode(black_box(&value)).unwrap())
    });
    let compat = CompatCodec::new(secret, true);
    let id = compat_random_id().unwrap();
    let value = compat.encode(&id).unwrap();
    c.bench_function("cookie/compat_sign", |b| {
        b.iter(|| compat.encode(black_box(&id)).unwrap())
    });
    c.bench_function("cookie/compat_verify", |b| {
        b.iter(|| compat.decode(black_box(&value)).unwrap())
    });
}

criterion_group!(
    benches,
    access_token,
    cache_hit,
    refresh_token,
    principal_decode,
    cookies
);
criterion_main!(benches);
