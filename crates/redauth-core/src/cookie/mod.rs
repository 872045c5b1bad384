//! Cookies on the wire: the two session-cookie value codecs, the `Set-Cookie`
//! renderer every redauth cookie goes through (the session cookie and the refresh
//! cookie alike) and the one `Cookie` header parser ([`find_cookie`]).
//!
//! - [`native`]: redauth's own format. Ids of 128 bits from the OS RNG; the cookie is
//!   the id with an HMAC (`v1.<id>.<mac>`) or the id sealed with AES-256-GCM
//!   (`v1e.<sealed>`), under keys derived from the secret with HKDF.
//! - [`compat`]: exactly what `@ethercorps/sveltekit-redis-session` 1.x writes
//!   (`<id>.<base64(HMAC-SHA256(secret, id))>`), read strictly.
//!
//! Everything here is pure: no I/O, no clock. [`CookieAttributes`] renders `Set-Cookie`
//! values and refuses any that would exceed [`MAX_SET_COOKIE_BYTES`], because browsers
//! silently drop such cookies and the session would vanish without an error.

pub mod compat;
pub mod native;

use thiserror::Error;

/// Browsers are only required to store cookies up to 4096 bytes (RFC 6265 §6.1, counted
/// over name, value and attributes). redauth counts the whole `Set-Cookie` value.
pub const MAX_SET_COOKIE_BYTES: usize = 4096;

/// What can be wrong with a cookie value or with cookie settings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CookieError {
    /// The value is not one this codec issued: wrong shape, non-canonical encoding or a
    /// signature that does not verify. Deliberately one variant, so that a caller cannot
    /// tell a forged signature from a typo.
    #[error("the session cookie is malformed or its signature is wrong")]
    Invalid,
    /// The rendered `Set-Cookie` would be this many bytes, over [`MAX_SET_COOKIE_BYTES`]:
    /// a browser would drop it without a word.
    #[error("the Set-Cookie value would be {0} bytes; browsers only keep {MAX_SET_COOKIE_BYTES}")]
    TooLarge(usize),
    /// Settings browsers would reject or that cannot work (the text says which), found
    /// when the settings are made rather than at the first request.
    #[error("cookie settings: {0}")]
    Settings(&'static str),
    /// The OS random number generator failed: no session id or nonce could be made.
    #[error("the OS random number generator failed")]
    Rng,
}

/// The `SameSite` attribute. `Strict` is the default: it is what the SvelteKit library
/// sets, and it keeps the session cookie off every cross-site request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent only on same-site requests: a link followed from another site arrives without
    /// it.
    #[default]
    Strict,
    /// Also sent on top-level navigations from other sites with safe methods (following a
    /// link), never on their POSTs, frames or fetches.
    Lax,
    /// Needs `Secure` (browsers drop `SameSite=None` cookies without it).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

impl std::str::FromStr for SameSite {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(Self::Strict),
            "lax" => Ok(Self::Lax),
            "none" => Ok(Self::None),
            _ => Err(()),
        }
    }
}

/// Name and attributes of a cookie. Rendered in the order SvelteKit's
/// `cookie.serialize` uses (`Max-Age`, `Domain`, `Path`, `HttpOnly`, `Secure`,
/// `SameSite`), so a compat cookie set by redauth is byte-for-byte the library's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    /// The cookie's name. A `__Host-` or `__Secure-` prefix brings the browser rules
    /// [`Self::validate`] checks.
    pub name: String,
    /// `Path`: the browser sends the cookie only under it. Starts with `/`.
    pub path: String,
    /// `Domain`: `None` keeps the cookie to the exact host that set it (and is required
    /// for `__Host-`); a domain shares it with every subdomain.
    pub domain: Option<String>,
    /// `HttpOnly`: page scripts cannot read the cookie.
    pub http_only: bool,
    /// `Secure`: sent over HTTPS only. Off only for plain-http development.
    pub secure: bool,
    /// `SameSite`; see [`SameSite`].
    pub same_site: SameSite,
}

impl Default for CookieAttributes {
    /// The SvelteKit library's defaults (`session`, `/`, HttpOnly, Secure, Strict).
    fn default() -> Self {
        Self {
            name: "session".into(),
            path: "/".into(),
            domain: None,
            http_only: true,
            secure: true,
            same_site: SameSite::Strict,
        }
    }
}

impl CookieAttributes {
    /// The strongest browser binding: `__Host-` cookies are only accepted with
    /// `Secure`, `Path=/` and no `Domain`, so no subdomain can set or shadow them.
    pub fn host_prefixed(name: &str) -> Self {
        Self {
            name: format!("__Host-{name}"),
            ..Self::default()
        }
    }

    /// Checks what browsers would otherwise reject silently: the `__Host-` and
    /// `__Secure-` prefix rules, `SameSite=None` without `Secure`, and characters that
    /// would break the header.
    pub fn validate(&self) -> Result<(), CookieError> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(&self.name) {
            return Err(CookieError::Settings(
                "the cookie name must be a non-empty HTTP token",
            ));
        }
        let attr_ok = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';');
        if !self.path.starts_with('/') || !attr_ok(&self.path) {
            return Err(CookieError::Settings(
                "the cookie path must start with '/' and contain no spaces or ';'",
            ));
        }
        if let Some(d) = &self.domain
            && (d.is_empty() || !attr_ok(d))
        {
            return Err(CookieError::Settings(
                "the cookie domain must be a host name",
            ));
        }
        let lower = self.name.to_ascii_lowercase();
        if lower.starts_with("__host-")
            && (!self.secure || self.path != "/" || self.domain.is_some())
        {
            return Err(CookieError::Settings(
                "a __Host- cookie needs Secure, Path=/ and no Domain",
            ));
        }
        if lower.starts_with("__secure-") && !self.secure {
            return Err(CookieError::Settings("a __Secure- cookie needs Secure"));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(CookieError::Settings("SameSite=None needs Secure"));
        }
        Ok(())
    }

    /// `Set-Cookie` that stores `value` (already encoded for the wire) for `max_age`
    /// seconds, or for the browser session with `None`.
    pub fn set_cookie(&self, value: &str, max_age: Option<i64>) -> Result<String, CookieError> {
        let mut out = format!("{}={value}", self.name);
        if let Some(age) = max_age {
            out.push_str(&format!("; Max-Age={}", age.max(0)));
        }
        self.push_attributes(&mut out);
        if out.len() > MAX_SET_COOKIE_BYTES {
            return Err(CookieError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// `Set-Cookie` that deletes the cookie (`Max-Age=0`, same name, path and domain,
    /// which is what makes the browser match and drop it).
    pub fn clear_cookie(&self) -> String {
        let mut out = format!("{}=; Max-Age=0", self.name);
        self.push_attributes(&mut out);
        out
    }

    fn push_attributes(&self, out: &mut String) {
        if let Some(d) = &self.domain {
            out.push_str(&format!("; Domain={d}"));
        }
        out.push_str(&format!("; Path={}", self.path));
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out.push_str(&format!("; SameSite={}", self.same_site.as_str()));
    }
}

/// A request that carries two cookies of one name with different values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the request carries two different {name} cookies")]
pub struct DuplicateCookie {
    /// The name of the cookie that came twice.
    pub name: String,
}

/// The value of cookie `name` in a request's `Cookie` headers (`a=1; b=2`; HTTP/2 may
/// split one into several), as sent: no decoding. Every cookie redauth reads goes
/// through here.
///
/// Two cookies of that name with different values are refused, not resolved by
/// taking the first: a cookie planted from a sibling subdomain (or over plain http) is
/// sent beside the real one, and browsers order cookies by path length and age, so
/// taking either would let the planter choose the session the victim acts in. The
/// same value twice is one cookie.
pub fn find_cookie<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Result<Option<&'a str>, DuplicateCookie> {
    let mut found: Option<&str> = None;
    for value in cookie_headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
    {
        match found {
            Some(first) if first != value => {
                return Err(DuplicateCookie {
                    name: name.to_owned(),
                });
            }
            _ => found = Some(value),
        }
    }
    Ok(found)
}

/// `encodeURIComponent`, which is what SvelteKit applies to cookie values: everything
/// but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` becomes `%XX`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Strict inverse of [`percent_encode`]: a `%` not followed by two hex digits, or bytes
/// that are not UTF-8, make the whole value invalid (a lenient decoder would let two
/// different cookies name the same session).
pub fn percent_decode(value: &str) -> Result<String, CookieError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(CookieError::Invalid)?;
            let s = std::str::from_utf8(hex).map_err(|_| CookieError::Invalid)?;
            let v = u8::from_str_radix(s, 16).map_err(|_| CookieError::Invalid)?;
            if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(CookieError::Invalid);
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| CookieError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_sveltekit_order_and_clears_with_the_same_scope() {
        let a = CookieAttributes::default();
        assert_eq!(
            a.set_cookie("abc", Some(86400)).unwrap(),
            "session=abc; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            a.clear_cookie(),
            "session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict"
        );
        let b = CookieAttributes {
            name: "sid".into(),
            path: "/app".into(),
            domain: Some("example.com".into()),
            http_only: false,
            secure: false,
            same_site: SameSite::Lax,
        };
        assert_eq!(
            b.set_cookie("v", None).unwrap(),
            "sid=v; Domain=example.com; Path=/app; SameSite=Lax"
        );
        b.validate().unwrap();
    }

    #[test]
    fn host_prefix_rules_are_enforced() {
        let good = CookieAttributes::host_prefixed("redauth_session");
        good.validate().unwrap();
        assert!(good.name.starts_with("__Host-"));
        for bad in [
            CookieAttributes {
                secure: false,
                ..good.clone()
            },
            CookieAttributes {
                path: "/app".into(),
                ..good.clone()
            },
            CookieAttributes {
                domain: Some("example.com".into()),
                ..good.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(CookieError::Settings(_))),
                "{bad:?}"
            );
        }
        let secure_prefix = CookieAttributes {
            name: "__Secure-s".into(),
            secure: false,
            ..CookieAttributes::default()
        };
        assert!(secure_prefix.validate().is_err());
        let none_insecure = CookieAttributes {
            same_site: SameSite::None,
            secure: false,
            ..CookieAttributes::default()
        };
        assert!(none_insecure.validate().is_err());
        for name in ["", "a b", "a;b", "a=b", "ü"] {
            let a = CookieAttributes {
                name: name.into(),
                ..CookieAttributes::default()
            };
            assert!(a.validate().is_err(), "{name:?}");
        }
        let bad_path = CookieAttributes {
            path: "/a;b".into(),
            ..CookieAttributes::default()
        };
        assert!(bad_path.validate().is_err());
    }

    #[test]
    fn the_4096_byte_limit_is_enforced() {
        let a = CookieAttributes::default();
        let fixed = a.set_cookie("", Some(86400)).unwrap().len();
        let fits = "x".repeat(MAX_SET_COOKIE_BYTES - fixed);
        assert_eq!(
            a.set_cookie(&fits, Some(86400)).unwrap().len(),
            MAX_SET_COOKIE_BYTES
        );
        let over = format!("{fits}x");
        assert_eq!(
            a.set_cookie(&over, Some(86400)),
            Err(CookieError::TooLarge(MAX_SET_COOKIE_BYTES + 1))
        );
    }

    #[test]
    fn percent_coding_matches_encode_uri_component_and_is_strict() {
        assert_eq!(percent_encode("a+b/c=d.e_f-g~"), "a%2Bb%2Fc%3Dd.e_f-g~");
        assert_eq!(percent_decode("a%2Bb%2fc%3D").unwrap(), "a+b/c=");
        assert_eq!(percent_decode("plain+/=").unwrap(), "plain+/=");
        for bad in ["%", "%2", "%zz", "%+1", "%C3"] {
            assert_eq!(percent_decode(bad), Err(CookieError::Invalid), "{bad}");
        }
    }

    #[test]
    fn finds_a_cookie_in_the_headers_and_refuses_two_different_ones() {
        let h = "a=1; session=xyz%3D; b=2";
        assert_eq!(find_cookie([h], "session"), Ok(Some("xyz%3D")));
        assert_eq!(find_cookie([h], "sess"), Ok(None));
        assert_eq!(find_cookie([], "session"), Ok(None));
        assert_eq!(
            find_cookie(["a=1", " session=v "], "session"),
            Ok(Some("v"))
        );
        assert_eq!(
            find_cookie(["session=same; session=same"], "session"),
            Ok(Some("same"))
        );
        let two = DuplicateCookie {
            name: "session".into(),
        };
        assert_eq!(
            find_cookie(["session=first; session=second"], "session"),
            Err(two.clone())
        );
        assert_eq!(
            find_cookie(["session=first", "b=2; session=second"], "session"),
            Err(two),
            "across headers too"
        );
        assert_eq!(find_cookie(["session"], "session"), Ok(None), "no '='");
    }
}
