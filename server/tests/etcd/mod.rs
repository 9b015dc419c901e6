//! A real etcd for the tests: Debian's `etcd-server` (installed by
//! `scripts/test`; `HOTFIXD_TEST_ETCD` names another binary), started on
//! free loopback ports with its data in a temporary directory, killed when
//! dropped.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotfixd::store::etcd::api::etcdserverpb::{RangeRequest, kv_client::KvClient};

// A test binary may include `harness` too, which loads the same file.
#[allow(clippy::duplicate_mod)]
#[path = "../ports/mod.rs"]
mod ports;
use ports::free_port;

/// An etcd cluster of one member (the suites) or more (the failover
/// tests), each member killable and restartable on its data.
pub struct Etcd {
    members: Vec<Member>,
    /// The first member's `http://127.0.0.1:PORT`, for clients.
    pub endpoint: String,
    /// Every member's client URL.
    pub endpoints: Vec<String>,
    _data: tempfile::TempDir,
}

struct Member {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
}

impl Etcd {
    /// Starts a one-member cluster and waits until it answers a range read.
    pub async fn start() -> Etcd {
        Self::cluster(1).await
    }

    /// Starts an `n`-member cluster on loopback and waits until each member
    /// answers a (linearizable: quorum) range read. A member that exits
    /// while starting (a port picked free was taken meanwhile by another
    /// test's listener) gets the whole cluster started again on fresh
    /// ports, three times at most.
    pub async fn cluster(n: usize) -> Etcd {
        for _ in 0..3 {
            let mut etcd = Self::on_fresh_ports(n);
            for i in 0..n {
                etcd.spawn(i);
            }
            if etcd.started().await {
                return etcd;
            }
        }
        panic!("etcd did not start on fresh ports three times in a row");
    }

    fn on_fresh_ports(n: usize) -> Etcd {
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                child: None,
            })
            .collect();
        Etcd {
            endpoint: members[0].client.clone(),
            endpoints: members.iter().map(|m| m.client.clone()).collect(),
            members,
            _data: tempfile::tempdir().unwrap(),
        }
    }

    /// Whether every member answers (30 s at most); false as soon as one
    /// has exited.
    async fn started(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        for e in self.endpoints.clone() {
            loop {
                if answers(&e).await {
                    break;
                }
                let exited = self.members.iter_mut().any(|m| {
                    m.child
                        .as_mut()
                        .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
                });
                if exited {
                    return false;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd at {e} did not answer in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        true
    }

    fn spawn(&mut self, i: usize) {
        let bin = std::env::var("HOTFIXD_TEST_ETCD").unwrap_or_else(|_| "etcd".into());
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect();
        let m = &self.members[i];
        let child = Command::new(&bin)
            .args(["--name", &m.name, "--data-dir"])
            .arg(self._data.path().join(&m.name))
            .args(["--listen-client-urls", &m.client])
            .args(["--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer])
            .args(["--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-token", "hotfixd-tests"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {bin} (Debian's etcd-server; scripts/test installs it): {e}")
            });
        self.members[i].child = Some(child);
    }

    /// SIGKILLs member `i` (its data stays).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data (it rejoins the cluster).
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i);
    }

    /// Settings for a hotfixd store under `prefix` on this etcd.
    pub fn settings(&self, prefix: &str) -> hotfixd::config::EtcdSettings {
        hotfixd::config::EtcdSettings {
            options: hotfixd::store::etcd::EtcdOptions {
                endpoints: self.endpoints.clone(),
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
            prefix: prefix.into(),
            lease_ttl: Duration::from_secs(2),
            advertise_url: None,
        }
    }
}

/// Whether `endpoint` answers a linearizable range read now.
async fn answers(endpoint: &str) -> bool {
    let Ok(mut kv) = KvClient::connect(endpoint.to_string()).await else {
        return false;
    };
    let probe = RangeRequest {
        key: b"probe".to_vec(),
        ..Default::default()
    };
    kv.range(probe).await.is_ok()
}

/// Waits (up to 30 s) until `endpoint` answers a linearizable range read.
pub async fn ready(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(endpoint).await {
        assert!(
            Instant::now() < deadline,
            "etcd at {endpoint} did not answer in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A TCP proxy in front of etcd that cuts every connection, and refuses
/// new ones, while its switch is on: a lost quorum, as a client sees it.
pub struct Cut {
    /// `http://127.0.0.1:PORT`, the proxy's.
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Cut {
    pub async fn new(upstream: &str, switch: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Cut {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    return;
                };
                if switch.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let (upstream, switch) = (upstream.clone(), switch.clone());
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    let cut = async {
                        while !switch.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    tokio::select! {
                        _ = pipe(down_r, up_w, switch.clone()) => {}
                        _ = pipe(up_r, down_w, switch.clone()) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Cut { endpoint, task }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards chunks only while the switch is off: once it is on, no byte
/// more reaches etcd, nor comes back.
async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    switch: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if switch.load(std::sync::atomic::Ordering::SeqCst) || w.write_all(&buf[..n]).await.is_err()
        {
            return;
        }
    }
}
