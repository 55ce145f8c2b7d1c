//! The real server on a free loopback port, in this process via [`presence_server::start`],
//! with its own data dir; stopped and started again on the same address and data.
//!
//! With `PRESENCE_TEST_BACKEND=cluster` in the environment, every such server is instead a
//! cluster node on a fresh PostgreSQL database and a Redis of its own, so the same tests pin
//! that both backends behave alike.

use std::net::SocketAddr;
use std::time::Duration;

use presence_protocol::Settings;

use crate::api::{Api, client};
use crate::stores::{Redis, shared_postgres};

/// The admin token of [`presence_server::Config::for_tests`].
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestServer {
    server: Option<presence_server::Server>,
    /// `http://127.0.0.1:PORT`; the same after [`TestServer::restart`].
    pub url: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    /// The Redis of a cluster-mode server.
    pub redis: Option<Redis>,
    config: presence_server::Config,
}

/// Whether tests run their servers in cluster mode (`PRESENCE_TEST_BACKEND=cluster`).
pub fn cluster_mode() -> bool {
    std::env::var("PRESENCE_TEST_BACKEND").is_ok_and(|v| v == "cluster")
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// Starts with the test config changed by `f` (timings, limits, allow-list).
    pub async fn with(f: impl FnOnce(&mut presence_server::Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = presence_server::Config::for_tests(dir.path());
        let mut redis = None;
        if cluster_mode() {
            let r = Redis::start();
            config.cluster = Some(presence_server::cluster::ClusterConfig {
                postgres_url: shared_postgres().fresh_database(),
                redis_urls: vec![r.url()],
                redis_ca_file: None,
            });
            redis = Some(r);
        }
        f(&mut config);
        Self::launch(config, dir, redis).await
    }

    async fn launch(
        mut config: presence_server::Config,
        dir: tempfile::TempDir,
        redis: Option<Redis>,
    ) -> TestServer {
        let server = presence_server::start(config.clone())
            .await
            .expect("server starts");
        let addr = server.addr();
        config.listen = addr;
        TestServer {
            server: Some(server),
            url: format!("http://{addr}"),
            addr,
            dir,
            client: client(),
            redis,
            config,
        }
    }

    /// In cluster mode, another node on this server's PostgreSQL and Redis, with the same
    /// settings; `None` on the embedded backend, where this server is the only one.
    pub async fn another_node(&self) -> Option<TestServer> {
        let cluster = self.config.cluster.clone()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = self.config.clone();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = dir.path().to_path_buf();
        config.cluster = Some(cluster);
        Some(Self::launch(config, dir, None).await)
    }

    /// A client of this server's contract.
    pub fn api(&self) -> Api {
        Api {
            url: self.url.clone(),
            client: self.client.clone(),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts again on the same data dir (or stores) and address.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut tries = 0;
        loop {
            match presence_server::start(self.config.clone()).await {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                // The port may linger a moment after shutdown.
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("restart: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("server restart failed: {e}"),
            }
        }
    }
}

/// Settings with short leases for expiry tests.
pub fn fast_settings() -> Settings {
    Settings {
        active_interval_ms: 200,
        active_ttl_ms: 1000,
        background_ttl_ms: 3000,
        renew_margin_ms: 1500,
    }
}

/// A free loopback port (for an address nothing listens on, or a server to start on later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
