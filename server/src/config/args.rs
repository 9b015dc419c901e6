//! The command line: flags with their `HOTFIXD_*` variables, and the
//! subcommands (audit, restore, token). Doc comments are the `--help` text.

use super::*;

/// hotfixd: the hotfix lane daemon. It owns every P0 hotfix from declaration
/// to close, enforces the emergency change runbook and serves gRPC.
#[derive(Debug, Parser)]
#[command(name = "hotfixd", version, about, long_about = None)]
pub struct Args {
    /// TOML configuration file (see deploy/hotfixd.example.toml).
    #[arg(long, global = true, env = "HOTFIXD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to serve gRPC on [default: 127.0.0.1:50051].
    #[arg(long, env = "HOTFIXD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address of the operator HTTP listener: the live status page (/,
    /// read-only, bearer tokens), /metrics (Prometheus), /healthz, /readyz;
    /// plain HTTP/1.1 and h2c [default: off; 127.0.0.1:50080 with --dev;
    /// file: http_listen].
    #[arg(long, env = "HOTFIXD_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Data directory of the embedded store [default: ./hotfixd-dev-data with --dev].
    #[arg(long, env = "HOTFIXD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The store engine: sled (embedded, one replica, in --data-dir) or
    /// etcd (replicas share the etcd cluster at --etcd-endpoints)
    /// [default: sled; file: store.engine].
    #[arg(long, env = "HOTFIXD_STORE", value_name = "ENGINE")]
    pub store: Option<StoreEngine>,

    /// etcd client URLs, comma-separated (http:// or https://)
    /// [file: store.endpoints].
    #[arg(
        long,
        global = true,
        env = "HOTFIXD_ETCD_ENDPOINTS",
        value_name = "URLS",
        value_delimiter = ','
    )]
    pub etcd_endpoints: Vec<String>,

    /// Key prefix of this hotfixd's store in etcd [default: /hotfixd/;
    /// file: store.prefix].
    #[arg(
        long,
        global = true,
        env = "HOTFIXD_ETCD_PREFIX",
        value_name = "PREFIX"
    )]
    pub etcd_prefix: Option<String>,

    /// The URL other replicas reach this one's gRPC at, to send it changes
    /// while it leads [default: http(s)://LISTEN when LISTEN is a specific
    /// address; file: store.advertise_url].
    #[arg(long, env = "HOTFIXD_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// CA (PEM) that signs etcd's server certificates [file: store.ca_file].
    #[arg(long, global = true, env = "HOTFIXD_ETCD_CA_FILE", value_name = "FILE")]
    pub etcd_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for etcd's mutual TLS [file:
    /// store.cert_file].
    #[arg(
        long,
        global = true,
        env = "HOTFIXD_ETCD_CERT_FILE",
        value_name = "FILE",
        requires = "etcd_key_file"
    )]
    pub etcd_cert_file: Option<PathBuf>,

    /// Private key (PEM) of the etcd client certificate [file:
    /// store.key_file].
    #[arg(
        long,
        global = true,
        env = "HOTFIXD_ETCD_KEY_FILE",
        value_name = "FILE",
        requires = "etcd_cert_file"
    )]
    pub etcd_key_file: Option<PathBuf>,

    /// etcd user, when etcd's authentication is on [file: store.user].
    #[arg(long, global = true, env = "HOTFIXD_ETCD_USER", value_name = "USER")]
    pub etcd_user: Option<String>,

    /// Password of the etcd user (a secret: prefer --etcd-password-file).
    #[arg(
        long,
        global = true,
        env = "HOTFIXD_ETCD_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub etcd_password: Option<String>,

    /// File holding the etcd user's password.
    #[arg(
        long,
        global = true,
        env = "HOTFIXD_ETCD_PASSWORD_FILE",
        value_name = "FILE",
        conflicts_with = "etcd_password"
    )]
    pub etcd_password_file: Option<PathBuf>,

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

    /// The GitHub App's private key, PEM (a secret; `[github] app_id` says
    /// which App). hotfixd then signs in as the App, never with a token.
    #[arg(
        long,
        env = "HOTFIXD_GITHUB_APP_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "PEM"
    )]
    pub github_app_private_key: Option<String>,

    /// File holding the GitHub App's private key (PEM).
    #[arg(
        long,
        env = "HOTFIXD_GITHUB_APP_PRIVATE_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "github_app_private_key"
    )]
    pub github_app_private_key_file: Option<PathBuf>,

    /// The PagerDuty service integration's routing key for change events
    /// (a secret; the `[pagerduty]` section of the config file turns them on).
    #[arg(
        long,
        env = "HOTFIXD_PAGERDUTY_ROUTING_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub pagerduty_routing_key: Option<String>,

    /// File holding the PagerDuty routing key.
    #[arg(
        long,
        env = "HOTFIXD_PAGERDUTY_ROUTING_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "pagerduty_routing_key"
    )]
    pub pagerduty_routing_key_file: Option<PathBuf>,

    /// The SIEM's token (bearer, or Splunk HEC's) for the audit sink (a
    /// secret; the `[siem]` section of the config file says where).
    #[arg(
        long,
        env = "HOTFIXD_SIEM_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub siem_token: Option<String>,

    /// File holding the SIEM's token.
    #[arg(
        long,
        env = "HOTFIXD_SIEM_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "siem_token"
    )]
    pub siem_token_file: Option<PathBuf>,

    /// The secret GitHub signs webhook deliveries with (a secret); with it,
    /// the operator listener takes deliveries at /webhooks/github.
    #[arg(
        long,
        env = "HOTFIXD_GITHUB_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub github_webhook_secret: Option<String>,

    /// File holding the GitHub webhook secret.
    #[arg(
        long,
        env = "HOTFIXD_GITHUB_WEBHOOK_SECRET_FILE",
        value_name = "FILE",
        conflicts_with = "github_webhook_secret"
    )]
    pub github_webhook_secret_file: Option<PathBuf>,

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

    /// Log line format: text (for people; colour only on a terminal) or
    /// json (one object per line, for log pipelines).
    #[arg(
        long,
        env = "HOTFIXD_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the man pages of hotfixd and each of its commands into DIR
    /// (hotfixd.1, hotfixd-migrate.1, …).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
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
    /// Move a store between engines, keeping every sequence number, record
    /// and the audit chain: from a sled data directory into an empty etcd
    /// prefix (--from-data-dir DIR --to-etcd), or back (--from-etcd
    /// --to-data-dir DIR). etcd is the one at --etcd-endpoints, under
    /// --etcd-prefix (or the store table of --config). Stop every hotfixd on the
    /// source first: changes made after the copy would not be in it. The
    /// copy is verified (chain, head, counts) before this answers.
    #[command(group(clap::ArgGroup::new("from").required(true).args(["from_data_dir", "from_etcd"])))]
    #[command(group(clap::ArgGroup::new("to").required(true).args(["to_data_dir", "to_etcd"])))]
    Migrate {
        /// The sled data directory to copy (no hotfixd may be running on it).
        #[arg(long, value_name = "DIR", requires = "to_etcd")]
        from_data_dir: Option<PathBuf>,
        /// Copy into etcd: the prefix must hold no key.
        #[arg(long)]
        to_etcd: bool,
        /// Copy the store in etcd (no replica may be running on it).
        #[arg(long, requires = "to_data_dir")]
        from_etcd: bool,
        /// The data directory to create (it must be empty or absent).
        #[arg(long, value_name = "DIR")]
        to_data_dir: Option<PathBuf>,
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
