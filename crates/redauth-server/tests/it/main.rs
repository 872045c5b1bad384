//! All integration tests of the server, in one binary (one link on a 2-core machine).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod admin;
mod auth_flow;
mod brute_force;
mod builder;
mod cache_and_round_trips;
mod cli;
mod connections;
mod cookie_sessions;
mod cross_origin;
mod embedded_mode;
mod enumeration;
mod feed_watch;
mod guards;
mod http_hygiene;
mod interop_sveltekit;
mod jwt_attacks;
mod logs;
mod openapi;
mod readme;
mod session_cap;
mod support;
mod three_nodes;
mod trusted_app;
mod wire_shapes;
