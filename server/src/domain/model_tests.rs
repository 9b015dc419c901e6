//! A property test of the lane: random sequences of steps by random actors,
//! with a test clock, checked against the runbook's invariants after every
//! step. No network, no store: the domain alone.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

const SHAS: [&str; 2] = [
    "1111111111111111111111111111111111111111",
    "2222222222222222222222222222222222222222",
];
const INC: &str = "INC-2026-05-20-001";

pub(crate) fn roster() -> Directory {
    [
        ("alice", Role::SreLead),
        ("erin", Role::EngManager),
        ("bob", Role::Engineer),
        ("carol", Role::PlatformAdmin),
        ("dave", Role::PlatformTeam),
        ("svc", Role::Service),
    ]
    .into_iter()
    .map(|(h, r)| (h.to_string(), BTreeSet::from([r])))
    .collect()
}

fn principal(d: &Directory, h: &str) -> Principal {
    Principal {
        handle: h.to_string(),
        roles: d[h].clone(),
    }
}

pub(crate) fn declared(policy: &Policy, d: &Directory, now: Time) -> Hotfix {
    let ctx = Ctx {
        actor: &principal(d, "bob"),
        now,
        policy,
        directory: d,
    };
    declare(
        &ctx,
        Existing::None,
        &GateView::default(),
        0,
        Declaration {
            incident_id: INC.into(),
            severity: Severity::P0,
            criteria: vec![Criterion::CustomersDown],
            symptom: "catalog 500s".into(),
            approver: "alice".into(),
            cleanup_owner: "bob".into(),
            merge_eta: "09:30".into(),
            repository: "bookstore/catalog".into(),
            argocd_app: "catalog".into(),
            flag_can_mitigate: false,
            rollback_can_mitigate: false,
            fix_unknown: false,
            drill: false,
        },
    )
    .expect("declare")
    .hotfix
}

fn arb_command() -> impl Strategy<Value = Command> {
    let sha = prop::sample::select(SHAS.to_vec()).prop_map(String::from);
    let check = prop::sample::select(vec![
        "lint",
        "unit-changed-package",
        "scan",
        "build-sign-push",
    ]);
    let result = prop_oneof![
        12 => Just(CheckResult::Success),
        1 => Just(CheckResult::Pending),
        1 => Just(CheckResult::Failure),
    ];
    prop_oneof![
        1 => (sha.clone(), 1u32..40).prop_map(|(sha, lines)| Command::SubmitFix(FixProposal {
            branch: format!("hotfix/{INC}-fix"),
            sha,
            commit_message: format!("{INC}\napprover: @alice"),
            files: vec![ChangedFile { path: "catalog/a.go".into(), added: lines, removed: 0 }],
        })),
        2 => sha.clone().prop_map(|sha| Command::OverrideFixLimits { sha, reason: "r".into() }),
        2 => prop::option::weighted(0.9, sha.clone()).prop_map(|sha| Command::Approve { sha }),
        2 => Just(Command::OpenPullRequest { number: 7, url: "https://x/7".into(), title: None, labels: vec!["hotfix".into()] }),
        8 => (check, result, prop::option::weighted(0.1, sha)).prop_map(|(name, result, sha)| Command::RecordCheck {
            name: name.into(),
            result,
            sha,
        }),
        2 => Just(Command::Merge),
        2 => any::<bool>().prop_map(|skip_canary| Command::Sync { revision: "abc".into(), skip_canary }),
        2 => (any::<bool>(), prop::sample::select(vec![0.001, 0.009, 0.01, 0.5]))
            .prop_map(|(recovered, observed_value)| Command::Verify { recovered, observed_value }),
        2 => Just(Command::Revert { pr: 8 }),
        2 => prop::sample::select(vec![vec![], vec!["hotfix".to_string()]])
            .prop_map(|labels| Command::RecordCleanup { pr: 9, url: String::new(), labels }),
        2 => (any::<bool>(), prop::option::of(Just("https://x/9".to_string()))).prop_map(|(bg, link)| {
            Command::RecordPostmortem {
                url: "https://wiki/pm".into(),
                why_hotfix: "slow CI".into(),
                bypass_justified: BypassJustified::Yes,
                breakglass_used: bg,
                cleanup_pr_link: link,
            }
        }),
        2 => Just(Command::RecordAuditReview { findings: "ok".into() }),
        2 => Just(Command::GrantBreakglass { role: "bg".into(), ttl: None }),
        2 => prop::sample::subsequence(BreakglassItem::ALL.to_vec(), 1..=3)
            .prop_map(|items| Command::CleanupBreakglass { items }),
    ]
}

/// Who the runbook lets take each step (the reference table, written
/// independently of `Policy::authorize`).
fn may(step: Step, actor: &str) -> bool {
    match step {
        Step::Fix | Step::PullRequest => actor == "bob",
        Step::Approve | Step::Override => actor == "alice",
        Step::Check => matches!(actor, "svc" | "bob"),
        Step::Merge | Step::Revert => actor == "carol",
        Step::Sync => matches!(actor, "carol" | "svc"),
        Step::Verify => matches!(actor, "bob" | "alice" | "svc"),
        Step::Cleanup | Step::Postmortem | Step::Breakglass => actor == "bob",
        Step::AuditReview => actor == "dave",
        _ => false,
    }
}

/// Mostly the rightful actor, so that runs get deep into the lane; now and
/// then anyone, so that authorization is exercised too.
fn arb_step() -> impl Strategy<Value = (&'static str, Command)> {
    let anyone = prop::sample::select(vec!["alice", "erin", "bob", "carol", "dave", "svc"]);
    (arb_command(), anyone, 0u8..10).prop_map(|(cmd, anyone, dice)| {
        let rightful = match cmd.step() {
            Step::Approve | Step::Override => "alice",
            Step::Check | Step::Sync | Step::Verify => "svc",
            Step::Merge | Step::Revert => "carol",
            Step::AuditReview => "dave",
            _ => "bob",
        };
        (if dice < 8 { rightful } else { anyone }, cmd)
    })
}

fn rank(s: State) -> u8 {
    match s {
        State::Declared
        | State::FixSubmitted
        | State::Approved
        | State::PrOpen
        | State::ReadyToMerge => 0,
        State::Merged => 1,
        State::Synced => 2,
        State::Mitigated | State::RevertRequired => 3,
        State::Reverted | State::Closed | State::Aborted => 4,
    }
}

/// The steps that take a declared hotfix to READY_TO_MERGE.
fn to_ready() -> Vec<(&'static str, Command)> {
    let mut steps = vec![
        (
            "bob",
            Command::SubmitFix(FixProposal {
                branch: format!("hotfix/{INC}-fix"),
                sha: SHAS[0].into(),
                commit_message: format!("{INC}\napprover: @alice"),
                files: vec![ChangedFile {
                    path: "catalog/a.go".into(),
                    added: 1,
                    removed: 1,
                }],
            }),
        ),
        (
            "alice",
            Command::Approve {
                sha: Some(SHAS[0].into()),
            },
        ),
        (
            "bob",
            Command::OpenPullRequest {
                number: 7,
                url: "https://x/7".into(),
                title: None,
                labels: vec!["hotfix".into()],
            },
        ),
    ];
    for name in ["lint", "unit-changed-package", "scan", "build-sign-push"] {
        steps.push((
            "svc",
            Command::RecordCheck {
                name: name.into(),
                result: CheckResult::Success,
                sha: None,
            },
        ));
    }
    steps
}

fn run(
    policy: &Policy,
    dir: &Directory,
    now: Time,
    mut h: Hotfix,
    steps: &[(&str, Command)],
) -> Hotfix {
    for (actor, cmd) in steps {
        let ctx = Ctx {
            actor: &principal(dir, actor),
            now,
            policy,
            directory: dir,
        };
        h = apply(&ctx, &h, cmd)
            .unwrap_or_else(|e| panic!("{actor} {cmd:?}: {e}"))
            .hotfix;
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_lane_keeps_the_runbooks_invariants(
        steps in prop::collection::vec(
            (arb_step(), 0u64..100_000),
            1..80,
        ),
        from_ready in any::<bool>(),
    ) {
        let policy = Policy::default();
        let dir = roster();
        let mut now = chrono::Utc.with_ymd_and_hms(2026, 5, 20, 9, 0, 0).unwrap();
        let mut h = declared(&policy, &dir, now);
        if from_ready {
            // Half the runs start at the merge, to explore what follows it.
            h = run(&policy, &dir, now, h, &to_ready());
        }
        let required = policy.required_checks.clone();
        for ((actor, cmd), advance) in steps {
            now = after(now, Duration::from_secs(advance));
            let before = h.state(&required);
            let ctx = Ctx { actor: &principal(&dir, actor), now, policy: &policy, directory: &dir };
            let res = apply(&ctx, &h, &cmd);
            let step = cmd.step();
            match res {
                Err(Refusal::Denied { .. }) => prop_assert!(!may(step, actor), "{actor} denied {step}"),
                Err(_) => {}
                Ok(dec) => {
                    let n = dec.hotfix;
                    let after_state = n.state(&required);
                    prop_assert!(may(step, actor), "{actor} was allowed {step}");
                    prop_assert_eq!(n.version, h.version + 1);
                    prop_assert!(!dec.events.is_empty());
                    prop_assert!(!before.is_final() || (before == State::Reverted && after_state == State::Reverted),
                        "{step} succeeded from final {before}");
                    prop_assert!(rank(after_state) >= rank(before), "{before} -> {after_state} went back");
                    if step == Step::Merge {
                        prop_assert_eq!(before, State::ReadyToMerge);
                        let m = n.merge.as_ref().unwrap();
                        prop_assert_eq!(Some(m.sha.as_str()), h.approval.as_ref().map(|a| a.sha.as_str()));
                        prop_assert!(h.checks_not_passed(&required).is_empty());
                    }
                    if let Command::RecordCheck { name, result: CheckResult::Failure, .. } = &cmd
                        && name == SCAN_CHECK {
                            prop_assert_eq!(after_state, State::Aborted);
                        }
                    if h.merge.is_some() {
                        prop_assert_eq!(&n.merge, &h.merge, "a merge is never undone or replaced");
                    }
                    if let Some(a) = &n.approval {
                        prop_assert_eq!(a.by.as_str(), "alice");
                    }
                    if after_state == State::Closed {
                        prop_assert!(obligations(&n, &policy, now).iter().all(|o| o.done));
                        prop_assert!(n.verification.as_ref().is_some_and(|v| v.recovered));
                    }
                    if let Some(f) = &n.fix {
                        prop_assert!(f.changed_lines <= policy.max_fix_lines
                            || n.fix_override.as_ref().is_some_and(|o| o.sha == f.proposal.sha));
                    }
                    if let Command::RecordCleanup { labels, .. } = &cmd {
                        let labelled = labels.iter().any(|l| l == HOTFIX_LABEL);
                        prop_assert!(!labelled, "a cleanup PR with the hotfix label was accepted");
                    }
                    h = n;
                }
            }
        }
    }
}

#[test]
fn a_full_run_reaches_closed() {
    let policy = Policy::default();
    let dir = roster();
    let now = chrono::Utc.with_ymd_and_hms(2026, 5, 20, 9, 0, 0).unwrap();
    let h = declared(&policy, &dir, now);
    let mut steps = to_ready();
    steps.extend([
        ("carol", Command::Merge),
        (
            "svc",
            Command::Sync {
                revision: "r".into(),
                skip_canary: false,
            },
        ),
        (
            "svc",
            Command::Verify {
                recovered: true,
                observed_value: 0.001,
            },
        ),
        (
            "bob",
            Command::RecordCleanup {
                pr: 9,
                url: String::new(),
                labels: vec![],
            },
        ),
        (
            "bob",
            Command::RecordPostmortem {
                url: "https://wiki/pm".into(),
                why_hotfix: "w".into(),
                bypass_justified: BypassJustified::Yes,
                breakglass_used: false,
                cleanup_pr_link: None,
            },
        ),
        (
            "dave",
            Command::RecordAuditReview {
                findings: "ok".into(),
            },
        ),
    ]);
    let mut states = Vec::new();
    let mut h = h;
    for step in &steps {
        h = run(&policy, &dir, now, h, std::slice::from_ref(step));
        states.push(h.state(&policy.required_checks));
    }
    use State::*;
    assert_eq!(
        states,
        [
            FixSubmitted,
            Approved,
            PrOpen,
            PrOpen,
            PrOpen,
            PrOpen,
            ReadyToMerge,
            Merged,
            Synced,
            Mitigated,
            Mitigated,
            Mitigated,
            Closed
        ]
    );
}

#[test]
fn gate_opens_only_after_a_review_that_follows_the_latest_declaration() {
    let p = Policy::default();
    let review = TeamReview {
        by: "erin".into(),
        notes: "n".into(),
        at: chrono::Utc::now(),
    };
    let view = |count, latest, review_seq: Option<u64>| GateView {
        count_in_window: count,
        latest_in_window_seq: latest,
        last_review: review_seq.map(|_| review.clone()),
        last_review_seq: review_seq,
    };
    assert!(
        !p.gate(&view(3, Some(3), None)).closed,
        "3 is not more than 3"
    );
    let closed = p.gate(&view(4, Some(4), None));
    assert!(closed.closed);
    assert!(
        closed
            .unblock
            .contains("4 hotfixes were declared in the last 7 days (limit 3)"),
        "{}",
        closed.unblock
    );
    assert!(
        p.gate(&view(4, Some(4), Some(2))).closed,
        "a review before the 4th does not count"
    );
    assert!(!p.gate(&view(4, Some(4), Some(5))).closed);
    assert!(
        p.gate(&view(5, Some(6), Some(5))).closed,
        "one review admits one declaration"
    );
}

#[test]
fn a_head_that_is_not_the_recorded_fix_holds_the_gate_pending() {
    let policy = Policy::default();
    let dir = roster();
    let now = chrono::Utc.with_ymd_and_hms(2026, 5, 20, 9, 0, 0).unwrap();
    let required = policy.required_checks.clone();
    let ready = run(
        &policy,
        &dir,
        now,
        declared(&policy, &dir, now),
        &to_ready(),
    );
    assert_eq!(ready.state(&required), State::ReadyToMerge);
    let pushed = "9".repeat(40);
    let (state, why) = stray_head_gate(&ready, &pushed, &required).expect("held");
    assert_eq!(state, GateState::Pending);
    assert!(
        why == format!(
            "999999999999 is not {INC}'s recorded fix {}: record it (hotfixctl fix {INC}), have it approved",
            &SHAS[0][..12]
        ),
        "{why}"
    );
    assert!(why.chars().count() <= GATE_DESCRIPTION_MAX);
    // The recorded fix itself, a hotfix without a PR, or one merged: no
    // word from this rule.
    assert_eq!(stray_head_gate(&ready, SHAS[0], &required), None);
    let declared = declared(&policy, &dir, now);
    assert_eq!(stray_head_gate(&declared, &pushed, &required), None);
    let merged = run(&policy, &dir, now, ready, &[("carol", Command::Merge)]);
    assert_eq!(stray_head_gate(&merged, &pushed, &required), None);
}
