//! Command line, environment and the TOML file, merged into one `Settings`.
//!
//! Precedence: flag or `HOTFIXD_*` variable, then the file, then defaults.
//! The file holds no secrets: principals are listed by the SHA-256 of their
//! token. `--dev` replaces the file with a loopback-only demo setup.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::app::sync::SyncSettings;
use crate::app::verify::VerifySettings;
use crate::auth::{PrincipalEntry, hash_token};
use crate::domain::{Policy, Role, Step};
use crate::integrations::argocd::ArgoCdSettings;
use crate::integrations::github::{ForgeSettings, GitHubSettings};
use crate::integrations::prometheus::PrometheusSettings;
use crate::integrations::slack::SlackSettings;
use crate::limits::LimitSettings;

/// hotfixd: the hotfix lane daemon. It owns every P0 hotfix from declaration
/// to close, enforces the emergency change runbook and serves gRPC.
#[derive(Debug, Parser)]
#[command(name = "hotfixd", version, about, long_about = None)]
pub struct Args {
    /// TOML configuration file (see deploy/hotfixd.example.toml).
    #[arg(long, env = "HOTFIXD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to serve gRPC on [default: 127.0.0.1:50051].
    #[arg(long, env = "HOTFIXD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Data directory of the embedded store [default: ./hotfixd-dev-data with --dev].
    #[arg(long, env = "HOTFIXD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Development mode: loopback only, a built-in demo roster
    /// (tokens dev-HANDLE) and a local data directory.
    #[arg(long, env = "HOTFIXD_DEV")]
    pub dev: bool,

    /// Server certificate chain (PEM) for TLS on the gRPC port [file: tls.cert].
    #[arg(
        long,
        env = "HOTFIXD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of the server certificate [file: tls.key].
    #[arg(
        long,
        env = "HOTFIXD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// CA (PEM) whose client certificates authenticate principals by SAN
    /// (mutual TLS) [file: tls.client_ca]. Bearer tokens keep working.
    #[arg(long, env = "HOTFIXD_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve plain text on a non-loopback address (tokens then cross the
    /// network in the clear). Without it, such a daemon refuses to start.
    #[arg(long, env = "HOTFIXD_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,

    /// Start on a store that holds less than its watermark records (an
    /// older copy you restored on purpose). Without it such a store is
    /// refused, naming both positions; with it, the choice is an audit
    /// record. Not an environment variable: say it each time.
    #[arg(long)]
    pub accept_rollback: bool,

    /// Slack incoming webhook of the status channel (declarations, overdue
    /// obligations). A secret: prefer --slack-status-webhook-file.
    #[arg(
        long,
        env = "HOTFIXD_SLACK_STATUS_WEBHOOK",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub slack_status_webhook: Option<String>,

    /// File holding the status channel's webhook URL.
    #[arg(
        long,
        env = "HOTFIXD_SLACK_STATUS_WEBHOOK_FILE",
        value_name = "FILE",
        conflicts_with = "slack_status_webhook"
    )]
    pub slack_status_webhook_file: Option<PathBuf>,

    /// Slack incoming webhook of the audit channel (admin merges,
    /// breakglass). A secret: prefer --slack-audit-webhook-file.
    #[arg(
        long,
        env = "HOTFIXD_SLACK_AUDIT_WEBHOOK",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub slack_audit_webhook: Option<String>,

    /// File holding the audit channel's webhook URL.
    #[arg(
        long,
        env = "HOTFIXD_SLACK_AUDIT_WEBHOOK_FILE",
        value_name = "FILE",
        conflicts_with = "slack_audit_webhook"
    )]
    pub slack_audit_webhook_file: Option<PathBuf>,

    /// Bearer token for Prometheus, if it needs one (a secret).
    #[arg(
        long,
        env = "HOTFIXD_PROMETHEUS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub prometheus_token: Option<String>,

    /// File holding the Prometheus bearer token.
    #[arg(
        long,
        env = "HOTFIXD_PROMETHEUS_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "prometheus_token"
    )]
    pub prometheus_token_file: Option<PathBuf>,

    /// GitHub token of the bot that merges (a secret).
    #[arg(
        long,
        env = "HOTFIXD_GITHUB_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub github_token: Option<String>,

    /// File holding the GitHub token.
    #[arg(
        long,
        env = "HOTFIXD_GITHUB_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "github_token"
    )]
    pub github_token_file: Option<PathBuf>,

    /// Argo CD API token (a secret).
    #[arg(
        long,
        env = "HOTFIXD_ARGOCD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub argocd_token: Option<String>,

    /// File holding the Argo CD API token.
    #[arg(
        long,
        env = "HOTFIXD_ARGOCD_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "argocd_token"
    )]
    pub argocd_token_file: Option<PathBuf>,

    /// The audit trail's Ed25519 signing key (`hotfixd audit keygen`), for
    /// signed checkpoints. A secret: prefer --audit-key-file.
    #[arg(
        long,
        env = "HOTFIXD_AUDIT_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub audit_key: Option<String>,

    /// File holding the audit signing key.
    #[arg(
        long,
        env = "HOTFIXD_AUDIT_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "audit_key"
    )]
    pub audit_key_file: Option<PathBuf>,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(
        long,
        env = "HOTFIXD_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Token tools.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Audit trail tools (offline, on a data directory).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Restore a backup (`hotfixctl admin backup FILE`) into an empty or new
    /// data directory: every entry written and synced, the audit chain
    /// walked to the backup's position, the watermark written. Then start
    /// hotfixd on that directory.
    Restore {
        /// The data directory to create (it must be empty or absent).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit chain of a data directory and name the first record
    /// that does not match. The directory must not be in use by a running
    /// hotfixd: verify a copy. Exits 0 when intact, 1 when not.
    Verify {
        /// The data directory (or a copy of it).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The verifier key (`hotfixd audit keygen` printed it): every
        /// stored checkpoint's signature is checked with it.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Make an Ed25519 key for signed audit checkpoints: the signing key
    /// is written to --out (mode 0600; give it to hotfixd with
    /// --audit-key-file), the verifier key is printed (publish it).
    Keygen {
        /// The log's name in its checkpoints, e.g. hotfixd.example.com/bookstore.
        #[arg(long)]
        name: String,
        /// Where to write the signing key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a fresh bearer token and the roster entry (with its SHA-256)
    /// to paste into the config. The token itself is shown once only.
    New {
        /// Handle of the principal the token is for.
        #[arg(long, default_value = "HANDLE")]
        handle: String,
        /// Role(s) of the principal: engineer, sre-lead, eng-manager,
        /// platform-admin, platform-team, service.
        #[arg(long = "role", default_value = "engineer")]
        roles: Vec<String>,
    },
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    /// How often overdue obligations are looked for and reported.
    #[serde(default, with = "humantime_serde")]
    pub overdue_check_interval: Option<Duration>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub slack: SlackConfig,
    #[serde(default)]
    pub prometheus: Option<PrometheusConfig>,
    #[serde(default)]
    pub argocd: Option<ArgoCdConfig>,
    #[serde(default)]
    pub github: Option<GitHubConfig>,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub principals: Vec<PrincipalEntry>,
}

/// `[slack]`: delivery settings. The webhook URLs are secrets and come from
/// flags, the environment or files, never from this file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub backoff: Option<Duration>,
}

/// `[policy]`: every key optional; the runbook's numbers are the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub max_fix_lines: Option<u32>,
    pub concern_depth: Option<usize>,
    pub required_checks: Option<Vec<String>>,
    pub verify_threshold: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub cleanup_within: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub postmortem_within: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub audit_review_within: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub breakglass_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub rate_window: Option<Duration>,
    pub rate_window_max: Option<u32>,
    pub quarter_process_bug_over: Option<u32>,
    pub quarter_code_yellow_over: Option<u32>,
    pub rollback_share_flag: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// Extra roles per step, e.g. `merge = ["sre-lead"]`.
    #[serde(default)]
    pub extra_roles: BTreeMap<Step, BTreeSet<Role>>,
}

/// `[prometheus]`: where step 6 measures the symptom metric.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL, e.g. "http://prometheus:9090".
    pub url: String,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// PromQL template; `{app}` is the hotfix's Argo CD app.
    pub query: Option<String>,
    /// Per-app queries, overriding the template.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    pub consecutive: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
}

/// `[audit]`: when signed checkpoints are written (the key comes from
/// --audit-key-file or the environment, never from this file).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub checkpoint_every: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub checkpoint_interval: Option<Duration>,
}

/// The audit signing key: never printed.
#[derive(Clone)]
pub struct AuditKey(pub std::sync::Arc<hotfix_api::audit::SigningKey>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({} [redacted])", self.0.name())
    }
}

/// `[limits]`: abuse limits (see `limits.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub per_principal_rate: Option<f64>,
    pub per_principal_burst: Option<u32>,
    pub max_in_flight: Option<usize>,
    pub per_principal_in_flight: Option<usize>,
    pub per_principal_watches: Option<usize>,
    pub failed_auth_rate: Option<f64>,
    pub failed_auth_burst: Option<u32>,
    pub max_connections: Option<usize>,
    pub max_connections_per_peer: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub handshake_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub request_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub keepalive_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub keepalive_timeout: Option<Duration>,
}

/// `[tls]`: TLS on the gRPC port, optionally mutual.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// Its private key, PEM.
    pub key: Option<PathBuf>,
    /// CA of client certificates (mutual TLS), PEM.
    pub client_ca: Option<PathBuf>,
}

/// TLS as the daemon runs it: the PEM files' contents.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Some: client certificates signed by this CA authenticate by SAN.
    pub client_ca_pem: Option<Vec<u8>>,
}

/// `[github]`: where step 5's merge is performed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// API base URL (GitHub Enterprise: https://HOST/api/v3).
    pub url: String,
    /// GraphQL endpoint; default derived from `url`.
    pub graphql_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Branch hotfix branches are cut from and merged into.
    pub base_branch: Option<String>,
    /// Per-repository base branches ("org/repo" = "branch").
    #[serde(default)]
    pub base_branches: BTreeMap<String, String>,
    /// Repositories whose steps stay manual (integration switched off).
    #[serde(default)]
    pub manual_repositories: Vec<String>,
    /// How often the PR's checks are read while following them.
    #[serde(default, with = "humantime_serde")]
    pub checks_poll: Option<Duration>,
    /// Stop following checks after this long (they can be followed again).
    #[serde(default, with = "humantime_serde")]
    pub checks_timeout: Option<Duration>,
    /// Roles held by the active members of an org team ("org/team-slug")
    /// instead of by the roster's claim.
    #[serde(default)]
    pub teams: BTreeMap<Role, String>,
    /// How often team memberships are read again.
    #[serde(default, with = "humantime_serde")]
    pub teams_refresh: Option<Duration>,
}

/// `[argocd]`: where step 5's sync is performed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdConfig {
    /// Base URL of the Argo CD API server.
    pub url: String,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// How often the app's status is read while waiting.
    #[serde(default, with = "humantime_serde")]
    pub poll: Option<Duration>,
    /// Give up waiting for Synced + Healthy after this long.
    #[serde(default, with = "humantime_serde")]
    pub sync_timeout: Option<Duration>,
}

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub heartbeat_interval: Duration,
    pub policy: Policy,
    pub principals: Vec<PrincipalEntry>,
    pub dev: bool,
    /// See `Args::accept_rollback`.
    pub accept_rollback: bool,
    /// Signs audit checkpoints (None: no checkpoints).
    pub audit_key: Option<AuditKey>,
    pub checkpoints: crate::app::checkpoints::CheckpointSettings,
    pub overdue_check_interval: Duration,
    /// None: no webhook configured, nothing is posted.
    pub slack: Option<SlackSettings>,
    /// None: verification takes the caller's observed value only.
    pub prometheus: Option<PrometheusSettings>,
    pub verify: VerifySettings,
    /// None: syncs are recorded as the caller reports them.
    pub argocd: Option<ArgoCdSettings>,
    pub sync: SyncSettings,
    /// None: merges are recorded as the platform-admin reports them.
    pub github: Option<GitHubSettings>,
    /// None: plain text (loopback, --dev, or --insecure-plaintext).
    pub tls: Option<TlsSettings>,
    pub limits: LimitSettings,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEV_DATA_DIR: &str = "./hotfixd-dev-data";
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
pub const DEFAULT_OVERDUE_CHECK: Duration = Duration::from_secs(60);

impl Settings {
    /// Every secret these settings hold (webhooks, tokens), for
    /// [`crate::redact`].
    pub fn secrets(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(s) = &self.slack {
            out.extend(s.status_webhook.as_deref());
            out.extend(s.audit_webhook.as_deref());
        }
        if let Some(p) = &self.prometheus {
            out.extend(p.bearer_token.as_deref());
        }
        if let Some(a) = &self.argocd {
            out.extend(a.token.as_deref());
        }
        if let Some(g) = &self.github {
            out.extend(g.token.as_deref());
        }
        out
    }

    /// The audit signing key's text (a secret too), for [`crate::redact`].
    pub fn audit_key_text(&self) -> Option<String> {
        self.audit_key.as_ref().map(|k| k.0.encode())
    }

    /// What `--dev` runs with when no file is given: the demo roster, the
    /// runbook's policy, no integrations. Tests and benches start from it.
    pub fn dev(listen: SocketAddr, data_dir: PathBuf) -> Settings {
        Settings {
            listen,
            data_dir,
            heartbeat_interval: DEFAULT_HEARTBEAT,
            policy: Policy::default(),
            principals: dev_principals(),
            dev: true,
            accept_rollback: false,
            audit_key: None,
            checkpoints: Default::default(),
            overdue_check_interval: DEFAULT_OVERDUE_CHECK,
            slack: None,
            prometheus: None,
            verify: VerifySettings::default(),
            argocd: None,
            sync: SyncSettings::default(),
            github: None,
            tls: None,
            limits: LimitSettings::default(),
        }
    }
}

/// The demo roster of `--dev`: handle, role; token `dev-<handle>`.
pub const DEV_ROSTER: [(&str, Role); 6] = [
    ("alice", Role::SreLead),
    ("erin", Role::EngManager),
    ("bob", Role::Engineer),
    ("carol", Role::PlatformAdmin),
    ("dave", Role::PlatformTeam),
    ("svc-ci", Role::Service),
];

pub fn dev_principals() -> Vec<PrincipalEntry> {
    DEV_ROSTER
        .iter()
        .map(|(h, r)| PrincipalEntry {
            handle: h.to_string(),
            roles: [*r].into(),
            token_sha256: hex::encode(hash_token(&format!("dev-{h}"))),
            san: String::new(),
        })
        .collect()
}

impl LimitsConfig {
    fn to_settings(&self) -> Result<LimitSettings, String> {
        let d = LimitSettings::default();
        let s = LimitSettings {
            per_principal_rate: self.per_principal_rate.unwrap_or(d.per_principal_rate),
            per_principal_burst: self.per_principal_burst.unwrap_or(d.per_principal_burst),
            max_in_flight: self.max_in_flight.unwrap_or(d.max_in_flight),
            per_principal_in_flight: self
                .per_principal_in_flight
                .unwrap_or(d.per_principal_in_flight),
            per_principal_watches: self
                .per_principal_watches
                .unwrap_or(d.per_principal_watches),
            failed_auth_rate: self.failed_auth_rate.unwrap_or(d.failed_auth_rate),
            failed_auth_burst: self.failed_auth_burst.unwrap_or(d.failed_auth_burst),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_peer: self
                .max_connections_per_peer
                .unwrap_or(d.max_connections_per_peer),
            handshake_timeout: self.handshake_timeout.unwrap_or(d.handshake_timeout),
            request_read_timeout: self.request_read_timeout.unwrap_or(d.request_read_timeout),
            keepalive_interval: self.keepalive_interval.unwrap_or(d.keepalive_interval),
            keepalive_timeout: self.keepalive_timeout.unwrap_or(d.keepalive_timeout),
        };
        for (field, rate) in [
            ("per_principal_rate", s.per_principal_rate),
            ("failed_auth_rate", s.failed_auth_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("limits.{field}: must be a positive number"));
            }
        }
        for (field, n) in [
            ("per_principal_burst", s.per_principal_burst as usize),
            ("failed_auth_burst", s.failed_auth_burst as usize),
            ("max_in_flight", s.max_in_flight),
            ("per_principal_in_flight", s.per_principal_in_flight),
            ("per_principal_watches", s.per_principal_watches),
            ("max_connections", s.max_connections),
            ("max_connections_per_peer", s.max_connections_per_peer),
        ] {
            if n == 0 {
                return Err(format!("limits.{field}: must be at least 1"));
            }
        }
        for (field, t) in [
            ("handshake_timeout", s.handshake_timeout),
            ("request_read_timeout", s.request_read_timeout),
            ("keepalive_interval", s.keepalive_interval),
            ("keepalive_timeout", s.keepalive_timeout),
        ] {
            positive(&format!("limits.{field}"), t)?;
        }
        Ok(s)
    }
}

impl PolicyConfig {
    pub fn to_policy(&self) -> Result<Policy, String> {
        let mut p = Policy::default();
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { p.$f = v; } )* };
        }
        take!(
            max_fix_lines,
            concern_depth,
            required_checks,
            verify_threshold,
            cleanup_within,
            postmortem_within,
            audit_review_within,
            breakglass_ttl,
            rate_window,
            rate_window_max,
            quarter_process_bug_over,
            quarter_code_yellow_over,
            rollback_share_flag,
            stale_after
        );
        if p.concern_depth == 0 {
            return Err("policy.concern_depth: must be at least 1".into());
        }
        if !p
            .required_checks
            .iter()
            .any(|c| c == crate::domain::SCAN_CHECK)
        {
            return Err(
                "policy.required_checks: must include \"scan\" (the runbook never skips it)".into(),
            );
        }
        if !(p.verify_threshold.is_finite() && p.verify_threshold > 0.0) {
            return Err("policy.verify_threshold: must be a positive number".into());
        }
        if !(0.0..=1.0).contains(&p.rollback_share_flag) {
            return Err("policy.rollback_share_flag: must be between 0 and 1".into());
        }
        for step in self.extra_roles.keys() {
            if matches!(step, Step::Approve | Step::Override) {
                return Err(format!(
                    "policy.extra_roles.{step}: only the named approver may {step}; it cannot be granted to a role"
                ));
            }
        }
        p.extra_roles = self.extra_roles.clone();
        Ok(p)
    }
}

/// The file holds the roster (who may merge past review): a file others
/// may write lets them make themselves platform-admin.
fn refuse_writable_by_others(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(format!(
                "{}: writable by group or others (mode {:04o}); it holds the roster, so \
                 anyone who can write it can grant themselves any role: chmod go-w {}",
                path.display(),
                mode & 0o7777,
                path.display()
            ));
        }
    }
    Ok(())
}

/// An interval a background task ticks at: zero would spin or panic it.
fn positive(field: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err(format!("{field}: must be longer than 0s (e.g. \"5s\")"));
    }
    Ok(d)
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    refuse_writable_by_others(path)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Args {
    /// Merges flags, environment and file into the settings to run with.
    pub fn settings(&self) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None if self.dev => FileConfig::default(),
            None => {
                return Err(
                    "no configuration: pass --config FILE (see deploy/hotfixd.example.toml), \
                     or --dev for a local demo daemon"
                        .into(),
                );
            }
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses"));
        if self.dev && !listen.ip().is_loopback() {
            return Err(format!(
                "--dev serves only on loopback; {listen} is not a loopback address"
            ));
        }
        let tls = self.tls(&file.tls)?;
        if tls.is_none() && !listen.ip().is_loopback() && !self.insecure_plaintext {
            return Err(format!(
                "listen: {listen} is not a loopback address and no TLS is configured: set \
                 [tls] cert and key (or --tls-cert/--tls-key), or accept plain text with \
                 --insecure-plaintext"
            ));
        }
        let data_dir = match (&self.data_dir, &file.data_dir) {
            (Some(d), _) | (None, Some(d)) => d.clone(),
            (None, None) if self.dev => PathBuf::from(DEV_DATA_DIR),
            (None, None) => {
                return Err(
                    "data_dir: required (flag --data-dir, HOTFIXD_DATA_DIR or the file)".into(),
                );
            }
        };
        // --dev always runs the demo roster; a --config file then brings only
        // policy and integrations (to try them locally).
        let principals = if self.dev {
            dev_principals()
        } else {
            file.principals
        };
        if principals.is_empty() {
            return Err(
                "principals: the roster is empty; add [[principals]] (see `hotfixd token new`)"
                    .into(),
            );
        }
        let secret = |flag: &Option<String>,
                      file: &Option<PathBuf>,
                      name: &str|
         -> Result<Option<String>, String> {
            match (flag, file) {
                (Some(v), _) => Ok(Some(v.trim().to_string())),
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map(|v| Some(v.trim().to_string()))
                    .map_err(|e| format!("{name}: reading {}: {e}", p.display())),
                (None, None) => Ok(None),
            }
        };
        let status_webhook = secret(
            &self.slack_status_webhook,
            &self.slack_status_webhook_file,
            "slack status webhook",
        )?;
        let audit_webhook = secret(
            &self.slack_audit_webhook,
            &self.slack_audit_webhook_file,
            "slack audit webhook",
        )?;
        for (name, url) in [("status", &status_webhook), ("audit", &audit_webhook)] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(format!("the Slack {name} webhook must be an http(s) URL"));
            }
        }
        let slack = (status_webhook.is_some() || audit_webhook.is_some()).then(|| SlackSettings {
            status_webhook,
            audit_webhook,
            timeout: file.slack.timeout.unwrap_or(Duration::from_secs(5)),
            attempts: file.slack.attempts.unwrap_or(4).max(1),
            backoff: file.slack.backoff.unwrap_or(Duration::from_millis(500)),
        });
        let prometheus_token = secret(
            &self.prometheus_token,
            &self.prometheus_token_file,
            "prometheus token",
        )?;
        let mut verify = VerifySettings::default();
        let prometheus = match &file.prometheus {
            None => None,
            Some(p) => {
                if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                    return Err("prometheus.url: must be an http(s) URL".into());
                }
                if let Some(q) = &p.query {
                    if !q.contains("{app}") {
                        return Err("prometheus.query: the template must contain {app}".into());
                    }
                    verify.query = q.clone();
                }
                verify.queries = p.queries.clone();
                verify.interval = p.interval.unwrap_or(verify.interval);
                verify.consecutive = p.consecutive.unwrap_or(verify.consecutive).max(1);
                verify.window = p.window.unwrap_or(verify.window);
                Some(PrometheusSettings {
                    url: p.url.clone(),
                    bearer_token: prometheus_token,
                    timeout: p.timeout.unwrap_or(Duration::from_secs(5)),
                })
            }
        };
        let argocd_token = secret(&self.argocd_token, &self.argocd_token_file, "argocd token")?;
        let mut sync = SyncSettings::default();
        let argocd = match &file.argocd {
            None => None,
            Some(a) => {
                if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
                    return Err("argocd.url: must be an http(s) URL".into());
                }
                sync.poll = a.poll.unwrap_or(sync.poll);
                sync.timeout = a.sync_timeout.unwrap_or(sync.timeout);
                Some(ArgoCdSettings {
                    url: a.url.clone(),
                    token: argocd_token,
                    timeout: a.timeout.unwrap_or(Duration::from_secs(10)),
                })
            }
        };
        let github_token = secret(&self.github_token, &self.github_token_file, "github token")?;
        let github = match &file.github {
            None => None,
            Some(g) => {
                if !(g.url.starts_with("http://") || g.url.starts_with("https://")) {
                    return Err("github.url: must be an http(s) URL".into());
                }
                if let Some(u) = &g.graphql_url
                    && !((u.starts_with("http://") || u.starts_with("https://"))
                        && u.ends_with("/graphql"))
                {
                    return Err(
                        "github.graphql_url: must be an http(s) URL ending in /graphql".into(),
                    );
                }
                for r in g.manual_repositories.iter().chain(g.base_branches.keys()) {
                    if crate::domain::validate::check_repository("github", r).is_err() {
                        return Err(format!("github: '{r}' is not an owner/name repository"));
                    }
                }
                let mut teams = BTreeMap::new();
                for (role, team) in &g.teams {
                    let Some((org, slug)) = team
                        .split_once('/')
                        .filter(|(o, s)| !o.is_empty() && !s.is_empty() && !s.contains('/'))
                    else {
                        return Err(format!(
                            "github.teams.{role}: '{team}' is not an org/team-slug"
                        ));
                    };
                    teams.insert(*role, (org.to_string(), slug.to_string()));
                }
                let defaults = ForgeSettings::default();
                Some(GitHubSettings {
                    url: g.url.clone(),
                    graphql_url: g.graphql_url.clone(),
                    token: github_token,
                    timeout: g.timeout.unwrap_or(Duration::from_secs(10)),
                    lane: ForgeSettings {
                        base_branch: g.base_branch.clone().unwrap_or(defaults.base_branch),
                        base_branches: g.base_branches.clone(),
                        manual_repositories: g.manual_repositories.iter().cloned().collect(),
                        checks_poll: g.checks_poll.unwrap_or(defaults.checks_poll),
                        checks_timeout: g.checks_timeout.unwrap_or(defaults.checks_timeout),
                    },
                    teams,
                    teams_refresh: g.teams_refresh.unwrap_or(Duration::from_secs(60)),
                })
            }
        };
        let audit_key = secret(&self.audit_key, &self.audit_key_file, "audit signing key")?
            .map(|k| {
                hotfix_api::audit::SigningKey::parse(&k)
                    .map(|k| AuditKey(std::sync::Arc::new(k)))
                    .map_err(|e| format!("audit signing key: {e}"))
            })
            .transpose()?;
        Ok(Settings {
            github,
            argocd,
            sync,
            prometheus,
            verify,
            listen,
            data_dir,
            heartbeat_interval: positive(
                "heartbeat_interval",
                file.heartbeat_interval.unwrap_or(DEFAULT_HEARTBEAT),
            )?,
            policy: file.policy.to_policy()?,
            principals,
            dev: self.dev,
            accept_rollback: self.accept_rollback,
            audit_key,
            checkpoints: {
                let d = crate::app::checkpoints::CheckpointSettings::default();
                let every = file.audit.checkpoint_every.unwrap_or(d.every);
                if every == 0 {
                    return Err("audit.checkpoint_every: must be at least 1".into());
                }
                crate::app::checkpoints::CheckpointSettings {
                    every,
                    interval: positive(
                        "audit.checkpoint_interval",
                        file.audit.checkpoint_interval.unwrap_or(d.interval),
                    )?,
                }
            },
            overdue_check_interval: positive(
                "overdue_check_interval",
                file.overdue_check_interval.unwrap_or(DEFAULT_OVERDUE_CHECK),
            )?,
            slack,
            tls,
            limits: file.limits.to_settings()?,
        })
    }

    /// Flags override the file; the PEM files are read now, so a bad path
    /// stops start-up with its name.
    fn tls(&self, file: &Option<TlsConfig>) -> Result<Option<TlsSettings>, String> {
        let f = file.as_ref();
        let pick = |flag: &Option<PathBuf>, from_file: Option<&PathBuf>| {
            flag.clone().or_else(|| from_file.cloned())
        };
        let cert = pick(&self.tls_cert, f.and_then(|f| f.cert.as_ref()));
        let key = pick(&self.tls_key, f.and_then(|f| f.key.as_ref()));
        let client_ca = pick(&self.tls_client_ca, f.and_then(|f| f.client_ca.as_ref()));
        let read = |field: &str, p: &Path| {
            std::fs::read(p).map_err(|e| format!("{field}: reading {}: {e}", p.display()))
        };
        match (cert, key) {
            (None, None) if client_ca.is_some() => {
                Err("tls.client_ca: mutual TLS needs tls.cert and tls.key too".into())
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err("tls.key: required with tls.cert".into()),
            (None, Some(_)) => Err("tls.cert: required with tls.key".into()),
            (Some(c), Some(k)) => Ok(Some(TlsSettings {
                cert_pem: read("tls.cert", &c)?,
                key_pem: read("tls.key", &k)?,
                client_ca_pem: client_ca.map(|p| read("tls.client_ca", &p)).transpose()?,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../deploy/hotfixd.example.toml");
        let file: FileConfig = toml::from_str(text).expect("example parses");
        let policy = file.policy.to_policy().expect("example policy is valid");
        assert_eq!(
            file.limits.to_settings().unwrap(),
            LimitSettings::default(),
            "the example lists every limit at its default"
        );
        assert_eq!(policy.max_fix_lines, 50);
        assert_eq!(policy.cleanup_within, Duration::from_secs(24 * 3600));
        assert!(!file.principals.is_empty());
        crate::auth::Roster::new(&file.principals).expect("example roster is valid");
        // And through the same path as the daemon, flags and all.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/hotfixd.example.toml"
        );
        let settings = Args::parse_from(["hotfixd", "--config", path])
            .settings()
            .unwrap();
        let prom = settings
            .prometheus
            .expect("the example configures Prometheus");
        assert_eq!(prom.url, "http://prometheus.monitoring:9090");
        assert_eq!(settings.verify.window, Duration::from_secs(180));
        assert!(settings.verify.query_for("x").contains(r#"service="x""#));
        assert!(
            settings.slack.is_none(),
            "webhooks never come from the file"
        );
        let gh = settings.github.expect("the example configures GitHub");
        assert_eq!(gh.graphql(), "https://api.github.com/graphql");
        assert_eq!(gh.lane.base_for("bookstore/catalog"), "main");
        assert_eq!(gh.lane.checks_poll, Duration::from_secs(5));
        assert_eq!(gh.teams_refresh, Duration::from_secs(60));
        assert!(gh.token.is_none(), "tokens never come from the file");
    }

    fn github(extra: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(
            &path,
            format!("[github]\nurl = \"https://ghe.example/api/v3\"\n{extra}"),
        )
        .unwrap();
        Args::parse_from(["hotfixd", "--dev", "--config", path.to_str().unwrap()]).settings()
    }

    #[test]
    fn github_keys_are_checked() {
        let s = github("manual_repositories = [\"bookstore/legacy\"]\n[github.base_branches]\n\"bookstore/old\" = \"master\"\n[github.teams]\nplatform-admin = \"bookstore/platform-admins\"\n").unwrap();
        let gh = s.github.unwrap();
        assert_eq!(gh.graphql(), "https://ghe.example/api/graphql");
        assert!(!gh.lane.enabled_for("bookstore/legacy"));
        assert!(gh.lane.enabled_for("bookstore/catalog"));
        assert_eq!(gh.lane.base_for("bookstore/old"), "master");
        assert_eq!(
            gh.teams[&Role::PlatformAdmin],
            ("bookstore".to_string(), "platform-admins".to_string())
        );
        let e = github("[github.teams]\nplatform-admin = \"platform-admins\"\n").unwrap_err();
        assert!(e.contains("github.teams.platform-admin"), "{e}");
        let e = github("[github.teams]\nroot = \"a/b\"\n").unwrap_err();
        assert!(e.contains("root"), "{e}");
        let e = github("manual_repositories = [\"legacy\"]\n").unwrap_err();
        assert!(e.contains("legacy"), "{e}");
        let e = github("graphql_url = \"https://x.example/api\"\n").unwrap_err();
        assert!(e.contains("github.graphql_url"), "{e}");
    }

    #[test]
    fn scan_cannot_be_configured_away() {
        let cfg: FileConfig = toml::from_str("[policy]\nrequired_checks = [\"lint\"]\n").unwrap();
        assert!(cfg.policy.to_policy().unwrap_err().contains("scan"));
    }

    #[test]
    fn approval_cannot_be_granted_to_a_role() {
        let cfg: FileConfig =
            toml::from_str("[policy.extra_roles]\napprove = [\"platform-admin\"]\n").unwrap();
        assert!(
            cfg.policy
                .to_policy()
                .unwrap_err()
                .contains("named approver")
        );
    }

    fn settings_of(text: &str, mode: u32) -> Result<Settings, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        Args::parse_from(["hotfixd", "--dev", "--config", path.to_str().unwrap()]).settings()
    }

    #[test]
    fn zero_intervals_are_refused_at_start() {
        for key in ["heartbeat_interval", "overdue_check_interval"] {
            let e = settings_of(&format!("{key} = \"0s\"\n"), 0o600).unwrap_err();
            assert!(e.starts_with(key) && e.contains("longer than 0s"), "{e}");
            settings_of(&format!("{key} = \"1s\"\n"), 0o600).expect("one second is fine");
        }
    }

    #[test]
    fn a_config_others_may_write_is_refused() {
        for mode in [0o666, 0o620, 0o602] {
            let e = settings_of("", mode).unwrap_err();
            assert!(e.contains("writable by group or others"), "{mode:o}: {e}");
            assert!(e.contains("chmod go-w"), "{e}");
        }
        settings_of("", 0o644).expect("owner-writable, world-readable is fine");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("listn = \"x\"\n").is_err());
    }

    #[test]
    fn dev_refuses_non_loopback() {
        let args = Args::parse_from(["hotfixd", "--dev", "--listen", "0.0.0.0:50051"]);
        assert!(args.settings().unwrap_err().contains("loopback"));
    }
}
