//! Human tables, and `-o json|yaml` for every answer. The machine formats
//! print the RPC's own response message in the proto3 JSON mapping
//! (`hotfix_api::json`: what `buf curl --emit-defaults` prints for the same
//! call): JSON one message per line, YAML one document per message.
//! Streams (`watch`, the `--wait`s) print one `WatchResponse` per event.

use std::io::{self, Write};

use clap::ValueEnum;
use hotfix_api::{check_result_name, pb, route_name, state_name};
use serde_json::{Value, json};

/// Characters a terminal would act on instead of showing: C0/C1 controls
/// other than line feed and tab, DEL, the bidirectional controls
/// (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F) and the line and
/// paragraph separators. hotfixd refuses them in what it stores; this is
/// the CLI's own guard for whatever it is sent.
fn unprintable(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}')
}

/// `text` with every unprintable character shown as `\u{XXXX}`.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(unprintable) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unprintable(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// A writer for human output: passes text through [`printable`], so that
/// no string from the daemon can move the cursor, clear the screen or
/// reorder a line. Bytes that are not UTF-8 are shown as `\xNN`.
pub struct Printable<'a> {
    out: &'a mut (dyn Write + Send),
    /// The start of a character split across two writes.
    pending: Vec<u8>,
}

impl<'a> Printable<'a> {
    pub fn new(out: &'a mut (dyn Write + Send)) -> Printable<'a> {
        Printable {
            out,
            pending: Vec::new(),
        }
    }
}

impl Write for Printable<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let mut rest: &[u8] = &self.pending;
        let mut shown = String::new();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    shown.push_str(&printable(s));
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (ok, bad) = rest.split_at(e.valid_up_to());
                    shown.push_str(&printable(
                        std::str::from_utf8(ok).expect("valid up to here"),
                    ));
                    match e.error_len() {
                        Some(n) => {
                            for b in &bad[..n] {
                                shown.push_str(&format!("\\x{b:02x}"));
                            }
                            rest = &bad[n..];
                        }
                        // An incomplete character: wait for its end.
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.to_vec();
        self.out.write_all(shown.as_bytes())?;
        self.pending = keep;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let bytes = std::mem::take(&mut self.pending);
            for b in bytes {
                write!(self.out, "\\x{b:02x}")?;
            }
        }
        self.out.flush()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people: a line of what happened and what is next; tables.
    Table,
    /// The API's answer in the proto3 JSON mapping, one message a line.
    Json,
    /// The same as YAML, one document per message.
    Yaml,
}

impl Output {
    /// For scripts (json, yaml), not people.
    pub fn machine(self) -> bool {
        self != Output::Table
    }
}

/// A value in the machine format `o`: JSON on one line, with every
/// character a terminal would act on as a `\uXXXX` escape (the same
/// string to a parser); YAML as one document, such characters shown as
/// tables show them (`\u{XXXX}`).
pub fn machine(out: &mut (dyn Write + Send), o: Output, v: &Value) -> io::Result<()> {
    match o {
        Output::Yaml => {
            let shown = shown_strings(v);
            let yaml = serde_norway::to_string(&shown).map_err(io::Error::other)?;
            write!(out, "---\n{yaml}")
        }
        _ => {
            let mut line = String::new();
            for c in v.to_string().chars() {
                if unprintable(c) {
                    line.push_str(&format!("\\u{:04x}", u32::from(c)));
                } else {
                    line.push(c);
                }
            }
            writeln!(out, "{line}")
        }
    }
}

/// `v` with [`printable`] applied to every string in it.
fn shown_strings(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(printable(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(shown_strings).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (printable(k).into_owned(), shown_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An RPC's answer in the machine format `o`.
pub fn message<M: prost::Message + prost::Name>(
    out: &mut (dyn Write + Send),
    o: Output,
    m: &M,
) -> io::Result<()> {
    machine(out, o, &hotfix_api::json::to_value(m))
}

pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "error",
        InvalidArgument => "invalid argument",
        DeadlineExceeded => "deadline exceeded",
        NotFound => "not found",
        AlreadyExists => "already exists",
        PermissionDenied => "permission denied",
        ResourceExhausted => "rate limited",
        FailedPrecondition => "refused",
        Aborted => "conflict",
        OutOfRange => "out of range",
        Unimplemented => "unimplemented",
        Internal => "internal error",
        Unavailable => "unavailable",
        DataLoss => "data loss",
        Unauthenticated => "unauthenticated",
    }
}

pub fn ts(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub fn ts_json(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .map_or(Value::Null, |d| Value::String(d.to_rfc3339()))
}

fn hotfix_table(out: &mut (dyn Write + Send), h: &pb::Hotfix) -> io::Result<()> {
    let drill = if h.drill { " [DRILL]" } else { "" };
    writeln!(
        out,
        "{}  {}{}  (version {})",
        h.incident_id,
        state_name(h.state),
        drill,
        h.version
    )?;
    writeln!(out, "  symptom:       {}", h.symptom)?;
    writeln!(
        out,
        "  author:        @{}   approver: @{}   cleanup owner: @{}",
        h.author, h.approver, h.cleanup_owner
    )?;
    writeln!(
        out,
        "  repo / app:    {} / {}   merge ETA {} UTC",
        h.repository, h.argocd_app, h.merge_eta
    )?;
    if let Some(f) = &h.fix {
        writeln!(
            out,
            "  fix:           {} {} ({} lines{})",
            f.branch,
            &f.sha[..f.sha.len().min(12)],
            f.changed_lines,
            if f.over_limit {
                ", over limit by override"
            } else {
                ""
            }
        )?;
    }
    if let Some(a) = &h.approval {
        writeln!(
            out,
            "  approval:      @{} on {}",
            a.by,
            &a.sha[..a.sha.len().min(12)]
        )?;
    }
    if let Some(p) = &h.pull_request {
        writeln!(
            out,
            "  PR:            #{} {} [{}]",
            p.number,
            p.title,
            p.labels.join(", ")
        )?;
    }
    for c in &h.checks {
        writeln!(
            out,
            "  check:         {:<22} {}",
            c.name,
            check_result_name(c.result)
        )?;
    }
    if let Some(m) = &h.merge {
        writeln!(
            out,
            "  merged:        by @{} (admin bypass), PR #{}, approver @{}",
            m.by, m.pr, m.approver
        )?;
    }
    if let Some(s) = &h.sync {
        writeln!(
            out,
            "  synced:        {} @ {}{}",
            s.app,
            s.revision,
            if s.skipped_canary {
                " (canary skipped)"
            } else {
                ""
            }
        )?;
    }
    if let Some(v) = &h.verification {
        writeln!(
            out,
            "  verified:      {} (observed {}, threshold {})",
            if v.recovered {
                "recovered"
            } else {
                "NOT recovered"
            },
            v.observed_value,
            v.threshold
        )?;
    }
    if h.revert_pr > 0 {
        writeln!(out, "  reverted:      PR #{}", h.revert_pr)?;
    }
    if !h.abort_reason.is_empty() {
        writeln!(out, "  aborted:       {}", h.abort_reason)?;
    }
    if let Some(b) = &h.breakglass {
        writeln!(
            out,
            "  breakglass:    {} (expires {}), outstanding cleanup: {}",
            b.role,
            ts(&b.expires_at),
            if b.outstanding.is_empty() {
                "none".to_string()
            } else {
                b.outstanding.join(", ")
            }
        )?;
    }
    for o in &h.obligations {
        let line = if o.done {
            done_by(h, &o.kind).unwrap_or_else(|| format!("done {}", ts(&o.done_at)))
        } else if o.overdue {
            format!("OVERDUE since {}, owed by {}", ts(&o.due), o.owner)
        } else {
            format!("due {}, owed by {}", ts(&o.due), o.owner)
        };
        writeln!(out, "  {:<15}{line}", format!("{}:", o.kind))?;
    }
    for f in &h.flags {
        writeln!(out, "  flag:          {f}")?;
    }
    Ok(())
}

/// A done obligation as what was done, by whom and when (not the role
/// that owed it): the cleanup PR, the postmortem's URL, the reviewer.
fn done_by(h: &pb::Hotfix, kind: &str) -> Option<String> {
    match kind {
        "cleanup_pr" => h.cleanup.as_ref().map(|c| {
            let url = if c.url.is_empty() {
                String::new()
            } else {
                format!(" {}", c.url)
            };
            format!(
                "done: PR #{}{url} by @{} at {}",
                c.pr_number,
                c.by,
                ts(&c.at)
            )
        }),
        "postmortem" => h
            .postmortem
            .as_ref()
            .map(|p| format!("done: {} by @{} at {}", p.url, p.by, ts(&p.at))),
        "audit_review" => h
            .audit_review
            .as_ref()
            .map(|a| format!("done by @{} at {}: {}", a.by, ts(&a.at), a.findings)),
        "breakglass_cleanup" => h
            .breakglass
            .as_ref()
            .map(|b| format!("done: {} cleaned", b.cleaned.join(", "))),
        _ => None,
    }
}

/// A step's outcome for people: what happened (the summaries of the
/// events of the version `h` answered with), then what is next and what
/// is owed, from `view` (`show`'s answer, read after the step).
pub fn step(
    out: &mut (dyn Write + Send),
    h: &pb::Hotfix,
    view: &pb::GetHotfixResponse,
    warnings: &[String],
) -> io::Result<()> {
    let drill = if h.drill { " [DRILL]" } else { "" };
    let happened: Vec<&str> = view
        .timeline
        .iter()
        .filter(|t| t.version == h.version)
        .map(|t| t.summary.as_str())
        .collect();
    let happened = if happened.is_empty() {
        format!("(version {})", h.version)
    } else {
        happened.join("; ")
    };
    writeln!(
        out,
        "{}  {}{drill}  {happened}",
        h.incident_id,
        state_label(h.state)
    )?;
    // The lane's next step: the first that may be taken now, else the
    // first and what blocks it (`show` lists every one).
    let next = view
        .next_steps
        .iter()
        .find(|s| s.blocked.is_empty())
        .or(view.next_steps.first());
    match next {
        Some(s) if s.blocked.is_empty() => writeln!(out, "next: {}, by {}", s.step, s.who)?,
        Some(s) => writeln!(
            out,
            "next: {}, by {} (blocked: {})",
            s.step, s.who, s.blocked
        )?,
        None => writeln!(out, "next: nothing: the hotfix is final")?,
    }
    let owed: Vec<String> = h
        .obligations
        .iter()
        .filter(|o| !o.done)
        .map(|o| {
            let when = if o.overdue { "OVERDUE since" } else { "due" };
            format!("{} by {} ({when} {})", o.kind, o.owner, ts(&o.due))
        })
        .collect();
    if !owed.is_empty() {
        writeln!(out, "owed: {}", owed.join("; "))?;
    }
    for w in warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// The hotfix's card, for people (`show` without the timeline).
pub fn hotfix(out: &mut (dyn Write + Send), h: &pb::Hotfix, warnings: &[String]) -> io::Result<()> {
    hotfix_table(out, h)?;
    for w in warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

pub fn mitigation(
    out: &mut (dyn Write + Send),
    o: Output,
    r: &pb::RecordMitigationResponse,
) -> io::Result<()> {
    if o.machine() {
        return message(out, o, r);
    }
    let m = r.mitigation.clone().unwrap_or_default();
    writeln!(
        out,
        "{}  MITIGATED_WITHOUT_HOTFIX  by {} (recorded by @{} at {})",
        m.incident_id,
        route_name(m.route),
        m.by,
        ts(&m.at)
    )
}

pub fn show(out: &mut (dyn Write + Send), o: Output, r: &pb::GetHotfixResponse) -> io::Result<()> {
    if o.machine() {
        return message(out, o, r);
    }
    if let (None, Some(m)) = (&r.hotfix, &r.mitigation) {
        return show_mitigated(out, m, &r.timeline);
    }
    let h = r.hotfix.clone().unwrap_or_default();
    {
        {
            hotfix_table(out, &h)?;
            writeln!(out, "\nnext steps:")?;
            if r.next_steps.is_empty() {
                writeln!(out, "  none: the hotfix is final")?;
            }
            for s in &r.next_steps {
                writeln!(out, "  {:<13} {}", s.step, s.who)?;
                if !s.blocked.is_empty() {
                    writeln!(out, "  {:<13} blocked: {}", "", s.blocked)?;
                }
            }
            timeline_table(out, &r.timeline)
        }
    }
}

/// `show` of an incident mitigated without a hotfix: nothing is owed.
fn show_mitigated(
    out: &mut (dyn Write + Send),
    m: &pb::Mitigation,
    timeline: &[pb::TimelineEntry],
) -> io::Result<()> {
    {
        {
            writeln!(out, "incident  {}", m.incident_id)?;
            writeln!(
                out,
                "state     MITIGATED_WITHOUT_HOTFIX (by {})",
                route_name(m.route)
            )?;
            writeln!(out, "recorded  by @{} at {}", m.by, ts(&m.at))?;
            if !m.notes.is_empty() {
                writeln!(out, "notes     {}", m.notes)?;
            }
            writeln!(out, "\nnext steps:\n  none: no hotfix, nothing owed")?;
            timeline_table(out, timeline)
        }
    }
}

fn timeline_table(out: &mut (dyn Write + Send), timeline: &[pb::TimelineEntry]) -> io::Result<()> {
    writeln!(out, "\ntimeline:")?;
    for t in timeline {
        writeln!(
            out,
            "  #{:<5} {}  @{:<8} {:<18} {}",
            t.seq,
            ts(&t.at),
            t.actor,
            t.kind,
            t.summary
        )?;
    }
    Ok(())
}

pub fn list(
    out: &mut (dyn Write + Send),
    o: Output,
    r: &pb::ListHotfixesResponse,
) -> io::Result<()> {
    if o.machine() {
        return message(out, o, r);
    }
    let (hs, ms) = (&r.hotfixes, &r.mitigations);
    {
        {
            let mut t = table(&["INCIDENT", "STATE", "AUTHOR", "OVERDUE", "SYMPTOM"]);
            for h in hs {
                let overdue: Vec<&str> = h
                    .obligations
                    .iter()
                    .filter(|o| o.overdue)
                    .map(|o| o.kind.as_str())
                    .collect();
                t.add_row(vec![
                    h.incident_id.clone(),
                    state_label(h.state).to_string(),
                    format!("@{}", h.author),
                    if overdue.is_empty() {
                        "-".to_string()
                    } else {
                        overdue.join(", ")
                    },
                    format!("{}{}", if h.drill { "[DRILL] " } else { "" }, h.symptom),
                ]);
            }
            for m in ms {
                t.add_row(vec![
                    m.incident_id.clone(),
                    "MITIGATED_WITHOUT_HOTFIX".to_string(),
                    format!("@{}", m.by),
                    "-".to_string(),
                    format!(
                        "mitigated by {}{}",
                        route_name(m.route),
                        if m.notes.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", m.notes)
                        }
                    ),
                ]);
            }
            print_table(out, &mut t)
        }
    }
}

/// Writes `t`: its columns two spaces apart, nothing before the first and
/// no trailing blanks.
fn print_table(out: &mut (dyn Write + Send), t: &mut comfy_table::Table) -> io::Result<()> {
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    writeln!(out, "{}", t.trim_fmt())
}

/// A table for people: no borders, columns as wide as their widest cell,
/// the whole fitted to the terminal's width (cells wrap at words) when
/// there is one.
fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// An event of `watch` or a `--wait`: in the machine formats the
/// `WatchResponse` that carried it.
pub fn event(out: &mut (dyn Write + Send), o: Output, e: &pb::Event) -> io::Result<()> {
    match o {
        Output::Json | Output::Yaml => message(
            out,
            o,
            &pb::WatchResponse {
                kind: Some(pb::watch_response::Kind::Event(e.clone())),
            },
        ),
        Output::Table => {
            let (state, kind) = (*STATE_WIDTH, *KIND_WIDTH);
            writeln!(
                out,
                "#{:<5} {} {:<18} {:<state$} {:<10} {:<kind$} {}",
                e.seq,
                ts(&e.at),
                e.incident_id,
                state_label(e.state),
                format!("@{}", e.actor),
                e.kind,
                e.summary
            )
        }
    }
}

/// A state as a column shows it: "-" for none (an event about no hotfix,
/// e.g. a team review).
fn state_label(state: i32) -> &'static str {
    match state_name(state) {
        "UNSPECIFIED" => "-",
        s => s,
    }
}

/// The widest state name (MITIGATED_WITHOUT_HOTFIX) and event kind:
/// streamed rows (`watch`) line up whichever come.
static STATE_WIDTH: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    (0..=20)
        .filter_map(|v| pb::State::try_from(v).ok())
        .map(|s| state_label(s as i32).len())
        .max()
        .unwrap_or(0)
});
static KIND_WIDTH: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    hotfix_api::kinds::EventKind::ALL
        .iter()
        .map(|k| k.as_str().len())
        .max()
        .unwrap_or(0)
});

/// A heartbeat of `watch`: in the machine formats every one (the first
/// says `caughtUp`: the replay is over); in a table only the first, as the
/// boundary between the replayed events and the live ones.
pub fn heartbeat(
    out: &mut (dyn Write + Send),
    o: Output,
    hb: &pb::Heartbeat,
    first: bool,
) -> io::Result<()> {
    match o {
        Output::Json | Output::Yaml => message(
            out,
            o,
            &pb::WatchResponse {
                kind: Some(pb::watch_response::Kind::Heartbeat(pb::Heartbeat {
                    caught_up: hb.caught_up || first,
                    ..*hb
                })),
            },
        ),
        Output::Table if first => writeln!(
            out,
            "-- caught up at #{}: live from here (Ctrl-C to stop) --",
            hb.latest_seq
        ),
        Output::Table => Ok(()),
    }
}

fn window_table(out: &mut (dyn Write + Send), w: &pb::RateWindow) -> io::Result<()> {
    writeln!(
        out,
        "rolling window: {} hotfixes in the last {} days (gate closes above {}): {}",
        w.count,
        w.window_seconds / 86_400,
        w.max,
        if w.gate_closed { "CLOSED" } else { "open" }
    )?;
    if w.gate_closed {
        writeln!(out, "  unblock: {}", w.unblock)?;
    }
    if let Some(r) = &w.last_review {
        writeln!(out, "  last team review: @{} at {}", r.by, ts(&r.at))?;
    }
    Ok(())
}

pub fn team_review(
    out: &mut (dyn Write + Send),
    o: Output,
    r: &pb::RecordTeamReviewResponse,
) -> io::Result<()> {
    let w = r.window.clone().unwrap_or_default();
    match o {
        Output::Json | Output::Yaml => message(out, o, r),
        Output::Table => {
            writeln!(out, "team review recorded")?;
            window_table(out, &w)
        }
    }
}

pub fn report(
    out: &mut (dyn Write + Send),
    o: Output,
    r: &pb::GetReportResponse,
) -> io::Result<()> {
    let w = r.window.clone().unwrap_or_default();
    let share = if r.postmortems > 0 {
        f64::from(r.postmortems_yes_but_rollback) / f64::from(r.postmortems)
    } else {
        0.0
    };
    match o {
        Output::Json | Output::Yaml => message(out, o, r),
        Output::Table => {
            window_table(out, &w)?;
            writeln!(out, "\nhotfixes per author this quarter:")?;
            if r.authors.is_empty() {
                writeln!(out, "  none")?;
            }
            for a in &r.authors {
                writeln!(
                    out,
                    "  {:<12} {} {:>3}  {}",
                    a.author, a.quarter, a.count, a.flag
                )?;
            }
            writeln!(out, "\noverdue obligations:")?;
            if r.overdue.is_empty() {
                writeln!(out, "  none")?;
            }
            for x in &r.overdue {
                writeln!(
                    out,
                    "  {:<20} {:<19} due {}  owner {}",
                    x.incident_id,
                    x.obligation,
                    ts(&x.due),
                    x.owner
                )?;
            }
            writeln!(
                out,
                "\npostmortems: {} ({} answered 'yes, but a rollback would have worked': {:.0}%){}",
                r.postmortems,
                r.postmortems_yes_but_rollback,
                share * 100.0,
                if r.rollback_training_flag {
                    "  FLAG: train the team on the rollback playbook"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "\nwhen this runbook last worked{}:",
                if r.stale {
                    " (STALE: no hotfix-lane exercise in 90 days; run a drill)"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "  {:<12} {:<20} {:<16} KIND",
                "DATE", "INCIDENT", "RESOLVED BY"
            )?;
            for x in &r.last_worked {
                writeln!(
                    out,
                    "  {:<12} {:<20} {:<16} {}",
                    ts(&x.at).get(..10).unwrap_or_default(),
                    x.incident_id,
                    x.resolved_by,
                    if x.drill { "drill" } else { "real" }
                )?;
            }
            Ok(())
        }
    }
}

pub fn whoami(out: &mut (dyn Write + Send), o: Output, r: &pb::WhoAmIResponse) -> io::Result<()> {
    match o {
        Output::Json | Output::Yaml => message(out, o, r),
        Output::Table => writeln!(out, "@{} ({})", r.handle, r.roles.join(", ")),
    }
}

pub fn next_id(out: &mut (dyn Write + Send), o: Output, id: &str) -> io::Result<()> {
    match o {
        Output::Json | Output::Yaml => machine(out, o, &json!({"incidentId": id})),
        Output::Table => writeln!(out, "{id}"),
    }
}

pub fn health(out: &mut (dyn Write + Send), o: Output, status: &str) -> io::Result<()> {
    match o {
        Output::Json | Output::Yaml => machine(out, o, &json!({"status": status})),
        Output::Table => writeln!(out, "{status}"),
    }
}

/// The profile's contexts, read from `path`.
pub fn contexts(
    out: &mut (dyn Write + Send),
    o: Output,
    path: &std::path::Path,
    rows: &[crate::cli::profile::Listed],
) -> io::Result<()> {
    match o {
        Output::Json | Output::Yaml => machine(
            out,
            o,
            &json!({
                "profile": path.display().to_string(),
                "contexts": rows.iter().map(|r| json!({
                    "name": r.name,
                    "endpoint": r.endpoint,
                    "current": r.current,
                })).collect::<Vec<_>>(),
            }),
        ),
        Output::Table => {
            if rows.is_empty() {
                return writeln!(out, "{}: no contexts", path.display());
            }
            let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
            writeln!(out, "  {:<width$}  ENDPOINT", "NAME")?;
            for r in rows {
                let mark = if r.current { '*' } else { ' ' };
                writeln!(out, "{mark} {:<width$}  {}", r.name, r.endpoint)?;
            }
            Ok(())
        }
    }
}

pub fn cluster(
    out: &mut (dyn Write + Send),
    o: Output,
    r: &pb::GetClusterResponse,
) -> io::Result<()> {
    let left = |r: &pb::ClusterReplica| r.lease_left_ms;
    match o {
        Output::Json | Output::Yaml => message(out, o, r),
        Output::Table => {
            if r.replicas.is_empty() {
                return writeln!(out, "store: {} (one replica)", r.engine);
            }
            writeln!(out, "store: {} ({} replicas)", r.engine, r.replicas.len())?;
            writeln!(out, "ROLE      LEASE LEFT  REPLICA")?;
            for x in &r.replicas {
                let role = if x.leader { "leader" } else { "follower" };
                let lease =
                    left(x).map_or("?".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
                let this = if x.url == r.answered_by {
                    "  (answered)"
                } else {
                    ""
                };
                writeln!(out, "{role:<8}  {lease:<10}  {}{this}", x.url)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn machine_output_escapes_what_a_terminal_acts_on_and_stays_the_same_data() {
        let v = json!({"s": "a\u{1b}[2Jb\u{202e}c"});
        let mut buf = Vec::new();
        machine(&mut buf, Output::Json, &v).unwrap();
        let line = String::from_utf8(buf).unwrap();
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{202e}'),
            "{line:?}"
        );
        assert!(line.contains("\\u202e"), "{line:?}");
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v, "a parser reads the same string");

        let mut buf = Vec::new();
        machine(&mut buf, Output::Yaml, &v).unwrap();
        let doc = String::from_utf8(buf).unwrap();
        assert!(
            !doc.contains('\u{1b}') && !doc.contains('\u{202e}'),
            "{doc:?}"
        );
        assert!(doc.starts_with("---\n"), "{doc:?}");
    }

    #[test]
    fn nothing_the_daemon_sends_can_drive_the_terminal() {
        let mut buf = Vec::new();
        {
            let mut p = Printable::new(&mut buf);
            write!(p, "title: a\u{1b}[2J\rb\u{202e}c\u{85}\n\tnext line ✓").unwrap();
            // A character split across writes is kept whole.
            let e_acute = "é".as_bytes();
            p.write_all(&e_acute[..1]).unwrap();
            p.write_all(&e_acute[1..]).unwrap();
            p.write_all(&[0xff, b'\n']).unwrap();
            p.flush().unwrap();
        }
        let shown = String::from_utf8(buf).unwrap();
        assert_eq!(
            shown,
            "title: a\\u{001b}[2J\\u{000d}b\\u{202e}c\\u{0085}\n\tnext line ✓é\\xff\n"
        );
        assert_eq!(printable("plain"), "plain");
    }
}
