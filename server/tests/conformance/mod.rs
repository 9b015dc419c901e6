//! The store conformance suite: the promises of `hotfixd::store::Engine`
//! (see `server/src/store/engine.rs`), checked through the trait alone, so
//! that every engine runs the same checks. An engine's test file supplies
//! an [`Engines`] (how to open, reopen and break one) and calls [`run`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hotfixd::domain::State;
use hotfixd::domain::log::EventState;
use hotfixd::domain::{
    self, Criterion, Ctx, Declaration, Directory, EventDraft, EventKind, Existing, GateView,
    Hotfix, Policy, Principal, Refusal, Role, Severity, TeamReview, Time,
};
use hotfixd::error::Error;
use hotfixd::store::{Commit, Engine, IntentKind, Mark, Outcome, Request, Write};

/// How the suite gets engines of one kind. Each call to [`Engines::fresh`]
/// is a new, empty store; [`Engines::reopen`] opens it again after every
/// handle on it is dropped, as a restart would.
pub trait Engines {
    type Place;
    fn fresh(&self) -> Self::Place;
    fn open(&self, place: &Self::Place) -> Arc<dyn Engine>;
    /// The store at `place` opened so that making a change durable fails
    /// while the switch is on (a full disk; a lost quorum).
    fn open_failing(&self, place: &Self::Place) -> (Arc<dyn Engine>, Arc<AtomicBool>);
    /// Whether the engine goes on once durability is back (etcd: whatever
    /// a quorum committed is the store) rather than refusing changes until
    /// it is restarted (sled: what a failed flush left on disk is unknown
    /// until the store is opened again).
    const RECOVERS: bool;
    /// A second handle on the store at `place` open at the same time, as
    /// another replica holds it (None: the engine has one owner, as sled's
    /// directory lock makes it).
    fn replica(&self, place: &Self::Place) -> Option<Arc<dyn Engine>>;
}

/// Runs every check on engines from `engines`.
pub async fn run<E: Engines>(engines: &E) {
    a_change_is_whole_and_a_refusal_writes_only_its_audit_record(engines).await;
    sequences_are_gap_free_and_no_update_is_lost_under_concurrent_callers(engines).await;
    a_request_id_answers_once(engines).await;
    a_request_id_sent_by_concurrent_retries_answers_once(engines).await;
    the_rate_gate_admits_one_of_concurrent_declarations(engines).await;
    the_durable_end_moves_only_after_durability(engines).await;
    everything_answered_is_read_back_after_a_restart(engines).await;
}

pub fn at(minute: i64) -> Time {
    chrono::DateTime::UNIX_EPOCH
        + chrono::Duration::days(20_000)
        + chrono::Duration::minutes(minute)
}

pub const INC: &str = "INC-2024-10-01-007";

fn bob() -> Principal {
    Principal {
        handle: "bob".into(),
        roles: BTreeSet::from([Role::Engineer]),
    }
}

fn directory() -> Directory {
    [
        ("bob".to_string(), BTreeSet::from([Role::Engineer])),
        ("alice".to_string(), BTreeSet::from([Role::SreLead])),
    ]
    .into()
}

/// A hotfix as the domain declares it.
fn declared(now: Time) -> Hotfix {
    let (policy, dir, actor) = (Policy::default(), directory(), bob());
    let ctx = Ctx {
        actor: &actor,
        now,
        policy: &policy,
        directory: &dir,
    };
    let d = Declaration {
        incident_id: INC.into(),
        severity: Severity::P0,
        criteria: vec![Criterion::CustomersDown],
        symptom: "checkout 500s".into(),
        approver: "alice".into(),
        cleanup_owner: "bob".into(),
        merge_eta: "09:30".into(),
        repository: "shop/checkout".into(),
        argocd_app: "checkout".into(),
        flag_can_mitigate: false,
        rollback_can_mitigate: false,
        fix_unknown: false,
        drill: false,
    };
    domain::declare(&ctx, Existing::None, &GateView::default(), 0, d)
        .expect("declared")
        .hotfix
}

fn req<'a>(action: &'a str, incident_id: &'a str, now: Time, request_id: &'a str) -> Request<'a> {
    Request {
        actor: "bob",
        action,
        incident_id,
        now,
        request_id,
        fingerprint: format!("{action}/{incident_id}"),
    }
}

fn draft(kind: EventKind, summary: &str) -> EventDraft {
    EventDraft::new(kind, summary)
}

/// Declares the hotfix: two events, an intent and an exercise-free change.
pub async fn declare(store: &dyn Engine, now: Time) -> Hotfix {
    let h = declared(now);
    let out = store
        .execute(
            req("declare", INC, now, ""),
            Box::new(move |r| {
                assert!(r.hotfix(INC)?.is_none(), "a fresh store holds no hotfix");
                Ok(Commit {
                    state: Some(EventState::Hotfix(State::Declared)),
                    write: Write::Hotfix {
                        before: None,
                        after: h.clone(),
                        open_before: Vec::new(),
                        open_after: Vec::new(),
                    },
                    events: vec![
                        draft(EventKind::Declared, "one"),
                        draft(EventKind::Flagged, "two"),
                    ],
                    exercise: None,
                    marks: vec![Mark::Intent {
                        kind: IntentKind::Sync,
                        incident_id: INC.into(),
                        payload: b"{\"actor\":\"bob\"}".to_vec(),
                    }],
                })
            }),
        )
        .await
        .expect("declare");
    match out {
        Outcome::Hotfix(h) => h,
        other => panic!("expected a hotfix, got {other:?}"),
    }
}

/// A change that reads the hotfix and writes it back one version on, with
/// `events` events.
pub async fn bump(
    store: &dyn Engine,
    now: Time,
    events: usize,
    request_id: &str,
) -> Result<Hotfix, Error> {
    let out = store
        .execute(
            req("bump", INC, now, request_id),
            Box::new(move |r| {
                // A replica's first decision may see a view from before
                // the declaration; its commit is refused and it decides
                // again (see `Decide`).
                let before = r.hotfix(INC)?.ok_or_else(|| Refusal::NotFound {
                    incident: INC.into(),
                })?;
                let mut after = before.clone();
                after.version += 1;
                Ok(Commit {
                    state: Some(EventState::Hotfix(State::Declared)),
                    write: Write::Hotfix {
                        before: Some(before),
                        after,
                        open_before: Vec::new(),
                        open_after: Vec::new(),
                    },
                    events: (0..events)
                        .map(|i| draft(EventKind::CheckProgress, &format!("bump {i}")))
                        .collect(),
                    exercise: None,
                    marks: Vec::new(),
                })
            }),
        )
        .await?;
    match out {
        Outcome::Hotfix(h) => Ok(h),
        other => panic!("expected a hotfix, got {other:?}"),
    }
}

async fn a_change_is_whole_and_a_refusal_writes_only_its_audit_record<E: Engines>(engines: &E) {
    let place = engines.fresh();
    let store = engines.open(&place);
    let h = declare(store.as_ref(), at(0)).await;

    // Facts, events, timeline index, audit record and mark: all of it.
    assert_eq!(h.last_seq, 2, "the answer carries its last event");
    assert_eq!(store.hotfix(INC).unwrap().unwrap().version, h.version);
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.kind.as_str()))
            .collect::<Vec<_>>(),
        [(1, "declared"), (2, "flagged")]
    );
    assert!(
        events
            .iter()
            .all(|e| e.incident_id == INC && e.state == "DECLARED")
    );
    assert_eq!(store.timeline(INC).unwrap(), events);
    let audit = store.audit_after(0, 10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].seq, audit[0].event_seq), (1, Some(1)));
    assert_eq!(audit[0].outcome, "ok");
    assert_eq!(store.intents(IntentKind::Sync).unwrap().len(), 1);
    assert!(store.intents(IntentKind::Merge).unwrap().is_empty());
    assert_eq!(store.hotfixes().unwrap().len(), 1);

    // A refusal: its audit record, nothing else.
    let refused = store
        .execute(
            req("approve", INC, at(1), "r-refused"),
            Box::new(|_| {
                Err(Refusal::Denied {
                    reason: "bob may not approve his own hotfix".into(),
                }
                .into())
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Refused(Refusal::Denied { .. })),
        "{refused:?}"
    );
    assert_eq!(store.events_after(0, 10).unwrap().len(), 2);
    let audit = store.audit_after(0, 10).unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(
        (audit[1].outcome.as_str(), audit[1].event_seq),
        ("denied", None)
    );
    assert_eq!(store.hotfix(INC).unwrap().unwrap().version, h.version);
    assert!(
        store
            .replay("bob", "r-refused", "approve/INC-2024-10-01-007")
            .unwrap()
            .is_none(),
        "a refusal is not an answer to replay"
    );

    // A change that clears the intent clears it with its event, at once.
    store
        .execute(
            req("sync", INC, at(2), ""),
            Box::new(|r| {
                Ok(Commit {
                    state: Some(EventState::Hotfix(State::Declared)),
                    write: Write::Note {
                        hotfix: r.hotfix(INC)?.unwrap(),
                    },
                    events: vec![draft(EventKind::SyncFailed, "argo said no")],
                    exercise: None,
                    marks: vec![Mark::IntentDone {
                        kind: IntentKind::Sync,
                        incident_id: INC.into(),
                    }],
                })
            }),
        )
        .await
        .unwrap();
    assert!(store.intents(IntentKind::Sync).unwrap().is_empty());
    assert_eq!(store.events_after(2, 10).unwrap()[0].kind, "sync_failed");
    assert!(store.verify_audit().first_bad.is_none());
}

async fn sequences_are_gap_free_and_no_update_is_lost_under_concurrent_callers<E: Engines>(
    engines: &E,
) {
    let place = engines.fresh();
    let store = engines.open(&place);
    // Callers alternate between replicas where the engine has them: their
    // changes race through the store itself, not one process's lock.
    let handles: Vec<Arc<dyn Engine>> = std::iter::once(store.clone())
        .chain(engines.replica(&place))
        .collect();
    let h = declare(store.as_ref(), at(0)).await;
    let (callers, each) = (16usize, 8usize);
    let mut tasks = Vec::new();
    for c in 0..callers {
        let store = handles[c % handles.len()].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                // 1 to 3 events per change.
                bump(store.as_ref(), at(1), 1 + (c + i) % 3, "")
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let changes = callers * each;
    for other in &handles[1..] {
        other.catch_up().await.unwrap();
        assert_eq!(
            other.events_after(0, 10_000).unwrap(),
            store.events_after(0, 10_000).unwrap(),
            "every replica reads one history"
        );
    }
    assert_eq!(
        store.hotfix(INC).unwrap().unwrap().version,
        h.version + changes as u64,
        "every caller's update is there: decisions saw every earlier change"
    );
    let events = store.events_after(0, 10_000).unwrap();
    let expected_events: usize = 2
        + (0..callers)
            .flat_map(|c| (0..each).map(move |i| 1 + (c + i) % 3))
            .sum::<usize>();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=expected_events as u64).collect::<Vec<_>>(),
        "gap-free, in order"
    );
    assert_eq!(store.durable_seq(), expected_events as u64);
    let audit: Vec<u64> = store
        .audit_after(0, 10_000)
        .unwrap()
        .iter()
        .map(|a| a.seq)
        .collect();
    assert_eq!(audit, (1..=1 + changes as u64).collect::<Vec<_>>());
    assert_eq!(store.audit_size(), 1 + changes as u64);
    // Read forward in pages, the log is the same.
    let mut paged = Vec::new();
    let mut from = 0;
    loop {
        let page = store.events_after(from, 7).unwrap();
        let Some(last) = page.last() else { break };
        from = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, events);
    assert!(store.verify_audit().first_bad.is_none());
}

/// The gate's read is serializable with the declaration it admits: with
/// room for one more declaration in the window, callers racing (through
/// two replicas where the engine has them) admit exactly one.
async fn the_rate_gate_admits_one_of_concurrent_declarations<E: Engines>(engines: &E) {
    let place = engines.fresh();
    let store = engines.open(&place);
    let handles: Vec<Arc<dyn Engine>> = std::iter::once(store.clone())
        .chain(engines.replica(&place))
        .collect();
    let mut tasks = Vec::new();
    for c in 0..8usize {
        let store = handles[c % handles.len()].clone();
        tasks.push(tokio::spawn(async move {
            let inc = format!("INC-2024-10-01-{:03}", 100 + c);
            let mut h = declared(at(0));
            h.declaration.incident_id = inc.clone();
            store
                .execute(
                    req("declare", &inc, at(0), ""),
                    Box::new(move |r| {
                        // One declaration allowed in the window.
                        if r.gate_view(at(-60))?.count_in_window >= 1 {
                            return Err(Refusal::RateLimited {
                                reason: "the window's one declaration is taken".into(),
                            }
                            .into());
                        }
                        Ok(Commit {
                            state: Some(EventState::Hotfix(State::Declared)),
                            write: Write::Hotfix {
                                before: None,
                                after: h.clone(),
                                open_before: Vec::new(),
                                open_after: Vec::new(),
                            },
                            events: vec![draft(EventKind::Declared, "declared")],
                            exercise: None,
                            marks: Vec::new(),
                        })
                    }),
                )
                .await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(Error::Refused(Refusal::RateLimited { .. })) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(admitted, 1, "exactly one declaration admitted");
    for h in &handles {
        h.catch_up().await.unwrap();
        assert_eq!(h.gate_view(at(-60)).unwrap().count_in_window, 1);
        assert_eq!(h.hotfixes().unwrap().len(), 1);
    }
}

async fn a_request_id_answers_once<E: Engines>(engines: &E) {
    let place = engines.fresh();
    let store = engines.open(&place);
    declare(store.as_ref(), at(0)).await;
    let first = bump(store.as_ref(), at(1), 1, "req-1").await.unwrap();
    let decided = Arc::new(AtomicUsize::new(0));
    let calls = decided.clone();
    let again = store
        .execute(
            req("bump", INC, at(2), "req-1"),
            Box::new(move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("a retried request must not be decided again");
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Outcome::Hotfix(first.clone()),
        "the first answer, again"
    );
    assert_eq!(decided.load(Ordering::SeqCst), 0);
    assert_eq!(
        store.events_after(0, 10).unwrap().len(),
        3,
        "nothing written twice"
    );
    assert_eq!(
        store
            .replay("bob", "req-1", "bump/INC-2024-10-01-007")
            .unwrap(),
        Some(Outcome::Hotfix(first))
    );
    // The same id for another request is refused, naming the field.
    let e = store
        .replay("bob", "req-1", "merge/INC-2024-10-01-007")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Refused(Refusal::Invalid { field, .. }) if field == "request_id"),
        "{e:?}"
    );
    let mut other = req("merge", INC, at(3), "req-1");
    other.fingerprint = "merge/INC-2024-10-01-007".into();
    let e = store
        .execute(other, Box::new(|_| panic!("not decided")))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Refused(Refusal::Invalid { field, .. }) if field == "request_id"));
    // Request ids are per caller.
    assert!(
        store
            .replay("carol", "req-1", "bump/INC-2024-10-01-007")
            .unwrap()
            .is_none()
    );
}

/// A client that retries before its first try is answered: every try
/// gets the one answer, and the change is written once.
async fn a_request_id_sent_by_concurrent_retries_answers_once<E: Engines>(engines: &E) {
    let place = engines.fresh();
    let store = engines.open(&place);
    let h = declare(store.as_ref(), at(0)).await;
    let mut tasks = Vec::new();
    for c in 0..12usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Other changes beside the retries, so that they share commits.
            let id = if c % 3 == 0 {
                String::new()
            } else {
                "retried".into()
            };
            (
                c % 3 == 0,
                bump(store.as_ref(), at(1), 1, &id).await.unwrap(),
            )
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        let (other, answer) = t.await.unwrap();
        if !other {
            answers.push(answer);
        }
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every try has the first answer: {answers:?}"
    );
    assert_eq!(
        store.hotfix(INC).unwrap().unwrap().version,
        h.version + 5,
        "the retried change once, the 4 others once each"
    );
    assert_eq!(store.events_after(0, 100).unwrap().len(), 2 + 5);
    assert!(store.verify_audit().first_bad.is_none());
}

async fn the_durable_end_moves_only_after_durability<E: Engines>(engines: &E) {
    let place = engines.fresh();
    {
        let store = engines.open(&place);
        let mut bell = store.subscribe();
        let h = declare(store.as_ref(), at(0)).await;
        assert!(store.durable_seq() >= h.last_seq, "answered means durable");
        assert!(bell.has_changed().unwrap(), "and the doorbell rang");
        assert_eq!(*bell.borrow_and_update(), h.last_seq);
    }
    let (store, fail) = engines.open_failing(&place);
    let end = store.durable_seq();
    fail.store(true, Ordering::SeqCst);
    let e = bump(store.as_ref(), at(1), 1, "").await.unwrap_err();
    assert!(
        matches!(e, Error::NotDurable(_) | Error::Unavailable(_)),
        "{e:?}"
    );
    assert_eq!(
        store.durable_seq(),
        end,
        "nothing unacknowledged is offered"
    );
    assert!(store.events_after(end, 10).unwrap().is_empty());
    fail.store(false, Ordering::SeqCst);
    if E::RECOVERS {
        // With durability back, changes go on after what was answered.
        let h = bump(store.as_ref(), at(2), 1, "").await;
        let h = h.unwrap_or_else(|e| panic!("with durability back: {e:?}"));
        assert_eq!(h.last_seq, end + 1, "the refused change left no trace");
        assert_eq!(store.events_after(end, 10).unwrap().len(), 1);
        return;
    }
    // With durability back, nothing more is accepted until a restart.
    let e = bump(store.as_ref(), at(2), 1, "").await.unwrap_err();
    assert!(matches!(e, Error::NotDurable(_)), "{e:?}");
    let why = tokio::time::timeout(std::time::Duration::from_secs(10), store.failure())
        .await
        .expect("failure() resolves once the engine refuses changes");
    assert!(!why.is_empty());
    let reviews = TeamReview {
        by: "erin".into(),
        notes: "x".into(),
        at: at(3),
    };
    let e = store
        .execute(
            req("team-review", "", at(3), ""),
            Box::new(move |_| {
                Ok(Commit {
                    state: None,
                    write: Write::TeamReview(reviews.clone()),
                    events: vec![draft(EventKind::TeamReview, "x")],
                    exercise: None,
                    marks: Vec::new(),
                })
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotDurable(_)), "{e:?}");
}

async fn everything_answered_is_read_back_after_a_restart<E: Engines>(engines: &E) {
    let place = engines.fresh();
    let (last, version, head) = {
        let store = engines.open(&place);
        declare(store.as_ref(), at(0)).await;
        let h = bump(store.as_ref(), at(1), 2, "req-9").await.unwrap();
        store.set_cursor("relay", 3).unwrap();
        // A cursor is durable with the next change.
        bump(store.as_ref(), at(2), 1, "").await.unwrap();
        store.flush().await.unwrap();
        (
            store.durable_seq(),
            h.version + 1,
            store.verify_audit().head,
        )
    };
    let store = engines.open(&place);
    assert_eq!(store.durable_seq(), last);
    assert_eq!(store.events_after(0, 100).unwrap().len() as u64, last);
    assert_eq!(store.hotfix(INC).unwrap().unwrap().version, version);
    assert_eq!(store.cursor("relay").unwrap(), 3);
    assert_eq!(store.intents(IntentKind::Sync).unwrap().len(), 1);
    assert!(
        store
            .replay("bob", "req-9", "bump/INC-2024-10-01-007")
            .unwrap()
            .is_some()
    );
    let report = store.verify_audit();
    assert_eq!(
        (report.head.as_str(), report.first_bad),
        (head.as_str(), None)
    );
    // Numbering goes on from where it stopped.
    let h = bump(store.as_ref(), at(3), 1, "").await.unwrap();
    assert_eq!(h.last_seq, last + 1);
    assert_eq!(store.audit_size(), 4);
}
