//! Thin gRPC handlers: take the principal from the request's extensions
//! (set by the auth interceptor), convert, call `Lane`, convert back.

pub mod admin;
pub mod audit;
pub mod client_errors;
pub mod convert;
pub mod guard;
pub mod incoming;
mod watch;

pub use watch::EventsApi;

use std::sync::Arc;
use std::time::Duration;

use hotfix_api::pb;
use hotfix_api::pb::lane_service_server::LaneService;
use hotfix_api::pb::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use crate::auth::principal;
use crate::domain::{self, Command, Refusal};
use crate::error::Error;
use crate::forge::Forge;
use crate::lane::Lane;
use crate::merger::Merger;
use crate::syncer::Syncer;
use crate::verifier::Verifier;
use convert::*;

#[derive(Clone)]
pub struct LaneApi {
    lane: Arc<Lane>,
    verifier: Option<Arc<Verifier>>,
    syncer: Option<Arc<Syncer>>,
    merger: Option<Arc<Merger>>,
    forge: Option<Arc<Forge>>,
}

impl LaneApi {
    pub fn new(
        lane: Arc<Lane>,
        verifier: Option<Arc<Verifier>>,
        syncer: Option<Arc<Syncer>>,
        merger: Option<Arc<Merger>>,
        forge: Option<Arc<Forge>>,
    ) -> Self {
        LaneApi {
            lane,
            verifier,
            syncer,
            merger,
            forge,
        }
    }

    /// GitHub's steps, if the hotfix's repository has them on.
    fn forge_for(&self, incident_id: &str) -> Result<Option<&Arc<Forge>>, Status> {
        match &self.forge {
            Some(f) if f.governs(incident_id)?.is_some() => Ok(Some(f)),
            _ => Ok(None),
        }
    }

    fn pb(&self, h: &domain::Hotfix) -> pb::Hotfix {
        to_pb_hotfix(h, self.lane.policy(), self.lane.now())
    }

    /// Runs one lane command and answers with the hotfix after it.
    async fn run<T>(
        &self,
        req: &Request<T>,
        mutation: Option<pb::Mutation>,
        incident_id: &str,
        cmd: Result<Command, Refusal>,
    ) -> Result<pb::Hotfix, Status> {
        let actor = principal(req)?;
        let cmd = cmd.map_err(Error::from)?;
        let h = self
            .lane
            .command(&actor, &to_mutation(mutation), incident_id, cmd)
            .await?;
        Ok(to_pb_hotfix(&h, self.lane.policy(), self.lane.now()))
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Generates the `LaneService` impl: the explicit handlers plus one handler
/// per lane step that converts its request to a `Command`. The impl is
/// produced whole so that `async_trait` sees the expanded methods.
macro_rules! lane_service {
    ({ $($explicit:tt)* } $( $name:ident($req:ty) -> $resp:ident = |$r:ident| $cmd:expr; )*) => {
        #[tonic::async_trait]
        impl LaneService for LaneApi {
            $($explicit)*
            $(
                async fn $name(&self, request: Request<$req>) -> Reply<pb::$resp> {
                    let $r = request.get_ref().clone();
                    let (mutation, incident) = ($r.mutation.clone(), $r.incident_id.clone());
                    let hotfix = self.run(&request, mutation, &incident, $cmd).await?;
                    Ok(Response::new(pb::$resp { hotfix: Some(hotfix) }))
                }
            )*
        }
    };
}

lane_service! {
{
    async fn declare(&self, request: Request<pb::DeclareRequest>) -> Reply<pb::DeclareResponse> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        let m = to_mutation(r.mutation.clone());
        let d = to_declaration(r).map_err(Error::from)?;
        let h = self.lane.declare(&actor, &m, d).await?;
        Ok(Response::new(pb::DeclareResponse {
            warnings: h.flags.clone(),
            hotfix: Some(to_pb_hotfix(&h, self.lane.policy(), self.lane.now())),
        }))
    }

    async fn record_mitigation(
        &self,
        request: Request<pb::RecordMitigationRequest>,
    ) -> Reply<pb::RecordMitigationResponse> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        let route = to_route(r.route).map_err(Error::from)?;
        let m = self
            .lane
            .record_mitigation(&actor, &to_mutation(r.mutation), &r.incident_id, route, &r.notes)
            .await?;
        Ok(Response::new(pb::RecordMitigationResponse {
            mitigation: Some(to_pb_mitigation(&m)),
        }))
    }

    async fn submit_fix(&self, request: Request<pb::SubmitFixRequest>) -> Reply<pb::SubmitFixResponse> {
        let r = request.get_ref().clone();
        let hotfix = match self.forge_for(&r.incident_id)? {
            Some(forge) => {
                from_github("commit_message", r.commit_message.is_empty())?;
                from_github("files", r.files.is_empty())?;
                let actor = principal(&request)?;
                let m = to_mutation(r.mutation);
                self.pb(&forge.fix(&actor, &m, &r.incident_id, &r.branch, &r.sha).await?)
            }
            None => {
                let (m, inc) = (r.mutation.clone(), r.incident_id.clone());
                self.run(&request, m, &inc, Ok(fix_command(r))).await?
            }
        };
        Ok(Response::new(pb::SubmitFixResponse { hotfix: Some(hotfix) }))
    }

    async fn open_pull_request(
        &self,
        request: Request<pb::OpenPullRequestRequest>,
    ) -> Reply<pb::OpenPullRequestResponse> {
        let r = request.get_ref().clone();
        let hotfix = match self.forge_for(&r.incident_id)? {
            Some(forge) => {
                from_github("number", r.number == 0)?;
                from_github("url", r.url.is_empty())?;
                from_github("title", r.title.is_empty())?;
                from_github("labels", r.labels.is_empty())?;
                let actor = principal(&request)?;
                self.pb(&forge.open_pr(&actor, &to_mutation(r.mutation), &r.incident_id).await?)
            }
            None => {
                let cmd = Ok(Command::OpenPullRequest {
                    number: r.number,
                    url: r.url,
                    title: non_empty_opt(r.title),
                    labels: r.labels,
                });
                self.run(&request, r.mutation, &r.incident_id, cmd).await?
            }
        };
        Ok(Response::new(pb::OpenPullRequestResponse { hotfix: Some(hotfix) }))
    }

    async fn record_check(
        &self,
        request: Request<pb::RecordCheckRequest>,
    ) -> Reply<pb::RecordCheckResponse> {
        let r = request.get_ref().clone();
        if let Some(forge) = self.forge_for(&r.incident_id)? {
            let repo = forge.governs(&r.incident_id)?.map(|h| h.declaration.repository).unwrap_or_default();
            return Err(Error::from(Refusal::Refused {
                step: domain::Step::Check,
                reason: format!(
                    "the checks of {repo} are read from GitHub, not reported; `hotfixctl check {}                      --wait` follows them",
                    r.incident_id
                ),
            })
            .into());
        }
        let (m, inc) = (r.mutation.clone(), r.incident_id.clone());
        let hotfix = self.run(&request, m, &inc, check_command(r)).await?;
        Ok(Response::new(pb::RecordCheckResponse { hotfix: Some(hotfix) }))
    }

    async fn follow_checks(
        &self,
        request: Request<pb::FollowChecksRequest>,
    ) -> Reply<pb::FollowChecksResponse> {
        let actor = principal(&request)?;
        let inc = request.get_ref().incident_id.clone();
        // Who may, before what is configured.
        self.lane.precheck(&actor, &inc, domain::Step::Check)?;
        let Some(forge) = self.forge_for(&inc)? else {
            return Err(Error::from(Refusal::Refused {
                step: domain::Step::Check,
                reason: format!(
                    "GitHub is not on for this hotfix's repository; record each result with                      `hotfixctl check {inc} --name N --result R`"
                ),
            })
            .into());
        };
        let from_seq = self.lane.store().durable_seq();
        let h = forge.follow_checks(&actor, &inc).await?;
        Ok(Response::new(pb::FollowChecksResponse {
            hotfix: Some(self.pb(&h)),
            from_seq,
        }))
    }

    async fn revert(&self, request: Request<pb::RevertRequest>) -> Reply<pb::RevertResponse> {
        let r = request.get_ref().clone();
        let hotfix = match self.forge_for(&r.incident_id)? {
            Some(forge) => {
                let actor = principal(&request)?;
                let m = to_mutation(r.mutation);
                let h = if r.revert_pr == 0 {
                    forge.revert(&actor, &m, &r.incident_id).await?
                } else {
                    forge.revert_merged_by_hand(&actor, &m, &r.incident_id, r.revert_pr).await?
                };
                self.pb(&h)
            }
            None => {
                let cmd = Ok(Command::Revert { pr: r.revert_pr });
                self.run(&request, r.mutation, &r.incident_id, cmd).await?
            }
        };
        Ok(Response::new(pb::RevertResponse { hotfix: Some(hotfix) }))
    }

    async fn record_cleanup(
        &self,
        request: Request<pb::RecordCleanupRequest>,
    ) -> Reply<pb::RecordCleanupResponse> {
        let r = request.get_ref().clone();
        let hotfix = match self.forge_for(&r.incident_id)? {
            Some(forge) => {
                from_github("url", r.url.is_empty())?;
                from_github("labels", r.labels.is_empty())?;
                let actor = principal(&request)?;
                let m = to_mutation(r.mutation);
                self.pb(&forge.cleanup(&actor, &m, &r.incident_id, r.pr_number).await?)
            }
            None => {
                let cmd = Ok(Command::RecordCleanup {
                    pr: r.pr_number,
                    url: r.url,
                    labels: r.labels,
                });
                self.run(&request, r.mutation, &r.incident_id, cmd).await?
            }
        };
        Ok(Response::new(pb::RecordCleanupResponse { hotfix: Some(hotfix) }))
    }

    async fn merge(&self, request: Request<pb::MergeRequest>) -> Reply<pb::MergeResponse> {
        // With GitHub on for the repository, hotfixd merges on GitHub (pinned
        // to the approved SHA) and records the merge once GitHub did it.
        let r = request.get_ref().clone();
        let merger = match self.forge_for(&r.incident_id)? {
            Some(_) => self.merger.as_ref(),
            None => None,
        };
        let hotfix = match merger {
            Some(merger) => {
                let actor = principal(&request)?;
                let h = merger.merge(&actor, &to_mutation(r.mutation), &r.incident_id).await?;
                to_pb_hotfix(&h, self.lane.policy(), self.lane.now())
            }
            None => self.run(&request, r.mutation, &r.incident_id, Ok(Command::Merge)).await?,
        };
        Ok(Response::new(pb::MergeResponse { hotfix: Some(hotfix) }))
    }

    async fn sync(&self, request: Request<pb::SyncRequest>) -> Reply<pb::SyncResponse> {
        // With Argo CD configured, hotfixd performs the sync itself and
        // records it once Argo CD reports Synced and Healthy.
        let hotfix = match &self.syncer {
            Some(syncer) => {
                let actor = principal(&request)?;
                let r = request.into_inner();
                let m = to_mutation(r.mutation);
                let h = syncer
                    .start(&actor, &m, &r.incident_id, &r.revision, r.skip_canary)
                    .await?;
                to_pb_hotfix(&h, self.lane.policy(), self.lane.now())
            }
            None => {
                let r = request.get_ref().clone();
                let cmd = Ok(Command::Sync {
                    revision: r.revision,
                    skip_canary: r.skip_canary,
                });
                self.run(&request, r.mutation, &r.incident_id, cmd).await?
            }
        };
        Ok(Response::new(pb::SyncResponse {
            hotfix: Some(hotfix),
        }))
    }

    async fn start_verification(
        &self,
        request: Request<pb::StartVerificationRequest>,
    ) -> Reply<pb::StartVerificationResponse> {
        let actor = principal(&request)?;
        let r = request.into_inner();
        // Who may, before what is configured.
        self.lane.precheck(&actor, &r.incident_id, domain::Step::Verify)?;
        let Some(verifier) = &self.verifier else {
            return Err(Error::from(Refusal::Refused {
                step: domain::Step::Verify,
                reason: format!(
                    "no Prometheus is configured to measure with; record the observed value with \
                     `hotfixctl verify {} --recovered|--not-recovered --value V`",
                    r.incident_id
                ),
            })
            .into());
        };
        let (h, query) = verifier.start(&actor, &r.incident_id).await?;
        Ok(Response::new(pb::StartVerificationResponse {
            hotfix: Some(to_pb_hotfix(&h, self.lane.policy(), self.lane.now())),
            query,
        }))
    }

    async fn get_hotfix(&self, request: Request<pb::GetHotfixRequest>) -> Reply<pb::GetHotfixResponse> {
        principal(&request)?;
        let view = self.lane.get(&request.get_ref().incident_id)?;
        Ok(Response::new(to_pb_view(&view, self.lane.policy(), self.lane.now())))
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
        let now = self.lane.now();
        let hotfixes = self
            .lane
            .list(state, r.overdue, limit)?
            .iter()
            .map(|h| to_pb_hotfix(h, self.lane.policy(), now))
            .collect();
        Ok(Response::new(pb::ListHotfixesResponse { hotfixes }))
    }
}
    override_fix_limits(pb::OverrideFixLimitsRequest) -> OverrideFixLimitsResponse =
        |r| Ok(Command::OverrideFixLimits { sha: r.sha, reason: r.reason });
    approve(pb::ApproveRequest) -> ApproveResponse =
        |r| Ok(Command::Approve { sha: non_empty_opt(r.sha) });
    verify(pb::VerifyRequest) -> VerifyResponse =
        |r| Ok(Command::Verify { recovered: r.recovered, observed_value: r.observed_value });
    record_postmortem(pb::RecordPostmortemRequest) -> RecordPostmortemResponse =
        |r| postmortem_command(r);
    record_audit_review(pb::RecordAuditReviewRequest) -> RecordAuditReviewResponse =
        |r| Ok(Command::RecordAuditReview { findings: r.findings });
    grant_breakglass(pb::GrantBreakglassRequest) -> GrantBreakglassResponse =
        |r| Ok(Command::GrantBreakglass {
            role: r.role,
            ttl: (r.ttl_seconds > 0).then(|| Duration::from_secs(r.ttl_seconds)),
        });
    cleanup_breakglass(pb::CleanupBreakglassRequest) -> CleanupBreakglassResponse =
        |r| breakglass_items(r.items);
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

/// A field GitHub supplies when its integration is on must be left empty.
fn from_github(field: &str, empty: bool) -> Result<(), Status> {
    if empty {
        return Ok(());
    }
    Err(Error::from(Refusal::Invalid {
        field: field.into(),
        reason: "GitHub is on for this repository: hotfixd reads this from GitHub; leave it empty"
            .into(),
    })
    .into())
}
