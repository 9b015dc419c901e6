//! A real etcd for the tests: Debian's `etcd-server` (installed by
//! `scripts/test`; `HOTFIXD_TEST_ETCD` names another binary), started on
//! free loopback ports with its data in a temporary directory, killed when
//! dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotfixd::store::etcd::api::etcdserverpb::{RangeRequest, kv_client::KvClient};

use super::harness::free_port;

/// One etcd member, a cluster of its own.
pub struct Etcd {
    child: Child,
    /// `http://127.0.0.1:PORT`, for clients.
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl Etcd {
    /// Starts a one-member cluster and waits until it answers a range read.
    pub async fn start() -> Etcd {
        let bin = std::env::var("HOTFIXD_TEST_ETCD").unwrap_or_else(|_| "etcd".into());
        let data = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(&bin)
            .args(["--name", "t", "--data-dir"])
            .arg(data.path())
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {bin} (Debian's etcd-server; scripts/test installs it): {e}")
            });
        let etcd = Etcd {
            child,
            endpoint,
            _data: data,
        };
        etcd.ready().await;
        etcd
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut kv) = KvClient::connect(self.endpoint.clone()).await {
                let probe = RangeRequest {
                    key: b"probe".to_vec(),
                    ..Default::default()
                };
                if kv.range(probe).await.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "etcd did not answer in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
