//! Thin gRPC handlers: take the principal from the request's extensions
//! (set by the guard), convert, call one application method (`Steps` for
//! a step, `Lane` for the rest), convert back. Nothing here names the
//! store or decides a runbook rule.

pub mod admin;
pub mod audit;
pub mod client_errors;
pub mod convert;
pub mod forward;
pub mod guard;
pub mod incoming;
mod status;
mod watch;

pub use watch::EventsApi;

use std::sync::Arc;
use std::time::Duration;

use hotfix_api::pb;
use hotfix_api::pb::lane_service_server::LaneService;
use hotfix_api::pb::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use crate::app::{Lane, Steps};
use crate::auth::principal;
use crate::domain::{self, Command, Refusal};
use crate::error::Error;
use convert::*;

#[derive(Clone)]
pub struct LaneApi {
    steps: Arc<Steps>,
}

impl LaneApi {
    pub fn new(steps: Arc<Steps>) -> Self {
        LaneApi { steps }
    }

    fn lane(&self) -> &Lane {
        self.steps.lane()
    }

    fn pb(&self, h: &domain::Hotfix) -> pb::Hotfix {
        let lane = self.lane();
        to_pb_hotfix(h, lane.policy(), lane.now())
    }

    /// Takes one step (performed or recorded: `Steps` decides) and answers
    /// with the hotfix after it.
    async fn take<T>(
        &self,
        req: &Request<T>,
        mutation: Option<pb::Mutation>,
        incident_id: &str,
        cmd: Result<Command, Refusal>,
    ) -> Result<Option<pb::Hotfix>, Status> {
        about(incident_id);
        let actor = principal(req)?;
        let cmd = cmd.map_err(Error::from)?;
        let h = self
            .steps
            .take(&actor, &to_mutation(mutation), incident_id, cmd)
            .await?;
        Ok(Some(self.pb(&h)))
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Names the incident a request is about in its log span (see the guard).
/// The value is recorded as a string field, which the log formats print
/// escaped (quotes, newlines): typed text cannot forge a log line.
fn about(incident_id: &str) {
    if !incident_id.is_empty() {
        tracing::Span::current().record("incident", incident_id);
    }
}

#[tonic::async_trait]
impl LaneService for LaneApi {
    async fn declare(&self, request: Request<pb::DeclareRequest>) -> Reply<pb::DeclareResponse> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        let m = to_mutation(r.mutation.clone());
        about(&r.incident_id);
        let d = to_declaration(r).map_err(Error::from)?;
        let h = self.lane().declare(&actor, &m, d).await?;
        Ok(Response::new(pb::DeclareResponse {
            warnings: h.flags.clone(),
            hotfix: Some(self.pb(&h)),
        }))
    }

    async fn record_mitigation(
        &self,
        request: Request<pb::RecordMitigationRequest>,
    ) -> Reply<pb::RecordMitigationResponse> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        about(&r.incident_id);
        let route = to_route(r.route).map_err(Error::from)?;
        let m = to_mutation(r.mutation);
        let mitigation = self
            .lane()
            .record_mitigation(&actor, &m, &r.incident_id, route, &r.notes)
            .await?;
        Ok(Response::new(pb::RecordMitigationResponse {
            mitigation: Some(to_pb_mitigation(&mitigation)),
        }))
    }

    async fn submit_fix(
        &self,
        request: Request<pb::SubmitFixRequest>,
    ) -> Reply<pb::SubmitFixResponse> {
        let r = request.get_ref().clone();
        let (m, inc) = (r.mutation.clone(), r.incident_id.clone());
        let hotfix = self.take(&request, m, &inc, Ok(fix_command(r))).await?;
        Ok(Response::new(pb::SubmitFixResponse { hotfix }))
    }

    async fn override_fix_limits(
        &self,
        request: Request<pb::OverrideFixLimitsRequest>,
    ) -> Reply<pb::OverrideFixLimitsResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::OverrideFixLimits {
            sha: r.sha,
            reason: r.reason,
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::OverrideFixLimitsResponse { hotfix }))
    }

    async fn approve(&self, request: Request<pb::ApproveRequest>) -> Reply<pb::ApproveResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::Approve {
            sha: non_empty_opt(r.sha),
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::ApproveResponse { hotfix }))
    }

    async fn open_pull_request(
        &self,
        request: Request<pb::OpenPullRequestRequest>,
    ) -> Reply<pb::OpenPullRequestResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::OpenPullRequest {
            number: r.number,
            url: r.url,
            title: non_empty_opt(r.title),
            labels: r.labels,
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::OpenPullRequestResponse { hotfix }))
    }

    async fn record_check(
        &self,
        request: Request<pb::RecordCheckRequest>,
    ) -> Reply<pb::RecordCheckResponse> {
        let r = request.get_ref().clone();
        let (m, inc) = (r.mutation.clone(), r.incident_id.clone());
        let hotfix = self.take(&request, m, &inc, check_command(r)).await?;
        Ok(Response::new(pb::RecordCheckResponse { hotfix }))
    }

    async fn follow_checks(
        &self,
        request: Request<pb::FollowChecksRequest>,
    ) -> Reply<pb::FollowChecksResponse> {
        let actor = principal(&request)?;
        let inc = &request.get_ref().incident_id;
        let (h, from_seq) = self.steps.follow_checks(&actor, inc).await?;
        Ok(Response::new(pb::FollowChecksResponse {
            hotfix: Some(self.pb(&h)),
            from_seq,
        }))
    }

    async fn merge(&self, request: Request<pb::MergeRequest>) -> Reply<pb::MergeResponse> {
        let r = request.get_ref().clone();
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(Command::Merge))
            .await?;
        Ok(Response::new(pb::MergeResponse { hotfix }))
    }

    async fn sync(&self, request: Request<pb::SyncRequest>) -> Reply<pb::SyncResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::Sync {
            revision: r.revision,
            skip_canary: r.skip_canary,
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::SyncResponse { hotfix }))
    }

    async fn start_verification(
        &self,
        request: Request<pb::StartVerificationRequest>,
    ) -> Reply<pb::StartVerificationResponse> {
        let actor = principal(&request)?;
        let inc = &request.get_ref().incident_id;
        let (h, query) = self.steps.start_verification(&actor, inc).await?;
        Ok(Response::new(pb::StartVerificationResponse {
            hotfix: Some(self.pb(&h)),
            measuring: query.is_some(),
            query: query.unwrap_or_default(),
        }))
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Reply<pb::VerifyResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::Verify {
            recovered: r.recovered,
            observed_value: r.observed_value,
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::VerifyResponse { hotfix }))
    }

    async fn revert(&self, request: Request<pb::RevertRequest>) -> Reply<pb::RevertResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::Revert { pr: r.revert_pr };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::RevertResponse { hotfix }))
    }

    async fn record_cleanup(
        &self,
        request: Request<pb::RecordCleanupRequest>,
    ) -> Reply<pb::RecordCleanupResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::RecordCleanup {
            pr: r.pr_number,
            url: r.url,
            labels: r.labels,
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::RecordCleanupResponse { hotfix }))
    }

    async fn record_postmortem(
        &self,
        request: Request<pb::RecordPostmortemRequest>,
    ) -> Reply<pb::RecordPostmortemResponse> {
        let r = request.get_ref().clone();
        let (m, inc) = (r.mutation.clone(), r.incident_id.clone());
        let hotfix = self.take(&request, m, &inc, postmortem_command(r)).await?;
        Ok(Response::new(pb::RecordPostmortemResponse { hotfix }))
    }

    async fn record_audit_review(
        &self,
        request: Request<pb::RecordAuditReviewRequest>,
    ) -> Reply<pb::RecordAuditReviewResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::RecordAuditReview {
            findings: r.findings,
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::RecordAuditReviewResponse { hotfix }))
    }

    async fn grant_breakglass(
        &self,
        request: Request<pb::GrantBreakglassRequest>,
    ) -> Reply<pb::GrantBreakglassResponse> {
        let r = request.get_ref().clone();
        let cmd = Command::GrantBreakglass {
            role: r.role,
            ttl: (r.ttl_seconds > 0).then(|| Duration::from_secs(r.ttl_seconds)),
        };
        let hotfix = self
            .take(&request, r.mutation, &r.incident_id, Ok(cmd))
            .await?;
        Ok(Response::new(pb::GrantBreakglassResponse { hotfix }))
    }

    async fn cleanup_breakglass(
        &self,
        request: Request<pb::CleanupBreakglassRequest>,
    ) -> Reply<pb::CleanupBreakglassResponse> {
        let r = request.get_ref().clone();
        let cmd = breakglass_items(r.items);
        let hotfix = self.take(&request, r.mutation, &r.incident_id, cmd).await?;
        Ok(Response::new(pb::CleanupBreakglassResponse { hotfix }))
    }

    async fn get_hotfix(
        &self,
        request: Request<pb::GetHotfixRequest>,
    ) -> Reply<pb::GetHotfixResponse> {
        principal(&request)?;
        let lane = self.lane();
        let view = lane.incident(&request.get_ref().incident_id)?;
        Ok(Response::new(to_pb_incident(
            &view,
            lane.policy(),
            lane.now(),
        )))
    }

    async fn list_hotfixes(
        &self,
        request: Request<pb::ListHotfixesRequest>,
    ) -> Reply<pb::ListHotfixesResponse> {
        principal(&request)?;
        let r = request.into_inner();
        let state = from_state("state", r.state).map_err(Error::from)?;
        let limit = match r.limit {
            0 => 100,
            n if n > 1000 => {
                return Err(Error::from(Refusal::Invalid {
                    field: "limit".into(),
                    reason: "must be at most 1000".into(),
                })
                .into());
            }
            n => n as usize,
        };
        if r.mitigated_without_hotfix && (state.is_some() || r.overdue || r.open) {
            return Err(Error::from(Refusal::Invalid {
                field: "mitigated_without_hotfix".into(),
                reason: "lists only incidents mitigated without a hotfix: it cannot be \
                         combined with a state, overdue or open filter"
                    .into(),
            })
            .into());
        }
        let filter = crate::app::ListFilter {
            state,
            overdue: r.overdue,
            open: r.open,
        };
        let hotfixes = if r.mitigated_without_hotfix {
            Vec::new()
        } else {
            self.lane()
                .list(filter, limit)?
                .iter()
                .map(|h| self.pb(h))
                .collect()
        };
        // A mitigation owes nothing: never open.
        let mitigations = if state.is_none() && !r.overdue && !r.open {
            self.lane()
                .mitigations(limit)?
                .iter()
                .map(to_pb_mitigation)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::ListHotfixesResponse {
            hotfixes,
            mitigations,
        }))
    }
}

#[derive(Clone)]
pub struct PolicyApi {
    lane: Arc<Lane>,
}

impl PolicyApi {
    pub fn new(lane: Arc<Lane>) -> Self {
        PolicyApi { lane }
    }
}

#[tonic::async_trait]
impl PolicyService for PolicyApi {
    async fn record_team_review(
        &self,
        request: Request<pb::RecordTeamReviewRequest>,
    ) -> Reply<pb::RecordTeamReviewResponse> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        let review = self
            .lane
            .team_review(&actor, &to_mutation(r.mutation), &r.notes)
            .await?;
        let window = self.lane.window(self.lane.now())?;
        Ok(Response::new(pb::RecordTeamReviewResponse {
            review: Some(to_pb_review(&review)),
            window: Some(to_pb_window(&window)),
        }))
    }

    async fn get_rate_limit_status(
        &self,
        request: Request<pb::GetRateLimitStatusRequest>,
    ) -> Reply<pb::GetRateLimitStatusResponse> {
        let actor = principal(&request)?;
        let now = self.lane.now();
        Ok(Response::new(pb::GetRateLimitStatusResponse {
            window: Some(to_pb_window(&self.lane.window(now)?)),
            caller_quarter: Some(to_pb_author(&self.lane.author_quarter(&actor.handle, now)?)),
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Reply<pb::GetReportResponse> {
        principal(&request)?;
        Ok(Response::new(to_pb_report(&self.lane.report()?)))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Reply<pb::WhoAmIResponse> {
        let actor = principal(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            handle: actor.handle.clone(),
            roles: actor.roles.iter().map(|r| r.as_str().to_string()).collect(),
        }))
    }
}
