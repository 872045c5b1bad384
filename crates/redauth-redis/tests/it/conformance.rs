use std::sync::Arc;

use redauth_core::Store;
use redauth_redis::{RedisConfig, RedisStore};
use redauth_testkit::RedisServer;

async fn redis_store() -> (Arc<dyn Store>, RedisServer) {
    let server = RedisServer::start();
    let store = RedisStore::connect(&RedisConfig::new(&server.url(), "conformance:")).unwrap();
    (Arc::new(store), server)
}

mod store {
    use super::*;
    redauth_testkit::store_conformance_tests!(redis_store);
}

mod service_races {
    use super::*;
    redauth_testkit::service_race_tests!(redis_store);
}
