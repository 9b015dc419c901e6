//! The acting term: what a replica acts under while it is the leader, so
//! that two replicas never both act (merge, open a PR, sync).
//!
//! etcd's own documentation warns that a lock cannot by itself protect an
//! outside resource: a leader paused past its lease still believes it
//! leads. So the leader's work runs inside [`scope`] with its [`Term`]:
//!
//! - every change committed within it carries the term's [`Fence`] (the
//!   etcd election key and the revision it was created at) as a compare:
//!   once another replica won the election, etcd refuses the change;
//! - before every outside call, [`may_act`] checks that the lease has more
//!   life left than the call may take.
//!
//! Outside a scope (sled: one replica; a follower's reads) nothing is
//! fenced. The scope is task-local: work spawned for the term (a job)
//! re-enters it with [`current`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The fencing token: the election key the leader holds, and the revision
/// etcd created it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: Vec<u8>,
    pub create_rev: i64,
}

/// What this replica is now.
#[derive(Debug, Clone)]
pub enum Role {
    /// Electing (at start, or after a term ended).
    Candidate,
    /// The leader, in this term (the sled engine's one replica always).
    Leader(Arc<Term>),
    /// Another replica leads, at this URL.
    Follower(String),
}

/// One term of leadership.
#[derive(Debug)]
pub struct Term {
    /// None: nothing to compare (the sled engine's one replica).
    pub fence: Option<Fence>,
    /// When the lease ends unless renewed (None: no lease).
    deadline: Mutex<Option<Instant>>,
    /// Cancelled when the term ends (the lease lost, or shutdown).
    pub ended: CancellationToken,
}

impl Term {
    /// A term without a lease or a fence: the one replica of a sled store.
    pub fn sole() -> Arc<Term> {
        Arc::new(Term {
            fence: None,
            deadline: Mutex::new(None),
            ended: CancellationToken::new(),
        })
    }

    /// A term on an etcd lease that lasts until `deadline` unless renewed.
    pub fn leased(fence: Fence, deadline: Instant) -> Arc<Term> {
        Arc::new(Term {
            fence: Some(fence),
            deadline: Mutex::new(Some(deadline)),
            ended: CancellationToken::new(),
        })
    }

    /// The lease was renewed until `deadline`.
    pub fn renewed(&self, deadline: Instant) {
        let mut d = self.deadline.lock().expect("deadline lock");
        if d.is_some_and(|old| old < deadline) {
            *d = Some(deadline);
        }
    }

    /// How long the lease lasts unless renewed (None: no lease).
    pub fn left(&self) -> Option<Duration> {
        self.deadline
            .lock()
            .expect("deadline lock")
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether an outside call of at most `timeout` may start now.
    pub fn may_act(&self, timeout: Duration) -> Result<()> {
        if self.ended.is_cancelled() {
            return Err(Error::Fenced(
                "this replica's term as leader ended; it does not act, the new leader does".into(),
            ));
        }
        match self.left() {
            Some(left) if left <= timeout => Err(Error::Fenced(format!(
                "this replica's leader lease has {left:?} left, less than the {timeout:?} the \
                 call may take; it does not act (the next leader will)"
            ))),
            _ => Ok(()),
        }
    }
}

/// One replica in the election, as `hotfixctl cluster` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub url: String,
    pub leader: bool,
    /// The time its lease has left (as etcd counts it), if etcd said.
    pub lease_left: Option<Duration>,
}

/// The store engine and the replicas sharing it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    /// "sled" or "etcd".
    pub engine: &'static str,
    /// The replica that answers ("" on sled).
    pub answered_by: String,
    /// The leader first (none on sled).
    pub replicas: Vec<Replica>,
}

/// Where the cluster's view comes from.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    async fn view(&self) -> Result<ClusterView>;
}

/// The one replica of a sled store.
pub struct Sole;

#[async_trait::async_trait]
impl Cluster for Sole {
    async fn view(&self) -> Result<ClusterView> {
        Ok(ClusterView {
            engine: "sled",
            answered_by: String::new(),
            replicas: Vec::new(),
        })
    }
}

tokio::task_local! {
    static TERM: Arc<Term>;
}

/// Runs `f` as work of `term`.
pub async fn scope<F: Future>(term: Arc<Term>, f: F) -> F::Output {
    TERM.scope(term, f).await
}

/// The term the current task acts in, if any.
pub fn current() -> Option<Arc<Term>> {
    TERM.try_with(|t| t.clone()).ok()
}

/// The fence the current task's changes carry, if any.
pub fn fence() -> Option<Fence> {
    TERM.try_with(|t| t.fence.clone()).ok().flatten()
}

/// Whether the current task may start an outside call of at most
/// `timeout` (always, outside a term).
pub fn may_act(timeout: Duration) -> Result<()> {
    match current() {
        Some(t) => t.may_act(timeout),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_term_near_its_lease_end_does_not_act() {
        let fence = Fence {
            key: b"k".to_vec(),
            create_rev: 7,
        };
        let term = Term::leased(fence.clone(), Instant::now() + Duration::from_secs(2));
        scope(term.clone(), async {
            assert_eq!(super::fence(), Some(fence));
            assert!(may_act(Duration::from_millis(500)).is_ok());
            // A call that may outlast the lease is not started.
            assert!(matches!(
                may_act(Duration::from_secs(3)),
                Err(Error::Fenced(_))
            ));
            term.ended.cancel();
            assert!(may_act(Duration::from_millis(1)).is_err());
        })
        .await;
        // Outside a term: nothing fenced, nothing refused.
        assert_eq!(super::fence(), None);
        assert!(may_act(Duration::from_secs(3600)).is_ok());
    }
}
