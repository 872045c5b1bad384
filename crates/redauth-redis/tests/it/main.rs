//! All integration tests of the Redis store, in one binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bounded_scripts;
mod conformance;
mod cookie_sessions;
mod feed_watch;
mod redis_specific;
