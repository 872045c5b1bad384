//! Test support for redauth: real `redis-server` processes on free ports, and the one
//! conformance suite every [`redauth_core::Store`] implementation runs.
//!
//! ```ignore
//! let redis = RedisServer::start();
//! let store = RedisStore::connect(&redis.url(), "test:")?;
//! ```

pub mod conformance;
pub mod cookie_conformance;
mod pausing_store;
mod proxy;
mod redis_server;
pub mod service_races;

pub use pausing_store::{PauseHandle, PausingStore};
pub use proxy::CountingProxy;
pub use redis_server::RedisServer;
