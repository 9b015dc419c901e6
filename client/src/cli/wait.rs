//! `--wait`: following an incident's events until the step ends, then the
//! hotfix as it ended.

use super::*;

/// Where [`follow`] stops.
pub(super) enum End<'a> {
    /// At the first event of one of these kinds.
    Kinds(&'a [EventKind]),
    /// At this event (what happened by the time a verdict was read, shown
    /// before it).
    Seq(u64),
}

/// Follows one incident's events after `from_seq` until `end`; returns the
/// last one read (None if the stream ended first). For people, the
/// events whose kind starts with `progress` are shown with the time
/// waited so far; with `-o json` every event is a JSON line (the hotfix as
/// it ended follows, from [`show_final`]).
pub(super) async fn follow(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    incident: &str,
    from_seq: u64,
    progress: &str,
    end: End<'_>,
) -> Result<Option<(EventKind, u64)>, CliError> {
    let mut stream = client
        .events
        .clone()
        .watch(pb::WatchRequest {
            from_seq,
            incident_id: incident.to_string(),
            from_now: false,
        })
        .await?
        .into_inner();
    let started = std::time::Instant::now();
    while let Some(msg) = stream.next().await {
        if let Some(pb::watch_response::Kind::Event(e)) = msg?.kind {
            match o {
                Output::Json | Output::Yaml => {
                    render::event(out, o, &e)?;
                    out.flush()?;
                }
                Output::Table if e.kind.starts_with(progress) => {
                    let waited = started.elapsed().as_secs();
                    writeln!(out, "  [{waited:>3}s] {}", e.summary)?;
                    out.flush()?;
                }
                Output::Table => {}
            }
            if let Some(kind) = EventKind::parse(&e.kind)
                && match end {
                    End::Kinds(kinds) => kinds.contains(&kind),
                    End::Seq(seq) => e.seq >= seq,
                }
            {
                return Ok(Some((kind, e.seq)));
            }
        }
    }
    Ok(None)
}

/// `show`'s answer for `incident`: the hotfix (or mitigation), its
/// timeline and next steps.
pub(super) async fn read(
    client: &Client,
    incident: &str,
) -> Result<pb::GetHotfixResponse, tonic::Status> {
    let r = client
        .lane
        .clone()
        .get_hotfix(pb::GetHotfixRequest {
            incident_id: incident.to_string(),
        })
        .await?;
    Ok(r.into_inner())
}

/// The hotfix of `incident` as it stands now.
pub(super) async fn current(client: &Client, incident: &str) -> Result<pb::Hotfix, CliError> {
    Ok(read(client, incident).await?.hotfix.unwrap_or_default())
}

pub(super) async fn show_final(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    incident: &str,
) -> Result<(), CliError> {
    let r = read(client, incident).await?;
    let h = r.hotfix.clone().unwrap_or_default();
    if o.machine() {
        // `show`'s answer: where the hotfix stands after the wait.
        render::message(out, o, &r)?;
    } else {
        render::step(out, &h, &r, &[])?;
    }
    out.flush()?;
    Ok(())
}
