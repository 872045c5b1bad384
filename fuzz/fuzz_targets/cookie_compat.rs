//! The `@ethercorps/sveltekit-redis-session` compatible cookie codec, percent-encoding
//! included, and the `Cookie` header lookup.
//!
//! The first byte picks a mode: the rest as a wire value; or a valid signed cookie for
//! a fuzzed id, percent-encoded in a fuzzed way (any subset of characters, either hex
//! case), then edited.
//!
//! Properties: nothing panics; decode fails only with `Invalid`; a decoded id is a
//! compat id and the percent-decoded value is exactly what the library signs for it
//! (`sign(id)`), or the id itself when unsigned; encode→decode round-trips;
//! `percent_decode(percent_encode(s)) == s` for every string and `percent_encode` only
//! emits the `encodeURIComponent` alphabet; an edit that changes the percent-decoded
//! value is never accepted.

#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use redauth_core::cookie::compat::{CompatCodec, is_compat_id};
use redauth_core::cookie::{CookieError, find_cookie, percent_decode, percent_encode};
use redauth_core::secret::Secret;

const SECRET: &str = "your-secret-key";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn codecs() -> &'static (CompatCodec, CompatCodec) {
    static CODECS: OnceLock<(CompatCodec, CompatCodec)> = OnceLock::new();
    CODECS.get_or_init(|| {
        (
            CompatCodec::new(Secret::new(SECRET), true),
            CompatCodec::new(Secret::new(SECRET), false),
        )
    })
}

fn check_percent(s: &str) {
    let enc = percent_encode(s);
    assert!(
        enc.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)),
        "{enc:?}"
    );
    assert_eq!(percent_decode(&enc).as_deref(), Ok(s), "percent round trip");
}

fn check(wire: &str) {
    let (signed, unsigned) = codecs();
    if let Ok(decoded) = percent_decode(wire) {
        check_percent(&decoded);
    }
    check_percent(wire);
    let _ = find_cookie([wire], "session").ok().flatten().inspect(|v| {
        assert!(wire.contains(v));
        assert_eq!(v.trim(), *v);
    });

    match signed.decode(wire) {
        Ok(id) => {
            assert!(is_compat_id(&id), "{id:?}");
            assert_eq!(percent_decode(wire), Ok(signed.sign(&id)), "{wire:?}");
            assert_eq!(signed.decode(&signed.encode(&id).unwrap()), Ok(id));
        }
        Err(CookieError::Invalid) => {}
        Err(e) => panic!("signed decode failed with {e:?} for {wire:?}"),
    }
    match unsigned.decode(wire) {
        Ok(id) => {
            assert!(is_compat_id(&id), "{id:?}");
            assert_eq!(percent_decode(wire).as_ref(), Ok(&id));
            assert_eq!(unsigned.encode(&id).as_ref(), Ok(&id));
        }
        Err(CookieError::Invalid) => {}
        Err(e) => panic!("unsigned decode failed with {e:?} for {wire:?}"),
    }
}

/// Percent-encodes each character of `s` or not, as the input says; upper or lower hex.
fn some_percent_encoding(u: &mut Unstructured<'_>, s: &str) -> String {
    let lower = u.ratio(1u8, 4).unwrap_or(false);
    let mut out = String::new();
    for c in s.chars() {
        if u.ratio(1u8, 3).unwrap_or(false) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                if lower {
                    out.push_str(&format!("%{b:02x}"));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn edited(u: &mut Unstructured<'_>) {
    let (signed, _) = codecs();
    let id = if u.ratio(7u8, 8).unwrap_or(true) {
        let len = u.int_in_range(16..=128usize).unwrap_or(36);
        common::string_from(u, ALNUM, len)
    } else {
        let len = u.int_in_range(0..=140usize).unwrap_or(0);
        String::from_utf8_lossy(u.bytes(len).unwrap_or(&[])).into_owned()
    };
    let Ok(wire) = signed.encode(&id) else {
        assert!(!is_compat_id(&id), "encode refused a valid id {id:?}");
        return;
    };
    assert_eq!(signed.decode(&wire).as_ref(), Ok(&id), "round trip");
    // Any spelling of the same value is accepted (the library's cookies arrive encoded
    // or not), and nothing else.
    let spelled = some_percent_encoding(u, &signed.sign(&id));
    assert_eq!(signed.decode(&spelled).as_ref(), Ok(&id), "{spelled:?}");
    let changed = common::mutate(u, &spelled);
    if percent_decode(&changed).is_ok_and(|v| v != signed.sign(&id)) {
        assert!(
            signed.decode(&changed).is_err(),
            "an edited cookie decoded: {changed:?}"
        );
    }
    check(&changed);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(wire) = std::str::from_utf8(rest) {
            check(wire);
        }
    } else {
        edited(&mut Unstructured::new(rest));
    }
});
