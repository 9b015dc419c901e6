//! The audit trail of the sled engine: appending records outside a change,
//! reading them, walking the chain, and checking the signed checkpoints
//! against it (online and on a copy offline).

use super::*;

/// Walks the audit chain of the store in `dir` without starting anything
/// else (offline verification of a copy), and compares it with the
/// watermark: a store that ends before it, or whose chain does not
/// reproduce its head, is reported broken there. `dir` must hold a store.
pub fn verify_audit_dir(
    dir: &Path,
    key: Option<&hotfix_api::audit::VerifierKey>,
) -> Result<chain::Report> {
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        return Err(Error::Damaged(format!(
            "{} holds no hotfixd store",
            dir.display()
        )));
    }
    without_panics(dir, || {
        let db = super::open_sled(sled::Config::new().path(dir))?;
        let audit = db.open_tree("audit")?;
        let mut report = chain::verify(audit.iter().map(|r| {
            let (_, v) = r.map_err(|e| format!("reading the audit tree: {e}"))?;
            decode::<AuditRecord>("audit", &v).map_err(|e| e.to_string())
        }));
        if report.first_bad.is_none()
            && let Some((size, why)) = check_checkpoints(&db.open_tree("index")?, &audit, key)?
        {
            report.first_bad = Some((size, why));
        }
        if report.first_bad.is_none() {
            let mark = watermark::read(dir).map_err(Error::Damaged)?;
            if let Some(m) = mark
                && let Some(why) = short_of(&audit, &report, &m)?
            {
                report.first_bad = Some((report.verified + 1, why));
            }
        }
        Ok(report)
    })
}

pub(super) fn stored_checkpoints(index: &sled::Tree) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for r in index.scan_prefix(keys::CHECKPOINT) {
        let (k, v) = r?;
        out.push((
            keys::u64_of(&k[keys::CHECKPOINT.len()..]),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
    Ok(out)
}

/// Checks every stored checkpoint of a store against its audit tree: its
/// signature (with `key`, when given) and that the record at its size has
/// its head. The first that fails: (size, why).
pub fn check_checkpoints(
    index: &sled::Tree,
    audit: &sled::Tree,
    key: Option<&hotfix_api::audit::VerifierKey>,
) -> Result<Option<(u64, String)>> {
    for (size, note) in stored_checkpoints(index)? {
        let head = match key {
            Some(k) => match k.verify(&note) {
                Ok(c) => hex::encode(c.head),
                Err(e) => return Ok(Some((size, format!("checkpoint at size {size}: {e}")))),
            },
            None => match checkpoint_head(&note) {
                Some(h) => h,
                None => {
                    return Ok(Some((
                        size,
                        format!("checkpoint at size {size} does not parse"),
                    )));
                }
            },
        };
        let stored = match audit.get(keys::seq(size))? {
            Some(v) => decode::<AuditRecord>("audit", &v)?.hash,
            None => String::new(),
        };
        if stored != head {
            return Ok(Some((
                size,
                format!(
                    "the signed checkpoint at size {size} records chain head {head}, but the \
                     trail has {}: records up to {size} were rewritten",
                    if stored.is_empty() {
                        "no such record"
                    } else {
                        &stored
                    }
                ),
            )));
        }
    }
    Ok(None)
}

/// The chain head (hex) a checkpoint note records, unverified.
pub(super) fn checkpoint_head(note: &str) -> Option<String> {
    use base64::Engine;
    let line = note.lines().nth(2)?;
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()
        .map(hex::encode)
}

/// Why a store whose chain verified as `report` falls short of the
/// watermark `m`, if it does.
pub(super) fn short_of(
    audit: &sled::Tree,
    report: &chain::Report,
    m: &watermark::Mark,
) -> Result<Option<String>> {
    if report.verified < m.audit_seq {
        return Ok(Some(format!(
            "the store ends at audit record {} but its watermark records {} (head {}): \
             records were lost or an older copy was restored",
            report.verified, m.audit_seq, m.audit_head
        )));
    }
    if m.audit_seq > 0 {
        let stored = match audit.get(keys::seq(m.audit_seq))? {
            Some(v) => decode::<AuditRecord>("audit", &v)?.hash,
            None => String::new(),
        };
        if stored != m.audit_head {
            return Ok(Some(format!(
                "audit record {} has chain hash {stored}, but the watermark records {}: \
                 this is not the history that was acknowledged",
                m.audit_seq, m.audit_head
            )));
        }
    }
    Ok(None)
}

impl Store {
    /// Appends an audit record of the daemon's own (no change to any
    /// hotfix), durable with the next flush.
    pub(super) fn append_audit(&self, actor: &str, action: &str, detail: &str) -> Result<()> {
        let mut c = self.writer.lock().expect("writer lock");
        self.append_audit_locked(&mut c, chrono::Utc::now(), actor, action, detail)
    }

    pub(super) fn append_audit_locked(
        &self,
        c: &mut Counters,
        at: Time,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        let (rec, head) = own_record(c, at, actor, action, detail);
        self.audit.insert(keys::seq(rec.seq), encode(&rec))?;
        c.next_audit += 1;
        c.audit_head = head;
        c.tickets += 1;
        self.set_mark(c);
        Ok(())
    }

    /// Walks the whole audit chain from its first record.
    pub fn verify_audit(&self) -> chain::Report {
        chain::verify(self.audit.iter().map(|r| {
            let (_, v) = r.map_err(|e| format!("reading the audit tree: {e}"))?;
            decode::<AuditRecord>("audit", &v).map_err(|e| e.to_string())
        }))
    }

    /// The audit records of one incident, oldest first (a full scan).
    pub fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        for r in self.audit.iter() {
            let (_, v) = r?;
            let rec: AuditRecord = decode("audit", &v)?;
            if rec.incident_id == incident_id {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Audit records with `seq > from`, at most `limit`.
    pub fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        for r in self.audit.range(keys::seq(from.saturating_add(1))..) {
            let (_, v) = r?;
            out.push(decode("audit", &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// How many audit records the trail holds.
    pub fn audit_size(&self) -> u64 {
        self.writer.lock().expect("writer lock").next_audit - 1
    }

    /// The first stored checkpoint the trail does not match (or, with
    /// `key`, whose signature does not verify): (size, why).
    pub fn verify_checkpoints(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<Option<(u64, String)>> {
        check_checkpoints(&self.index, &self.audit, key)
    }

    /// Every stored checkpoint: (size, signed note), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>> {
        stored_checkpoints(&self.index)
    }

    /// The newest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        Ok(self.checkpoints()?.pop())
    }

    /// The chain hash of audit record `seq` (None: no such record).
    pub fn audit_hash(&self, seq: u64) -> Result<Option<String>> {
        self.audit
            .get(keys::seq(seq))?
            .map(|v| decode::<AuditRecord>("audit", &v).map(|r| r.hash))
            .transpose()
    }
}

/// An audit record of the store's own (an accepted rollback, a backup)
/// after `c`'s head, sealed onto the chain, and the new head.
pub(super) fn own_record(
    c: &Counters,
    at: Time,
    actor: &str,
    action: &str,
    detail: &str,
) -> (AuditRecord, chain::Hash) {
    let mut rec = AuditRecord {
        seq: c.next_audit,
        at,
        actor: actor.to_string(),
        incident_id: String::new(),
        action: action.to_string(),
        outcome: "ok".into(),
        detail: detail.to_string(),
        event_seq: None,
        hash: String::new(),
        v: 0,
    };
    let head = chain::seal(&mut rec, &c.audit_head);
    (rec, head)
}
