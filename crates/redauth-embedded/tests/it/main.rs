//! All integration tests of the embedded store, in one binary.
//!
//! The modules are `cfg(test)` so that clippy treats their helpers as test code (where
//! the workspace allows unwrap and panic), not only the `#[test]` functions.

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod cookie_sessions;
#[cfg(test)]
mod embedded_specific;
#[cfg(test)]
mod temp_dir;
