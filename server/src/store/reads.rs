//! The read model of the sled engine: facts by key, events forward from a
//! sequence, and the indexes (declarations in
//! the rolling window, quarters, obligations, exercises, intents, cursors).

use super::*;

impl Store {
    /// Reads one hotfix.
    pub fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        self.view().hotfix(incident_id)
    }

    pub fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        self.view().mitigation(incident_id)
    }

    /// Every hotfix, in incident-id order.
    pub fn hotfixes(&self) -> impl Iterator<Item = Result<Hotfix>> + '_ {
        self.records.scan_prefix(keys::HOTFIX).map(|r| {
            r.map_err(Error::from)
                .and_then(|(_, v)| decode("hotfix", &v))
        })
    }

    /// Every incident mitigated without a hotfix, in incident-id order.
    pub fn mitigations(&self) -> impl Iterator<Item = Result<Mitigation>> + '_ {
        self.records.scan_prefix(keys::MITIGATION).map(|r| {
            r.map_err(Error::from)
                .and_then(|(_, v)| decode("mitigation", &v))
        })
    }

    /// Durable events with `seq > from`, at most `limit`, read from sled
    /// (whose page cache holds the log's tail). The live tail watchers are
    /// sent is cached once, encoded, by the Watch engine (`grpc/watch.rs`).
    pub fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let upto = self.durable_seq();
        let mut out = Vec::new();
        if from >= upto {
            return Ok(out);
        }
        for r in self.events.range(keys::seq(from + 1)..=keys::seq(upto)) {
            let (_, v) = r?;
            out.push(decode("event", &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The events of one incident, in order.
    pub fn timeline(&self, incident_id: &str) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        for r in self
            .index
            .scan_prefix(keys::by_incident_prefix(incident_id))
        {
            let (k, _) = r?;
            let seq = keys::u64_of(&k[k.len() - 8..]);
            if let Some(v) = self.events.get(keys::seq(seq))? {
                out.push(decode("event", &v)?);
            }
        }
        Ok(out)
    }

    /// Non-drill declarations in `[since, now]` and the latest team review.
    pub fn gate_view(&self, since: Time) -> Result<GateView> {
        self.view().gate_view(since)
    }

    /// Hotfixes `author` declared in `quarter` (drills excluded).
    pub fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        self.view().author_quarter_count(quarter, author)
    }

    /// Per-author counts for one quarter.
    pub fn quarter_counts(&self, quarter: &str) -> Result<Vec<(String, u32)>> {
        let mut out: Vec<(String, u32)> = Vec::new();
        for r in self.index.scan_prefix(keys::quarter_prefix(quarter)) {
            let (k, _) = r?;
            let author = keys::quarter_author_of(&k, quarter);
            match out.last_mut() {
                Some((a, n)) if *a == author => *n += 1,
                _ => out.push((author, 1)),
            }
        }
        Ok(out)
    }

    /// Outstanding obligations due before `now`: (incident, kind, due).
    pub fn overdue(&self, now: Time) -> Result<Vec<(String, String, Time)>> {
        let mut out = Vec::new();
        for r in self.index.range(keys::DUE.to_vec()..keys::due_until(now)) {
            let (k, _) = r?;
            out.push(keys::due_of(&k));
        }
        Ok(out)
    }

    /// Overdue obligations not yet reported: (incident, kind).
    pub fn overdue_unreported(&self, now: Time) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (inc, kind, _) in self.overdue(now)? {
            if !self.index.contains_key(keys::overdue_mark(&inc, &kind))? {
                out.push((inc, kind));
            }
        }
        Ok(out)
    }

    /// External actions of `kind` recorded as sent whose outcome is not
    /// recorded yet: (incident, payload).
    pub fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = keys::intent_prefix(kind.as_str());
        let mut out = Vec::new();
        for r in self.index.scan_prefix(&prefix) {
            let (k, v) = r?;
            out.push((
                String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                v.to_vec(),
            ));
        }
        Ok(out)
    }

    /// A named cursor into the event log (e.g. the chat relay's).
    pub fn cursor(&self, name: &str) -> Result<u64> {
        Ok(self
            .meta
            .get(keys::cursor(name))?
            .map_or(0, |v| keys::u64_of(&v)))
    }

    /// Moves a cursor. Flushed with the next change: a crash may replay the
    /// events after the last flushed position (at-least-once).
    pub fn set_cursor(&self, name: &str, seq: u64) -> Result<()> {
        self.meta.insert(keys::cursor(name), &keys::seq(seq))?;
        Ok(())
    }

    /// The newest `n` rows of "When this runbook last worked".
    pub fn exercises(&self, n: usize) -> Result<Vec<Exercise>> {
        let mut out = Vec::new();
        for r in self.index.scan_prefix(keys::EXERCISE).rev().take(n) {
            let (_, v) = r?;
            out.push(decode("exercise", &v)?);
        }
        Ok(out)
    }

    /// Whether the hotfix lane (drill or real) was exercised at or after
    /// `since`: reads the exercise index backwards from now to `since` only.
    pub fn lane_exercised_since(&self, since: Time) -> Result<bool> {
        for r in self
            .index
            .range(keys::exercise_from(since)..keys::exercise_end())
            .rev()
        {
            let (_, v) = r?;
            let x: Exercise = decode("exercise", &v)?;
            if x.by_hotfix_lane() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// (postmortems, of which "yes, but a rollback would have worked").
    pub fn postmortem_counts(&self) -> Result<(u32, u32)> {
        self.view().postmortem_counts()
    }

    /// The trees as they are, for reads.
    pub(super) fn view(&self) -> view::View<'_> {
        view::View {
            store: self,
            over: None,
        }
    }
}

impl Reads for Snapshot<'_> {
    fn audit_position(&self) -> (u64, chain::Hash) {
        self.audit
    }

    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        self.view.hotfix(incident_id)
    }

    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        self.view.mitigation(incident_id)
    }

    fn gate_view(&self, since: Time) -> Result<GateView> {
        self.view.gate_view(since)
    }

    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        self.view.author_quarter_count(quarter, author)
    }
}
