//! etcd, for the replicated store engine: its v3 API as tonic clients,
//! generated from etcd's own protos (`server/proto/etcd/`, compiled by
//! `server/build.rs` with protox), and the engine built on them.

pub mod engine;
pub mod keyspace;

pub use engine::{Connection, EtcdStore, Fence};

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::error::{Error, Result};

/// A channel to every endpoint of the cluster (requests go to one that
/// answers), `timeout` the deadline of one request. Connects lazily: an
/// etcd that is down shows in the first request.
pub fn connect(
    endpoints: &[String],
    tls: Option<ClientTlsConfig>,
    timeout: Duration,
) -> Result<Connection> {
    if endpoints.is_empty() {
        return Err(Error::Storage(
            "--etcd-endpoints names no endpoint (e.g. http://10.0.0.1:2379)".into(),
        ));
    }
    let mut list = Vec::new();
    for e in endpoints {
        let bad = |why: String| Error::Storage(format!("--etcd-endpoints '{e}': {why}"));
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(bad("must start with http:// or https://".into()));
        }
        let mut ep = Endpoint::from_shared(e.clone())
            .map_err(|err| bad(err.to_string()))?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
        if e.starts_with("https://") {
            let tls = tls
                .clone()
                .unwrap_or_else(|| ClientTlsConfig::new().with_enabled_roots());
            ep = ep.tls_config(tls).map_err(|err| bad(err.to_string()))?;
        } else if tls.is_some() {
            return Err(bad(
                "TLS settings are given, so the endpoint must be https://".into(),
            ));
        }
        list.push(ep);
    }
    let channel = if list.len() == 1 {
        list.remove(0).connect_lazy()
    } else {
        Channel::balance_list(list.into_iter())
    };
    Ok(Connection { channel, timeout })
}

/// The generated packages; they name each other as `super::…`, so they
/// stand side by side here.
#[allow(clippy::all, missing_docs)]
pub mod api {
    /// `etcdserverpb`: KV, Watch, Lease, Cluster, Maintenance, Auth.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    /// `mvccpb`: keys, values and events.
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// `authpb`: users, roles and permissions.
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
    /// `v3electionpb`: leader election on a lease.
    pub mod v3electionpb {
        tonic::include_proto!("v3electionpb");
    }
    /// `v3lockpb`: locks on a lease.
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
}
