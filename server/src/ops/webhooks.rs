//! GitHub webhook intake (`POST /webhooks/github` on the operator
//! listener), on when GitHub is on and a webhook secret is configured.
//!
//! A delivery is a hint, never a fact: one that passes is answered at once
//! and makes every check follower read GitHub again through the API
//! (`Steps::nudge_github`); its payload is read only for the account of an
//! `installation` event (whose App token is then minted again) and the
//! repository of a `push` or `pull_request` (whose hotfix PRs' heads are
//! read, `Steps::github_pushed`). While
//! deliveries flow, polling slows to `github.checks_poll_with_webhooks` and
//! only catches a missed one.
//!
//! Refused, counted in `hotfixd_webhook_deliveries_total{event,outcome}`,
//! and changing nothing:
//! - a body over [`MAX_DELIVERY`] (`too_large`, 413);
//! - no `X-GitHub-Event` or `X-GitHub-Delivery` (`malformed`, 400);
//! - no `X-Hub-Signature-256` (`unsigned`, 401), or one that is not the
//!   HMAC-SHA256 of the body under the secret, compared in constant time
//!   (`bad_signature`, 401);
//! - a delivery id seen among the last [`REMEMBERED`] (`duplicate`,
//!   answered 200 so that GitHub does not mark it failed, and ignored).
//!   Ids are remembered in memory: a replay after a restart costs one
//!   more read of the facts, never a change.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::Steps;

/// The largest delivery taken. GitHub caps payloads at 25 MB; the events
/// hotfixd reads are a few kilobytes.
pub const MAX_DELIVERY: usize = 1 << 20;
/// Delivery ids remembered to refuse a replay.
pub const REMEMBERED: usize = 10_000;
/// The events that can change what hotfixd follows: they trigger a read
/// (the first six of the events counted).
const READ: &[&str] = {
    let (read, _) = crate::metrics::WEBHOOK_EVENTS.split_at(6);
    read
};

/// The intake's state: the secret, who to tell, the ids seen.
pub struct Intake {
    secret: Vec<u8>,
    steps: Arc<Steps>,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Remembers `id`; false if it was already.
    fn first(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

impl Intake {
    pub fn new(secret: &str, steps: Arc<Steps>) -> Intake {
        Intake {
            secret: secret.as_bytes().to_vec(),
            steps,
            seen: Mutex::default(),
        }
    }

    /// Whether `signature` (`sha256=<hex>`) signs `body`.
    fn signed(&self, signature: &str, body: &[u8]) -> bool {
        let Some(hex) = signature.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(expected) = hex::decode(hex) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any size");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

/// The intake's route, to be merged into the operator router.
pub fn router(intake: Arc<Intake>) -> Router {
    Router::new()
        .route("/webhooks/github", post(deliver))
        .layer(DefaultBodyLimit::max(MAX_DELIVERY))
        .with_state(intake)
}

/// The event's name as a label: one hotfixd reads, `ping`, or `other`.
fn event_label(event: &str) -> &str {
    if crate::metrics::WEBHOOK_EVENTS.contains(&event) {
        event
    } else {
        "other"
    }
}

async fn deliver(
    State(intake): State<Arc<Intake>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = intake.steps.lane().metrics();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let event = header("x-github-event").unwrap_or_default();
    let label = event_label(event);
    let refuse = |outcome: &'static str, status: StatusCode, why: &str| {
        metrics.delivery(label, outcome);
        tracing::warn!(event = label, outcome, "webhook delivery refused: {why}");
        (status, format!("{why}\n")).into_response()
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("a delivery is at most {MAX_DELIVERY} bytes"),
            );
        }
        Err(e) => return refuse("malformed", StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let Some(signature) = header("x-hub-signature-256") else {
        return refuse(
            "unsigned",
            StatusCode::UNAUTHORIZED,
            "no X-Hub-Signature-256: set the webhook's secret on GitHub",
        );
    };
    if !intake.signed(signature, &body) {
        return refuse(
            "bad_signature",
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 does not sign this body with the configured secret",
        );
    }
    let Some(delivery) = header("x-github-delivery").filter(|d| !d.is_empty() && d.len() <= 100)
    else {
        return refuse(
            "malformed",
            StatusCode::BAD_REQUEST,
            "no X-GitHub-Delivery id",
        );
    };
    if event.is_empty() {
        return refuse("malformed", StatusCode::BAD_REQUEST, "no X-GitHub-Event");
    }
    if !intake.seen.lock().expect("seen lock").first(delivery) {
        metrics.delivery(label, "duplicate");
        return (StatusCode::OK, "duplicate delivery: ignored\n").into_response();
    }
    if !READ.contains(&event) {
        metrics.delivery(label, "ignored");
        return (StatusCode::ACCEPTED, "not an event hotfixd reads\n").into_response();
    }
    if event == "installation" {
        // Installed again, removed, suspended, new permissions: the token
        // held for the account is dropped (a signed hint; the next call
        // finds the installation through the API).
        if let Some(account) = installation_account(&body) {
            tracing::info!(account = %account, "the GitHub App's installation changed");
            intake.steps.github_installation_changed(&account);
        }
    }
    if event == "push" || event == "pull_request" {
        // A new head may be on a hotfix PR: its gate goes pending at once
        // (the PR's head is read through the API).
        intake.steps.github_pushed(repository(&body));
    }
    intake.steps.nudge_github();
    metrics.delivery(label, "accepted");
    (
        StatusCode::ACCEPTED,
        "accepted: hotfixd reads GitHub again\n",
    )
        .into_response()
}

/// `repository.full_name` of a payload, to read only that repository's
/// hotfix PRs (None: read them all).
fn repository(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["repository"]["full_name"].as_str().map(str::to_string)
}

/// `installation.account.login` of an `installation` event's payload.
fn installation_account(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["installation"]["account"]["login"]
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_id_is_refused_and_the_oldest_are_forgotten() {
        let mut seen = Seen::default();
        assert!(seen.first("a"));
        assert!(!seen.first("a"));
        for i in 0..REMEMBERED {
            assert!(seen.first(&i.to_string()));
        }
        assert!(seen.first("a"), "forgotten after REMEMBERED others");
        assert!(seen.ids.len() <= REMEMBERED);
    }
}
