//! AdminService: operating the daemon itself (backups, the cluster).

use std::pin::Pin;
use std::sync::Arc;

use hotfix_api::pb;
use hotfix_api::pb::admin_service_server::AdminService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::app::Lane;
use crate::auth::principal;
use crate::term::Cluster;

/// Bytes per message of a backup stream.
const CHUNK: usize = 256 * 1024;

#[derive(Clone)]
pub struct AdminApi {
    lane: Arc<Lane>,
    cluster: Arc<dyn Cluster>,
}

impl AdminApi {
    pub fn new(lane: Arc<Lane>, cluster: Arc<dyn Cluster>) -> Self {
        AdminApi { lane, cluster }
    }
}

type BackupStream = Pin<Box<dyn Stream<Item = Result<pb::BackupResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        let actor = principal(&request)?;
        let bytes = bytes::Bytes::from(self.lane.backup(&actor).await?);
        let chunks: Vec<Result<pb::BackupResponse, Status>> = (0..bytes.len())
            .step_by(CHUNK)
            .map(|at| {
                Ok(pb::BackupResponse {
                    chunk: bytes.slice(at..(at + CHUNK).min(bytes.len())).to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn get_cluster(
        &self,
        request: Request<pb::GetClusterRequest>,
    ) -> Result<Response<pb::GetClusterResponse>, Status> {
        principal(&request)?;
        let v = self.cluster.view().await?;
        Ok(Response::new(pb::GetClusterResponse {
            engine: v.engine.into(),
            answered_by: v.answered_by,
            replicas: v
                .replicas
                .into_iter()
                .map(|r| pb::ClusterReplica {
                    url: r.url,
                    leader: r.leader,
                    lease_left_ms: r.lease_left.map(|d| d.as_millis() as u64),
                })
                .collect(),
        }))
    }
}
