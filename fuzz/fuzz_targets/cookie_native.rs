//! The native session-cookie codec (`v1.<id>.<mac>`, `v1e.<sealed>`, plain id).
//!
//! The first byte picks a mode: the rest as a cookie value for all three codecs; or a
//! valid signed / encrypted cookie for a fuzzed id, then edited.
//!
//! Properties: decode never panics and only fails with `Invalid`; a decoded id is a
//! well-formed redauth id; a plain value decodes only to itself; a signed value decodes
//! only if it is byte for byte what `encode` gives for that id; an encrypted value
//! decodes only if it has the encoder's prefix and length and the id round-trips; an
//! edited cookie never decodes (signed: unless unchanged; encrypted: any change).

#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use redauth_core::cookie::CookieError;
use redauth_core::cookie::native::{NativeCodec, NativeMode};
use redauth_core::ids::is_valid_id;
use redauth_core::secret::Secret;

const SECRET: &str = "fuzz-cookie-secret-0123456789abcdef";

fn codecs() -> &'static [NativeCodec; 3] {
    static CODECS: OnceLock<[NativeCodec; 3]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let make = |mode| NativeCodec::new(&Secret::new(SECRET), mode).unwrap();
        [
            make(NativeMode::Plain),
            make(NativeMode::Signed),
            make(NativeMode::Encrypted),
        ]
    })
}

fn check(codec: &NativeCodec, value: &str) {
    let id = match codec.decode(value) {
        Ok(id) => id,
        Err(CookieError::Invalid) => return,
        Err(e) => panic!("decode failed with {e:?} for {value:?}"),
    };
    assert!(is_valid_id(&id), "{id:?}");
    assert!(value.len() <= codec.max_value_len());
    match codec.mode() {
        NativeMode::Plain => assert_eq!(id, value),
        NativeMode::Signed => {
            assert_eq!(
                codec.encode(&id).unwrap(),
                value,
                "non-canonical signed value"
            );
        }
        NativeMode::Encrypted => {
            assert!(value.starts_with("v1e."), "{value:?}");
            assert!(!value.contains(&id), "the id shows through: {value:?}");
            let again = codec.encode(&id).unwrap();
            assert_eq!(again.len(), value.len());
            assert_eq!(codec.decode(&again).unwrap(), id);
        }
    }
    // One cookie is valid under exactly one mode.
    for other in codecs().iter().filter(|c| c.mode() != codec.mode()) {
        assert!(other.decode(value).is_err(), "{value:?} valid in two modes");
    }
}

fn edited(u: &mut Unstructured<'_>, codec: &NativeCodec) {
    let id = if u.ratio(7u8, 8).unwrap_or(true) {
        common::string_from(u, common::ID_ALPHABET, 22)
    } else {
        let len = u.int_in_range(0..=40usize).unwrap_or(0);
        String::from_utf8_lossy(u.bytes(len).unwrap_or(&[])).into_owned()
    };
    let Ok(value) = codec.encode(&id) else {
        assert!(!is_valid_id(&id), "encode refused a valid id {id:?}");
        return;
    };
    assert_eq!(codec.decode(&value).as_ref(), Ok(&id), "round trip");
    let changed = common::mutate(u, &value);
    if changed != value {
        assert_eq!(
            codec.decode(&changed),
            Err(CookieError::Invalid),
            "an edited cookie decoded: {changed:?} (from {value:?})"
        );
    }
    for c in codecs() {
        check(c, &changed);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let [_, signed, encrypted] = codecs();
    match mode % 3 {
        0 => {
            if let Ok(value) = std::str::from_utf8(rest) {
                for c in codecs() {
                    check(c, value);
                }
            }
        }
        1 => edited(&mut Unstructured::new(rest), signed),
        _ => edited(&mut Unstructured::new(rest), encrypted),
    }
});
