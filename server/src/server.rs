//! Wiring: store, roster, lane and the gRPC services on one listener.
//!
//! `serve` runs until `shutdown` is cancelled, then: health goes
//! NOT_SERVING, watchers get a final heartbeat with the sequence to resume
//! from, in-flight requests finish, and the store is flushed.

use std::sync::Arc;
use std::time::Duration;

use hotfix_api::events_server::event_service_server::EventServiceServer;
use hotfix_api::pb::admin_service_server::AdminServiceServer;
use hotfix_api::pb::audit_service_server::AuditServiceServer;
use hotfix_api::pb::lane_service_server::LaneServiceServer;
use hotfix_api::pb::policy_service_server::PolicyServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::app::Lane;
use crate::auth::Roster;
use crate::clock::Clock;
use crate::config::Settings;
use crate::config::StoreEngine;
use crate::grpc::admin::AdminApi;
use crate::grpc::audit::AuditApi;
use crate::grpc::{EventsApi, LaneApi, PolicyApi};
use crate::store::{Engine, Store};
use crate::term::{Role, Term};

/// Largest request the daemon decodes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("opening the store at {path}: {source}")]
    Store {
        path: String,
        source: crate::error::Error,
    },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("flushing the store at shutdown: {0}")]
    Flush(crate::error::Error),
}

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the daemon on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let store = open_store(&settings).await?;
    let served = serve_store(listener, settings, store.clone(), clock, shutdown).await;
    release(store).await;
    served
}

/// Opens the engine the settings name: sled in the data directory, or the
/// store under the prefix on etcd.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Engine>, ServeError> {
    match (&settings.store, &settings.etcd) {
        (StoreEngine::Etcd, Some(etcd)) => {
            let opened = async {
                let conn = crate::store::etcd::connect(&etcd.options).await?;
                crate::store::etcd::EtcdStore::open(conn, &etcd.prefix).await
            };
            let store = opened.await.map_err(|source| ServeError::Store {
                path: format!(
                    "{} on etcd {}",
                    etcd.prefix,
                    etcd.options.endpoints.join(",")
                ),
                source,
            })?;
            Ok(Arc::new(store))
        }
        _ => {
            let options = crate::store::OpenOptions {
                accept_rollback: settings.accept_rollback,
                ..Default::default()
            };
            let store =
                Store::open_with_options(&settings.data_dir, options).map_err(|source| {
                    ServeError::Store {
                        path: settings.data_dir.display().to_string(),
                        source,
                    }
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// Waits (a few seconds at most) until the last handle on the store is
/// gone, so that the data directory is unlocked when `serve` returns: a
/// task that read the store for a request (an audit export, a watcher)
/// may still be dropping its handle on another thread.
async fn release(store: Arc<dyn Engine>) {
    for _ in 0..500 {
        if Arc::strong_count(&store) == 1 {
            drop(store);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tracing::warn!("the store is still in use 5 s after shutdown");
}

/// [`serve`] on a store already open (tests open one with a faulty flush).
pub async fn serve_store(
    listener: TcpListener,
    settings: Settings,
    store: Arc<dyn Engine>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    for secret in settings.secrets() {
        crate::redact::register(secret);
    }
    if let Some(k) = settings.audit_key_text() {
        crate::redact::register(&k);
        // Its base64 part alone, too.
        crate::redact::register(k.splitn(5, '+').nth(4).unwrap_or_default());
    }
    // Whatever opening wrote (a change a crash cut short, an accepted
    // rollback) is durable, and the watermark current, before anything is
    // served.
    store.flush().await.map_err(|source| ServeError::Store {
        path: settings.data_dir.display().to_string(),
        source,
    })?;
    let roster = Arc::new(Roster::new(&settings.principals).map_err(ServeError::Config)?);
    let team_roles = settings
        .github
        .as_ref()
        .map(|g| g.teams.clone())
        .unwrap_or_default();
    let roles = Arc::new(crate::roles::Roles::with_teams(
        roster.directory().clone(),
        team_roles,
    ));
    // An outside call starts only while the leader's lease outlasts it.
    let outside = settings.longest_outside_call();
    let act_within = outside.unwrap_or(crate::app::lane::DEFAULT_ACT_WITHIN);
    if let (StoreEngine::Etcd, Some(etcd)) = (&settings.store, &settings.etcd) {
        // Renewed every quarter of its TTL, a lease has at least 3/4 of it
        // left: that must outlast the longest outside call.
        if outside.is_some() && etcd.lease_ttl * 3 / 4 <= act_within {
            return Err(ServeError::Config(format!(
                "store.lease_ttl: {} is too short for outside calls that may take {} \
                 ([github]/[argocd] timeout): the leader acts only while its lease outlasts \
                 the call, so make lease_ttl at least {}",
                humantime::format_duration(etcd.lease_ttl),
                humantime::format_duration(act_within),
                humantime::format_duration(Duration::from_secs((act_within * 4 / 3).as_secs() + 1)),
            )));
        }
    }
    let lane = Arc::new(
        Lane::new(store.clone(), settings.policy.clone(), roles.clone(), clock)
            .acting_within(act_within),
    );

    // Background readers of the event log; they stop before the store closes.
    let background = CancellationToken::new();
    let tasks = TaskTracker::new();
    let chat: Option<Arc<dyn crate::integrations::Chat>> = match settings.slack.clone() {
        Some(slack) => Some(Arc::new(
            crate::integrations::slack::SlackWebhooks::new(slack)
                .map_err(ServeError::Config)?
                .measured(lane.metrics().calls.clone()),
        )),
        None => None,
    };
    let jobs = Arc::new(crate::app::jobs::Jobs::new(
        lane.clone(),
        tasks.clone(),
        background.clone(),
    ));
    let mut performers = crate::app::steps::Performers::default();
    if let Some(prom) = settings.prometheus.clone() {
        let metrics = crate::integrations::prometheus::PrometheusClient::new(prom)
            .map_err(ServeError::Config)?
            .measured(lane.metrics().calls.clone());
        performers.verify = Some(Arc::new(crate::app::verify::Verifier::new(
            jobs.clone(),
            Arc::new(metrics),
            settings.verify.clone(),
        )));
    }
    if let Some(argo) = settings.argocd.clone() {
        let argo = crate::integrations::argocd::ArgoCd::new(argo)
            .map_err(ServeError::Config)?
            .measured(lane.metrics().calls.clone());
        performers.sync = Some(Arc::new(crate::app::sync::Syncer::new(
            jobs.clone(),
            Arc::new(argo),
            settings.sync.clone(),
        )));
    }
    if let Some(gh) = settings.github.clone() {
        let (lane_settings, refresh) = (gh.lane.clone(), gh.teams_refresh);
        let gh: Arc<dyn crate::integrations::CodeHost> = Arc::new(
            crate::integrations::github::GitHub::new(gh)
                .map_err(ServeError::Config)?
                .measured(lane.metrics().calls.clone()),
        );
        performers.github = Some(crate::app::steps::GitHubSteps {
            merger: Arc::new(crate::app::merge::Merger::new(lane.clone(), gh.clone())),
            forge: Arc::new(crate::app::github::Forge::new(
                jobs.clone(),
                gh.clone(),
                lane_settings,
                performers.sync.clone(),
            )),
        });
        if !roles.teams().is_empty() {
            // Team roles are known before the first request is served.
            for f in roles.refresh(gh.as_ref()).await {
                tracing::error!(membership = %f, "team membership could not be read; the role is not held until it can");
            }
            tasks.spawn(crate::roles::run_refresher(
                roles.clone(),
                gh.clone(),
                refresh,
                background.clone(),
            ));
        }
    }
    let (on, missing) = settings.integrations();
    if on.is_empty() {
        tracing::info!("integrations: none on; every step is recorded as the caller reports it");
    } else {
        tracing::info!("integrations on: {}", on.join("; "));
    }
    for w in missing {
        tracing::warn!("{w}");
    }
    let steps = Arc::new(crate::app::Steps::new(lane.clone(), performers));
    let leading = Leading {
        lane: lane.clone(),
        steps: steps.clone(),
        chat,
        settings: settings.clone(),
        tasks: tasks.clone(),
    };
    let resigning = CancellationToken::new();
    let mut resign = None;
    let mut cluster: Arc<dyn crate::term::Cluster> = Arc::new(crate::term::Sole);
    let replica = match (&settings.store, &settings.etcd) {
        (StoreEngine::Etcd, Some(etcd)) => {
            let url = advertised(&settings, etcd, &listener)?;
            let conn = crate::store::etcd::connect(&etcd.options)
                .await
                .map_err(|e| ServeError::Config(format!("etcd: {e}")))?;
            let keys = crate::store::etcd::keyspace::Keyspace::new(&etcd.prefix)
                .map_err(|e| ServeError::Config(e.to_string()))?;
            let (tx, rx) = tokio::sync::watch::channel(Role::Candidate);
            let (conn_view, url_view) = (conn.clone(), url.clone());
            let elector =
                crate::store::etcd::election::Elector::new(conn, &keys, etcd.lease_ttl, url);
            // The term outlives the background work: what a job records
            // as it stops is still fenced by a live lease; only then is
            // the lease given up.
            resign = Some((
                resigning.clone(),
                tokio::spawn(elector.run(tx, resigning.clone())),
            ));
            cluster = Arc::new(crate::store::etcd::election::EtcdCluster {
                conn: conn_view,
                keys,
                url: url_view,
            });
            let (led, mut settled) = tokio::sync::watch::channel(false);
            tasks.spawn(leading.clone().run(rx.clone(), led, background.clone()));
            // Serve once this replica knows where changes go: another
            // replica leads, or this one does and has settled what earlier
            // terms left (as a sled replica does before serving). A lease
            // TTL at most: a fresh cluster elects in milliseconds, a leader
            // that died lets go within its TTL.
            let mut known = rx.clone();
            let ready = async {
                tokio::select! {
                    _ = known.wait_for(|r| matches!(r, Role::Follower(_))) => {}
                    _ = settled.wait_for(|s| *s) => {}
                }
            };
            if tokio::time::timeout(etcd.lease_ttl + Duration::from_secs(1), ready)
                .await
                .is_err()
            {
                tracing::warn!(
                    "no leader elected within the lease TTL; serving reads, changes answer \
                     UNAVAILABLE until one is"
                );
            }
            rx
        }
        _ => {
            // One replica, always the leader: merges, PRs, reverts and
            // syncs sent before a restart are settled, and pending checks
            // followed again, before anything is served.
            let term = Term::sole();
            leading.start(&term, background.child_token()).await;
            tokio::sync::watch::channel(Role::Leader(term)).1
        }
    };
    let role = replica.clone();
    let forward = crate::grpc::forward::Forward::new(replica, lane.clone());
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let readiness = crate::ops::Readiness::default();
    let health = Arc::new(Health {
        reporter,
        readiness: readiness.clone(),
        applying: tokio::sync::Mutex::new(()),
    });
    health.apply().await;
    // A store that can no longer make changes durable refuses every change
    // until restarted: a supervisor watching health restarts it.
    tasks.spawn({
        let (health, failure, background) = (health.clone(), store.failure(), background.clone());
        async move {
            tokio::select! {
                why = failure => {
                    tracing::error!(error = %why, "the store refuses changes until hotfixd is restarted; health NOT_SERVING");
                    health.readiness.failed(format!("the store refuses changes until hotfixd is restarted ({why})"));
                    health.apply().await;
                }
                _ = background.cancelled() => {}
            }
        }
    });
    if let (StoreEngine::Etcd, Some(etcd)) = (&settings.store, &settings.etcd) {
        tasks.spawn(probe_etcd(
            store.clone(),
            health.clone(),
            etcd.options.timeout,
            background.clone(),
        ));
    }
    // The operator listener is bound now (a port taken is a start-up
    // error); it serves once the gRPC services it reads exist, below.
    let http = match settings.http_listen {
        None => None,
        Some(addr) => {
            let http = TcpListener::bind(addr).await.map_err(|e| {
                ServeError::Config(format!("--http-listen {addr}: cannot listen there: {e}"))
            })?;
            let bound = http
                .local_addr()
                .map_err(|e| ServeError::Config(format!("--http-listen {addr}: {e}")))?;
            Some((http, bound))
        }
    };

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hotfix_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hotfix_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // SSO: the IdP's keys are read before the first request is served
    // (a failure is a warning: static tokens and certificates still
    // work), then kept fresh.
    let oidc = match &settings.oidc {
        None => None,
        Some(o) => {
            let oidc = crate::oidc::Oidc::new(o.clone()).map_err(ServeError::Config)?;
            match oidc.read_keys().await {
                Ok(n) => tracing::info!(issuer = %o.issuer, keys = n, "SSO: the IdP's keys read"),
                Err(e) => {
                    tracing::warn!(error = %e, "SSO: the IdP's keys could not be read; SSO tokens are refused until they are")
                }
            }
            tasks.spawn(oidc.clone().run_refresher(background.clone()));
            Some(oidc)
        }
    };
    let guard = crate::grpc::guard::Guard::new(
        roster.clone(),
        roles.clone(),
        oidc,
        settings.limits,
        lane.metrics().clone(),
    );
    tasks.spawn(reload_on_hangup(
        settings.clone(),
        guard.clone(),
        roles.clone(),
        lane.clone(),
        background.clone(),
    ));
    // Streams end on their own token, cancelled only after health says
    // NOT_SERVING, so a watcher's last message is a closing heartbeat.
    let streams = CancellationToken::new();
    let webhooks = settings
        .github
        .as_ref()
        .and_then(|g| g.webhook_secret.as_deref())
        .map(|secret| Arc::new(crate::ops::webhooks::Intake::new(secret, steps.clone())));
    if webhooks.is_some() && settings.http_listen.is_none() {
        tracing::warn!(
            "a GitHub webhook secret is set but --http-listen is off: no delivery can arrive \
             (they are taken at /webhooks/github on the operator listener)"
        );
    }
    let lane_svc =
        LaneServiceServer::new(LaneApi::new(steps)).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let policy_svc = PolicyServiceServer::new(PolicyApi::new(lane.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let verifier = settings.audit_key.as_ref().map(|k| k.0.verifier());
    let audit_svc = AuditServiceServer::new(AuditApi::new(lane.clone(), verifier))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let admin_svc = AdminServiceServer::new(AdminApi::new(lane.clone(), cluster))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let events_svc = EventServiceServer::new(EventsApi::new(
        lane.clone(),
        settings.heartbeat_interval,
        streams.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES);

    let drained = {
        let health = health.clone();
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            health.readiness.stopping();
            tell_supervisor(Supervisor::Stopping);
            health.apply().await;
            streams.cancel();
            tracing::info!("shutting down: health NOT_SERVING, streams closing");
        }
    };

    // Every gRPC request passes these layers, outermost first: the
    // status page's API calls the same stack in-process (`ops::status`).
    let routes = tonic::service::Routes::new(health_service)
        .add_service(lane_svc)
        .add_service(policy_svc)
        .add_service(events_svc)
        .add_service(audit_svc)
        .add_service(admin_svc)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let limits = &settings.limits;
    let in_flight = tower::limit::GlobalConcurrencyLimitLayer::new(limits.max_in_flight);
    let stack = tower::ServiceBuilder::new()
        .layer(tower::util::MapResponseLayer::new(
            crate::grpc::client_errors::correct_response,
        ))
        .layer(crate::grpc::guard::GuardLayer(guard))
        .layer(crate::grpc::forward::ForwardLayer(forward))
        .layer(in_flight);

    if let Some((http, bound)) = http {
        let engine = match settings.store {
            StoreEngine::Sled => "sled",
            StoreEngine::Etcd => "etcd",
        };
        let ops = Arc::new(crate::ops::Ops {
            metrics: crate::ops::metrics::Exposition::new(
                lane.clone(),
                role,
                readiness.clone(),
                engine,
            ),
            readiness: readiness.clone(),
            grpc: crate::ops::status::Grpc::new(stack.service(routes.clone())),
            webhooks,
        });
        tracing::info!(addr = %bound, "operator HTTP (/, /metrics, /healthz, /readyz) serving");
        if settings.dev {
            // Beside main's --dev banner, with the port bound (the one
            // asked for may be 0).
            eprintln!(
                "status page: http://{bound}/ (metrics: /metrics; probes: /healthz, /readyz)"
            );
        }
        tasks.spawn(crate::ops::serve(
            http,
            crate::ops::router(ops),
            background.clone(),
        ));
    }

    let mut builder = Server::builder();
    if let Some(tls) = &settings.tls {
        crate::integrations::install_crypto_provider();
        let mut cfg = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
        );
        if let Some(ca) = &tls.client_ca_pem {
            // Mutual TLS: a certificate signed by this CA authenticates by
            // its SAN; without one, a bearer token still does.
            cfg = cfg
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(true);
        }
        builder = builder.tls_config(cfg).map_err(|e| {
            ServeError::Config(format!(
                "tls: the certificate or key (--tls-cert, --tls-key) could not be used: {}",
                causes(&e)
            ))
        })?;
    }
    // Only now is everything that can fail at start-up done (the TLS
    // identity is parsed by `tls_config`).
    let serving = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr = %serving, "hotfixd serving");
    tell_supervisor(Supervisor::Ready(&format!("serving gRPC on {serving}")));
    let served = builder
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(stack)
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            crate::grpc::incoming::incoming(listener, limits, lane.metrics().clone()),
            drained,
        );
    // In-flight requests get DRAIN_TIMEOUT to finish after the shutdown
    // signal; a client that keeps its connection open does not hold the
    // daemon (and its store) hostage.
    let served = tokio::select! {
        r = served => r,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!("connections still open {}s after shutdown; closing them", DRAIN_TIMEOUT.as_secs());
            Ok(())
        }
    };
    background.cancel();
    tasks.close();
    tasks.wait().await;
    if let Some((token, elector)) = resign {
        token.cancel();
        let _ = elector.await;
    }
    served?;
    store.flush().await.map_err(ServeError::Flush)?;
    tracing::info!("store flushed; bye");
    Ok(())
}

/// What the leader runs, each term: it settles intents first, then runs
/// the overdue sweeper, the chat relay, the audit sink, PagerDuty change
/// events, the `hotfixd/gate` keeper and the audit checkpoints until the
/// term ends.
#[derive(Clone)]
struct Leading {
    lane: Arc<Lane>,
    steps: Arc<crate::app::Steps>,
    chat: Option<Arc<dyn crate::integrations::Chat>>,
    settings: Settings,
    tasks: TaskTracker,
}

impl Leading {
    /// Starts `term`'s work, stopping with `stop`.
    async fn start(&self, term: &Arc<Term>, stop: CancellationToken) {
        use crate::term::scope;
        // Settle merges, PRs, reverts and syncs an earlier term sent, and
        // follow pending checks again.
        scope(term.clone(), self.steps.reconcile()).await;
        self.tasks.spawn(scope(
            term.clone(),
            crate::app::relay::run_overdue_sweeper(
                self.lane.clone(),
                self.settings.overdue_check_interval,
                stop.clone(),
            ),
        ));
        if let Some(chat) = &self.chat {
            self.tasks.spawn(scope(
                term.clone(),
                crate::app::relay::run_relay(self.lane.clone(), chat.clone(), stop.clone()),
            ));
        }
        if let Some(siem) = &self.settings.siem {
            match crate::integrations::siem::Siem::new(
                siem.clone(),
                self.lane.metrics().calls.clone(),
            ) {
                Ok(siem) => {
                    self.tasks.spawn(scope(
                        term.clone(),
                        crate::app::relay::run_audit_sink(
                            self.lane.clone(),
                            Arc::new(siem),
                            stop.clone(),
                        ),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "the audit sink cannot start"),
            }
        }
        if let Some(pd) = self
            .settings
            .pagerduty
            .as_ref()
            .filter(|p| p.routing_key.is_some())
        {
            match crate::integrations::pagerduty::PagerDuty::new(
                pd.clone(),
                self.lane.metrics().calls.clone(),
            ) {
                Ok(pd) => {
                    self.tasks.spawn(scope(
                        term.clone(),
                        crate::app::relay::run_change_events(
                            self.lane.clone(),
                            Arc::new(pd),
                            stop.clone(),
                        ),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "PagerDuty change events cannot start"),
            }
        }
        if let Some(gate) = self.steps.gate_keeper() {
            self.tasks
                .spawn(scope(term.clone(), gate.clone().keep_gate(stop.clone())));
            self.tasks
                .spawn(scope(term.clone(), gate.hold_pushed_heads(stop.clone())));
        }
        if let Some(key) = &self.settings.audit_key {
            self.tasks.spawn(scope(
                term.clone(),
                crate::app::checkpoints::run(
                    self.lane.clone(),
                    key.0.clone(),
                    self.settings.checkpoints,
                    stop.clone(),
                ),
            ));
        }
    }

    /// Each term this replica is elected to, until `shutdown`; `led` turns
    /// true once a term's intents are settled.
    async fn run(
        self,
        mut roles: tokio::sync::watch::Receiver<Role>,
        led: tokio::sync::watch::Sender<bool>,
        shutdown: CancellationToken,
    ) {
        loop {
            let term = tokio::select! {
                r = roles.wait_for(|r| matches!(r, Role::Leader(_))) => match r.map(|r| r.clone()) {
                    Ok(Role::Leader(t)) => t,
                    _ => return,
                },
                _ = shutdown.cancelled() => return,
            };
            let stop = shutdown.child_token();
            self.start(&term, stop.clone()).await;
            led.send_replace(true);
            tokio::select! {
                _ = term.ended.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
            stop.cancel();
        }
    }
}

/// The URL other replicas send this one changes at.
fn advertised(
    settings: &Settings,
    etcd: &crate::config::EtcdSettings,
    listener: &TcpListener,
) -> Result<String, ServeError> {
    if let Some(u) = &etcd.advertise_url {
        return Ok(u.clone());
    }
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Config(format!("the listen address: {e}")))?;
    if addr.ip().is_unspecified() {
        return Err(ServeError::Config(format!(
            "store.advertise_url: listening on {addr} (every address), so the URL other \
             replicas reach this one at must be given: --advertise-url https://NAME:{}",
            addr.port()
        )));
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{addr}"))
}

/// An error and its sources, "a: b: c" (tonic's transport error alone says
/// only "transport error").
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// gRPC health, kept to what [`crate::ops::Readiness`] says (which
/// `/readyz` reports): every change of readiness is followed by
/// [`Health::apply`].
struct Health {
    reporter: tonic_health::server::HealthReporter,
    readiness: crate::ops::Readiness,
    /// One application at a time, each reading readiness as it starts:
    /// the last to run sets what readiness says last (a probe that found
    /// etcd back cannot set SERVING over the shutdown's NOT_SERVING).
    applying: tokio::sync::Mutex<()>,
}

impl Health {
    /// Sets the daemon's and each service's status from readiness.
    async fn apply(&self) {
        let _one = self.applying.lock().await;
        let status = match self.readiness.why_not() {
            None => ServingStatus::Serving,
            Some(_) => ServingStatus::NotServing,
        };
        let h = &self.reporter;
        h.set_service_status("", status).await;
        h.set_service_status(service_name::<LaneServiceServer<LaneApi>>(), status)
            .await;
        h.set_service_status(service_name::<PolicyServiceServer<PolicyApi>>(), status)
            .await;
        h.set_service_status(service_name::<EventServiceServer<EventsApi>>(), status)
            .await;
        h.set_service_status(service_name::<AuditServiceServer<AuditApi>>(), status)
            .await;
        h.set_service_status(service_name::<AdminServiceServer<AdminApi>>(), status)
            .await;
    }
}

fn service_name<S: tonic::server::NamedService>() -> &'static str {
    S::NAME
}

/// How often an etcd replica checks that etcd answers it (for readiness).
pub const ETCD_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Until `stop`: every [`ETCD_PROBE_INTERVAL`], a quorum read through
/// `store` (what every change needs) within `within`; while it fails the
/// replica is not ready (`/readyz` 503, health NOT_SERVING), and ready
/// again once one succeeds.
async fn probe_etcd(
    store: Arc<dyn Engine>,
    health: Arc<Health>,
    within: Duration,
    stop: CancellationToken,
) {
    let mut was: Option<String> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ETCD_PROBE_INTERVAL) => {}
        }
        let why = tokio::select! {
            _ = stop.cancelled() => return,
            read = tokio::time::timeout(within, store.catch_up()) => match read {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("etcd does not answer this replica: {e}")),
                Err(_) => Some(format!(
                    "etcd did not answer this replica within store.timeout ({within:?})"
                )),
            },
        };
        if why == was {
            continue;
        }
        match &why {
            Some(w) => tracing::warn!(reason = %w, "not ready: health NOT_SERVING"),
            None => tracing::info!("etcd answers again: ready, health SERVING"),
        }
        health.readiness.unreachable(why.clone());
        health.apply().await;
        was = why;
    }
}

/// Files this process creates are for its own user only (mode 0600,
/// directories 0700): the data directory holds every hotfix, the audit
/// trail and the idempotency records, and sled creates its files with the
/// process's umask. Called by `main` before anything is opened.
pub fn private_files() {
    #[cfg(target_os = "linux")]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them on its arenas, and a huge page is resident whole, so the ~30 KB
/// hyper/h2 allocate for each client connection, most of it never
/// written, counted in full: 10,000 watchers on a connection each held
/// 438 MiB with huge pages and ~245 MiB without, transitions unchanged
/// within noise (BENCHMARKS.md). Called by `main` at start-up (and by the
/// in-process transitions bench). A tuning: a kernel that refuses it is
/// only logged.
/// Re-reads the roster from the configuration file on SIGHUP (`systemctl
/// reload`): a file that does not parse or check is refused and the
/// roster in use stays; an accepted one replaces it for every request from
/// then on, and the change (handles added, removed, roles changed; never
/// a token) is an audit record.
async fn reload_on_hangup(
    settings: Settings,
    guard: Arc<crate::grpc::guard::Guard>,
    roles: Arc<crate::roles::Roles>,
    lane: Arc<Lane>,
    stop: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the roster is re-read only at a restart");
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        tell_supervisor(Supervisor::Reloading);
        let outcome = match (&settings.config_path, settings.dev) {
            (_, true) => Err("--dev runs the demo roster; there is nothing to re-read".to_string()),
            (None, false) => Err("no --config file to re-read".to_string()),
            (Some(path), false) => crate::config::roster_from_file(path)
                .and_then(|entries| Roster::new(&entries))
                .map_err(|e| format!("{}: {e}", path.display())),
        };
        match outcome {
            Ok(roster) => {
                let change = roster_change(&roles.directory(), roster.directory());
                roles.set_roster(roster.directory().clone());
                guard.set_roster(Arc::new(roster));
                tracing::info!(%change, "roster reloaded");
                if let Err(e) = lane.record("reload-roster", &change).await {
                    tracing::error!(error = %e, "recording the roster reload in the audit trail");
                }
            }
            Err(why) => {
                tracing::error!("reloading the roster: {why}; the roster in use stays");
                let detail = format!("refused, the roster in use stays: {why}");
                if let Err(e) = lane.record("reload-roster", &detail).await {
                    tracing::error!(error = %e, "recording the refused reload in the audit trail");
                }
            }
        }
        tell_supervisor(Supervisor::Ready("roster re-read"));
    }
}

/// What a reload changed, as the audit record says it.
fn roster_change(old: &crate::domain::Directory, new: &crate::domain::Directory) -> String {
    let roles = |r: &std::collections::BTreeSet<crate::domain::Role>| {
        r.iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    for (handle, now) in new {
        match old.get(handle) {
            None => parts.push(format!("added @{handle} ({})", roles(now))),
            Some(before) if before != now => {
                parts.push(format!("@{handle}: {} -> {}", roles(before), roles(now)))
            }
            Some(_) => {}
        }
    }
    for handle in old.keys().filter(|h| !new.contains_key(*h)) {
        parts.push(format!("removed @{handle}"));
    }
    if parts.is_empty() {
        "roster re-read: no handle or role changed".into()
    } else {
        format!("roster re-read: {}", parts.join("; "))
    }
}

/// What the daemon tells its supervisor (systemd's `Type=notify`; nothing
/// without `$NOTIFY_SOCKET`).
enum Supervisor<'a> {
    /// Serving: the store is open and the listeners bound.
    Ready(&'a str),
    /// Shutting down.
    Stopping,
    /// Re-reading its configuration (READY follows).
    Reloading,
}

fn tell_supervisor(what: Supervisor<'_>) {
    #[cfg(target_os = "linux")]
    {
        use sd_notify::NotifyState;
        let sent = match what {
            Supervisor::Ready(status) => {
                sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
            }
            Supervisor::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
            Supervisor::Reloading => sd_notify::notify(&[
                NotifyState::Reloading,
                NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Reloading),
            ]),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "telling systemd (NOTIFY_SOCKET)");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = what;
}

pub fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!("transparent huge pages stay on: {e}");
    }
}
