//! All integration tests of the Redis store, in one binary.

mod conformance;
mod redis_specific;
