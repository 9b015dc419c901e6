//! Steps that hotfixd performs itself in the background (a sync, a
//! measured verification): one at a time per hotfix and kind, under the
//! daemon's task tracker, with progress recorded as events.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::lane::Lane;
use crate::domain::{EventDraft, EventKind, Refusal, Step};
use crate::error::Result;

pub struct Jobs {
    pub lane: Arc<Lane>,
    running: Arc<Mutex<HashSet<(String, Step)>>>,
    tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

impl Jobs {
    pub fn new(lane: Arc<Lane>, tasks: TaskTracker, shutdown: CancellationToken) -> Jobs {
        Jobs {
            lane,
            running: Arc::default(),
            tasks,
            shutdown,
        }
    }

    /// Runs `begin` (which records the step's start, and its intent if it
    /// has one) and then `job` in the background, unless a job of this step
    /// already runs for the incident.
    pub async fn spawn<B, F>(&self, incident_id: &str, step: Step, begin: B, job: F) -> Result<()>
    where
        B: Future<Output = Result<()>>,
        F: Future<Output = ()> + Send + 'static,
    {
        let key = (incident_id.to_string(), step);
        if !self.running.lock().expect("jobs lock").insert(key.clone()) {
            return Err(Refusal::Refused {
                step,
                reason: format!("a {step} of {incident_id} is already running; watch its events"),
            }
            .into());
        }
        if let Err(e) = begin.await {
            self.running.lock().expect("jobs lock").remove(&key);
            return Err(e);
        }
        let running = self.running.clone();
        // The job acts in the term that started it (see `term`).
        let term = crate::term::current();
        self.tasks.spawn(async move {
            match term {
                Some(t) => crate::term::scope(t, job).await,
                None => job.await,
            }
            running.lock().expect("jobs lock").remove(&key);
        });
        Ok(())
    }

    /// Records a progress or outcome event; a failure to record is logged.
    pub async fn note(&self, incident_id: &str, kind: EventKind, summary: String) {
        if let Err(e) = self
            .lane
            .note(incident_id, EventDraft::new(kind, summary))
            .await
        {
            tracing::error!(error = %e, incident = incident_id, "recording a job event failed");
        }
    }
}
