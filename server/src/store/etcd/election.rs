//! Leader election through etcd's election API, on a lease: the one
//! replica that does the background work and every change (followers
//! forward changes to it), each term fenced (see `term`).
//!
//! A replica grants itself a lease of `ttl`, keeps it alive (every quarter
//! of the TTL), and campaigns with its advertised URL as the value. Elected, it
//! publishes [`Role::Leader`] with a [`Term`] whose fence is the election key
//! and its creation revision, renewed with every keep-alive answer. When
//! the lease can no longer be renewed before it ends (etcd unreachable, the
//! process paused), the term ends at the lease's end by this replica's own
//! clock: it stops acting no later than etcd gives its key away. At
//! shutdown it revokes the lease, so the next replica is elected at once.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Connection;
use super::api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    RangeRequest, kv_client::KvClient, lease_client::LeaseClient, range_request,
};
use super::api::v3electionpb::{CampaignRequest, LeaderRequest, election_client::ElectionClient};
use super::engine::unavailable;
use super::keyspace::{Keyspace, range_end};
use crate::error::Result;
use crate::term::{Cluster, ClusterView, Fence, Replica, Role, Term};

pub struct Elector {
    conn: Connection,
    name: Vec<u8>,
    ttl: Duration,
    url: String,
}

impl Elector {
    /// An elector for the store in `keys`, advertising `url`.
    pub fn new(conn: Connection, keys: &Keyspace, ttl: Duration, url: String) -> Elector {
        Elector {
            conn,
            name: keys.election(),
            ttl,
            url,
        }
    }

    /// Campaigns, leads and follows until `shutdown`, publishing the role.
    pub async fn run(self, roles: watch::Sender<Role>, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.term(&roles, &shutdown).await {
                Ok(()) => pause = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    pause = (pause * 2).min(self.ttl);
                }
            }
            roles.send_replace(Role::Candidate);
        }
    }

    /// One lease: campaign on it, lead until it is lost or shutdown.
    async fn term(&self, roles: &watch::Sender<Role>, shutdown: &CancellationToken) -> Result<()> {
        let ttl_secs = self.ttl.as_secs().max(2) as i64;
        let granted_at = Instant::now();
        let grant = LeaseGrantRequest {
            ttl: ttl_secs,
            id: 0,
        };
        let lease = self
            .conn
            .call("a lease grant", grant, |r| {
                let mut c = LeaseClient::new(self.conn.channel.clone());
                async move { c.lease_grant(r).await }
            })
            .await?;
        let lease_id = lease.id;
        let (deadlines, mut renewed) =
            watch::channel(granted_at + Duration::from_secs(lease.ttl as u64));
        let keepalive = CancellationToken::new();
        let alive = tokio::spawn(keep_alive(
            self.conn.clone(),
            lease_id,
            self.ttl,
            deadlines,
            keepalive.clone(),
        ));
        let _stop = keepalive.clone().drop_guard();
        let followed = tokio::spawn(follow_leader(
            self.conn.clone(),
            self.name.clone(),
            self.url.clone(),
            roles.clone(),
            keepalive.clone(),
        ));

        let campaign = CampaignRequest {
            name: self.name.clone(),
            lease: lease_id,
            value: self.url.as_bytes().to_vec(),
        };
        let mut election = ElectionClient::new(self.conn.channel.clone());
        let won = tokio::select! {
            r = election.campaign(self.conn.request(campaign)) => r,
            _ = shutdown.cancelled() => {
                self.revoke(lease_id).await;
                return Ok(());
            }
            _ = lease_end(&mut renewed) => {
                return Err(unavailable("the campaign", "the lease ended before it was won"));
            }
        };
        let leader = won
            .map_err(|s| unavailable("the campaign", s.message()))?
            .into_inner()
            .leader
            .ok_or_else(|| unavailable("the campaign", "etcd answered no leader key"))?;
        followed.abort();
        let term = Term::leased(
            Fence {
                key: leader.key,
                create_rev: leader.rev,
            },
            *renewed.borrow(),
        );
        tracing::info!(url = %self.url, lease = lease_id, "elected leader");
        roles.send_replace(Role::Leader(term.clone()));
        let ended = loop {
            let deadline = *renewed.borrow_and_update();
            tokio::select! {
                changed = renewed.changed() => {
                    if changed.is_err() {
                        break "the lease's keep-alive stopped";
                    }
                    term.renewed(*renewed.borrow());
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    break "the lease ended before it could be renewed";
                }
                _ = shutdown.cancelled() => break "shutdown",
            }
        };
        term.ended.cancel();
        roles.send_replace(Role::Candidate);
        alive.abort();
        if ended == "shutdown" {
            // The next replica is elected now, not a lease TTL from now.
            self.revoke(lease_id).await;
            tracing::info!("resigned as leader");
        } else {
            tracing::warn!(why = ended, "no longer the leader");
        }
        Ok(())
    }

    async fn revoke(&self, id: i64) {
        let revoked = self
            .conn
            .call("a lease revoke", LeaseRevokeRequest { id }, |r| {
                let mut c = LeaseClient::new(self.conn.channel.clone());
                async move { c.lease_revoke(r).await }
            })
            .await;
        if let Err(e) = revoked {
            tracing::warn!(error = %e, "revoking the leader lease; it ends at its TTL");
        }
    }
}

/// Resolves once the lease's deadline passes without a renewal.
async fn lease_end(renewed: &mut watch::Receiver<Instant>) {
    loop {
        let deadline = *renewed.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => return,
            c = renewed.changed() => if c.is_err() {
                return;
            },
        }
    }
}

/// Renews lease `id` every quarter of `ttl`, publishing each new deadline
/// (when the renewal was sent + the TTL etcd answered: never later than
/// etcd's own). Reconnects until stopped.
async fn keep_alive(
    conn: Connection,
    id: i64,
    ttl: Duration,
    deadlines: watch::Sender<Instant>,
    stop: CancellationToken,
) {
    let every = ttl / 4;
    while !stop.is_cancelled() {
        let (tx, rx) = mpsc::channel(1);
        // etcd answers the stream's headers only once it has a request:
        // the first is queued before the stream is opened.
        let mut sent = Instant::now();
        tx.send(LeaseKeepAliveRequest { id })
            .await
            .expect("the channel is open");
        let requests = conn.request(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut client = LeaseClient::new(conn.channel.clone());
        let opened = tokio::time::timeout(every, client.lease_keep_alive(requests)).await;
        let Ok(Ok(answers)) = opened else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut answers = answers.into_inner();
        let mut first = true;
        loop {
            if !first {
                sent = Instant::now();
                if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    break;
                }
            }
            first = false;
            match tokio::time::timeout(every, answers.next()).await {
                Ok(Some(Ok(a))) if a.ttl > 0 => {
                    deadlines.send_replace(sent + Duration::from_secs(a.ttl as u64));
                }
                Ok(Some(Ok(_))) => {
                    // TTL 0: etcd no longer has the lease.
                    tracing::warn!(lease = id, "etcd says the leader lease is gone");
                    return;
                }
                _ => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// While campaigning, publishes who leads now (for forwarding).
async fn follow_leader(
    conn: Connection,
    name: Vec<u8>,
    own: String,
    roles: watch::Sender<Role>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let req = LeaderRequest { name: name.clone() };
        let leader = conn
            .call("a leader read", req, |r| {
                let mut c = ElectionClient::new(conn.channel.clone());
                async move { c.leader(r).await }
            })
            .await;
        if let Ok(l) = leader
            && let Some(kv) = l.kv
        {
            let url = String::from_utf8_lossy(&kv.value).into_owned();
            if url != own {
                roles.send_if_modified(|r| match r {
                    Role::Follower(u) if *u == url => false,
                    Role::Leader(_) => false,
                    _ => {
                        *r = Role::Follower(url.clone());
                        true
                    }
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// The replicas campaigning now, the leader first, with their leases'
/// time left.
pub async fn replicas(conn: &Connection, keys: &Keyspace) -> Result<Vec<Replica>> {
    let name = [keys.election(), b"/".to_vec()].concat();
    let req = RangeRequest {
        key: name.clone(),
        range_end: range_end(&name),
        // By creation revision: the leader is the oldest candidate.
        sort_order: range_request::SortOrder::Ascend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    };
    let r = conn
        .call("a read of the election", req, |r| {
            let mut c = KvClient::new(conn.channel.clone());
            async move { c.range(r).await }
        })
        .await?;
    let mut out = Vec::new();
    for (i, kv) in r.kvs.iter().enumerate() {
        let ttl = conn
            .call(
                "a lease's time to live",
                LeaseTimeToLiveRequest {
                    id: kv.lease,
                    keys: false,
                },
                |r| {
                    let mut c = LeaseClient::new(conn.channel.clone());
                    async move { c.lease_time_to_live(r).await }
                },
            )
            .await
            .ok()
            .filter(|t| t.ttl >= 0)
            .map(|t| Duration::from_secs(t.ttl as u64));
        out.push(Replica {
            url: String::from_utf8_lossy(&kv.value).into_owned(),
            leader: i == 0,
            lease_left: ttl,
        });
    }
    Ok(out)
}

/// The cluster as etcd's election shows it, answered by the replica at
/// `url`.
pub struct EtcdCluster {
    pub conn: Connection,
    pub keys: Keyspace,
    pub url: String,
}

#[async_trait::async_trait]
impl Cluster for EtcdCluster {
    async fn view(&self) -> Result<ClusterView> {
        Ok(ClusterView {
            engine: "etcd",
            answered_by: self.url.clone(),
            replicas: replicas(&self.conn, &self.keys).await?,
        })
    }
}
