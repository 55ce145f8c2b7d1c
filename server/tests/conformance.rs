//! The backend conformance suite ([`presence_server::conformance`]) against the embedded
//! SQLite backend, each check on a fresh data dir.

use std::sync::Arc;

use presence_server::Retention;
use presence_server::conformance::Harness;
use presence_server::embedded::Embedded;
use presence_server::metrics::Metrics;
use presence_server::push::{PushConfig, Pusher};
use presence_server::store::Store;

async fn embedded() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let push = PushConfig {
        webhook_allow: vec!["127.0.0.1".into()],
        ..PushConfig::default()
    };
    let pusher = Arc::new(Pusher::new(
        push.senders().expect("senders"),
        metrics.push.clone(),
    ));
    let backend = Embedded::open(
        Store::open_dir(dir.path()).expect("store"),
        pusher.clone(),
        Retention::default(),
        metrics,
        stop_rx,
    )
    .expect("backend opens");
    Harness::new(Arc::new(backend), pusher, Box::new((dir, stop_tx)))
}

presence_server::backend_conformance_tests!(embedded);
