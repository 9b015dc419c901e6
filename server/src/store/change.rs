//! The change protocol: under the writer lock, a request id seen before
//! answers as the first time; otherwise the decision runs on a `Snapshot`
//! and its records are built (events, the audit record sealed onto the
//! chain, index entries, marks, the request record) by [`Store::plan`].
//! The sled engine writes them as one change through the redo record; the
//! etcd engine plans on its mirror and commits them as one transaction.

use super::*;

impl Store {
    /// Runs under the writer lock; returns the answer and the group-commit
    /// ticket that covers whatever it wrote.
    pub(super) fn execute_locked(
        &self,
        req: &Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> (Result<(Outcome, Option<u64>)>, u64) {
        let mut counters = self.writer.lock().expect("writer lock");
        let answer = self.write_locked(&mut counters, req, decide);
        counters.tickets += 1;
        self.set_mark(&counters);
        (answer, counters.tickets)
    }

    pub(super) fn write_locked(
        &self,
        counters: &mut Counters,
        req: &Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> Result<(Outcome, Option<u64>)> {
        let planned = self.plan(counters, None, req, decide)?;
        if !planned.writes.ops.is_empty() {
            self.commit_writes(&planned.writes)?;
        }
        counters.next_event = planned.next_event;
        counters.next_audit = planned.next_audit;
        counters.audit_head = planned.audit_head;
        planned.answer
    }

    /// Decides the change against the store as it is (under `over`, the
    /// writes of changes planned before it, if any) and `counters`, and
    /// builds every record it writes, writing nothing: the engine commits
    /// [`Planned::writes`] (here through the redo record; on etcd as one
    /// transaction) and only then moves its counters on.
    pub(super) fn plan(
        &self,
        counters: &Counters,
        over: Option<&view::Overlay>,
        req: &Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> Result<Planned> {
        let unchanged = |answer| Planned {
            writes: redo::Writes::default(),
            answer,
            next_event: counters.next_event,
            next_audit: counters.next_audit,
            audit_head: counters.audit_head,
        };
        let req_key =
            (!req.request_id.is_empty()).then(|| keys::request(req.actor, req.request_id));
        let view = view::View { store: self, over };
        if let Some(first) = first_answer(&view, req, req_key.as_deref())? {
            return Ok(unchanged(Ok((first, None))));
        }

        let snapshot = Snapshot {
            view: view::View { store: self, over },
            audit: (counters.next_audit - 1, counters.audit_head),
        };
        let commit = match decide(&snapshot) {
            Ok(c) => c,
            Err(Error::Refused(refusal)) => {
                let mut p = unchanged(Err(refusal.clone().into()));
                let (record, head) = refusal_record(counters, req, &refusal);
                p.writes
                    .put(redo::TreeId::Audit, keys::seq(record.seq), encode(&record));
                p.next_audit += 1;
                p.audit_head = head;
                return Ok(p);
            }
            Err(other) => return Err(other),
        };

        // Assign sequence numbers and build every record of the change.
        let first = counters.next_event;
        let last = first + commit.events.len() as u64 - 1;
        let state = commit.state.map_or("", |s| s.as_str());
        let (incident, version, drill, outcome) = answer_of(&commit.write, last);
        let events: Vec<StoredEvent> = commit
            .events
            .iter()
            .enumerate()
            .map(|(i, d)| StoredEvent {
                seq: first + i as u64,
                incident_id: incident.clone(),
                at: req.now,
                actor: req.actor.to_string(),
                kind: d.kind.as_str().to_string(),
                summary: redact(&d.summary).into_owned(),
                state: state.to_string(),
                version,
                drill,
            })
            .collect();
        let mut audit = AuditRecord {
            seq: counters.next_audit,
            at: req.now,
            actor: req.actor.to_string(),
            incident_id: incident.clone(),
            action: req.action.to_string(),
            outcome: "ok".into(),
            detail: events
                .iter()
                .map(|e| e.summary.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            event_seq: Some(first),
            hash: String::new(),
            v: 0,
        };

        use redo::TreeId::{Audit, Events, Index, Requests};
        let mut w = redo::Writes::default();
        for e in &events {
            w.put(Events, keys::seq(e.seq), encode(e));
            if !e.incident_id.is_empty() {
                w.put(Index, keys::by_incident(&e.incident_id, e.seq), Vec::new());
            }
        }
        index(&view, &mut w, &commit, &outcome, first)?;
        if let Some(k) = req_key {
            w.put(
                Requests,
                k,
                encode(&RequestRecord {
                    fingerprint: req.fingerprint.clone(),
                    outcome: outcome.clone(),
                }),
            );
        }
        let audit_head = chain::seal(&mut audit, &counters.audit_head);
        w.put(Audit, keys::seq(audit.seq), encode(&audit));
        Ok(Planned {
            writes: w,
            answer: Ok((outcome, Some(last))),
            next_event: last + 1,
            next_audit: counters.next_audit + 1,
            audit_head,
        })
    }

    /// Makes `w` one change: the whole of it in `meta/redo` (one insert,
    /// atomic on its own), then each write. See [`redo`].
    pub(super) fn commit_writes(&self, w: &redo::Writes) -> Result<()> {
        let written = self
            .meta
            .insert(keys::META_REDO, w.encode())
            .map_err(Error::from)
            .and_then(|_| {
                #[cfg(test)]
                if self
                    .halt_after_redo
                    .load(std::sync::atomic::Ordering::Acquire)
                {
                    return Ok(());
                }
                self.apply(w)
            });
        if let Err(e) = &written {
            // Part of the change may be applied; the next start applies
            // the redo record again. Until then, change nothing more.
            self.flusher.poison(format!("writing a change: {e}"));
            return Err(Error::NotDurable(format!("writing a change: {e}")));
        }
        written
    }

    pub(super) fn tree(&self, id: redo::TreeId) -> &sled::Tree {
        match id {
            redo::TreeId::Records => &self.records,
            redo::TreeId::Events => &self.events,
            redo::TreeId::Audit => &self.audit,
            redo::TreeId::Index => &self.index,
            redo::TreeId::Requests => &self.requests,
            redo::TreeId::Meta => &self.meta,
        }
    }

    /// Whether every write of `w` is on disk. A change's last write is its
    /// audit record, under a sequence number no earlier change used; sled
    /// recovers a prefix of its log, so if that record is there, so is the
    /// rest. (Comparing values instead would undo anything written since,
    /// e.g. a re-sealed audit chain that `audit verify --against` must see.)
    pub(super) fn landed(&self, w: &redo::Writes) -> Result<bool> {
        match w.ops.last() {
            Some(op) if op.tree == redo::TreeId::Audit && op.value.is_some() => {
                Ok(self.audit.contains_key(&op.key)?)
            }
            _ => Err(Error::Corrupt(
                "meta/redo: a change must end with its audit record".into(),
            )),
        }
    }

    pub(super) fn apply(&self, w: &redo::Writes) -> Result<()> {
        for op in &w.ops {
            let tree = self.tree(op.tree);
            match &op.value {
                Some(v) => tree.insert(op.key.as_slice(), v.as_slice())?,
                None => tree.remove(op.key.as_slice())?,
            };
        }
        Ok(())
    }
}

/// The stored first answer to the request's id, if it has one and was
/// answered; the same id with another request is INVALID_ARGUMENT.
fn first_answer(
    view: &view::View<'_>,
    req: &Request<'_>,
    key: Option<&[u8]>,
) -> Result<Option<Outcome>> {
    let Some(k) = key else { return Ok(None) };
    let Some(bytes) = view.request(k)? else {
        return Ok(None);
    };
    let rec: RequestRecord = decode("request", &bytes)?;
    if rec.fingerprint != req.fingerprint {
        return Err(Refusal::Invalid {
            field: "request_id".into(),
            reason: format!(
                "'{}' was already used for a different request",
                req.request_id
            ),
        }
        .into());
    }
    Ok(Some(rec.outcome))
}

/// The indexer: the records and index entries a change writes beside
/// its events (the facts, the rolling-window and quarter entries of a
/// declaration, the obligations that changed, the postmortem counts,
/// the review, the checkpoint, the marks, the exercise).
fn index(
    view: &view::View<'_>,
    w: &mut redo::Writes,
    commit: &Commit,
    outcome: &Outcome,
    first: u64,
) -> Result<()> {
    use redo::TreeId::{Index, Meta, Records};
    match (&commit.write, outcome) {
        (
            Write::Hotfix {
                before,
                open_before,
                open_after,
                ..
            },
            Outcome::Hotfix(h),
        ) => {
            w.put(Records, keys::hotfix(h.incident_id()), encode(h));
            if before.is_none() && !h.is_drill() {
                w.put(
                    Index,
                    keys::declared(h.declared_at, h.incident_id()),
                    keys::seq(first),
                );
                w.put(
                    Index,
                    keys::quarter(&quarter_of(h.declared_at), &h.author, h.incident_id()),
                    Vec::new(),
                );
            }
            // Only the obligations that changed.
            for (due, kind) in open_before.iter().filter(|o| !open_after.contains(o)) {
                w.delete(Index, keys::due(*due, h.incident_id(), *kind));
            }
            for (due, kind) in open_after.iter().filter(|o| !open_before.contains(o)) {
                w.put(Index, keys::due(*due, h.incident_id(), *kind), Vec::new());
            }
            if let Some(yes_but_rollback) =
                crate::domain::facts::first_postmortem(before.as_ref(), h)
            {
                // Absolute counts, not increments: applying the change
                // again after a crash must not count it twice.
                let (all, ybr) = view.postmortem_counts()?;
                w.put(Meta, keys::META_POSTMORTEMS, keys::seq(u64::from(all) + 1));
                if yes_but_rollback {
                    w.put(
                        Meta,
                        keys::META_POSTMORTEMS_YBR,
                        keys::seq(u64::from(ybr) + 1),
                    );
                }
            }
        }
        (Write::Mitigation(_), Outcome::Mitigation(m)) => {
            w.put(Records, keys::mitigation(&m.incident_id), encode(m));
        }
        (Write::TeamReview(_), Outcome::TeamReview(r)) => {
            w.put(Index, keys::review(r.at, first), encode(r));
        }
        (Write::Checkpoint { size, note }, Outcome::Checkpoint { .. }) => {
            w.put(Index, keys::checkpoint(*size), note.as_bytes().to_vec());
        }
        (Write::Note { .. }, Outcome::Hotfix(_)) => {}
        _ => unreachable!("outcome mirrors the write"),
    }
    for mark in &commit.marks {
        match mark {
            Mark::Intent {
                kind,
                incident_id,
                payload,
            } => w.put(
                Index,
                keys::intent(kind.as_str(), incident_id),
                payload.clone(),
            ),
            Mark::IntentDone { kind, incident_id } => {
                w.delete(Index, keys::intent(kind.as_str(), incident_id))
            }
            Mark::OverdueReported {
                incident_id,
                obligation,
            } => w.put(
                Index,
                keys::overdue_mark(incident_id, obligation),
                Vec::new(),
            ),
        }
    }
    if let Some(x) = &commit.exercise {
        w.put(Index, keys::exercise(x.at, &x.incident_id), encode(x));
    }
    Ok(())
}

/// A refusal's audit record, sealed onto the chain after `counters`' head
/// (all a refusal writes), and the new head.
fn refusal_record(
    counters: &Counters,
    req: &Request<'_>,
    refusal: &Refusal,
) -> (AuditRecord, chain::Hash) {
    let mut rec = AuditRecord {
        seq: counters.next_audit,
        at: req.now,
        actor: req.actor.to_string(),
        incident_id: req.incident_id.to_string(),
        action: req.action.to_string(),
        outcome: refusal.kind().to_string(),
        detail: redact(&refusal.to_string()).into_owned(),
        event_seq: None,
        hash: String::new(),
        v: 0,
    };
    let head = chain::seal(&mut rec, &counters.audit_head);
    (rec, head)
}

/// A change built by [`Store::plan`], not yet written.
pub(super) struct Planned {
    /// Everything the change writes, its audit record last.
    pub writes: redo::Writes,
    /// The answer once `writes` are committed: the outcome and its last
    /// event (None: a replayed answer), or the refusal.
    pub answer: Result<(Outcome, Option<u64>)>,
    /// The counters after it.
    pub next_event: u64,
    pub next_audit: u64,
    pub audit_head: chain::Hash,
}

/// What a change answers (its last event's sequence in it), and the
/// incident, version and drill flag its events carry.
fn answer_of(write: &Write, last: u64) -> (String, u64, bool, Outcome) {
    match write {
        Write::Hotfix { after, .. } => {
            let mut h = after.clone();
            h.last_seq = last;
            (
                h.incident_id().to_string(),
                h.version,
                h.is_drill(),
                Outcome::Hotfix(h),
            )
        }
        Write::Mitigation(m) => {
            let mut m = m.clone();
            m.seq = last;
            (m.incident_id.clone(), 1, false, Outcome::Mitigation(m))
        }
        Write::TeamReview(r) => (String::new(), 0, false, Outcome::TeamReview(r.clone())),
        Write::Checkpoint { size, note } => (
            String::new(),
            0,
            false,
            Outcome::Checkpoint {
                size: *size,
                note: note.clone(),
            },
        ),
        Write::Note { hotfix, .. } => (
            hotfix.incident_id().to_string(),
            hotfix.version,
            hotfix.is_drill(),
            Outcome::Hotfix(hotfix.clone()),
        ),
    }
}
