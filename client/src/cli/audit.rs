//! `hotfixctl audit …` and `admin backup`: reading, exporting and verifying
//! the trail against an export or a signed checkpoint.

use super::*;

/// Why the live trail does not reach a verified checkpoint's head, if not.
pub(super) async fn trail_lacks(
    api: &mut hotfix_api::pb::audit_service_client::AuditServiceClient<crate::Authed>,
    c: &hotfix_api::audit::Checkpoint,
) -> Result<Option<String>, CliError> {
    if c.size == 0 {
        return Ok(None);
    }
    let now = api
        .verify_audit(pb::VerifyAuditRequest { hash_of: c.size })
        .await?
        .into_inner()
        .hash_of_record;
    let want = hex::encode(c.head);
    Ok(if now == want {
        None
    } else if now.is_empty() {
        Some(format!(
            "the trail no longer reaches record {} that the signed checkpoint covers",
            c.size
        ))
    } else {
        Some(format!(
            "the signed checkpoint has chain head {want} at record {}, the trail now has {now}: \
             records up to {} were rewritten",
            c.size, c.size
        ))
    })
}

/// An export's records (seq → hash), and the first whose fields no longer
/// produce its hash (records sealed with the canonical encoding, `v` 2,
/// are re-hashed from their own fields and the record before them).
pub(super) fn read_export(
    path: &std::path::Path,
    text: &str,
) -> Result<(std::collections::BTreeMap<u64, String>, Option<String>), CliError> {
    let mut kept = std::collections::BTreeMap::new();
    let mut altered = None;
    let mut prev: Option<(u64, hotfix_api::audit::Hash)> = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at_line = |what: &str| {
            usage(format!(
                "--against {} line {}: {what}",
                path.display(),
                i + 1
            ))
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at_line(&e.to_string()))?;
        let (Some(seq), Some(h)) = (v["seq"].as_u64(), v["hash"].as_str()) else {
            return Err(at_line("not an exported record (seq, hash)"));
        };
        kept.insert(seq, h.to_string());
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(h, &mut hash).is_err() {
            return Err(at_line("the hash is not 64 hex digits"));
        }
        let before = match prev {
            _ if seq == 1 => Some(hotfix_api::audit::GENESIS),
            Some((s, p)) if s + 1 == seq => Some(p),
            _ => None,
        };
        if v["v"].as_u64() == Some(u64::from(hotfix_api::audit::LEAF_VERSION))
            && let Some(before) = before
            && altered.is_none()
        {
            let at = v["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| at_line("'at' is not an RFC 3339 time"))?;
            let text = |k: &str| v[k].as_str().unwrap_or_default();
            let leaf = hotfix_api::audit::leaf(&hotfix_api::audit::Leaf {
                seq,
                at_seconds: at.timestamp(),
                at_nanos: at.timestamp_subsec_nanos(),
                actor: text("actor"),
                incident_id: text("incident_id"),
                action: text("action"),
                outcome: text("outcome"),
                detail: text("detail"),
                event_seq: v["event_seq"].as_u64(),
            });
            if hotfix_api::audit::link(&before, &leaf) != hash {
                altered = Some(format!(
                    "record {seq} of the export does not match its own fields: it was altered \
                     after it was exported (line {})",
                    i + 1
                ));
            }
        }
        prev = Some((seq, hash));
    }
    Ok((kept, altered))
}

/// `admin backup FILE`: the stream written to `FILE.partial`, synced, and
/// renamed, so FILE is a whole backup or is not there.
pub(super) async fn backup(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    file: &std::path::Path,
) -> Result<(), CliError> {
    let mut stream = client
        .admin
        .clone()
        .backup(pb::BackupRequest {})
        .await?
        .into_inner();
    let partial = file.with_extension("partial");
    let mut f = std::fs::File::create(&partial)?;
    let mut bytes = 0usize;
    while let Some(m) = stream.message().await? {
        f.write_all(&m.chunk)?;
        bytes += m.chunk.len();
    }
    f.sync_all()?;
    std::fs::rename(&partial, file)?;
    match o {
        Output::Json | Output::Yaml => render::machine(
            out,
            o,
            &serde_json::json!({"file": file.display().to_string(), "bytes": bytes}),
        )?,
        Output::Table => writeln!(out, "backup written to {} ({bytes} bytes)", file.display())?,
    }
    Ok(())
}

/// A record as exported: one JSON object per line.
pub(super) fn audit_json(r: &pb::AuditRecord) -> serde_json::Value {
    serde_json::json!({
        "seq": r.seq,
        "at": render::ts_json(&r.at),
        "actor": r.actor,
        "incident_id": r.incident_id,
        "action": r.action,
        "outcome": r.outcome,
        "detail": r.detail,
        "event_seq": (r.event_seq > 0).then_some(r.event_seq),
        "hash": r.hash,
        "v": r.v,
    })
}

pub(super) async fn audit(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    a: Audit,
) -> Result<(), CliError> {
    let mut api = client.audit.clone();
    match a {
        Audit::Checkpoint => {
            let r = api
                .get_checkpoint(pb::GetCheckpointRequest {})
                .await?
                .into_inner();
            if r.size == 0 {
                return Err(CliError {
                    code: 1,
                    message: "no signed checkpoint yet (hotfixd signs them when started with \
                              --audit-key-file)"
                        .into(),
                });
            }
            match o {
                Output::Json | Output::Yaml => render::message(out, o, &r)?,
                Output::Table => write!(out, "{}", r.note)?,
            }
        }
        Audit::Verify {
            against,
            key,
            checkpoint,
        } => {
            let r = api
                .verify_audit(pb::VerifyAuditRequest { hash_of: 0 })
                .await?
                .into_inner();
            let mut broken = (!r.intact).then(|| {
                format!(
                    "audit chain BROKEN at record {}: {}",
                    r.first_bad_seq, r.reason
                )
            });
            let mut compared = 0;
            let mut checkpoints = 0;
            if let Some(key) = key {
                let text = std::fs::read_to_string(&key)
                    .map_err(|e| usage(format!("--key {}: {e}", key.display())))?;
                let key = hotfix_api::audit::VerifierKey::parse(&text)
                    .map_err(|e| usage(format!("--key {}: {e}", key.display())))?;
                let mut notes = Vec::new();
                if let Some(p) = checkpoint {
                    let note = std::fs::read_to_string(&p)
                        .map_err(|e| usage(format!("--checkpoint {}: {e}", p.display())))?;
                    notes.push((format!("--checkpoint {}", p.display()), note));
                }
                let latest = api
                    .get_checkpoint(pb::GetCheckpointRequest {})
                    .await?
                    .into_inner();
                if latest.size > 0 {
                    notes.push(("the latest checkpoint".into(), latest.note));
                }
                for (what, note) in notes {
                    if broken.is_some() {
                        break;
                    }
                    broken = match key.verify(&note) {
                        Err(e) => Some(format!("{what}: {e}")),
                        Ok(c) => {
                            checkpoints += 1;
                            trail_lacks(&mut api, &c)
                                .await?
                                .map(|why| format!("{what}: {why}"))
                        }
                    };
                }
            }
            if let Some(path) = against {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| usage(format!("--against {}: {e}", path.display())))?;
                let (kept, altered) = read_export(&path, &text)?;
                if broken.is_none() {
                    broken = altered;
                }
                if let Some(first) = kept.keys().next().copied() {
                    let mut stream = api
                        .export_audit(pb::ExportAuditRequest {
                            from_seq: first - 1,
                        })
                        .await?
                        .into_inner();
                    let mut seen = std::collections::BTreeSet::new();
                    while let Some(msg) = stream.next().await {
                        let Some(rec) = msg?.record else { continue };
                        if let Some(h) = kept.get(&rec.seq) {
                            seen.insert(rec.seq);
                            compared += 1;
                            if *h != rec.hash && broken.is_none() {
                                broken = Some(format!(
                                    "record {} was rewritten: exported with hash {h}, now {}",
                                    rec.seq, rec.hash
                                ));
                            }
                        }
                    }
                    if broken.is_none()
                        && let Some(missing) = kept.keys().find(|s| !seen.contains(s))
                    {
                        broken = Some(format!("record {missing} of the export is gone"));
                    }
                }
            }
            match o {
                // What the daemon answered and what was checked here, in
                // the same spelling as the API's messages.
                Output::Json | Output::Yaml => render::machine(
                    out,
                    o,
                    &serde_json::json!({
                        "intact": broken.is_none(),
                        "verified": r.verified.to_string(),
                        "headHash": r.head_hash,
                        "comparedWithExport": compared,
                        "checkpointsVerified": checkpoints,
                        "problem": broken,
                    }),
                )?,
                Output::Table => match &broken {
                    None => writeln!(
                        out,
                        "audit chain intact: {} records, head {}{}",
                        r.verified,
                        r.head_hash,
                        [
                            (compared > 0)
                                .then(|| format!("; {compared} exported records unchanged")),
                            (checkpoints > 0).then(|| {
                                format!(
                                    "; {checkpoints} signed checkpoint(s) verified, the trail \
                                     extends them"
                                )
                            }),
                        ]
                        .into_iter()
                        .flatten()
                        .collect::<String>()
                    )?,
                    Some(why) => writeln!(out, "{why}")?,
                },
            }
            if let Some(why) = broken {
                return Err(CliError {
                    code: 1,
                    message: why,
                });
            }
        }
        Audit::Export { from_seq } => {
            let mut stream = api
                .export_audit(pb::ExportAuditRequest { from_seq })
                .await?
                .into_inner();
            while let Some(msg) = stream.next().await {
                if let Some(rec) = msg?.record {
                    writeln!(out, "{}", audit_json(&rec))?;
                }
            }
        }
        Audit::List { incident, limit } => {
            let r = api
                .list_audit(pb::ListAuditRequest {
                    incident_id: incident,
                    limit,
                })
                .await?
                .into_inner();
            match o {
                Output::Json | Output::Yaml => render::message(out, o, &r)?,
                Output::Table => {
                    for rec in &r.records {
                        writeln!(
                            out,
                            "{:>6}  {}  @{:<10} {:<14} {:<8} {}",
                            rec.seq,
                            render::ts(&rec.at),
                            rec.actor,
                            rec.action,
                            rec.outcome,
                            rec.detail
                        )?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
