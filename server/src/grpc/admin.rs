//! AdminService: operating the daemon itself (backups).

use std::pin::Pin;
use std::sync::Arc;

use hotfix_api::pb;
use hotfix_api::pb::admin_service_server::AdminService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::app::Lane;
use crate::auth::principal;

/// Bytes per message of a backup stream.
const CHUNK: usize = 256 * 1024;

#[derive(Clone)]
pub struct AdminApi {
    lane: Arc<Lane>,
}

impl AdminApi {
    pub fn new(lane: Arc<Lane>) -> Self {
        AdminApi { lane }
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
}
