use std::sync::Arc;

use redauth_core::Store;
use redauth_embedded::EmbeddedStore;

use crate::temp_dir::TempDir;

async fn embedded_store() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}

mod store {
    use super::*;
    redauth_testkit::store_conformance_tests!(embedded_store);
}

mod service_races {
    use super::*;
    redauth_testkit::service_race_tests!(embedded_store);
}
