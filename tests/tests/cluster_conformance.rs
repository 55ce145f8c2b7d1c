//! The backend conformance suite ([`presence_server::conformance`]) against the cluster
//! backend: each check on a fresh PostgreSQL database and a Redis of its own, then again on
//! a Redis Cluster of three primaries and three replicas, all real and on loopback ports of
//! their own (`presence_test_support::stores`).

use std::sync::Arc;

use presence_server::Retention;
use presence_server::cluster::{Cluster, ClusterConfig};
use presence_server::conformance::Harness;
use presence_server::metrics::Metrics;
use presence_server::push::{PushConfig, Pusher};
use presence_test_support::stores::{Redis, RedisCluster, shared_postgres};

async fn cluster() -> Harness {
    let redis = Redis::start();
    let url = redis.url();
    connect(vec![url], Box::new(redis)).await
}

/// One Redis Cluster (3 primaries, 3 replicas) for every check of this process: each check's
/// accounts have keys of their own.
fn redis_cluster() -> &'static RedisCluster {
    static CLUSTER: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

async fn on_redis_cluster() -> Harness {
    connect(redis_cluster().seed_urls(), Box::new(())).await
}

async fn connect(redis_urls: Vec<String>, redis: Box<dyn std::any::Any + Send>) -> Harness {
    let postgres_url = shared_postgres().fresh_database();
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
    let backend = Cluster::connect(
        &ClusterConfig {
            postgres_url,
            redis_urls,
            redis_ca_file: None,
        },
        pusher.clone(),
        Retention::default(),
        metrics,
        stop_rx,
    )
    .await
    .expect("cluster backend connects");
    Harness::new(Arc::new(backend), pusher, Box::new((redis, stop_tx)))
}

presence_server::backend_conformance_tests!(cluster);

/// The same checks with Redis Cluster as the hot store.
mod redis_cluster {
    presence_server::backend_conformance_tests!(super::on_redis_cluster);
}
