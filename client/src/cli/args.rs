//! What can be typed: the subcommands, their flags and values (clap
//! derive; doc comments are the `--help` text).

use super::*;

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
    /// hotfixd's gRPC endpoint [default: the context's, else
    /// http://127.0.0.1:50051]. Given without --context, the profile is
    /// not read: its credentials only go where its contexts point.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_ENDPOINT"
    )]
    pub endpoint: Option<String>,

    /// The profile's context to use (endpoint, token file, CA, client
    /// certificate) [default: the profile's `context`].
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_CONTEXT",
        value_name = "NAME"
    )]
    pub context: Option<String>,

    /// The profile file [default: $XDG_CONFIG_HOME/hotfixctl/config.toml,
    /// else ~/.config/hotfixctl/config.toml].
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Bearer token (with `hotfixd --dev`: dev-HANDLE, e.g. dev-bob).
    /// Prefer --token-file or a context's token_file: a token typed here
    /// stays in the shell's history.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// A file holding the bearer token (one line; readable by you only).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,

    /// CA certificate (PEM) of hotfixd's TLS certificate, for an https://
    /// endpoint [default: the system's trust store].
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; its SAN names you.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "HOTFIXCTL_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// Output format: table for people; json (one line per message) or
    /// yaml for scripts: the API's answer in the proto3 JSON mapping.
    #[arg(short = 'o', long, global = true, help_heading = "Output and retries", value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Idempotency key: a retry with the same id is applied once.
    #[arg(
        long,
        global = true,
        help_heading = "Output and retries",
        env = "HOTFIXCTL_REQUEST_ID"
    )]
    pub request_id: Option<String>,

    /// Only apply if the hotfix is still at this version (else exit 20).
    #[arg(long, global = true, help_heading = "Output and retries")]
    pub expected_version: Option<u64>,

    #[command(subcommand)]
    pub command: Cmd,
}

/// Where `watch --since` starts.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum Since {
    /// After the latest event: nothing replayed.
    Now,
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
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// What mitigated it instead of a hotfix.
        #[arg(long, value_enum)]
        by: Route,
        /// What was done, for the record.
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Step 2: record the fix commit on the hotfix/INCIDENT-SLUG branch.
    Fix(Fix),
    /// Approver only: accept an over-limit fix SHA, with a reason.
    Override {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// The over-limit fix commit you accept (full SHA).
        #[arg(long)]
        sha: String,
        /// Why this fix may exceed the size limits (audited).
        #[arg(long)]
        reason: String,
    },
    /// Approver only: approve the fix you reviewed, by its SHA. Without
    /// --sha on a terminal, shows the current fix (SHA, message, files)
    /// and asks before approving exactly that SHA.
    Approve {
        /// The incident id, e.g. INC-2026-05-20-001.
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
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// The number of the PR you opened (GitHub off).
        #[arg(long, requires = "url")]
        number: Option<u64>,
        /// The URL of the PR you opened (GitHub off).
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
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// The check, e.g. lint, unit-changed-package, scan, build-sign-push.
        #[arg(long, required_unless_present = "wait", requires = "result")]
        name: Option<String>,
        /// Its result; a failed scan ends the hotfix.
        #[arg(long, value_enum, requires = "name")]
        result: Option<CheckResult>,
        /// The commit the check ran on (default: the current fix).
        #[arg(long, requires = "name")]
        sha: Option<String>,
        /// Follow the checks on GitHub until all are done or one fails.
        #[arg(long, conflicts_with = "name")]
        wait: bool,
    },
    /// Step 5: platform-admin merge via admin bypass.
    Merge {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
    },
    /// Step 5: the forced Argo CD sync. With Argo CD configured, hotfixd
    /// performs it (prune, then waits for Synced and Healthy); otherwise it
    /// records the sync you did.
    ///
    /// With --wait, exits 0 once synced and 1 when the sync failed.
    Sync {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// The revision to sync (the merge commit).
        #[arg(long)]
        revision: String,
        /// Skip the canary (the runbook allows it for a hotfix).
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
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        #[arg(
            long,
            conflicts_with_all = ["not_recovered", "measure"],
            required_unless_present_any = ["not_recovered", "measure"],
            requires = "value"
        )]
        /// The symptom metric recovered (give --value).
        recovered: bool,
        /// It did not: a revert is required (give --value).
        #[arg(long, conflicts_with = "measure", requires = "value")]
        not_recovered: bool,
        /// The observed symptom metric (e.g. the 5xx ratio).
        #[arg(long, conflicts_with = "measure")]
        value: Option<f64>,
        /// Let hotfixd evaluate the app's symptom query in Prometheus (with
        /// no Prometheus configured, it says so and measures nothing).
        #[arg(long)]
        measure: bool,
        /// With --measure: show samples until the verdict (with no
        /// Prometheus, until someone records it).
        #[arg(long, requires = "measure")]
        wait: bool,
    },
    /// Revert a hotfix that did not recover the symptom. With GitHub on and
    /// no --pr, hotfixd opens the revert PR, merges it and syncs again;
    /// otherwise record the revert PR (merged) with --pr.
    Revert {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// The revert PR, merged (GitHub off).
        #[arg(long)]
        pr: Option<u64>,
    },
    /// Step 7: record the cleanup (return-to-normal-flow) PR.
    Cleanup {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// The cleanup PR that returns the change to the normal flow.
        #[arg(long)]
        pr: u64,
        /// Its URL.
        #[arg(long, default_value = "")]
        url: String,
        /// Its labels (repeat for each).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Step 8: record the postmortem's hotfix answers.
    Postmortem {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// Where the postmortem is written.
        #[arg(long)]
        url: String,
        /// Why was a hotfix needed?
        #[arg(long)]
        why: String,
        /// Was bypassing review justified?
        #[arg(long, value_enum)]
        bypass_justified: Bypass,
        /// Breakglass access was used.
        #[arg(long)]
        breakglass_used: bool,
        /// Defaults to the recorded cleanup PR.
        #[arg(long)]
        cleanup_pr_link: Option<String>,
    },
    /// Step 9: record the audit log review (not by the author).
    AuditReview {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        /// What the review of the audit log found.
        #[arg(long)]
        findings: String,
    },
    /// Record breakglass use and its cleanup checklist.
    Breakglass {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
        #[command(subcommand)]
        action: Breakglass,
    },
    /// Record the team review that reopens the rate-limit gate.
    TeamReview {
        /// What the team review concluded (audited).
        #[arg(long)]
        notes: String,
    },
    /// Show one hotfix: state, timeline, who may do what next.
    Show {
        /// The incident id, e.g. INC-2026-05-20-001.
        incident: String,
    },
    /// List hotfixes, newest first.
    List {
        /// Only this state (e.g. pr-open, mitigated).
        #[arg(long)]
        state: Option<String>,
        /// Only hotfixes with an overdue obligation.
        #[arg(long)]
        overdue: bool,
        /// Only hotfixes that still need someone: a step to take or an
        /// obligation not done (what the status page shows).
        #[arg(long)]
        open: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Stream events (replays stored events after --from, then follows).
    Watch {
        /// Replay the events after this sequence number, then follow (0:
        /// the whole history).
        #[arg(long = "from", default_value_t = 0, conflicts_with = "since")]
        from_seq: u64,
        /// `now`: replay nothing, only what happens from now on.
        #[arg(long, value_enum)]
        since: Option<Since>,
        /// Only the events of this incident.
        #[arg(long, value_name = "INCIDENT")]
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
    /// Print the next incident id free today (UTC): INC-YYYY-MM-DD-NNN, one
    /// more than the highest today's hotfixes and mitigations use. For
    /// when the incident tool has not numbered the incident.
    NextId,
    /// The platform team's report: rate limits, overdue work, history.
    Report,
    /// Show who the token authenticates as.
    Whoami,
    /// Show the store engine and, on etcd, the replicas: which one leads,
    /// and the time each one's lease has left.
    Cluster,
    /// Print a shell completion script, e.g. `hotfixctl completions bash >
    /// /etc/bash_completion.d/hotfixctl` (zsh: into a directory on
    /// $fpath as _hotfixctl; fish: ~/.config/fish/completions/hotfixctl.fish).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages of hotfixctl and each of its commands into DIR
    /// (hotfixctl.1, hotfixctl-declare.1, …).
    Man {
        /// The directory to write the pages into.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// List the profile's contexts (name, endpoint; * marks the one in
    /// use). Reads only the profile file.
    Contexts,
    /// Sign in with the organization's SSO (the context's oidc_issuer and
    /// oidc_client_id): prints a URL to open in any browser, waits until
    /// it is approved there, then keeps the token in the context's
    /// session file (mode 0600) for every command of the context,
    /// refreshed as needed.
    Login,
    /// Forget the context's SSO sign-in (the session file; its refresh
    /// token is revoked where the IdP offers it).
    Logout,
    /// Ask hotfixd's standard gRPC health service (no token needed): exit
    /// 0 while it serves, 24 (unavailable) when it does not (its store
    /// refuses changes, etcd does not answer it, or it is shutting down).
    /// For probes and scripts.
    Health,
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Write a consistent backup of the whole store to FILE (written to
    /// FILE.partial, synced, then renamed). Restore it into an empty data
    /// directory with `hotfixd restore --data-dir DIR FILE`.
    Backup {
        /// The backup file to write.
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
        /// Only the records after this sequence number.
        #[arg(long = "from", default_value_t = 0)]
        from_seq: u64,
    },
    /// The records of one hotfix, for the audit review (platform-team or
    /// platform-admin).
    List {
        /// The incident id, e.g. INC-2026-05-20-001.
        #[arg(long)]
        incident: String,
        /// At most this many.
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
    /// Who owns the cleanup PR (owed within 24h of the merge).
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
    /// P0 only: P1 and P2 go through the normal pipeline.
    #[arg(long, value_enum, default_value_t = Severity::P0)]
    pub severity: Severity,
    /// A feature flag flip would mitigate it: the runbook says flip it instead (refused).
    #[arg(long)]
    pub flag_can_mitigate: bool,
    /// A rollback would mitigate it: the runbook says roll back instead (refused).
    #[arg(long)]
    pub rollback_can_mitigate: bool,
    /// The fix is not known yet: the runbook says find it first (refused).
    #[arg(long)]
    pub fix_unknown: bool,
    /// A game-day drill: runs the whole lane, not counted in rate limits.
    #[arg(long)]
    pub drill: bool,
}

#[derive(Debug, Args)]
pub struct Fix {
    /// The incident id, e.g. INC-2026-05-20-001.
    pub incident: String,
    /// The fix branch, hotfix/INCIDENT-SLUG.
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
        /// The breakglass role granted.
        #[arg(long)]
        role: String,
        /// At most the configured TTL (default 1h).
        #[arg(long, value_parser = humantime_secs)]
        ttl: Option<u64>,
    },
    /// Tick off checklist items: rds-snapshots, iam-users, s3-buckets.
    Cleanup {
        /// A checklist item done (repeat): rds-snapshots, iam-users, s3-buckets.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
    },
}

pub(super) fn parse_file(s: &str) -> Result<pb::ChangedFile, String> {
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

pub(super) fn humantime_secs(s: &str) -> Result<u64, String> {
    s.parse::<humantime::Duration>()
        .map(|d| std::time::Duration::from(d).as_secs())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command says what it is in `--help`:
    /// (command path, argument id) of those that do not.
    fn undocumented(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" || a.is_hide_set() {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                found.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn output_has_a_short_flag_anywhere_on_the_line() {
        use clap::Parser;
        for argv in [
            &["hotfixctl", "-o", "json", "whoami"][..],
            &["hotfixctl", "whoami", "-o", "json"][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert_eq!(cli.output, Output::Json, "{argv:?}");
        }
    }

    #[test]
    fn every_flag_and_argument_has_help() {
        let mut found = Vec::new();
        undocumented(
            &<Cli as clap::CommandFactory>::command(),
            "hotfixctl",
            &mut found,
        );
        assert!(found.is_empty(), "without help text:\n{}", found.join("\n"));
    }
}
