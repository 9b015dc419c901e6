//! Command line, environment and the TOML file, merged into one `Settings`.
//!
//! - `args`: the flags (clap; every flag has its `HOTFIXD_*` variable).
//! - `file`: the TOML file as written, each section checked on its own.
//! - this module: the merge into [`Settings`] (precedence: flag or
//!   variable, then the file, then defaults), secrets read from their
//!   variables or `*_FILE`s, and the checks across sections.
//!
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

mod args;
mod file;

pub use args::*;
pub use file::*;

/// A secret from its flag or variable, else from its `*_FILE` (trimmed);
/// `name` is how an error names it.
fn secret(
    flag: &Option<String>,
    file: &Option<PathBuf>,
    name: &str,
) -> Result<Option<String>, String> {
    match (flag, file) {
        (Some(v), _) => Ok(Some(v.trim().to_string())),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map(|v| Some(v.trim().to_string()))
            .map_err(|e| format!("{name}: reading {}: {e}", p.display())),
        (None, None) => Ok(None),
    }
}

/// The log line format (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, colour only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON).
    Json,
}

/// The store engine (`--store`, `[store] engine`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    /// Embedded, in the data directory: one replica.
    #[default]
    Sled,
    /// An etcd cluster that several replicas share.
    Etcd,
}

/// The etcd engine's settings.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// Where and how to connect (endpoints, TLS, user, request deadline).
    pub options: crate::store::etcd::EtcdOptions,
    /// Key prefix of this store (`/hotfixd/`).
    pub prefix: String,
    /// The leader's lease: how long a replica that stopped answering
    /// stays leader.
    pub lease_ttl: Duration,
    /// Where other replicas reach this one (None: from the listen address
    /// once bound).
    pub advertise_url: Option<String>,
}

pub const DEFAULT_ETCD_PREFIX: &str = "/hotfixd/";
pub const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough that a lease renewed every quarter of it outlasts a 10 s
/// GitHub or Argo CD call (see `server`); a failover takes at most this.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// TLS as the daemon runs it: the PEM files' contents.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Some: client certificates signed by this CA authenticate by SAN.
    pub client_ca_pem: Option<Vec<u8>>,
}

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file the settings came from (None: --dev without one); SIGHUP
    /// re-reads its roster.
    pub config_path: Option<PathBuf>,
    pub listen: SocketAddr,
    /// The operator HTTP listener (the status page, /metrics, /healthz,
    /// /readyz); None: off.
    pub http_listen: Option<SocketAddr>,
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
    /// None: the audit trail stays in the store only.
    pub siem: Option<crate::integrations::siem::SiemSettings>,
    /// None: no change events are sent.
    pub pagerduty: Option<crate::integrations::pagerduty::PagerDutySettings>,
    /// None: people authenticate with the roster's tokens only (no SSO).
    pub oidc: Option<crate::oidc::OidcSettings>,
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
    /// The store engine; with etcd, its settings.
    pub store: StoreEngine,
    pub etcd: Option<EtcdSettings>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Where `--dev` serves the operator HTTP listener unless told.
pub const DEV_HTTP_LISTEN: &str = "127.0.0.1:50080";
pub const DEV_DATA_DIR: &str = "./hotfixd-dev-data";
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
pub const DEFAULT_OVERDUE_CHECK: Duration = Duration::from_secs(60);

impl Settings {
    /// What the start-up line says of the integrations: one line per
    /// integration that is on (where, for which repositories), and a
    /// warning for each that is on without the credential it needs.
    pub fn integrations(&self) -> (Vec<String>, Vec<String>) {
        let (mut on, mut warn) = (Vec::new(), Vec::new());
        if let Some(g) = &self.github {
            let manual = &g.lane.manual_repositories;
            let repos = if manual.is_empty() {
                "every repository".to_string()
            } else {
                format!(
                    "every repository but {} (recorded by hand)",
                    manual.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            on.push(format!("github at {} for {repos}", g.url));
            if let Some(app) = &g.app {
                on.push(format!("github signs in as the GitHub App {}", app.id));
            } else if g.token.is_none() {
                warn.push(
                    "github is on but has no token (--github-token-file, \
                     HOTFIXD_GITHUB_TOKEN_FILE): GitHub refuses its PRs, merges and reviews"
                        .to_string(),
                );
            }
        }
        if let Some(a) = &self.argocd {
            on.push(format!("argocd at {}", a.url));
            if a.token.is_none() {
                warn.push(
                    "argocd is on but has no token (--argocd-token-file, \
                     HOTFIXD_ARGOCD_TOKEN_FILE): Argo CD refuses its syncs"
                        .to_string(),
                );
            }
        }
        if let Some(p) = &self.prometheus {
            on.push(format!("prometheus at {}", p.url));
        }
        if let Some(s) = &self.siem {
            on.push(format!("audit sink ({:?}) at {}", s.format, s.url));
        }
        if let Some(o) = &self.oidc {
            on.push(format!(
                "single sign-on with {} (client {})",
                o.issuer, o.audience
            ));
        }
        if let Some(p) = &self.pagerduty {
            if p.routing_key.is_some() {
                on.push(format!("pagerduty change events at {}", p.url));
            } else {
                warn.push(
                    "pagerduty is configured but has no routing key \
                     (HOTFIXD_PAGERDUTY_ROUTING_KEY_FILE): no change event is sent"
                        .to_string(),
                );
            }
        }
        if let Some(s) = &self.slack {
            let hooks: Vec<&str> = [
                s.status_webhook.as_ref().map(|_| "status"),
                s.audit_webhook.as_ref().map(|_| "audit"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if hooks.is_empty() {
                warn.push(
                    "slack is configured but has no webhook (HOTFIXD_SLACK_STATUS_WEBHOOK_FILE, \
                     HOTFIXD_SLACK_AUDIT_WEBHOOK_FILE): nothing is posted"
                        .to_string(),
                );
            } else {
                on.push(format!("slack ({} channel)", hooks.join(" and ")));
            }
        }
        (on, warn)
    }

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
            out.extend(g.app.as_ref().map(|a| a.private_key.as_str()));
            out.extend(g.webhook_secret.as_deref());
        }
        if let Some(s) = &self.siem {
            out.extend(s.token.as_deref());
        }
        if let Some(p) = &self.pagerduty {
            out.extend(p.routing_key.as_deref());
        }
        if let Some(e) = &self.etcd {
            out.extend(e.options.user.as_ref().map(|(_, p)| p.as_str()));
        }
        out
    }

    /// The longest an outside call may take (the GitHub and Argo CD
    /// timeouts), if either is on.
    pub fn longest_outside_call(&self) -> Option<Duration> {
        [
            self.github.as_ref().map(|g| g.timeout),
            self.argocd.as_ref().map(|a| a.timeout),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The audit signing key's text (a secret too), for [`crate::redact`].
    pub fn audit_key_text(&self) -> Option<String> {
        self.audit_key.as_ref().map(|k| k.0.encode())
    }

    /// What `--dev` runs with when no file is given: the demo roster, the
    /// runbook's policy, no integrations. Tests and benches start from it.
    pub fn dev(listen: SocketAddr, data_dir: PathBuf) -> Settings {
        Settings {
            config_path: None,
            listen,
            http_listen: None,
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
            siem: None,
            pagerduty: None,
            oidc: None,
            prometheus: None,
            verify: VerifySettings::default(),
            argocd: None,
            sync: SyncSettings::default(),
            github: None,
            tls: None,
            limits: LimitSettings::default(),
            store: StoreEngine::Sled,
            etcd: None,
        }
    }
}

/// The roster in the configuration file at `path`, as a reload reads it
/// (SIGHUP): the same parsing and checks as at start-up.
pub fn roster_from_file(path: &Path) -> Result<Vec<PrincipalEntry>, String> {
    let file = read_file(path)?;
    if file.principals.is_empty() {
        return Err(
            "principals: the roster is empty; add [[principals]] (see `hotfixd token new`)".into(),
        );
    }
    crate::auth::Roster::new(&file.principals)?;
    Ok(file.principals)
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
        let http_listen = self.http_listen.or(file.http_listen).or_else(|| {
            self.dev
                .then(|| DEV_HTTP_LISTEN.parse().expect("default address parses"))
        });
        if let Some(http) = http_listen
            && self.dev
            && !http.ip().is_loopback()
        {
            return Err(format!(
                "--dev serves only on loopback; --http-listen {http} is not a loopback address"
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
        let store = self.store.or(file.store.engine).unwrap_or_default();
        let etcd = match store {
            StoreEngine::Sled => None,
            StoreEngine::Etcd => Some(self.etcd(&file.store)?),
        };
        let data_dir = match (&self.data_dir, &file.data_dir) {
            (Some(d), _) | (None, Some(d)) => d.clone(),
            (None, None) if self.dev => PathBuf::from(DEV_DATA_DIR),
            // The etcd engine keeps nothing on local disk.
            (None, None) if store == StoreEngine::Etcd => PathBuf::new(),
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
        let slack = file.slack.to_settings(status_webhook, audit_webhook)?;
        let prometheus_token = secret(
            &self.prometheus_token,
            &self.prometheus_token_file,
            "prometheus token",
        )?;
        let (prometheus, verify) = match &file.prometheus {
            None => (None, VerifySettings::default()),
            Some(p) => {
                let (prometheus, verify) = p.to_settings(prometheus_token)?;
                (Some(prometheus), verify)
            }
        };
        let argocd_token = secret(&self.argocd_token, &self.argocd_token_file, "argocd token")?;
        let (argocd, sync) = match &file.argocd {
            None => (None, SyncSettings::default()),
            Some(a) => {
                let (argocd, sync) = a.to_settings(argocd_token)?;
                (Some(argocd), sync)
            }
        };
        let github_token = secret(&self.github_token, &self.github_token_file, "github token")?;
        let webhook_secret = secret(
            &self.github_webhook_secret,
            &self.github_webhook_secret_file,
            "github webhook secret",
        )?
        .filter(|s| !s.is_empty());
        let app_key = secret(
            &self.github_app_private_key,
            &self.github_app_private_key_file,
            "github app private key",
        )?
        .filter(|s| !s.is_empty());
        let github = file
            .github
            .as_ref()
            .map(|g| g.to_settings(github_token, app_key, webhook_secret))
            .transpose()?;
        let routing_key = secret(
            &self.pagerduty_routing_key,
            &self.pagerduty_routing_key_file,
            "pagerduty routing key",
        )?;
        let pagerduty = file
            .pagerduty
            .as_ref()
            .map(|c| c.to_settings(routing_key))
            .transpose()?;
        let siem_token = secret(&self.siem_token, &self.siem_token_file, "siem token")?;
        let siem = file
            .siem
            .as_ref()
            .map(|c| c.to_settings(siem_token))
            .transpose()?;
        let audit_key = secret(&self.audit_key, &self.audit_key_file, "audit signing key")?
            .map(|k| {
                hotfix_api::audit::SigningKey::parse(&k)
                    .map(|k| AuditKey(std::sync::Arc::new(k)))
                    .map_err(|e| format!("audit signing key: {e}"))
            })
            .transpose()?;
        Ok(Settings {
            config_path: self.config.clone(),
            github,
            argocd,
            sync,
            prometheus,
            verify,
            listen,
            http_listen,
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
            siem,
            pagerduty,
            oidc: file.oidc.as_ref().map(|o| o.to_settings()).transpose()?,
            tls,
            limits: file.limits.to_settings()?,
            store,
            etcd,
        })
    }

    /// The etcd engine's settings: flags override `[store]`; the PEM files
    /// and the password file are read now, so a bad path stops start-up
    /// with its name.
    /// The etcd flags (and `[store]` of --config, if given) alone, for
    /// `hotfixd migrate`.
    pub fn etcd_settings(&self) -> Result<EtcdSettings, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        self.etcd(&file.store)
    }

    fn etcd(&self, file: &StoreConfig) -> Result<EtcdSettings, String> {
        let endpoints = if self.etcd_endpoints.is_empty() {
            file.endpoints.clone()
        } else {
            self.etcd_endpoints.clone()
        };
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(
                "store.endpoints: --store etcd needs etcd's client URLs (flag \
                 --etcd-endpoints, HOTFIXD_ETCD_ENDPOINTS or [store] endpoints), e.g. \
                 http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379"
                    .into(),
            );
        }
        let read = |flag: &Option<PathBuf>, file: &Option<PathBuf>, name: &str| {
            flag.as_ref()
                .or(file.as_ref())
                .map(|p| {
                    std::fs::read(p).map_err(|e| format!("{name}: reading {}: {e}", p.display()))
                })
                .transpose()
        };
        let ca_pem = read(
            &self.etcd_ca_file,
            &file.ca_file,
            "store.ca_file (--etcd-ca-file)",
        )?;
        let cert = read(
            &self.etcd_cert_file,
            &file.cert_file,
            "store.cert_file (--etcd-cert-file)",
        )?;
        let key = read(
            &self.etcd_key_file,
            &file.key_file,
            "store.key_file (--etcd-key-file)",
        )?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(
                    "store.cert_file and store.key_file: give both or neither (--etcd-cert-file, \
                     --etcd-key-file)"
                        .into(),
                );
            }
        };
        let password = secret(
            &self.etcd_password,
            &self.etcd_password_file,
            "etcd password",
        )?;
        let user = match (self.etcd_user.clone().or(file.user.clone()), password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err("etcd password: --etcd-user needs --etcd-password-file (or \
                     HOTFIXD_ETCD_PASSWORD[_FILE])"
                    .into());
            }
            (None, Some(_)) => {
                return Err(
                    "etcd user: an etcd password is given but no --etcd-user (or [store] user)"
                        .into(),
                );
            }
        };
        let prefix = self
            .etcd_prefix
            .clone()
            .or(file.prefix.clone())
            .unwrap_or_else(|| DEFAULT_ETCD_PREFIX.into());
        crate::store::etcd::keyspace::Keyspace::new(&prefix).map_err(|e| e.to_string())?;
        Ok(EtcdSettings {
            options: crate::store::etcd::EtcdOptions {
                endpoints,
                ca_pem,
                identity,
                user,
                timeout: positive(
                    "store.timeout",
                    file.timeout.unwrap_or(DEFAULT_ETCD_TIMEOUT),
                )?,
            },
            prefix,
            advertise_url: match self.advertise_url.clone().or(file.advertise_url.clone()) {
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    return Err(format!(
                        "store.advertise_url: '{u}' must start with http:// or https:// \
                         (--advertise-url)"
                    ));
                }
                other => other,
            },
            lease_ttl: {
                let ttl = file.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
                if ttl < Duration::from_secs(2) {
                    return Err(format!(
                        "store.lease_ttl: {} is too short; etcd leases are whole seconds, at \
                         least 2s",
                        humantime::format_duration(ttl)
                    ));
                }
                ttl
            },
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
    fn the_three_replica_example_parses_and_its_lease_outlasts_its_calls() {
        let text = include_str!("../../../deploy/etcd-replicas/hotfixd.toml");
        let file: FileConfig = toml::from_str(text).expect("the example parses");
        assert_eq!(file.store.engine, Some(StoreEngine::Etcd));
        assert_eq!(file.store.endpoints.len(), 3);
        let longest = [
            file.github.as_ref().and_then(|g| g.timeout),
            file.argocd.as_ref().and_then(|a| a.timeout),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap();
        assert!(file.store.lease_ttl.unwrap() * 3 / 4 > longest);
    }

    const EXAMPLE: &str = include_str!("../../../deploy/hotfixd.example.toml");

    /// The example with its commented-out integration sections turned on:
    /// every line whose `#` is followed at once by a table or a key.
    fn example_all_on() -> String {
        EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest.starts_with(['[', '"'])
                        || rest.starts_with(|c: char| c.is_ascii_alphabetic()) =>
                {
                    format!("{rest}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect()
    }

    /// `example_all_on()` in a file (kept alive by the TempDir).
    fn example_all_on_file() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hotfixd.toml");
        std::fs::write(&path, example_all_on()).unwrap();
        let path = path.to_str().unwrap().to_string();
        (dir, path)
    }

    #[test]
    fn the_example_starts_with_no_integration_on() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/hotfixd.example.toml"
        );
        let settings = Args::parse_from(["hotfixd", "--config", path])
            .settings()
            .unwrap();
        assert_eq!(settings.integrations(), (vec![], vec![]));
        assert!(settings.github.is_none() && settings.argocd.is_none());
        assert!(settings.prometheus.is_none() && settings.slack.is_none());
        assert_ne!(
            example_all_on(),
            EXAMPLE,
            "its sections are there, commented out"
        );
    }

    #[test]
    fn example_config_parses() {
        let all_on = example_all_on();
        let text = all_on.as_str();
        let file: FileConfig = toml::from_str(text).expect("example parses");
        let policy = file.policy.to_policy().expect("example policy is valid");
        assert_eq!(
            file.limits.to_settings().unwrap(),
            LimitSettings::default(),
            "the example lists every limit at its default"
        );
        assert_eq!(file.store.engine, Some(StoreEngine::Sled));
        assert_eq!(file.store.prefix.as_deref(), Some(DEFAULT_ETCD_PREFIX));
        assert_eq!(file.store.timeout, Some(DEFAULT_ETCD_TIMEOUT));
        assert_eq!(
            file.store.lease_ttl,
            Some(DEFAULT_LEASE_TTL),
            "the example's [store] is at its defaults"
        );
        assert_eq!(policy.max_fix_lines, 50);
        assert_eq!(policy.cleanup_within, Duration::from_secs(24 * 3600));
        assert!(!file.principals.is_empty());
        crate::auth::Roster::new(&file.principals).expect("example roster is valid");
        // And through the same path as the daemon, flags and all.
        let (_dir, path) = example_all_on_file();
        let path = path.as_str();
        let settings = Args::parse_from(["hotfixd", "--config", path])
            .settings()
            .unwrap();
        let prom = settings
            .prometheus
            .expect("the example configures Prometheus");
        assert_eq!(prom.url, "http://prometheus.monitoring:9090");
        assert_eq!(settings.http_listen, Some("0.0.0.0:50080".parse().unwrap()));
        assert_eq!(settings.verify.window, Duration::from_secs(180));
        assert!(
            settings
                .verify
                .query_for("bookstore-x-us-east", "bookstore/x")
                .contains(r#"service="x""#)
        );
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
    fn a_github_app_is_one_way_to_sign_in_with_its_key_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("h.toml");
        let key = dir.path().join("app.pem");
        std::fs::write(
            &key,
            "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let run = |file: &str, flags: &[&str]| {
            std::fs::write(
                &config,
                format!("[github]\nurl = \"https://api.github.com\"\n{file}"),
            )
            .unwrap();
            let mut argv = vec!["hotfixd", "--dev", "--config", config.to_str().unwrap()];
            argv.extend_from_slice(flags);
            Args::parse_from(argv).settings()
        };
        let key_flag = ["--github-app-private-key-file", key.to_str().unwrap()];
        let s = run("app_id = 123456\n", &key_flag).unwrap();
        let gh = s.github.as_ref().unwrap();
        let app = gh.app.as_ref().expect("signs in as the App");
        assert_eq!(app.id, 123456);
        assert!(
            app.private_key
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
        assert!(gh.token.is_none());
        assert!(
            !format!("{gh:?}").contains("MII"),
            "the key is never in Debug output"
        );
        assert!(
            s.secrets().iter().any(|x| x.contains("MII")),
            "redacted in logs"
        );
        let (on, warn) = s.integrations();
        assert!(on.iter().any(|l| l.contains("GitHub App 123456")), "{on:?}");
        assert!(warn.is_empty(), "{warn:?}");

        let e = run("app_id = 123456\n", &[]).unwrap_err();
        assert!(
            e.contains("no private key") && e.contains("HOTFIXD_GITHUB_APP_PRIVATE_KEY_FILE"),
            "{e}"
        );
        let e = run("", &key_flag).unwrap_err();
        assert!(e.contains("github.app_id is not set"), "{e}");
        let mut both = key_flag.to_vec();
        both.extend(["--github-token", "ghp_x"]);
        let e = run("app_id = 123456\n", &both).unwrap_err();
        assert!(e.contains("signs in one way"), "{e}");
        assert!(!e.contains("ghp_x"), "{e}");
    }

    #[test]
    fn an_oidc_section_maps_groups_to_roles_and_names_a_bad_field() {
        let s = settings_of(
            "[oidc]\nissuer = \"https://login.example/\"\nclient_id = \"hotfixctl\"\n\
             [oidc.roles]\n\"platform-admins\" = [\"platform-admin\", \"eng-manager\"]\n",
            0o600,
        )
        .unwrap();
        let o = s.oidc.as_ref().expect("SSO on");
        assert_eq!(o.issuer, "https://login.example", "as tokens' iss says it");
        assert_eq!(o.audience, "hotfixctl");
        assert_eq!(o.username_claim, "preferred_username");
        assert_eq!(o.groups_claim, "groups");
        assert_eq!(
            o.roles["platform-admins"],
            [Role::PlatformAdmin, Role::EngManager]
                .into_iter()
                .collect()
        );
        assert!(
            s.integrations()
                .0
                .iter()
                .any(|l| l.contains("single sign-on with https://login.example")),
            "{:?}",
            s.integrations()
        );
        for (text, field) in [
            (
                "[oidc]\nissuer = \"login.example\"\nclient_id = \"c\"\n",
                "oidc.issuer",
            ),
            (
                "[oidc]\nissuer = \"https://l.example\"\nclient_id = \" \"\n",
                "oidc.client_id",
            ),
            (
                "[oidc]\nissuer = \"https://l.example\"\nclient_id = \"c\"\njwks_refresh = \"0s\"\n",
                "oidc.jwks_refresh",
            ),
            (
                "[oidc]\nissuer = \"https://l.example\"\nclient_id = \"c\"\n[oidc.roles]\ng = [\"root\"]\n",
                "root",
            ),
        ] {
            let e = settings_of(text, 0o600).unwrap_err();
            assert!(e.contains(field), "{field}: {e}");
        }
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
        let args = Args::parse_from(["hotfixd", "--dev", "--http-listen", "0.0.0.0:50080"]);
        let e = args.settings().unwrap_err();
        assert!(
            e.contains("--http-listen 0.0.0.0:50080 is not a loopback"),
            "{e}"
        );
    }

    #[test]
    fn the_start_up_line_names_each_integration_and_a_missing_token() {
        let dev = Args::parse_from(["hotfixd", "--dev"]).settings().unwrap();
        assert_eq!(dev.integrations(), (vec![], vec![]), "--dev: none on");
        let (_dir, path) = example_all_on_file();
        let path = path.as_str();
        let example = Args::parse_from(["hotfixd", "--config", path])
            .settings()
            .unwrap();
        let (on, warn) = example.integrations();
        assert!(
            on.iter()
                .any(|l| l == "github at https://api.github.com for every repository"),
            "{on:?}"
        );
        assert!(on.iter().any(|l| l.starts_with("prometheus at ")), "{on:?}");
        assert!(
            warn.iter()
                .any(|w| w.starts_with("github is on but has no token")),
            "{warn:?}"
        );
        let with_token =
            Args::parse_from(["hotfixd", "--config", path, "--github-token", "ghp_example"])
                .settings()
                .unwrap();
        let (_, warn) = with_token.integrations();
        assert!(!warn.iter().any(|w| w.starts_with("github")), "{warn:?}");
        // [pagerduty] without its routing key: said, and nothing is sent.
        assert!(
            warn.iter()
                .any(|w| w.starts_with("pagerduty is configured but has no routing key")),
            "{warn:?}"
        );
        let with_key = Args::parse_from([
            "hotfixd",
            "--config",
            path,
            "--pagerduty-routing-key",
            "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12",
        ])
        .settings()
        .unwrap();
        let (on, warn) = with_key.integrations();
        assert!(
            on.iter()
                .any(|l| l.starts_with("pagerduty change events at ")),
            "{on:?}"
        );
        assert!(!warn.iter().any(|w| w.starts_with("pagerduty")), "{warn:?}");
        assert!(
            with_key
                .secrets()
                .contains(&"R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12")
        );
    }

    #[test]
    fn the_operator_listener_is_off_unless_asked_and_on_with_dev() {
        let dev = Args::parse_from(["hotfixd", "--dev"]).settings().unwrap();
        assert_eq!(dev.http_listen, Some(DEV_HTTP_LISTEN.parse().unwrap()));
        let asked = Args::parse_from(["hotfixd", "--dev", "--http-listen", "127.0.0.1:0"])
            .settings()
            .unwrap();
        assert_eq!(asked.http_listen, Some("127.0.0.1:0".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let example = EXAMPLE;
        let without: String = example
            .lines()
            .filter(|l| !l.starts_with("http_listen"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, without).unwrap();
        let plain = Args::parse_from(["hotfixd", "--config", path.to_str().unwrap()])
            .settings()
            .unwrap();
        assert_eq!(plain.http_listen, None, "off unless set");
    }
}
