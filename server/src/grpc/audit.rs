//! AuditService: verify, export and list the chained audit trail.

use std::pin::Pin;
use std::sync::Arc;

use hotfix_api::pb;
use hotfix_api::pb::audit_service_server::AuditService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::app::Lane;
use crate::auth::principal;
use crate::domain::log::AuditRecord;
use crate::error::Error;

use super::convert::to_ts;

#[derive(Clone)]
pub struct AuditApi {
    lane: Arc<Lane>,
    /// Checks the stored checkpoints' signatures, when the daemon signs.
    verifier: Option<hotfix_api::audit::VerifierKey>,
}

impl AuditApi {
    pub fn new(lane: Arc<Lane>, verifier: Option<hotfix_api::audit::VerifierKey>) -> Self {
        AuditApi { lane, verifier }
    }
}

const EXPORT_BATCH: usize = 256;

fn to_pb_audit(r: &AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        seq: r.seq,
        at: Some(to_ts(r.at)),
        actor: r.actor.clone(),
        incident_id: r.incident_id.clone(),
        action: r.action.clone(),
        outcome: r.outcome.clone(),
        detail: r.detail.clone(),
        event_seq: r.event_seq.unwrap_or_default(),
        hash: r.hash.clone(),
        v: r.v,
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::ExportAuditResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        principal(&request)?;
        let hash_of = request.into_inner().hash_of;
        let hash_of_record = match hash_of {
            0 => String::new(),
            seq => self.lane.audit_hash(seq)?,
        };
        let (lane, verifier) = (self.lane.clone(), self.verifier.clone());
        let report = tokio::task::spawn_blocking(move || lane.verify_audit(verifier.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("verifying: {e}")))??;
        let (first_bad_seq, reason) = report.first_bad.clone().unwrap_or_default();
        Ok(Response::new(pb::VerifyAuditResponse {
            verified: report.verified,
            head_hash: report.head,
            intact: report.first_bad.is_none(),
            first_bad_seq,
            reason,
            hash_of_record,
        }))
    }

    type ExportAuditStream = ExportStream;

    async fn export_audit(
        &self,
        request: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        self.lane
            .read_audit(&principal(&request)?, "audit-export", "")
            .await?;
        let lane = self.lane.clone();
        let mut from = request.into_inner().from_seq;
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BATCH);
        tokio::spawn(async move {
            loop {
                let batch = match lane.audit_after(from, EXPORT_BATCH) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                let Some(last) = batch.last() else { return };
                from = last.seq;
                for r in &batch {
                    let msg = pb::ExportAuditResponse {
                        record: Some(to_pb_audit(r)),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        return; // the caller went away
                    }
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        crate::domain::validate::check_incident_id("incident_id", &r.incident_id)
            .map_err(Error::from)?;
        self.lane
            .read_audit(&actor, "audit-list", &r.incident_id)
            .await?;
        let limit = match r.limit {
            0 => 1000,
            n => n.min(10_000) as usize,
        };
        let records = self
            .lane
            .audit_of(&r.incident_id, limit)?
            .iter()
            .map(to_pb_audit)
            .collect();
        Ok(Response::new(pb::ListAuditResponse { records }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        principal(&request)?;
        let (size, note) = self.lane.latest_checkpoint()?;
        Ok(Response::new(pb::GetCheckpointResponse { size, note }))
    }
}
