//! redauth's domain core: models, tokens, passwords, the [`store::Store`] trait, the
//! in-process session cache and the [`service::AuthService`]. No network or disk I/O
//! lives here; backends implement `Store` in their own crates.
//!
//! ```text
//! HTTP / CLI  ->  AuthService  ->  dyn Store  ->  Redis | embedded file db
//!                      |
//!                 SessionCache (hot path, no round trip)
//! ```
//!
//! Cookie sessions, the other entity called a session, have modules of their own, all
//! named `cookie_*`: [`cookie_store`] (the `CookieSessionStore` trait and the link to a
//! login session), [`cookie_session`] (the `CookieSessionManager`) and [`cookie_cache`]
//! (their cache, which depends on the `SessionCache` of login sessions).

#![deny(missing_docs)]

pub mod cache;
pub mod clock;
pub mod cookie;
pub mod cookie_cache;
pub mod cookie_session;
pub mod cookie_store;
pub mod error;
pub mod ids;
pub mod model;
pub mod network;
pub mod password;
pub mod rate_limit;
pub mod secret;
pub mod service;
pub mod store;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use error::{AuthError, StoreError, ValidationError};
pub use model::{Principal, Role, Session, User};
pub use secret::Secret;
pub use service::AuthService;
pub use store::Store;
