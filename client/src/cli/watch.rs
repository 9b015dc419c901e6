//! `hotfixctl watch`: the event log, replayed and then followed, across
//! disconnects and daemon restarts.
//!
//! The first heartbeat of a stream comes once the replay is done (hotfixd
//! sends one as soon as a watcher is caught up), so it is where the output
//! marks "live from here". A stream that ends (the daemon shutting down,
//! the connection lost) is opened again after the last event seen, with a
//! notice on stderr, until it answers: nothing is shown twice and nothing
//! is skipped.

use std::time::Duration;

use super::*;

/// Where the first stream starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Start {
    /// After this sequence number (0: everything).
    After(u64),
    /// After the latest event.
    Now,
}

/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) async fn watch(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    start: Start,
    incident: String,
    once: bool,
) -> Result<(), CliError> {
    // The last event shown, once known; None: from now, not known yet.
    let mut seen = match start {
        Start::After(n) => Some(n),
        Start::Now => None,
    };
    // Caught up once (the boundary is shown once), and streamed once (from
    // then on a lost stream is reconnected, not an error).
    let mut live = false;
    let mut streamed = false;
    let mut backoff = Duration::from_millis(250);
    // Why the last stream ended, while reconnecting (said once).
    let mut lost: Option<String> = None;
    loop {
        let request = pb::WatchRequest {
            from_seq: seen.unwrap_or(0),
            incident_id: incident.clone(),
            from_now: seen.is_none(),
        };
        let mut stream = match client.events.clone().watch(request).await {
            Ok(s) => s.into_inner(),
            // Gone for now (restarting, unreachable): try again.
            Err(e) if streamed && reconnectable(&e) => {
                if lost.is_none() {
                    let why = format!("{}: {}", render::code_name(e.code()), e.message());
                    notice(o, &why, seen);
                    lost = Some(why);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        streamed = true;
        if lost.take().is_some() {
            resumed(o, seen);
        }
        backoff = Duration::from_millis(250);
        let ended = loop {
            let msg = match stream.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) if reconnectable(&e) => {
                    break format!("{}: {}", render::code_name(e.code()), e.message());
                }
                Some(Err(e)) => return Err(e.into()),
                None => break "the stream ended".to_string(),
            };
            match msg.kind {
                Some(pb::watch_response::Kind::Event(e)) => {
                    seen = Some(e.seq);
                    render::event(out, o, &e)?;
                }
                Some(pb::watch_response::Kind::Heartbeat(hb)) => {
                    if seen.is_none() {
                        seen = Some(hb.latest_seq);
                    }
                    render::heartbeat(out, o, &hb, !live)?;
                    if !live {
                        live = true;
                        if once {
                            out.flush()?;
                            return Ok(());
                        }
                    }
                    if hb.closing {
                        break "hotfixd is shutting down".to_string();
                    }
                }
                None => {}
            }
            out.flush()?;
        };
        out.flush()?;
        notice(o, &ended, seen);
        lost = Some(ended);
        tokio::time::sleep(backoff).await;
    }
}

/// A stream that may answer again: the daemon unreachable or restarting.
fn reconnectable(e: &tonic::Status) -> bool {
    matches!(
        e.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// On stderr, so that stdout stays the events (and JSON lines parse).
fn notice(o: Output, why: &str, seen: Option<u64>) {
    let at = seen.unwrap_or(0);
    match o {
        Output::Json | Output::Yaml => {
            let _ = render::machine(
                &mut std::io::stderr(),
                o,
                &serde_json::json!({"type": "reconnecting", "reason": why, "afterSeq": at.to_string()}),
            );
        }
        Output::Table => eprintln!(
            "hotfixctl: {} — reconnecting, to resume after #{at}…",
            render::printable(why)
        ),
    }
}

fn resumed(o: Output, seen: Option<u64>) {
    let at = seen.unwrap_or(0);
    match o {
        Output::Json | Output::Yaml => {
            let _ = render::machine(
                &mut std::io::stderr(),
                o,
                &serde_json::json!({"type": "resumed", "afterSeq": at.to_string()}),
            );
        }
        Output::Table => eprintln!("hotfixctl: reconnected; resuming after #{at}"),
    }
}
