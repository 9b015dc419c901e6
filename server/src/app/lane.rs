//! `Lane`: the application service between the gRPC handlers and the
//! domain. It reads the clock, builds the domain context, runs the decision
//! inside the store's writer lock and hands the committed outcome back.
//! It holds no rules of its own: those live in `domain`.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::domain::log::EventState;
use crate::domain::{
    self, Command, Ctx, Declaration, Directory, Exercise, Existing, Gate, Hotfix, MitigationRoute,
    ObligationKind, Policy, Principal, Refusal, TeamReview, Time, before, obligations, quarter_of,
};
use crate::error::{Error, Result};
use crate::roles::Roles;
use crate::store::{
    AuditRecord, Commit, Engine, IntentKind, Mark, Outcome, Reads, Request, StoredEvent, Write,
};

/// The actor of the daemon's own events (overdue reports, relay failures).
pub const SYSTEM_ACTOR: &str = "hotfixd";

/// The event log read forward: durable events only, in sequence order,
/// with a doorbell that rings as the durable end moves.
#[derive(Clone)]
pub struct EventLog {
    store: Arc<dyn Engine>,
}

impl EventLog {
    /// The sequence of the last durable event.
    pub fn durable_seq(&self) -> u64 {
        self.store.durable_seq()
    }

    /// A doorbell that carries the durable end.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.subscribe()
    }

    /// Durable events with `seq > from`, at most `limit`.
    pub fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.store.events_after(from, limit)
    }
}

/// How a step that acts outside hotfixd begins (see [`Lane::begin_step`]).
pub enum Begun {
    /// The request was answered before: this is the first answer.
    Replayed(Hotfix),
    /// A new request, allowed now: the hotfix as it is.
    Fresh(Hotfix),
}

/// Fields every mutating request carries.
#[derive(Debug, Clone, Default)]
pub struct Mutation {
    /// The caller's idempotency key: a retry with the same id gets the
    /// first answer ("" for none).
    pub request_id: String,
    /// Refuse (ABORTED) unless the hotfix is at this version.
    pub expected_version: Option<u64>,
}

/// The application service: each change is one domain decision inside one
/// store change, with the clock read here.
pub struct Lane {
    store: Arc<dyn Engine>,
    policy: Policy,
    roles: Arc<Roles>,
    clock: Arc<dyn Clock>,
    /// The longest an outside call (GitHub, Argo CD) may take.
    act_within: std::time::Duration,
    /// Changes counted by step and outcome.
    metrics: crate::metrics::Metrics,
}

/// The longest an outside call may take unless the integrations say.
pub const DEFAULT_ACT_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Which hotfixes [`Lane::list`] answers; every field narrows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    /// Only those in this state.
    pub state: Option<domain::State>,
    /// Only those with an overdue obligation.
    pub overdue: bool,
    /// Only those still needing someone ([`domain::is_open`]).
    pub open: bool,
}

/// Everything `show` prints about one hotfix.
pub struct HotfixView {
    /// The hotfix as stored.
    pub hotfix: Hotfix,
    /// Its events, in order.
    pub timeline: Vec<StoredEvent>,
    /// What may be done now, by whom, and what is due.
    pub next_steps: Vec<domain::NextStep>,
}

/// Everything `show` prints about one incident: a hotfix, or a mitigation
/// by flag flip or rollback instead.
pub enum IncidentView {
    Hotfix(Box<HotfixView>),
    Mitigated {
        mitigation: domain::Mitigation,
        /// Its events, in order.
        timeline: Vec<StoredEvent>,
    },
}

/// The platform team's review report.
pub struct Report {
    /// The rolling-window gate now.
    pub window: WindowView,
    /// Hotfixes per author this quarter.
    pub authors: Vec<AuthorQuarter>,
    /// Obligations past their deadline.
    pub overdue: Vec<OverdueItem>,
    /// Postmortems recorded, and of those "yes, but a rollback would have
    /// worked" (the rollback-training signal).
    pub postmortems: u32,
    pub postmortems_yes_but_rollback: u32,
    pub rollback_training_flag: bool,
    /// "When this runbook last worked", newest first.
    pub last_worked: Vec<Exercise>,
    /// The lane was not exercised within the policy's staleness period.
    pub stale: bool,
    pub generated_at: Time,
}

/// Every hotfix counted, for the metrics: by state (drills apart), and
/// the obligations still open, by kind.
#[derive(Debug, Default)]
pub struct Census {
    /// (state, drill) → hotfixes.
    pub by_state: std::collections::BTreeMap<(&'static str, bool), u64>,
    /// Obligation kind → open (not done) obligations.
    pub open_obligations: std::collections::BTreeMap<&'static str, u64>,
}

/// The rolling-window rate gate: declarations in the window and whether a
/// team review has reopened it.
pub struct WindowView {
    pub count: u32,
    pub max: u32,
    pub window: std::time::Duration,
    pub gate: Gate,
    pub last_review: Option<TeamReview>,
}

/// One author's hotfixes in a quarter, and the flag the count raises.
pub struct AuthorQuarter {
    pub author: String,
    pub quarter: String,
    pub count: u32,
    pub flag: Option<&'static str>,
}

/// An obligation past its deadline, and who owes it.
pub struct OverdueItem {
    pub incident_id: String,
    /// `ObligationKind::as_str`.
    pub obligation: String,
    pub owner: String,
    pub due: Time,
}

fn fingerprint(action: &str, incident: &str, body: &impl serde::Serialize, m: &Mutation) -> String {
    let mut h = Sha256::new();
    h.update(action.as_bytes());
    h.update([0]);
    h.update(incident.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(body).expect("commands serialize"));
    h.update([0]);
    h.update(format!("{:?}", m.expected_version).as_bytes());
    hex::encode(h.finalize())
}

fn open_obligations(h: &Hotfix, policy: &Policy, now: Time) -> Vec<(Time, ObligationKind)> {
    obligations(h, policy, now)
        .into_iter()
        .filter(|o| !o.done)
        .map(|o| (o.due, o.kind))
        .collect()
}

fn existing<'a>(h: &'a Option<Hotfix>, m: &'a Option<domain::Mitigation>) -> Existing<'a> {
    match (h, m) {
        (Some(h), _) => Existing::Hotfix(h),
        (None, Some(m)) => Existing::Mitigation(m),
        (None, None) => Existing::None,
    }
}

impl Lane {
    /// The lane over `store`, deciding by `policy` with `roles`, reading
    /// time from `clock`.
    pub fn new(
        store: Arc<dyn Engine>,
        policy: Policy,
        roles: Arc<Roles>,
        clock: Arc<dyn Clock>,
    ) -> Lane {
        Lane {
            store,
            policy,
            roles,
            clock,
            act_within: DEFAULT_ACT_WITHIN,
            metrics: Default::default(),
        }
    }

    /// The lane whose outside calls take at most `d` (the integrations'
    /// timeouts).
    pub fn acting_within(mut self, d: std::time::Duration) -> Lane {
        self.act_within = d;
        self
    }

    /// Waits until reads here see every change answered before, by any
    /// replica (see `Engine::catch_up`).
    pub async fn catch_up(&self) -> Result<()> {
        self.store.catch_up().await
    }

    /// Whether an outside call may start now: outside a leader's term
    /// always; within one, only while its lease outlasts the call (see
    /// `term`). Checked right before every call that changes
    /// something outside.
    pub fn may_act(&self) -> Result<()> {
        crate::term::may_act(self.act_within)
    }

    /// The lane's counters.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The store, for the application layer's own readers (relay,
    /// checkpoints); nothing above this layer names it.
    pub(crate) fn store(&self) -> &Arc<dyn Engine> {
        &self.store
    }

    /// One change through the store: `decide` reads and decides under the
    /// store's consistency (again, if a replicated engine lost a race to
    /// another replica), the outcome is durable when this answers.
    async fn change(
        &self,
        req: Request<'_>,
        decide: impl FnMut(&dyn Reads) -> Result<Commit> + Send,
    ) -> Result<Outcome> {
        let step = req.action;
        let started = std::time::Instant::now();
        let result = self.store.execute(req, Box::new(decide)).await;
        self.metrics.changed(step, &result, started.elapsed());
        result
    }

    /// The event log, for its readers (watchers).
    pub fn log(&self) -> EventLog {
        EventLog {
            store: self.store.clone(),
        }
    }

    /// Walks the whole audit chain and checks the stored checkpoints
    /// against it (signatures too, with `key`). Blocking: a full scan.
    pub fn verify_audit(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<crate::store::chain::Report> {
        let mut report = self.store.verify_audit();
        if report.first_bad.is_none()
            && let Some(bad) = self.store.verify_checkpoints(key)?
        {
            report.first_bad = Some(bad);
        }
        Ok(report)
    }

    /// The chain hash of audit record `seq` ("" when there is none).
    pub fn audit_hash(&self, seq: u64) -> Result<String> {
        Ok(self.store.audit_hash(seq)?.unwrap_or_default())
    }

    /// Audit records after `from`, at most `limit` (after [`Lane::read_audit`]).
    pub fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.store.audit_after(from, limit)
    }

    /// The audit records of one incident (after [`Lane::read_audit`]).
    pub fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        self.store.audit_of(incident_id, limit)
    }

    /// The newest signed checkpoint: (trail size, note); (0, "") for none.
    pub fn latest_checkpoint(&self) -> Result<(u64, String)> {
        Ok(self.store.latest_checkpoint()?.unwrap_or_default())
    }

    /// The runbook's policy it decides by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The lane's clock.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// The principal a roster handle names now (for reconciling an action
    /// taken before a restart under that principal's authority).
    pub fn principal(&self, handle: &str) -> Option<Principal> {
        self.roles.principal(handle)
    }

    fn ctx<'a>(&'a self, actor: &'a Principal, now: Time, directory: &'a Directory) -> Ctx<'a> {
        Ctx {
            actor,
            now,
            policy: &self.policy,
            directory,
        }
    }

    fn check_mutation(m: &Mutation) -> Result<()> {
        domain::validate::check_request_id("request_id", &m.request_id)?;
        Ok(())
    }

    /// Lets `actor` read audit records (`action`: "audit-export",
    /// "audit-list"), or refuses; a refusal is a denial like any other: an
    /// audit record, on disk before the answer. Reads themselves change
    /// nothing and write nothing.
    pub async fn read_audit(
        &self,
        actor: &Principal,
        action: &str,
        incident_id: &str,
    ) -> Result<()> {
        self.allowed(actor, action, incident_id, domain::may_read_audit(actor))
            .await
    }

    /// An audit record of hotfixd's own (the roster reloaded, …), durably.
    pub async fn record(&self, action: &str, detail: &str) -> Result<()> {
        self.store
            .record(
                SYSTEM_ACTOR,
                action,
                &crate::redact::redact(detail),
                self.now(),
            )
            .await
    }

    /// A consistent backup of the whole store, for a platform-admin; a
    /// refused one is an audited denial, a taken one an audit record.
    pub async fn backup(&self, actor: &Principal) -> Result<Vec<u8>> {
        self.allowed(actor, "backup", "", domain::may_back_up(actor))
            .await?;
        self.store.backup(&actor.handle, self.now()).await
    }

    /// `rule`'s refusal, recorded as a denial (on disk before the answer).
    async fn allowed(
        &self,
        actor: &Principal,
        action: &str,
        incident_id: &str,
        rule: std::result::Result<(), domain::Refusal>,
    ) -> Result<()> {
        let Err(refusal) = rule else {
            return Ok(());
        };
        let req = Request {
            actor: &actor.handle,
            action,
            incident_id,
            now: self.now(),
            request_id: "",
            fingerprint: String::new(),
        };
        let denied = refusal.clone();
        self.change(req, move |_| Err(denied.clone().into()))
            .await?;
        Err(refusal.into())
    }

    /// Step 1: declare a hotfix.
    pub async fn declare(&self, actor: &Principal, m: &Mutation, d: Declaration) -> Result<Hotfix> {
        Self::check_mutation(m)?;
        let now = self.now();
        let inc = d.incident_id.clone();
        let req = Request {
            actor: &actor.handle,
            action: "declare",
            incident_id: &inc,
            now,
            request_id: &m.request_id,
            fingerprint: fingerprint("declare", &inc, &d, m),
        };
        let outcome = self
            .change(req, |snap| {
                let (h, mi) = (snap.hotfix(&inc)?, snap.mitigation(&inc)?);
                let gate = snap.gate_view(before(now, self.policy.rate_window))?;
                let count = snap.author_quarter_count(&quarter_of(now), &actor.handle)?;
                let dec = domain::declare(
                    &self.ctx(actor, now, &self.roles.directory()),
                    existing(&h, &mi),
                    &gate,
                    count,
                    d.clone(),
                )?;
                Ok(Commit {
                    state: Some(EventState::Hotfix(
                        dec.hotfix.state(&self.policy.required_checks),
                    )),
                    write: Write::Hotfix {
                        before: None,
                        open_before: Vec::new(),
                        open_after: open_obligations(&dec.hotfix, &self.policy, now),
                        after: dec.hotfix,
                    },
                    events: dec.events,
                    exercise: dec.exercise,
                    marks: Vec::new(),
                })
            })
            .await?;
        expect_hotfix(outcome)
    }

    /// Records an incident mitigated by a flag flip or a rollback.
    pub async fn record_mitigation(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        route: MitigationRoute,
        notes: &str,
    ) -> Result<domain::Mitigation> {
        Self::check_mutation(m)?;
        let now = self.now();
        let req = Request {
            actor: &actor.handle,
            action: "mitigated",
            incident_id,
            now,
            request_id: &m.request_id,
            fingerprint: fingerprint("mitigated", incident_id, &(route, notes), m),
        };
        let outcome = self
            .change(req, |snap| {
                let (h, mi) = (snap.hotfix(incident_id)?, snap.mitigation(incident_id)?);
                let (mit, ev, ex) = domain::record_mitigation(
                    &self.ctx(actor, now, &self.roles.directory()),
                    incident_id,
                    existing(&h, &mi),
                    route,
                    notes,
                )?;
                Ok(Commit {
                    write: Write::Mitigation(mit),
                    state: Some(EventState::MitigatedWithoutHotfix),
                    events: vec![ev],
                    exercise: Some(ex),
                    marks: Vec::new(),
                })
            })
            .await?;
        match outcome {
            Outcome::Mitigation(m) => Ok(m),
            other => Err(Error::Corrupt(format!(
                "expected a mitigation, got {other:?}"
            ))),
        }
    }

    /// Steps 2-9 on one hotfix.
    pub async fn command(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        cmd: Command,
    ) -> Result<Hotfix> {
        let asked = cmd.clone();
        self.command_asked(actor, m, incident_id, &asked, cmd).await
    }

    /// Like `command`, for a step whose facts hotfixd gathered itself (from
    /// GitHub): the request id is bound to what the caller `asked`, so a
    /// retry is recognised by [`Lane::begin_step`] before anything is
    /// fetched.
    pub async fn command_asked(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
        cmd: Command,
    ) -> Result<Hotfix> {
        self.step_marked(actor, m, incident_id, asked, cmd, Vec::new())
            .await
    }

    /// One step, decided by the domain and committed with `marks` in the
    /// same change.
    pub(crate) async fn step_marked(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
        cmd: Command,
        marks: Vec<Mark>,
    ) -> Result<Hotfix> {
        Self::check_mutation(m)?;
        domain::validate::check_incident_id("incident_id", incident_id)?;
        let now = self.now();
        let action = cmd.step().as_str();
        let req = Request {
            actor: &actor.handle,
            action,
            incident_id,
            now,
            request_id: &m.request_id,
            fingerprint: fingerprint(action, incident_id, asked, m),
        };
        let outcome = self
            .change(req, |snap| {
                let h = snap.hotfix(incident_id)?.ok_or_else(|| Refusal::NotFound {
                    incident: incident_id.to_string(),
                })?;
                if let Some(expected) = m.expected_version
                    && expected != h.version
                {
                    return Err(Refusal::Conflict {
                        expected,
                        current: h.version,
                    }
                    .into());
                }
                let dec = domain::apply(&self.ctx(actor, now, &self.roles.directory()), &h, &cmd)?;
                Ok(Commit {
                    state: Some(EventState::Hotfix(
                        dec.hotfix.state(&self.policy.required_checks),
                    )),
                    write: Write::Hotfix {
                        open_before: open_obligations(&h, &self.policy, now),
                        open_after: open_obligations(&dec.hotfix, &self.policy, now),
                        before: Some(h),
                        after: dec.hotfix,
                    },
                    events: dec.events,
                    exercise: dec.exercise,
                    marks: marks.clone(),
                })
            })
            .await?;
        expect_hotfix(outcome)
    }

    /// The start of every step hotfixd performs outside itself: a retry
    /// (same `request_id` as an answered request) gets the first answer
    /// and must not act again; otherwise the hotfix, once `actor` may take
    /// `asked`'s step on it now.
    pub fn begin_step(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
    ) -> Result<Begun> {
        let fp = fingerprint(asked.step().as_str(), incident_id, asked, m);
        if let Some(o) = self.store.replay(&actor.handle, &m.request_id, &fp)? {
            return expect_hotfix(o).map(Begun::Replayed);
        }
        self.precheck(actor, incident_id, asked.step())
            .map(Begun::Fresh)
    }

    /// External actions of `kind` still pending: (incident, payload).
    pub(crate) fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>> {
        self.store.intents(kind)
    }

    /// Records the platform team's review (reopens the rate gate).
    pub async fn team_review(
        &self,
        actor: &Principal,
        m: &Mutation,
        notes: &str,
    ) -> Result<TeamReview> {
        Self::check_mutation(m)?;
        let now = self.now();
        let req = Request {
            actor: &actor.handle,
            action: "team-review",
            incident_id: "",
            now,
            request_id: &m.request_id,
            fingerprint: fingerprint("team-review", "", &notes, m),
        };
        let outcome = self
            .change(req, |_snap| {
                let (review, ev) =
                    domain::team_review(&self.ctx(actor, now, &self.roles.directory()), notes)?;
                Ok(Commit {
                    write: Write::TeamReview(review),
                    state: None,
                    events: vec![ev],
                    exercise: None,
                    marks: Vec::new(),
                })
            })
            .await?;
        match outcome {
            Outcome::TeamReview(r) => Ok(r),
            other => Err(Error::Corrupt(format!(
                "expected a team review, got {other:?}"
            ))),
        }
    }

    /// Records the daemon's own observation about a hotfix (actor
    /// `hotfixd`), e.g. a chat notification that failed.
    pub async fn note(&self, incident_id: &str, draft: domain::EventDraft) -> Result<()> {
        self.note_marked(incident_id, draft, Vec::new()).await
    }

    /// [`Lane::note`], setting or clearing `marks` in the same change (an
    /// intent, an observation to be made once).
    pub(crate) async fn note_marked(
        &self,
        incident_id: &str,
        draft: domain::EventDraft,
        marks: Vec<Mark>,
    ) -> Result<()> {
        let now = self.now();
        let req = Request {
            actor: SYSTEM_ACTOR,
            action: draft.kind.as_str(),
            incident_id,
            now,
            request_id: "",
            fingerprint: String::new(),
        };
        self.change(req, |snap| {
            let h = snap.hotfix(incident_id)?.ok_or_else(|| Refusal::NotFound {
                incident: incident_id.to_string(),
            })?;
            Ok(Commit {
                state: Some(EventState::Hotfix(h.state(&self.policy.required_checks))),
                write: Write::Note { hotfix: h },
                events: vec![draft.clone()],
                exercise: None,
                marks: marks.clone(),
            })
        })
        .await?;
        Ok(())
    }

    /// Reports each obligation that went past its deadline, once.
    pub async fn sweep_overdue(&self) -> Result<usize> {
        let now = self.now();
        let mut reported = 0;
        for (inc, kind) in self.store.overdue_unreported(now)? {
            let Some(h) = self.store.hotfix(&inc)? else {
                continue;
            };
            let Some(kind) = domain::obligations(&h, &self.policy, now)
                .into_iter()
                .map(|o| o.kind)
                .find(|k| k.as_str() == kind)
            else {
                continue;
            };
            if let Some(draft) = domain::overdue_event(&h, kind, &self.policy, now) {
                let mark = Mark::OverdueReported {
                    incident_id: inc.clone(),
                    obligation: kind.as_str().to_string(),
                };
                self.note_marked(&inc, draft, vec![mark]).await?;
                reported += 1;
            }
        }
        Ok(reported)
    }

    /// Reads a hotfix and checks that `actor` may take `step` on it now.
    pub fn precheck(
        &self,
        actor: &Principal,
        incident_id: &str,
        step: domain::Step,
    ) -> Result<Hotfix> {
        let h = self.hotfix(incident_id)?;
        domain::precheck(
            &self.ctx(actor, self.now(), &self.roles.directory()),
            &h,
            step,
        )?;
        Ok(h)
    }

    /// One hotfix (NOT_FOUND when there is none).
    pub fn hotfix(&self, incident_id: &str) -> Result<Hotfix> {
        domain::validate::check_incident_id("incident_id", incident_id)?;
        Ok(self
            .store
            .hotfix(incident_id)?
            .ok_or_else(|| Refusal::NotFound {
                incident: incident_id.to_string(),
            })?)
    }

    /// One hotfix with its timeline and next steps, as `show` prints it.
    pub fn get(&self, incident_id: &str) -> Result<HotfixView> {
        let hotfix = self.hotfix(incident_id)?;
        let now = self.now();
        Ok(HotfixView {
            timeline: self.store.timeline(incident_id)?,
            next_steps: domain::next_steps(&hotfix, &self.policy, now),
            hotfix,
        })
    }

    /// One incident, as `show` prints it: its hotfix, or the mitigation
    /// recorded instead of one.
    pub fn incident(&self, incident_id: &str) -> Result<IncidentView> {
        domain::validate::check_incident_id("incident_id", incident_id)?;
        if self.store.hotfix(incident_id)?.is_some() {
            return self
                .get(incident_id)
                .map(|v| IncidentView::Hotfix(Box::new(v)));
        }
        match self.store.mitigation(incident_id)? {
            Some(mitigation) => Ok(IncidentView::Mitigated {
                mitigation,
                timeline: self.store.timeline(incident_id)?,
            }),
            None => Err(Refusal::NotFound {
                incident: incident_id.to_string(),
            }
            .into()),
        }
    }

    /// The incidents mitigated without a hotfix, newest first (by when
    /// they were recorded), at most `limit`.
    pub fn mitigations(&self, limit: usize) -> Result<Vec<domain::Mitigation>> {
        let mut all = self.store.mitigations()?;
        all.sort_by_key(|m| std::cmp::Reverse(m.seq));
        all.truncate(limit);
        Ok(all)
    }

    /// Hotfixes, newest first, optionally filtered (see [`ListFilter`]).
    pub fn list(&self, filter: ListFilter, limit: usize) -> Result<Vec<Hotfix>> {
        let ListFilter {
            state,
            overdue: overdue_only,
            open,
        } = filter;
        let now = self.now();
        let overdue: std::collections::BTreeSet<String> = if overdue_only {
            self.store
                .overdue(now)?
                .into_iter()
                .map(|(inc, _, _)| inc)
                .collect()
        } else {
            Default::default()
        };
        let mut out = Vec::new();
        if overdue_only {
            for inc in &overdue {
                if let Some(h) = self.store.hotfix(inc)? {
                    out.push(h);
                }
            }
        } else {
            out = self.store.hotfixes()?;
        }
        out.retain(|h| state.is_none_or(|s| h.state(&self.policy.required_checks) == s));
        if open {
            out.retain(|h| domain::is_open(h, &self.policy, now));
        }
        out.sort_by(|a, b| {
            b.declared_at
                .cmp(&a.declared_at)
                .then_with(|| b.incident_id().cmp(a.incident_id()))
        });
        out.truncate(limit);
        Ok(out)
    }

    /// The rolling-window gate at `now`.
    pub fn window(&self, now: Time) -> Result<WindowView> {
        let view = self.store.gate_view(before(now, self.policy.rate_window))?;
        Ok(WindowView {
            count: view.count_in_window,
            max: self.policy.rate_window_max,
            window: self.policy.rate_window,
            gate: self.policy.gate(&view),
            last_review: view.last_review,
        })
    }

    /// `author`'s hotfixes in the quarter of `now`.
    pub fn author_quarter(&self, author: &str, now: Time) -> Result<AuthorQuarter> {
        let quarter = quarter_of(now);
        let count = self.store.author_quarter_count(&quarter, author)?;
        Ok(AuthorQuarter {
            author: author.to_string(),
            flag: self.policy.quarter_flag(count),
            quarter,
            count,
        })
    }

    /// Every hotfix counted by state, and the obligations still open (a
    /// full read of the hotfixes: for scrapes, not for requests).
    pub fn census(&self) -> Result<Census> {
        let now = self.now();
        let mut c = Census::default();
        for state in domain::State::ALL {
            for drill in [false, true] {
                c.by_state.insert((state.as_str(), drill), 0);
            }
        }
        for kind in domain::ObligationKind::ALL {
            c.open_obligations.insert(kind.as_str(), 0);
        }
        for h in self.store.hotfixes()? {
            let state = h.state(&self.policy.required_checks).as_str();
            *c.by_state.entry((state, h.is_drill())).or_default() += 1;
            for o in obligations(&h, &self.policy, now) {
                let open = c.open_obligations.entry(o.kind.as_str()).or_default();
                if !o.done {
                    *open += 1;
                }
            }
        }
        Ok(c)
    }

    /// The platform team's review report, now.
    pub fn report(&self) -> Result<Report> {
        let now = self.now();
        let quarter = quarter_of(now);
        let authors = self
            .store
            .quarter_counts(&quarter)?
            .into_iter()
            .map(|(author, count)| AuthorQuarter {
                author,
                quarter: quarter.clone(),
                count,
                flag: self.policy.quarter_flag(count),
            })
            .collect();
        let mut overdue = Vec::new();
        for (inc, kind, due) in self.store.overdue(now)? {
            let owner = match self.store.hotfix(&inc)? {
                Some(h) => obligations(&h, &self.policy, now)
                    .into_iter()
                    .find(|o| o.kind.as_str() == kind)
                    .map(|o| o.owner)
                    .unwrap_or_default(),
                None => String::new(),
            };
            overdue.push(OverdueItem {
                incident_id: inc,
                obligation: kind,
                owner,
                due,
            });
        }
        let (postmortems, ybr) = self.store.postmortem_counts()?;
        let last_worked = self.store.exercises(20)?;
        let stale = !self
            .store
            .lane_exercised_since(before(now, self.policy.stale_after))?;
        Ok(Report {
            window: self.window(now)?,
            authors,
            overdue,
            postmortems,
            postmortems_yes_but_rollback: ybr,
            rollback_training_flag: self.policy.rollback_training_flag(postmortems, ybr),
            last_worked,
            stale,
            generated_at: now,
        })
    }
}

fn expect_hotfix(o: Outcome) -> Result<Hotfix> {
    match o {
        Outcome::Hotfix(h) => Ok(h),
        other => Err(Error::Corrupt(format!("expected a hotfix, got {other:?}"))),
    }
}
