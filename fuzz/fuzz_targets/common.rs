//! Helpers shared by the fuzz targets (each target includes this file as a module).

#![allow(dead_code)]

use arbitrary::Unstructured;

/// Characters that matter to the formats under test: every separator and alphabet
/// boundary of base64, base64url, percent-encoding and the token layouts, plus a
/// multi-byte character.
#[rustfmt::skip]
const INTERESTING: &[char] = &[
    '.', '=', '%', '+', '/', '-', '_', ':', ' ', ';', ',', '"', '\\', 'A', 'B', 'Q', 'g', 'h',
    'z', '0', '9', 'a', 'f', 'F', 'G', '\0', '\n', 'é', '\u{feff}', '\u{10ffff}',
];

/// Applies up to 8 fuzzer-chosen edits (replace, insert, delete, truncate, duplicate a
/// segment) to `s`, keeping it valid UTF-8.
pub fn mutate(u: &mut Unstructured<'_>, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let edits = u.int_in_range(0..=8u8).unwrap_or(0);
    for _ in 0..edits {
        let Ok(op) = u.int_in_range(0..=5u8) else {
            break;
        };
        let pos = u.choose_index(chars.len() + 1).unwrap_or(0);
        let c = pick_char(u);
        match op {
            0 if pos < chars.len() => chars[pos] = c,
            1 => chars.insert(pos, c),
            2 if pos < chars.len() => {
                chars.remove(pos);
            }
            3 => chars.truncate(pos),
            4 => {
                // Repeat a slice: extra segments, doubled padding.
                let end = (pos + u.int_in_range(1..=8usize).unwrap_or(1)).min(chars.len());
                let piece: Vec<char> = chars[pos..end].to_vec();
                chars.splice(pos..pos, piece);
            }
            _ if pos < chars.len() => {
                // Flip one bit of an ASCII character, staying ASCII.
                let bit = u.int_in_range(0..=6u8).unwrap_or(0);
                if chars[pos].is_ascii() {
                    chars[pos] = char::from((chars[pos] as u8) ^ (1 << bit));
                }
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn pick_char(u: &mut Unstructured<'_>) -> char {
    if u.ratio(1u8, 2).unwrap_or(false) {
        *u.choose(INTERESTING).unwrap_or(&'A')
    } else {
        char::from(u.int_in_range(0x20..=0x7eu8).unwrap_or(b'A'))
    }
}

/// A string of exactly `len` characters from `alphabet`, drawn from the input.
pub fn string_from(u: &mut Unstructured<'_>, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(*u.choose(alphabet).unwrap_or(&alphabet[0])))
        .collect()
}

pub const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
