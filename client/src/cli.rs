//! The `hotfixctl` command line: one subcommand per runbook step.
//!
//! Exit codes: 0 success; 2 usage error; 3 cannot connect; 10 + N when the
//! daemon refused with gRPC status code N (e.g. 13 INVALID_ARGUMENT = 10+3,
//! 15 NOT_FOUND, 16 ALREADY_EXISTS, 17 PERMISSION_DENIED, 18
//! RESOURCE_EXHAUSTED, 19 FAILED_PRECONDITION, 20 ABORTED, 24 UNAVAILABLE,
//! 26 UNAUTHENTICATED). `verify --measure --wait` adds 4 (not recovered)
//! and 1 (no verdict).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hotfix_api::kinds::EventKind;
use hotfix_api::pb;
use tokio_stream::StreamExt;

use crate::render::{self, Output};
use crate::{Client, ConnectError};

/// hotfixctl: drive a P0 hotfix through the emergency change runbook.
///
/// Every step is checked by hotfixd; when it refuses, it says why and what
/// would unblock it. Exit codes: 0 ok, 2 usage, 3 cannot connect, 10+N for
/// a refusal with gRPC status code N (13 invalid argument, 15 not found,
/// 16 already exists, 17 permission denied, 18 rate limited, 19 failed
/// precondition, 20 version conflict, 24 unavailable, 26 unauthenticated).
#[derive(Debug, Parser)]
#[command(name = "hotfixctl", version, about, long_about)]
pub struct Cli {
    /// hotfixd's gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "HOTFIXCTL_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,

    /// Bearer token (with `hotfixd --dev`: dev-HANDLE, e.g. dev-bob).
    #[arg(long, global = true, env = "HOTFIXCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// CA certificate (PEM) of hotfixd's TLS certificate, for an https://
    /// endpoint.
    #[arg(long, global = true, env = "HOTFIXCTL_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; its SAN names you.
    #[arg(
        long,
        global = true,
        env = "HOTFIXCTL_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(
        long,
        global = true,
        env = "HOTFIXCTL_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// Output format: table for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Idempotency key: a retry with the same id is applied once.
    #[arg(long, global = true, env = "HOTFIXCTL_REQUEST_ID")]
    pub request_id: Option<String>,

    /// Only apply if the hotfix is still at this version (else exit 20).
    #[arg(long, global = true)]
    pub expected_version: Option<u64>,

    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Severity {
    P0,
    P1,
    P2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Criterion {
    /// Production is down for at least 50% of customers.
    CustomersDown,
    DataLoss,
    SafetyRegulatory,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Route {
    Flag,
    Rollback,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckResult {
    Success,
    Failure,
    Pending,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Bypass {
    Yes,
    /// Yes, but a rollback would have worked.
    YesButRollback,
    No,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Step 1: declare a P0 hotfix with a named approver and cleanup owner.
    Declare(Declare),
    /// Record an incident mitigated by a flag flip or rollback instead.
    Mitigated {
        incident: String,
        #[arg(long, value_enum)]
        by: Route,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Step 2: record the fix commit on the hotfix/INCIDENT-SLUG branch.
    Fix(Fix),
    /// Approver only: accept an over-limit fix SHA, with a reason.
    Override {
        incident: String,
        #[arg(long)]
        sha: String,
        #[arg(long)]
        reason: String,
    },
    /// Approver only: approve the fix you reviewed, by its SHA. Without
    /// --sha on a terminal, shows the current fix (SHA, message, files)
    /// and asks before approving exactly that SHA.
    Approve {
        incident: String,
        /// The SHA you reviewed (a unique prefix of 7+ hex digits will do);
        /// refused if the fix has moved on.
        #[arg(long)]
        sha: Option<String>,
    },
    /// Step 3: the labelled hotfix PR. With GitHub on for the repository,
    /// give no options: hotfixd opens it (or reuses the branch's open PR),
    /// labels it and follows its checks. Otherwise record the PR you opened.
    Pr {
        incident: String,
        #[arg(long, requires = "url")]
        number: Option<u64>,
        #[arg(long, requires = "number")]
        url: Option<String>,
        /// Defaults to "HOTFIX: INCIDENT SYMPTOM".
        #[arg(long)]
        title: Option<String>,
        /// Labels the PR you opened carries (repeat for each); it must
        /// carry 'hotfix': the CI fast path runs only on PRs labelled so.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Step 4: the fast-path checks. With GitHub on, --wait follows them
    /// live until all passed (exit 0) or one failed (exit 1; a failed scan
    /// ends the hotfix). Otherwise record one result with --name/--result.
    Check {
        incident: String,
        #[arg(long, required_unless_present = "wait", requires = "result")]
        name: Option<String>,
        #[arg(long, value_enum, requires = "name")]
        result: Option<CheckResult>,
        #[arg(long, requires = "name")]
        sha: Option<String>,
        /// Follow the checks on GitHub until all are done or one fails.
        #[arg(long, conflicts_with = "name")]
        wait: bool,
    },
    /// Step 5: platform-admin merge via admin bypass.
    Merge { incident: String },
    /// Step 5: the forced Argo CD sync. With Argo CD configured, hotfixd
    /// performs it (prune, then waits for Synced and Healthy); otherwise it
    /// records the sync you did.
    ///
    /// With --wait, exits 0 once synced and 1 when the sync failed.
    Sync {
        incident: String,
        #[arg(long)]
        revision: String,
        #[arg(long)]
        skip_canary: bool,
        /// Show progress until Argo CD reports Synced and Healthy.
        #[arg(long)]
        wait: bool,
    },
    /// Step 6: record whether the symptom metric recovered, or let hotfixd
    /// measure it in Prometheus (--measure).
    ///
    /// With --measure --wait, exits 0 when the symptom recovered, 4 when it
    /// did not (revert required) and 1 when no verdict could be reached.
    Verify {
        incident: String,
        #[arg(
            long,
            conflicts_with_all = ["not_recovered", "measure"],
            required_unless_present_any = ["not_recovered", "measure"],
            requires = "value"
        )]
        recovered: bool,
        #[arg(long, conflicts_with = "measure", requires = "value")]
        not_recovered: bool,
        /// The observed symptom metric (e.g. the 5xx ratio).
        #[arg(long, conflicts_with = "measure")]
        value: Option<f64>,
        /// Let hotfixd evaluate the app's symptom query in Prometheus.
        #[arg(long)]
        measure: bool,
        /// With --measure: show samples until the verdict.
        #[arg(long, requires = "measure")]
        wait: bool,
    },
    /// Revert a hotfix that did not recover the symptom. With GitHub on and
    /// no --pr, hotfixd opens the revert PR, merges it and syncs again;
    /// otherwise record the revert PR (merged) with --pr.
    Revert {
        incident: String,
        #[arg(long)]
        pr: Option<u64>,
    },
    /// Step 7: record the cleanup (return-to-normal-flow) PR.
    Cleanup {
        incident: String,
        #[arg(long)]
        pr: u64,
        #[arg(long, default_value = "")]
        url: String,
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Step 8: record the postmortem's hotfix answers.
    Postmortem {
        incident: String,
        #[arg(long)]
        url: String,
        /// Why was a hotfix needed?
        #[arg(long)]
        why: String,
        #[arg(long, value_enum)]
        bypass_justified: Bypass,
        #[arg(long)]
        breakglass_used: bool,
        /// Defaults to the recorded cleanup PR.
        #[arg(long)]
        cleanup_pr_link: Option<String>,
    },
    /// Step 9: record the audit log review (not by the author).
    AuditReview {
        incident: String,
        #[arg(long)]
        findings: String,
    },
    /// Record breakglass use and its cleanup checklist.
    Breakglass {
        incident: String,
        #[command(subcommand)]
        action: Breakglass,
    },
    /// Record the team review that reopens the rate-limit gate.
    TeamReview {
        #[arg(long)]
        notes: String,
    },
    /// Show one hotfix: state, timeline, who may do what next.
    Show { incident: String },
    /// List hotfixes, newest first.
    List {
        /// Only this state (e.g. pr-open, mitigated).
        #[arg(long)]
        state: Option<String>,
        /// Only hotfixes with an overdue obligation.
        #[arg(long)]
        overdue: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Stream events (replays stored events after --from, then follows).
    Watch {
        /// Resume after this sequence number.
        #[arg(long = "from", default_value_t = 0)]
        from_seq: u64,
        #[arg(long)]
        incident: Option<String>,
        /// Exit once caught up with the stored events.
        #[arg(long)]
        once: bool,
    },
    /// The audit trail: verify its hash chain, export it, list one hotfix's.
    #[command(subcommand)]
    Audit(Audit),
    /// Operating hotfixd itself (platform-admin).
    #[command(subcommand)]
    Admin(Admin),
    /// The platform team's report: rate limits, overdue work, history.
    Report,
    /// Show who the token authenticates as.
    Whoami,
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Write a consistent backup of the whole store to FILE (written to
    /// FILE.partial, synced, then renamed). Restore it into an empty data
    /// directory with `hotfixd restore --data-dir DIR FILE`.
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum Audit {
    /// Walk the chain and name the first record that does not match (exit
    /// 1 if one does). With --against, also check that every record of an
    /// earlier export still carries the hash it had then.
    Verify {
        /// A JSON-lines file written by `hotfixctl audit export`: each of
        /// its records is re-hashed from its own fields, and must still be
        /// in the trail with the same hash.
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
        /// The verifier key (from `hotfixd audit keygen`): the latest
        /// signed checkpoint must verify with it and the trail must still
        /// reach its head.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// A signed checkpoint kept elsewhere (`hotfixctl audit checkpoint`,
        /// or the audit channel's post): needs --key; the trail must still
        /// extend it.
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
    },
    /// Print the latest signed checkpoint of the trail (keep it: `verify
    /// --checkpoint` proves later that nothing before it was rewritten).
    Checkpoint,
    /// Write the records after --from as JSON lines, each with its chain
    /// hash (platform-team or platform-admin).
    Export {
        #[arg(long = "from", default_value_t = 0)]
        from_seq: u64,
    },
    /// The records of one hotfix, for the audit review (platform-team or
    /// platform-admin).
    List {
        #[arg(long)]
        incident: String,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct Declare {
    /// Incident id, INC-YYYY-MM-DD-NNN.
    pub incident: String,
    /// One sentence.
    #[arg(long)]
    pub symptom: String,
    /// P0 criterion (repeatable).
    #[arg(long = "criterion", value_enum, required = true)]
    pub criteria: Vec<Criterion>,
    /// An sre-lead or eng-manager, not you.
    #[arg(long)]
    pub approver: String,
    #[arg(long)]
    pub cleanup_owner: String,
    /// Expected merge ETA, HH:MM UTC.
    #[arg(long)]
    pub eta: String,
    /// OWNER/NAME
    #[arg(long)]
    pub repo: String,
    /// Argo CD application.
    #[arg(long)]
    pub app: String,
    #[arg(long, value_enum, default_value_t = Severity::P0)]
    pub severity: Severity,
    #[arg(long)]
    pub flag_can_mitigate: bool,
    #[arg(long)]
    pub rollback_can_mitigate: bool,
    #[arg(long)]
    pub fix_unknown: bool,
    /// A game-day drill: runs the whole lane, not counted in rate limits.
    #[arg(long)]
    pub drill: bool,
}

#[derive(Debug, Args)]
pub struct Fix {
    pub incident: String,
    #[arg(long)]
    pub branch: String,
    /// The head commit. With GitHub on for the repository: optional, and
    /// must be GitHub's head of the branch if given.
    #[arg(long)]
    pub sha: Option<String>,
    /// File holding the commit message ('-' for stdin). Not with GitHub on.
    #[arg(long, conflicts_with = "message")]
    pub message_file: Option<PathBuf>,
    /// The commit message inline. Not with GitHub on.
    #[arg(long)]
    pub message: Option<String>,
    /// A changed file as PATH:ADDED:REMOVED (repeatable). Not with GitHub
    /// on: hotfixd reads the diff against the base branch.
    #[arg(long = "file", value_parser = parse_file)]
    pub files: Vec<pb::ChangedFile>,
}

#[derive(Debug, Subcommand)]
pub enum Breakglass {
    /// Record the breakglass role grant.
    Grant {
        #[arg(long)]
        role: String,
        /// At most the configured TTL (default 1h).
        #[arg(long, value_parser = humantime_secs)]
        ttl: Option<u64>,
    },
    /// Tick off checklist items: rds-snapshots, iam-users, s3-buckets.
    Cleanup {
        #[arg(long = "item", required = true)]
        items: Vec<String>,
    },
}

fn parse_file(s: &str) -> Result<pb::ChangedFile, String> {
    let mut parts = s.rsplitn(3, ':');
    let (removed, added, path) = (parts.next(), parts.next(), parts.next());
    match (path, added, removed) {
        (Some(p), Some(a), Some(r)) if !p.is_empty() => Ok(pb::ChangedFile {
            path: p.to_string(),
            added: a
                .parse()
                .map_err(|_| format!("'{a}' is not a line count"))?,
            removed: r
                .parse()
                .map_err(|_| format!("'{r}' is not a line count"))?,
        }),
        _ => Err(format!("'{s}' is not PATH:ADDED:REMOVED")),
    }
}

fn humantime_secs(s: &str) -> Result<u64, String> {
    s.parse::<humantime::Duration>()
        .map(|d| std::time::Duration::from(d).as_secs())
        .map_err(|e| e.to_string())
}

/// A failure with the exit code a script can branch on.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        let code = s.code();
        CliError {
            code: 10 + code as i32,
            // The daemon's words may quote what someone typed.
            message: format!(
                "{}: {}",
                render::code_name(code),
                render::printable(s.message())
            ),
        }
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        CliError {
            code: 3,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError {
            code: 1,
            message: e.to_string(),
        }
    }
}

/// Why the live trail does not reach a verified checkpoint's head, if not.
async fn trail_lacks(
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
fn read_export(
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
async fn backup(
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
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::json!({"file": file.display().to_string(), "bytes": bytes})
        )?,
        Output::Table => writeln!(out, "backup written to {} ({bytes} bytes)", file.display())?,
    }
    Ok(())
}

/// Shows the current fix of `h` on `prompt` and asks whether to approve
/// it; the SHA to approve if the answer is yes. The SHA sent is the one
/// shown, so a fix pushed meanwhile is refused by hotfixd, not approved.
pub fn confirm_fix(
    h: &pb::Hotfix,
    input: &mut dyn std::io::BufRead,
    prompt: &mut dyn Write,
) -> Result<Option<String>, CliError> {
    let Some(f) = &h.fix else {
        return Err(usage(format!(
            "approve: {} has no fix to approve yet",
            render::printable(&h.incident_id)
        )));
    };
    writeln!(prompt, "fix {} on {}", f.sha, render::printable(&f.branch))?;
    for l in f.commit_message.lines() {
        writeln!(prompt, "    {}", render::printable(l))?;
    }
    for file in &f.files {
        writeln!(
            prompt,
            "  {} +{} -{}",
            render::printable(&file.path),
            file.added,
            file.removed
        )?;
    }
    write!(prompt, "approve {} as shown? [y/N] ", f.sha)?;
    prompt.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes").then(|| f.sha.clone()))
}

fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}

/// Follows one incident's events after `from_seq`, printing those whose
/// kind starts with `progress` (table output), until one of `end` arrives;
/// returns it (None if the stream ended first).
async fn follow(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    incident: &str,
    from_seq: u64,
    progress: &str,
    end: &[EventKind],
) -> Result<Option<EventKind>, CliError> {
    let mut stream = client
        .events
        .clone()
        .watch(pb::WatchRequest {
            from_seq,
            incident_id: incident.to_string(),
        })
        .await?
        .into_inner();
    while let Some(msg) = stream.next().await {
        if let Some(pb::watch_response::Kind::Event(e)) = msg?.kind {
            if o == Output::Table && e.kind.starts_with(progress) {
                writeln!(out, "  {}", e.summary)?;
                out.flush()?;
            }
            if let Some(kind) = EventKind::parse(&e.kind)
                && end.contains(&kind)
            {
                return Ok(Some(kind));
            }
        }
    }
    Ok(None)
}

/// A record as exported: one JSON object per line.
fn audit_json(r: &pb::AuditRecord) -> serde_json::Value {
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

async fn audit(
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
                Output::Json => writeln!(
                    out,
                    "{}",
                    serde_json::json!({"size": r.size, "note": r.note})
                )?,
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
                Output::Json => writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "intact": broken.is_none(),
                        "verified": r.verified,
                        "head_hash": r.head_hash,
                        "compared_with_export": compared,
                        "checkpoints_verified": checkpoints,
                        "problem": broken,
                    })
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
                Output::Json => {
                    let records: Vec<_> = r.records.iter().map(audit_json).collect();
                    writeln!(out, "{}", serde_json::json!({ "records": records }))?;
                }
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

async fn show_final(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    incident: &str,
) -> Result<(), CliError> {
    let r = client
        .lane
        .clone()
        .get_hotfix(pb::GetHotfixRequest {
            incident_id: incident.to_string(),
        })
        .await?
        .into_inner();
    render::hotfix(out, o, &r.hotfix.unwrap_or_default(), &[])?;
    out.flush()?;
    Ok(())
}

fn hotfixctl_tls(cli: &Cli) -> crate::TlsFiles {
    crate::TlsFiles {
        ca: cli.ca_file.clone(),
        cert: cli.cert.clone(),
        key: cli.key.clone(),
    }
}

/// Runs one command, writing its output to `out`: human output with every
/// unprintable character escaped (`render::Printable`), JSON as it is
/// (serde escapes control characters in strings).
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    if cli.output == Output::Json {
        return execute(cli, out).await;
    }
    let mut shown = crate::render::Printable::new(out);
    let result = execute(cli, &mut shown).await;
    shown.flush().map_err(CliError::from)?;
    result
}

async fn execute(cli: Cli, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let tls = hotfixctl_tls(&cli);
    if let Some(w) = crate::plaintext_token_warning(&cli.endpoint, cli.token.as_deref()) {
        eprintln!("hotfixctl: {w}");
    }
    let client = Client::connect_with(&cli.endpoint, cli.token.as_deref(), &tls).await?;
    let m = Some(pb::Mutation {
        request_id: cli.request_id.clone().unwrap_or_default(),
        expected_version: cli.expected_version,
    });
    let o = cli.output;
    let mut lane = client.lane.clone();
    let mut policy = client.policy.clone();
    let hotfix = |h: Option<pb::Hotfix>| h.unwrap_or_default();
    match cli.command {
        Cmd::Declare(d) => {
            let r = lane
                .declare(crate::requests::declare(d, m))
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &r.warnings)?;
        }
        Cmd::Mitigated {
            incident,
            by,
            notes,
        } => {
            let r = lane
                .record_mitigation(pb::RecordMitigationRequest {
                    mutation: m,
                    incident_id: incident,
                    route: pb::MitigationRoute::from(by) as i32,
                    notes,
                })
                .await?
                .into_inner();
            render::mitigation(out, o, &r.mitigation.unwrap_or_default())?;
        }
        Cmd::Fix(f) => {
            let message = match (&f.message, &f.message_file) {
                (Some(msg), _) => msg.clone(),
                (None, Some(p)) if p.as_os_str() == "-" => {
                    std::io::read_to_string(std::io::stdin())?
                }
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map_err(|e| usage(format!("--message-file {}: {e}", p.display())))?,
                // GitHub on: hotfixd reads the message (the daemon says if
                // it is off and the message is missing).
                (None, None) => String::new(),
            };
            let r = lane
                .submit_fix(pb::SubmitFixRequest {
                    mutation: m,
                    incident_id: f.incident,
                    branch: f.branch,
                    sha: f.sha.unwrap_or_default(),
                    commit_message: message,
                    files: f.files,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Override {
            incident,
            sha,
            reason,
        } => {
            let r = lane
                .override_fix_limits(pb::OverrideFixLimitsRequest {
                    mutation: m,
                    incident_id: incident,
                    sha,
                    reason,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Approve { incident, sha } => {
            let sha = match sha {
                Some(s) => s,
                None => {
                    use std::io::IsTerminal;
                    if !std::io::stdin().is_terminal() {
                        return Err(usage(
                            "approve: --sha is required (the SHA of the fix you reviewed; \
                             `hotfixctl show` prints it)",
                        ));
                    }
                    let h = lane
                        .get_hotfix(pb::GetHotfixRequest {
                            incident_id: incident.clone(),
                        })
                        .await?
                        .into_inner()
                        .hotfix
                        .unwrap_or_default();
                    let mut stdin = std::io::stdin().lock();
                    match confirm_fix(&h, &mut stdin, &mut std::io::stderr())? {
                        Some(sha) => sha,
                        None => return Err(usage("approve: not approved")),
                    }
                }
            };
            let r = lane
                .approve(pb::ApproveRequest {
                    mutation: m,
                    incident_id: incident,
                    sha,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Pr {
            incident,
            number,
            url,
            title,
            labels,
        } => {
            let r = lane
                .open_pull_request(pb::OpenPullRequestRequest {
                    mutation: m,
                    incident_id: incident,
                    number: number.unwrap_or_default(),
                    url: url.unwrap_or_default(),
                    title: title.unwrap_or_default(),
                    labels,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Check {
            incident,
            wait: true,
            ..
        } => {
            let r = lane
                .follow_checks(pb::FollowChecksRequest {
                    incident_id: incident.clone(),
                })
                .await?
                .into_inner();
            let h = hotfix(r.hotfix);
            let failed = |h: &pb::Hotfix| {
                h.checks
                    .iter()
                    .any(|c| c.result == pb::CheckResult::Failure as i32)
            };
            let mut verdict = if h.state == pb::State::ReadyToMerge as i32 {
                Some(EventKind::ChecksPassed)
            } else if h.state == pb::State::Aborted as i32 || failed(&h) {
                Some(EventKind::CheckFailed)
            } else {
                None
            };
            if verdict.is_none() {
                let end = [
                    EventKind::ChecksPassed,
                    EventKind::CheckFailed,
                    EventKind::Aborted,
                    EventKind::ChecksTimeout,
                    EventKind::ChecksFailed,
                ];
                verdict = follow(
                    &client,
                    out,
                    o,
                    &incident,
                    r.from_seq,
                    EventKind::CheckProgress.as_str(),
                    &end,
                )
                .await?;
            }
            show_final(&client, out, o, &incident).await?;
            if verdict != Some(EventKind::ChecksPassed) {
                return Err(CliError {
                    code: 1,
                    message: "the checks did not all pass; see `hotfixctl show`".into(),
                });
            }
        }
        Cmd::Check {
            incident,
            name,
            result,
            sha,
            ..
        } => {
            let (Some(name), Some(result)) = (name, result) else {
                return Err(usage("--name and --result are required without --wait"));
            };
            let r = lane
                .record_check(pb::RecordCheckRequest {
                    mutation: m,
                    incident_id: incident,
                    name,
                    result: pb::CheckResult::from(result) as i32,
                    sha: sha.unwrap_or_default(),
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Merge { incident } => {
            let r = lane
                .merge(pb::MergeRequest {
                    mutation: m,
                    incident_id: incident,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Sync {
            incident,
            revision,
            skip_canary,
            wait,
        } => {
            let r = lane
                .sync(pb::SyncRequest {
                    mutation: m,
                    incident_id: incident.clone(),
                    revision,
                    skip_canary,
                })
                .await?
                .into_inner();
            let h = hotfix(r.hotfix);
            if !wait || h.state != pb::State::Merged as i32 {
                render::hotfix(out, o, &h, &[])?;
                return Ok(());
            }
            let end = [
                EventKind::Synced,
                EventKind::SyncFailed,
                EventKind::SyncInterrupted,
            ];
            let verdict = follow(&client, out, o, &incident, h.last_seq, "sync_", &end).await?;
            show_final(&client, out, o, &incident).await?;
            if verdict != Some(EventKind::Synced) {
                return Err(CliError {
                    code: 1,
                    message: "the sync did not complete; see `hotfixctl show`".into(),
                });
            }
        }
        Cmd::Verify {
            incident,
            measure: true,
            wait,
            ..
        } => {
            let r = lane
                .start_verification(pb::StartVerificationRequest {
                    mutation: m,
                    incident_id: incident.clone(),
                })
                .await?
                .into_inner();
            let h = hotfix(r.hotfix);
            if o == Output::Table {
                writeln!(out, "measuring {incident}: {}", r.query)?;
            }
            if !wait {
                render::hotfix(out, o, &h, &[])?;
                return Ok(());
            }
            let end = [
                EventKind::Verified,
                EventKind::RevertRequired,
                EventKind::VerificationFailed,
                EventKind::VerificationInterrupted,
            ];
            let verdict = follow(
                &client,
                out,
                o,
                &incident,
                h.last_seq,
                "verification_",
                &end,
            )
            .await?;
            show_final(&client, out, o, &incident).await?;
            match verdict {
                Some(EventKind::Verified) => {}
                Some(EventKind::RevertRequired) => {
                    return Err(CliError {
                        code: 4,
                        message:
                            "the symptom did not recover: revert the hotfix (hotfixctl revert)"
                                .into(),
                    });
                }
                _ => {
                    return Err(CliError {
                        code: 1,
                        message: "verification ended without a verdict; see `hotfixctl show`"
                            .into(),
                    });
                }
            }
        }
        Cmd::Verify {
            incident,
            recovered,
            value,
            ..
        } => {
            let r = lane
                .verify(pb::VerifyRequest {
                    mutation: m,
                    incident_id: incident,
                    recovered,
                    observed_value: value.ok_or_else(|| usage("--value is required"))?,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Revert { incident, pr } => {
            let r = lane
                .revert(pb::RevertRequest {
                    mutation: m,
                    incident_id: incident,
                    revert_pr: pr.unwrap_or_default(),
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Cleanup {
            incident,
            pr,
            url,
            labels,
        } => {
            let r = lane
                .record_cleanup(pb::RecordCleanupRequest {
                    mutation: m,
                    incident_id: incident,
                    pr_number: pr,
                    url,
                    labels,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Postmortem {
            incident,
            url,
            why,
            bypass_justified,
            breakglass_used,
            cleanup_pr_link,
        } => {
            let r = lane
                .record_postmortem(pb::RecordPostmortemRequest {
                    mutation: m,
                    incident_id: incident,
                    url,
                    why_hotfix: why,
                    bypass_justified: pb::BypassJustified::from(bypass_justified) as i32,
                    breakglass_used,
                    cleanup_pr_link: cleanup_pr_link.unwrap_or_default(),
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::AuditReview { incident, findings } => {
            let r = lane
                .record_audit_review(pb::RecordAuditReviewRequest {
                    mutation: m,
                    incident_id: incident,
                    findings,
                })
                .await?
                .into_inner();
            render::hotfix(out, o, &hotfix(r.hotfix), &[])?;
        }
        Cmd::Breakglass { incident, action } => {
            let h = match action {
                Breakglass::Grant { role, ttl } => {
                    lane.grant_breakglass(pb::GrantBreakglassRequest {
                        mutation: m,
                        incident_id: incident,
                        role,
                        ttl_seconds: ttl.unwrap_or(0),
                    })
                    .await?
                    .into_inner()
                    .hotfix
                }
                Breakglass::Cleanup { items } => {
                    lane.cleanup_breakglass(pb::CleanupBreakglassRequest {
                        mutation: m,
                        incident_id: incident,
                        items,
                    })
                    .await?
                    .into_inner()
                    .hotfix
                }
            };
            render::hotfix(out, o, &hotfix(h), &[])?;
        }
        Cmd::TeamReview { notes } => {
            let r = policy
                .record_team_review(pb::RecordTeamReviewRequest { mutation: m, notes })
                .await?
                .into_inner();
            render::team_review(out, o, &r)?;
        }
        Cmd::Show { incident } => {
            let r = lane
                .get_hotfix(pb::GetHotfixRequest {
                    incident_id: incident,
                })
                .await?
                .into_inner();
            render::show(out, o, &r)?;
        }
        Cmd::List {
            state,
            overdue,
            limit,
        } => {
            let state = match state {
                None => pb::State::Unspecified,
                Some(s) => hotfix_api::parse_state(&s)
                    .ok_or_else(|| usage(format!("--state '{s}' is not a hotfix state")))?,
            };
            let r = lane
                .list_hotfixes(pb::ListHotfixesRequest {
                    state: state as i32,
                    overdue,
                    limit,
                })
                .await?
                .into_inner();
            render::list(out, o, &r.hotfixes)?;
        }
        Cmd::Audit(a) => audit(&client, out, o, a).await?,
        Cmd::Admin(Admin::Backup { file }) => backup(&client, out, o, &file).await?,
        Cmd::Watch {
            from_seq,
            incident,
            once,
        } => {
            let mut stream = client
                .events
                .clone()
                .watch(pb::WatchRequest {
                    from_seq,
                    incident_id: incident.unwrap_or_default(),
                })
                .await?
                .into_inner();
            while let Some(msg) = stream.next().await {
                match msg?.kind {
                    Some(pb::watch_response::Kind::Event(e)) => render::event(out, o, &e)?,
                    Some(pb::watch_response::Kind::Heartbeat(hb)) => {
                        render::heartbeat(out, o, &hb)?;
                        if once || hb.closing {
                            break;
                        }
                    }
                    None => {}
                }
                out.flush()?;
            }
        }
        Cmd::Report => {
            let r = policy
                .get_report(pb::GetReportRequest {})
                .await?
                .into_inner();
            render::report(out, o, &r)?;
        }
        Cmd::Whoami => {
            let r = policy.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
            render::whoami(out, o, &r)?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hotfix() -> pb::Hotfix {
        pb::Hotfix {
            incident_id: "INC-2026-05-20-001".into(),
            fix: Some(pb::Fix {
                branch: "hotfix/INC-2026-05-20-001-x".into(),
                sha: "1".repeat(40),
                commit_message: "hotfix(catalog): nil-deref\n\napprover: @alice".into(),
                files: vec![pb::ChangedFile {
                    path: "catalog/handler.go".into(),
                    added: 3,
                    removed: 1,
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_interactive_approval_shows_the_fix_and_sends_the_sha_shown() {
        let mut shown = Vec::new();
        let sha = confirm_fix(&hotfix(), &mut "y\n".as_bytes(), &mut shown).unwrap();
        assert_eq!(sha, Some("1".repeat(40)));
        let shown = String::from_utf8(shown).unwrap();
        for want in [
            "1111111111111111111111111111111111111111",
            "hotfix(catalog): nil-deref",
            "catalog/handler.go +3 -1",
            "[y/N]",
        ] {
            assert!(shown.contains(want), "{want} in {shown}");
        }
        for no in ["\n", "n\n", "", "yes please\n"] {
            let got = confirm_fix(&hotfix(), &mut no.as_bytes(), &mut Vec::new()).unwrap();
            assert_eq!(got, None, "{no:?}");
        }
        let none = pb::Hotfix {
            fix: None,
            ..hotfix()
        };
        assert!(confirm_fix(&none, &mut "y\n".as_bytes(), &mut Vec::new()).is_err());
    }
}
