//! etcd, for the replicated store engine: its v3 API as tonic clients,
//! generated from etcd's own protos (`server/proto/etcd/`, compiled by
//! `server/build.rs` with protox).

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
