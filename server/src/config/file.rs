//! The TOML file as written (`deny_unknown_fields`: a misspelt key is an
//! error), and each section's own checks into its settings.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
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
    #[serde(default)]
    pub siem: Option<SiemConfig>,
    #[serde(default)]
    pub pagerduty: Option<PagerDutyConfig>,
    pub oidc: Option<OidcConfig>,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub store: StoreConfig,
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

/// `[siem]`: where the audit trail is streamed. The token is a secret and
/// comes from `HOTFIXD_SIEM_TOKEN` or `HOTFIXD_SIEM_TOKEN_FILE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemConfig {
    /// Where the records are POSTed (Splunk: the collector's
    /// `/services/collector/event` URL).
    pub url: String,
    /// `json-lines` (default) or `splunk-hec`.
    pub format: Option<crate::integrations::siem::SiemFormat>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// At most this many records per request (default 100).
    pub batch: Option<usize>,
    /// The first wait after a failure, doubled up to a minute (default 1s).
    #[serde(default, with = "humantime_serde")]
    pub backoff: Option<Duration>,
}

impl SiemConfig {
    pub(super) fn to_settings(
        &self,
        token: Option<String>,
    ) -> Result<crate::integrations::siem::SiemSettings, String> {
        http_url("siem.url", &self.url)?;
        let batch = self.batch.unwrap_or(100);
        if batch == 0 || batch > 10_000 {
            return Err("siem.batch: must be between 1 and 10000".into());
        }
        Ok(crate::integrations::siem::SiemSettings {
            url: self.url.clone(),
            format: self
                .format
                .unwrap_or(crate::integrations::siem::SiemFormat::JsonLines),
            token,
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            batch,
            backoff: self.backoff.unwrap_or(Duration::from_secs(1)),
        })
    }
}

/// `[pagerduty]`: change events for hotfixes merged and reverted. The
/// routing key is a secret: `HOTFIXD_PAGERDUTY_ROUTING_KEY` or `_FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Default: PagerDuty's own change events endpoint.
    pub url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl PagerDutyConfig {
    pub(super) fn to_settings(
        &self,
        routing_key: Option<String>,
    ) -> Result<crate::integrations::pagerduty::PagerDutySettings, String> {
        let url = self
            .url
            .clone()
            .unwrap_or_else(|| crate::integrations::pagerduty::CHANGE_EVENTS.to_string());
        http_url("pagerduty.url", &url)?;
        Ok(crate::integrations::pagerduty::PagerDutySettings {
            url,
            routing_key: routing_key.filter(|k| !k.is_empty()),
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
        })
    }
}

/// `[oidc]`: single sign-on for people (see `oidc.rs`). Nothing here is a
/// secret: `hotfixctl login` is a public client (the device grant).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The IdP's issuer URL, exactly as its tokens' `iss` says.
    pub issuer: String,
    /// The client id `hotfixctl login` uses; tokens must be for it (`aud`).
    pub client_id: String,
    /// The claim that is the handle (default `preferred_username`).
    pub username_claim: Option<String>,
    /// The claim listing groups (default `groups`).
    pub groups_claim: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub jwks_refresh: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Group → the roles its members hold.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<Role>>,
}

impl OidcConfig {
    pub(super) fn to_settings(&self) -> Result<crate::oidc::OidcSettings, String> {
        http_url("oidc.issuer", &self.issuer)?;
        if self.client_id.trim().is_empty() {
            return Err("oidc.client_id: the client id hotfixctl login signs in with".into());
        }
        let jwks_refresh = self.jwks_refresh.unwrap_or(Duration::from_secs(300));
        if jwks_refresh.is_zero() {
            return Err("oidc.jwks_refresh: must be longer than 0s".into());
        }
        Ok(crate::oidc::OidcSettings {
            issuer: self.issuer.trim_end_matches('/').to_string(),
            audience: self.client_id.clone(),
            username_claim: self
                .username_claim
                .clone()
                .unwrap_or_else(|| "preferred_username".into()),
            groups_claim: self.groups_claim.clone().unwrap_or_else(|| "groups".into()),
            roles: self
                .roles
                .iter()
                .map(|(g, r)| (g.clone(), r.iter().copied().collect()))
                .collect(),
            jwks_refresh,
            reread_after: crate::oidc::REREAD_AFTER,
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
        })
    }
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
    /// PromQL template; `{service}` is the repository's name, `{app}` the
    /// hotfix's Argo CD app.
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

/// `[store]`: which engine, and etcd's settings (its password comes from
/// --etcd-password-file or the environment, never from this file).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub engine: Option<StoreEngine>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub prefix: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub user: Option<String>,
    pub advertise_url: Option<String>,
    /// The deadline of one etcd request.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The leader's lease.
    #[serde(default, with = "humantime_serde")]
    pub lease_ttl: Option<Duration>,
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

/// `[github]`: where step 5's merge is performed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// API base URL (GitHub Enterprise: https://HOST/api/v3).
    pub url: String,
    /// GraphQL endpoint; default derived from `url`.
    pub graphql_url: Option<String>,
    /// Sign in as this GitHub App (its private key from
    /// `HOTFIXD_GITHUB_APP_PRIVATE_KEY[_FILE]`) instead of with a token.
    pub app_id: Option<u64>,
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
    /// How often while webhooks flow (each delivery reads at once; this
    /// only catches a missed one).
    #[serde(default, with = "humantime_serde")]
    pub checks_poll_with_webhooks: Option<Duration>,
    /// Keep the `hotfixd/gate` commit status on hotfix PRs (default true).
    pub gate: Option<bool>,
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

impl LimitsConfig {
    pub(super) fn to_settings(&self) -> Result<LimitSettings, String> {
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
pub(super) fn refuse_writable_by_others(path: &Path) -> Result<(), String> {
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
pub(super) fn positive(field: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err(format!("{field}: must be longer than 0s (e.g. \"5s\")"));
    }
    Ok(d)
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, String> {
    refuse_writable_by_others(path)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `field` must be an http(s) URL.
fn http_url(field: &str, url: &str) -> Result<(), String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    Err(format!("{field}: must be an http(s) URL"))
}

impl SlackConfig {
    /// Slack's settings, if either webhook is set.
    pub(super) fn to_settings(
        &self,
        status_webhook: Option<String>,
        audit_webhook: Option<String>,
    ) -> Result<Option<SlackSettings>, String> {
        for (name, url) in [("status", &status_webhook), ("audit", &audit_webhook)] {
            if let Some(u) = url
                && http_url(name, u).is_err()
            {
                return Err(format!("the Slack {name} webhook must be an http(s) URL"));
            }
        }
        Ok(
            (status_webhook.is_some() || audit_webhook.is_some()).then(|| SlackSettings {
                status_webhook,
                audit_webhook,
                timeout: self.timeout.unwrap_or(Duration::from_secs(5)),
                attempts: self.attempts.unwrap_or(4).max(1),
                backoff: self.backoff.unwrap_or(Duration::from_millis(500)),
            }),
        )
    }
}

impl PrometheusConfig {
    /// Where to measure step 6, and how.
    pub(super) fn to_settings(
        &self,
        bearer_token: Option<String>,
    ) -> Result<(PrometheusSettings, VerifySettings), String> {
        http_url("prometheus.url", &self.url)?;
        let mut verify = VerifySettings::default();
        if let Some(q) = &self.query {
            if !q.contains("{app}") && !q.contains("{service}") {
                return Err(
                    "prometheus.query: the template must contain {service} (the repository's \
                     name) or {app} (the Argo CD app): one query for every hotfix would \
                     measure the wrong service"
                        .into(),
                );
            }
            verify.query = q.clone();
        }
        verify.queries = self.queries.clone();
        verify.interval = self.interval.unwrap_or(verify.interval);
        verify.consecutive = self.consecutive.unwrap_or(verify.consecutive).max(1);
        verify.window = self.window.unwrap_or(verify.window);
        let prometheus = PrometheusSettings {
            url: self.url.clone(),
            bearer_token,
            timeout: self.timeout.unwrap_or(Duration::from_secs(5)),
        };
        Ok((prometheus, verify))
    }
}

impl ArgoCdConfig {
    /// Where step 5's sync is performed, and how it is waited for.
    pub(super) fn to_settings(
        &self,
        token: Option<String>,
    ) -> Result<(ArgoCdSettings, SyncSettings), String> {
        http_url("argocd.url", &self.url)?;
        let mut sync = SyncSettings::default();
        sync.poll = self.poll.unwrap_or(sync.poll);
        sync.timeout = self.sync_timeout.unwrap_or(sync.timeout);
        let argocd = ArgoCdSettings {
            url: self.url.clone(),
            token,
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
        };
        Ok((argocd, sync))
    }
}

impl GitHubConfig {
    /// Where steps 2-7 are taken on GitHub, and the team roles.
    pub(super) fn to_settings(
        &self,
        token: Option<String>,
        app_key: Option<String>,
        webhook_secret: Option<String>,
    ) -> Result<GitHubSettings, String> {
        http_url("github.url", &self.url)?;
        let app = match (self.app_id, app_key) {
            (Some(_), _) if token.is_some() => {
                return Err(
                    "github.app_id is set and so is a GitHub token (--github-token, \
                     HOTFIXD_GITHUB_TOKEN[_FILE]): hotfixd signs in one way; remove one"
                        .into(),
                );
            }
            (Some(0), _) => return Err("github.app_id: 0 is not a GitHub App id".into()),
            (Some(id), Some(private_key)) => {
                Some(crate::integrations::github::GitHubApp { id, private_key })
            }
            (Some(_), None) => {
                return Err("github.app_id is set but there is no private key: \
                     --github-app-private-key-file or HOTFIXD_GITHUB_APP_PRIVATE_KEY_FILE \
                     (the PEM GitHub gave when the key was generated)"
                    .into());
            }
            (None, Some(_)) => {
                return Err(
                    "a GitHub App private key is given but github.app_id is not set: \
                     set it to the App's id (its settings page, \"App ID\")"
                        .into(),
                );
            }
            (None, None) => None,
        };
        if let Some(u) = &self.graphql_url
            && (http_url("github.graphql_url", u).is_err() || !u.ends_with("/graphql"))
        {
            return Err("github.graphql_url: must be an http(s) URL ending in /graphql".into());
        }
        for r in self
            .manual_repositories
            .iter()
            .chain(self.base_branches.keys())
        {
            if crate::domain::validate::check_repository("github", r).is_err() {
                return Err(format!("github: '{r}' is not an owner/name repository"));
            }
        }
        let mut teams = BTreeMap::new();
        for (role, team) in &self.teams {
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
        Ok(GitHubSettings {
            url: self.url.clone(),
            graphql_url: self.graphql_url.clone(),
            token,
            app,
            webhook_secret,
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            lane: ForgeSettings {
                base_branch: self.base_branch.clone().unwrap_or(defaults.base_branch),
                base_branches: self.base_branches.clone(),
                manual_repositories: self.manual_repositories.iter().cloned().collect(),
                checks_poll: self.checks_poll.unwrap_or(defaults.checks_poll),
                checks_poll_with_webhooks: self
                    .checks_poll_with_webhooks
                    .unwrap_or(defaults.checks_poll_with_webhooks),
                gate: self.gate.unwrap_or(defaults.gate),
                checks_timeout: self.checks_timeout.unwrap_or(defaults.checks_timeout),
            },
            teams,
            teams_refresh: self.teams_refresh.unwrap_or(Duration::from_secs(60)),
        })
    }
}
