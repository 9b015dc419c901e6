//! The runbook's rules over facts hotfixd reads from outside services
//! (GitHub's checks and reviews, Prometheus' samples), and over what the
//! store counts. Each is a pure function of domain-owned facts: the
//! integrations map their vendor's answers into these types, the
//! application layer fetches and records, and the rules live here.

use super::{BypassJustified, Exercise, HOTFIX_LABEL, Hotfix};

/// The state of one check (a check run or a commit status) on a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Pending,
    Passed,
    Failed,
}

/// One check run or commit status on a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFacts {
    pub name: String,
    pub state: CheckState,
    /// Status and conclusion or description, and a link, for the timeline.
    pub detail: String,
}

/// One review of a pull request.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub reviewer: String,
    /// APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    pub state: String,
    pub commit: String,
}

/// Step 4: the state of the required check `name` from every report on the
/// commit, and what they say. A check may be reported both as a check run
/// and as a status: a failure anywhere counts, then anything pending (or
/// nothing reported yet), and only then passed.
pub fn required_check(name: &str, reported: &[CheckFacts]) -> (CheckState, String) {
    let mine: Vec<&CheckFacts> = reported.iter().filter(|c| c.name == name).collect();
    let state = if mine.iter().any(|c| c.state == CheckState::Failed) {
        CheckState::Failed
    } else if mine.is_empty() || mine.iter().any(|c| c.state == CheckState::Pending) {
        CheckState::Pending
    } else {
        CheckState::Passed
    };
    let detail = if mine.is_empty() {
        "not reported yet".to_string()
    } else {
        mine.iter()
            .map(|c| c.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    (state, detail)
}

/// Step 7: the cleanup PR went through the normal pipeline: it is merged
/// and carries no `hotfix` label. The refusal completes "cleanup PR R#N …".
pub fn cleanup_merged_normally(merged: bool, labels: &[String]) -> Result<(), String> {
    if !merged {
        return Err("is not merged yet; merge it through normal review first".into());
    }
    if labels.iter().any(|l| l == HOTFIX_LABEL) {
        return Err(format!(
            "carries the '{HOTFIX_LABEL}' label: the cleanup goes through the normal pipeline"
        ));
    }
    Ok(())
}

/// Step 7: the cleanup PR was approved by someone other than its author;
/// the approvers, in name order.
pub fn cleanup_approvers(author: &str, reviews: &[Review]) -> Result<Vec<String>, String> {
    let approvers: std::collections::BTreeSet<&str> = reviews
        .iter()
        .filter(|r| r.state == "APPROVED" && r.reviewer != author)
        .map(|r| r.reviewer.as_str())
        .collect();
    if approvers.is_empty() {
        return Err(format!(
            "has no approving review by someone other than its author @{author}"
        ));
    }
    Ok(approvers.into_iter().map(str::to_string).collect())
}

/// Step 7: the normal pipeline ran on the cleanup PR's head and every check
/// passed; how many did.
pub fn cleanup_checks_passed(checks: &[CheckFacts]) -> Result<usize, String> {
    if checks.is_empty() {
        return Err("has no checks reported on its head; the normal pipeline must have run".into());
    }
    let not_passed: Vec<String> = checks
        .iter()
        .filter(|c| c.state != CheckState::Passed)
        .map(|c| format!("{} ({})", c.name, c.detail))
        .collect();
    if !not_passed.is_empty() {
        return Err(format!(
            "has checks that did not pass: {}",
            not_passed.join(", ")
        ));
    }
    Ok(checks.len())
}

/// Step 6 measured: consecutive samples below the threshold. A sample at or
/// above it, or one that could not be read, starts the count again.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Samples {
    /// Consecutive samples below the threshold so far.
    pub below: u32,
    /// The last value read.
    pub last: Option<f64>,
}

impl Samples {
    /// Counts one sample (`None`: it could not be read); whether it was
    /// below the threshold.
    pub fn observe(&mut self, value: Option<f64>, threshold: f64) -> bool {
        let below = value.is_some_and(|v| v < threshold);
        self.below = if below { self.below + 1 } else { 0 };
        if value.is_some() {
            self.last = value;
        }
        below
    }

    /// Recovered: `consecutive` samples in a row below the threshold.
    pub fn recovered(&self, consecutive: u32) -> bool {
        self.below >= consecutive
    }
}

/// The postmortem a change records, if it records the hotfix's first one:
/// whether it said "yes, but a rollback would have worked" (the report's
/// rollback-training count).
pub fn first_postmortem(before: Option<&Hotfix>, after: &Hotfix) -> Option<bool> {
    let pm = after.postmortem.as_ref()?;
    before
        .is_some_and(|b| b.postmortem.is_none())
        .then_some(pm.bypass_justified == BypassJustified::YesButRollback)
}

impl Exercise {
    /// Whether the hotfix lane itself (not a flag flip or a rollback) was
    /// exercised: what keeps the lane from going stale.
    pub fn by_hotfix_lane(&self) -> bool {
        self.resolved_by.starts_with("hotfix")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, state: CheckState, detail: &str) -> CheckFacts {
        CheckFacts {
            name: name.into(),
            state,
            detail: detail.into(),
        }
    }

    fn review(who: &str, state: &str) -> Review {
        Review {
            reviewer: who.into(),
            state: state.into(),
            commit: "abc".into(),
        }
    }

    #[test]
    fn a_required_check_fails_anywhere_then_waits_then_passes() {
        use CheckState::*;
        assert_eq!(
            required_check("scan", &[]),
            (Pending, "not reported yet".into())
        );
        let both = [
            check("scan", Passed, "run: success"),
            check("scan", Failed, "status: failure"),
            check("lint", Failed, "other"),
        ];
        assert_eq!(
            required_check("scan", &both),
            (Failed, "run: success; status: failure".into())
        );
        let waiting = [check("scan", Passed, "a"), check("scan", Pending, "b")];
        assert_eq!(required_check("scan", &waiting).0, Pending);
        assert_eq!(
            required_check("scan", &[check("scan", Passed, "a")]).0,
            Passed
        );
        // Another check's failure is not this one's.
        assert_eq!(
            required_check("lint", &[check("scan", Failed, "x")]).0,
            Pending
        );
    }

    #[test]
    fn a_cleanup_pr_must_be_merged_without_the_hotfix_label() {
        assert!(
            cleanup_merged_normally(false, &[])
                .unwrap_err()
                .contains("not merged")
        );
        let labelled = [HOTFIX_LABEL.to_string()];
        assert!(
            cleanup_merged_normally(true, &labelled)
                .unwrap_err()
                .contains("'hotfix' label")
        );
        assert_eq!(cleanup_merged_normally(true, &["docs".into()]), Ok(()));
    }

    #[test]
    fn a_cleanup_pr_needs_an_approval_by_someone_but_its_author() {
        let own = [review("bob", "APPROVED"), review("carol", "COMMENTED")];
        let err = cleanup_approvers("bob", &own).unwrap_err();
        assert!(err.contains("other than its author @bob"), "{err}");
        let ok = [
            review("dave", "APPROVED"),
            review("carol", "APPROVED"),
            review("carol", "APPROVED"),
            review("erin", "CHANGES_REQUESTED"),
        ];
        assert_eq!(
            cleanup_approvers("bob", &ok),
            Ok(vec!["carol".into(), "dave".into()])
        );
    }

    #[test]
    fn a_cleanup_pr_needs_every_check_passed_and_at_least_one() {
        assert!(
            cleanup_checks_passed(&[])
                .unwrap_err()
                .contains("no checks reported")
        );
        let mixed = [
            check("build", CheckState::Passed, "ok"),
            check("test", CheckState::Pending, "queued"),
        ];
        assert_eq!(
            cleanup_checks_passed(&mixed),
            Err("has checks that did not pass: test (queued)".into())
        );
        assert_eq!(
            cleanup_checks_passed(&[check("build", CheckState::Passed, "ok")]),
            Ok(1)
        );
    }

    #[test]
    fn recovery_needs_consecutive_samples_below_the_threshold() {
        let mut s = Samples::default();
        assert!(s.observe(Some(0.001), 0.01));
        assert!(s.observe(Some(0.002), 0.01));
        assert!(!s.recovered(3));
        // At the threshold is not below; an unreadable sample breaks the run
        // but keeps the last value.
        assert!(!s.observe(Some(0.01), 0.01));
        assert_eq!(s.below, 0);
        s.observe(Some(0.0), 0.01);
        assert!(!s.observe(None, 0.01));
        assert_eq!((s.below, s.last), (0, Some(0.0)));
        for _ in 0..3 {
            s.observe(Some(0.0), 0.01);
        }
        assert!(s.recovered(3));
    }

    #[test]
    fn only_a_hotfixs_first_postmortem_counts() {
        use super::super::model_tests_support::hotfix;
        let before = hotfix();
        assert_eq!(first_postmortem(Some(&before), &before), None);
        let mut after = before.clone();
        after.postmortem = Some(super::super::PostmortemRecord {
            url: "https://wiki/pm".into(),
            why_hotfix: "no flag".into(),
            bypass_justified: BypassJustified::YesButRollback,
            breakglass_used: false,
            cleanup_pr_link: String::new(),
            by: "bob".into(),
            at: after.declared_at,
        });
        assert_eq!(first_postmortem(Some(&before), &after), Some(true));
        // Declared with one already (no "before") or recorded again: not
        // counted a second time.
        assert_eq!(first_postmortem(None, &after), None);
        assert_eq!(first_postmortem(Some(&after), &after), None);
    }

    #[test]
    fn the_lane_is_exercised_by_hotfixes_not_by_flags_or_rollbacks() {
        let x = |by: &str| Exercise {
            at: chrono::DateTime::UNIX_EPOCH,
            incident_id: "INC-1".into(),
            resolved_by: by.into(),
            drill: false,
        };
        assert!(x("hotfix").by_hotfix_lane());
        assert!(x("hotfix-reverted").by_hotfix_lane());
        assert!(!x("flag").by_hotfix_lane());
        assert!(!x("rollback").by_hotfix_lane());
    }
}
