//! A wrapper that keeps secret material out of `Debug` output and therefore out of logs.

use std::fmt;

/// Secret bytes (a JWT key, a Redis password). `Debug` and `Display` print a placeholder;
/// the only way to the bytes is [`Secret::expose`], which is easy to grep for.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` as is. No length rule here: the users of a secret check their own
    /// (32 bytes for token keys, [`crate::token::MIN_SECRET_BYTES`]).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: the one way to the bytes, so every use is easy to find with
    /// grep. Never log what it returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an unset secret (the `Default`), so configuration can tell "not given"
    /// apart without exposing the value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
