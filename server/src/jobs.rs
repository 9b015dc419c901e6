//! Steps that hotfixd performs itself in the background (a sync, a
//! measured verification): one at a time per hotfix and kind, under the
//! daemon's task tracker, with progress recorded as events.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{EventDraft, Refusal, Step};
use crate::error::Result;
use crate::lane::Lane;

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

    /// Records `started` and runs `job` in the background, unless a job of
    /// this step already runs for the incident.
    pub async fn spawn<F>(
        &self,
        incident_id: &str,
        step: Step,
        started: EventDraft,
        intent: Option<(Vec<u8>, Vec<u8>)>,
        job: F,
    ) -> Result<()>
    where
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
        if let Err(e) = self.lane.note(incident_id, started, intent).await {
            self.running.lock().expect("jobs lock").remove(&key);
            return Err(e);
        }
        let running = self.running.clone();
        self.tasks.spawn(async move {
            job.await;
            running.lock().expect("jobs lock").remove(&key);
        });
        Ok(())
    }

    /// Records a progress or outcome event; a failure to record is logged.
    pub async fn note(&self, incident_id: &str, kind: &str, summary: String) {
        let draft = EventDraft {
            kind: kind.to_string(),
            summary,
        };
        if let Err(e) = self.lane.note(incident_id, draft, None).await {
            tracing::error!(error = %e, incident = incident_id, "recording a job event failed");
        }
    }
}
