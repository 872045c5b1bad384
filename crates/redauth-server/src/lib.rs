//! The `redauth` server: configuration, the HTTP API, the admin CLI and logging, on
//! top of `redauth-core` and a store backend.

pub mod app;
pub mod cli;
pub mod config;
pub mod logging;
pub mod utc;
