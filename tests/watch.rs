//! The event log: gap-free sequence numbers under concurrent writers, a
//! watch that resumes after a disconnect and sees every event exactly once,
//! and streams that end cleanly on shutdown.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use hotfixctl::pb;
use tokio_stream::StreamExt;

type Stream = tonic::Streaming<pb::WatchResponse>;

async fn watch(d: &Daemon, from_seq: u64, incident: &str) -> Stream {
    d.client("dave")
        .await
        .events
        .watch(pb::WatchRequest {
            from_seq,
            incident_id: incident.to_string(),
            from_now: false,
        })
        .await
        .expect("watch")
        .into_inner()
}

/// Reads events until a heartbeat reports `upto` (or later).
async fn read_until(stream: &mut Stream, upto: u64) -> Vec<pb::Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch stalled")
            .expect("stream ended")
            .expect("stream error");
        match msg.kind.unwrap() {
            pb::watch_response::Kind::Event(e) => events.push(e),
            pb::watch_response::Kind::Heartbeat(hb) if hb.latest_seq >= upto => return events,
            pb::watch_response::Kind::Heartbeat(_) => {}
        }
    }
}

async fn latest_seq(d: &Daemon) -> u64 {
    // The first heartbeat comes once the stored log is replayed.
    let mut all = watch(d, 0, "").await;
    let mut last = 0;
    loop {
        match all.next().await.unwrap().unwrap().kind.unwrap() {
            pb::watch_response::Kind::Event(e) => last = e.seq,
            pb::watch_response::Kind::Heartbeat(_) => return last,
        }
    }
}

#[tokio::test]
async fn watch_resumes_after_a_disconnect_and_sees_every_event_once() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await; // 8 events

    // A first watcher reads three events and goes away.
    let mut first = watch(&d, 0, "").await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        if let Some(pb::watch_response::Kind::Event(e)) = first.next().await.unwrap().unwrap().kind
        {
            seen.push(e);
        }
    }
    drop(first);
    let resume_from = seen.last().unwrap().seq;

    // Concurrent writers keep changing things meanwhile.
    let mut writers = Vec::new();
    for n in 10..18u32 {
        let endpoint = d.endpoint.clone();
        writers.push(tokio::spawn(async move {
            let mut c = hotfixctl::Client::connect(&endpoint, Some("dev-bob"))
                .await
                .unwrap();
            c.lane
                .record_mitigation(pb::RecordMitigationRequest {
                    mutation: None,
                    incident_id: incident(n),
                    route: pb::MitigationRoute::Rollback as i32,
                    notes: String::new(),
                })
                .await
                .unwrap();
        }));
    }
    // A watcher resumes while they write.
    let mut resumed = watch(&d, resume_from, "").await;
    for w in writers {
        w.await.unwrap();
    }
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let last = latest_seq(&d).await;
    assert_eq!(last, 8 + 8 + 1);
    seen.extend(read_until(&mut resumed, last).await);

    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "in order, no gap, no duplicate"
    );
    let merged = seen.iter().find(|e| e.kind == "merged").unwrap();
    assert_eq!(merged.actor, "carol");
    assert_eq!(merged.state, pb::State::Merged as i32);
}

#[tokio::test]
async fn concurrent_writers_get_gap_free_sequence_numbers() {
    let d = Daemon::start().await;
    let mut tasks = Vec::new();
    for n in 1..=24u32 {
        let endpoint = d.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = hotfixctl::Client::connect(&endpoint, Some("dev-bob"))
                .await
                .unwrap();
            let m = c
                .lane
                .record_mitigation(pb::RecordMitigationRequest {
                    mutation: Some(pb::Mutation {
                        request_id: format!("mit-{n}"),
                        expected_version: None,
                    }),
                    incident_id: incident(n),
                    route: pb::MitigationRoute::Flag as i32,
                    notes: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            m.mitigation.unwrap().seq
        }));
    }
    let mut answered = BTreeSet::new();
    for t in tasks {
        assert!(
            answered.insert(t.await.unwrap()),
            "two answers share a sequence number"
        );
    }
    assert_eq!(answered, (1..=24).collect::<BTreeSet<_>>());
    let mut all = watch(&d, 0, "").await;
    let events = read_until(&mut all, 24).await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn watch_filters_by_incident_and_follows_live() {
    let d = Daemon::start().await;
    declare(&d, &incident(1), &[]).await.unwrap();
    let mut only2 = watch(&d, 0, &incident(2)).await;
    declare(&d, &incident(2), &[]).await.unwrap();
    declare(&d, &incident(3), &[]).await.unwrap();
    // incident 1: declared; 2: declared + flagged (bob's 2nd this quarter); 3: likewise.
    let events = read_until(&mut only2, 5).await;
    let kinds: Vec<(&str, u64)> = events.iter().map(|e| (e.kind.as_str(), e.seq)).collect();
    assert_eq!(kinds, [("declared", 2), ("flagged", 3)]);
    assert!(events.iter().all(|e| e.incident_id == incident(2)));
    // Bad filters name the field.
    let err = d
        .client("dave")
        .await
        .events
        .watch(pb::WatchRequest {
            from_seq: 0,
            incident_id: "nope".into(),
            from_now: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("incident_id"));
}

/// A caught-up watcher first hears where the log ends, then a heartbeat
/// on every tick of the daemon's interval (200 ms here) while nothing
/// happens, each naming the same
/// sequence; a new event comes before the next heartbeat.
#[tokio::test]
async fn an_idle_watcher_hears_a_heartbeat_every_interval() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let mut s = watch(&d, 0, "").await;
    let next = async |s: &mut Stream| {
        tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("watch stalled")
            .expect("stream ended")
            .expect("stream error")
            .kind
            .unwrap()
    };
    let mut beats = Vec::new();
    let started = tokio::time::Instant::now();
    while beats.len() < 4 {
        match next(&mut s).await {
            pb::watch_response::Kind::Event(e) => assert_eq!(e.seq, 1),
            pb::watch_response::Kind::Heartbeat(hb) => beats.push(hb),
        }
    }
    assert!(
        beats.iter().all(|hb| hb.latest_seq == 1 && !hb.closing),
        "{beats:?}"
    );
    // Four heartbeats: the first at once, then one on each of the daemon's
    // 200 ms ticks (the first tick may come at any point of an interval):
    // at least two whole intervals, so no heartbeat was sent twice.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    d.ctl("bob", &["mitigated", &incident(2), "--by", "flag"])
        .await
        .unwrap();
    loop {
        match next(&mut s).await {
            pb::watch_response::Kind::Event(e) => {
                assert_eq!(e.seq, 2);
                break;
            }
            pb::watch_response::Kind::Heartbeat(hb) => assert_eq!(hb.latest_seq, 1),
        }
    }
}

/// A stream busy with events gets no heartbeats between them: the events
/// show it is alive. (Before, every watcher got a heartbeat on every tick,
/// and with many watchers those collided with the events.) Heartbeats every
/// 200 ms, events every ~25 ms for 2 s: about ten ticks pass; one heartbeat
/// is allowed for a stall of the machine longer than a whole tick.
#[tokio::test]
async fn a_busy_watcher_gets_events_not_heartbeats() {
    let d = Daemon::start().await;
    let mut s = watch(&d, 0, "").await;
    // The first message, once caught up, is a heartbeat.
    match s.next().await.unwrap().unwrap().kind.unwrap() {
        pb::watch_response::Kind::Heartbeat(hb) => assert_eq!(hb.latest_seq, 0),
        other => panic!("{other:?}"),
    }
    let writer = {
        let mut erin = d.client("erin").await;
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + Duration::from_secs(2);
            let mut n = 0u64;
            while tokio::time::Instant::now() < until {
                erin.policy
                    .record_team_review(pb::RecordTeamReviewRequest {
                        mutation: None,
                        notes: "busy".into(),
                    })
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            n
        })
    };
    let mut writer = writer;
    let mut written = None;
    let (mut events, mut beats) = (0u64, 0);
    while written != Some(events) {
        tokio::select! {
            n = &mut writer, if written.is_none() => written = Some(n.unwrap()),
            msg = tokio::time::timeout(Duration::from_secs(10), s.next()) => {
                match msg.expect("watch stalled").unwrap().unwrap().kind.unwrap() {
                    pb::watch_response::Kind::Event(_) => events += 1,
                    pb::watch_response::Kind::Heartbeat(_) => beats += 1,
                }
            }
        }
    }
    let written = events;
    assert!(written >= 20, "only {written} events in 2 s");
    assert!(beats <= 1, "{beats} heartbeats among {events} events");
}

#[tokio::test]
async fn shutdown_ends_streams_with_a_resume_point() {
    let mut d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let mut s = watch(&d, 0, "").await;
    read_until(&mut s, 1).await;
    d.stop().await;
    let mut closing = None;
    while let Some(Ok(msg)) = s.next().await {
        if let Some(pb::watch_response::Kind::Heartbeat(hb)) = msg.kind
            && hb.closing
        {
            closing = Some(hb.latest_seq);
        }
    }
    assert_eq!(closing, Some(1), "the last message says where to resume");
}

#[tokio::test]
async fn cli_watch_prints_json_lines() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    d.ctl("bob", &["mitigated", &incident(2), "--by", "flag"])
        .await
        .unwrap();
    let out = d
        .ctl(
            "dave",
            &["--output", "json", "watch", "--once", "--from", "0"],
        )
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One WatchResponse a line, as `buf curl` prints the stream.
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["event"]["incidentId"], INC);
    assert_eq!(lines[0]["event"]["state"], "STATE_DECLARED");
    assert_eq!(lines[1]["event"]["state"], "STATE_MITIGATED_WITHOUT_HOTFIX");
    assert_eq!(lines[2]["heartbeat"]["latestSeq"], "2");
    assert_eq!(lines[2]["heartbeat"]["caughtUp"], true);
}

#[tokio::test]
async fn denials_are_audited_with_the_authenticated_actor() {
    let mut d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    d.ctl_err("bob", &["merge", INC], DENIED).await;
    d.ctl_err("dave", &["approve", INC, "--sha", SHA1], DENIED)
        .await;
    d.stop().await;
    let store = d.open_store().await;
    let audit = store.audit_after(0, 100).unwrap();
    let rows: Vec<(String, String, String)> = audit
        .iter()
        .map(|a| (a.actor.clone(), a.action.clone(), a.outcome.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("bob".into(), "declare".into(), "ok".into()),
            ("bob".into(), "merge".into(), "denied".into()),
            ("dave".into(), "approve".into(), "denied".into()),
        ]
    );
    assert!(audit[1].detail.contains("platform-admin"));
}

#[tokio::test]
async fn many_concurrent_writers_all_land_durably() {
    // 32 clients x 10 changes at once: each answer is acknowledged only
    // after its flush, and the log has exactly one event per answer. One
    // principal sends them all: its rate limit is lifted for this test.
    let d = Daemon::start_configured(|s| {
        s.limits.per_principal_burst = 10_000;
    })
    .await;
    let mut tasks = Vec::new();
    for c in 0..32 {
        let endpoint = d.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = hotfixctl::Client::connect(&endpoint, Some("dev-erin"))
                .await
                .unwrap();
            for i in 0..10 {
                client
                    .policy
                    .record_team_review(pb::RecordTeamReviewRequest {
                        mutation: None,
                        notes: format!("client {c} review {i}"),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    // A guard against a hang, not a performance assertion.
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("writers hung");
    let mut s = watch(&d, 0, "").await;
    let events = read_until(&mut s, 320).await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=320).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_cursor_beyond_the_log_is_out_of_range_naming_the_latest() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let latest = latest_seq(&d).await;
    for from_seq in [latest + 1, u64::MAX] {
        let e = d
            .client("dave")
            .await
            .events
            .watch(pb::WatchRequest {
                from_seq,
                incident_id: String::new(),
                from_now: false,
            })
            .await
            .expect_err("refused, not silent");
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
        assert!(
            e.message().contains(&format!("latest sequence {latest}")),
            "{}",
            e.message()
        );
    }
    // The end itself is a fine place to resume from.
    let mut s = watch(&d, latest, "").await;
    assert!(read_until(&mut s, latest).await.is_empty());
}
