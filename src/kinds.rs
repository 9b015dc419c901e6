//! The kinds of event in the event log, named once: the daemon writes
//! them, the chat relay and the CLI read them. `Event.kind` on the wire and
//! in the store is [`EventKind::as_str`]; a kind this build does not know
//! (written by a newer daemon) parses to `None` and is shown as it is.

macro_rules! event_kinds {
    ($( $(#[doc = $doc:literal])* $variant:ident = $wire:literal, )*) => {
        /// What an event records. See each variant for who writes it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl EventKind {
            /// Every kind, in the order of the runbook.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The kind as the wire and the store spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( EventKind::$variant => $wire, )*
                }
            }

            /// The kind a wire string names, if this build knows it.
            pub fn parse(wire: &str) -> Option<EventKind> {
                match wire {
                    $( $wire => Some(EventKind::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    // Steps of the lane, decided by the domain.
    /// Step 1: a hotfix is declared.
    Declared = "declared",
    /// Step 1: a declaration warning (rate, quarter, training).
    Flagged = "flagged",
    /// Resolved by a flag flip or a rollback instead of a hotfix.
    Mitigated = "mitigated",
    /// Step 2: the fix commit is recorded.
    FixSubmitted = "fix_submitted",
    /// Step 2: a fix over the size limits is let through, with a reason.
    FixOverride = "fix_override",
    /// Step 2: the approver approved the fix at a SHA.
    Approved = "approved",
    /// Step 2: a new fix voided the approval.
    ApprovalVoided = "approval_voided",
    /// Step 3: the labelled PR is recorded.
    PrOpened = "pr_opened",
    /// Step 4: a fast-path check result is recorded.
    CheckRecorded = "check_recorded",
    /// The hotfix ended without shipping (a failed security scan).
    Aborted = "aborted",
    /// Step 5: the admin merge is recorded.
    Merged = "merged",
    /// Step 5: the Argo CD sync is recorded.
    Synced = "synced",
    /// Step 6: the symptom recovered.
    Verified = "verified",
    /// Step 6: the symptom did not recover; revert.
    RevertRequired = "revert_required",
    /// Step 6: the revert is recorded.
    Reverted = "reverted",
    /// Step 7: the cleanup PR is recorded.
    CleanupRecorded = "cleanup_recorded",
    /// Step 8: the postmortem is recorded.
    PostmortemRecorded = "postmortem_recorded",
    /// Step 9: the audit review is recorded.
    AuditReviewed = "audit_reviewed",
    /// Breakglass access was granted.
    BreakglassGranted = "breakglass_granted",
    /// Breakglass access was cleaned up.
    BreakglassCleaned = "breakglass_cleaned",
    /// Every obligation is done.
    Closed = "closed",
    /// An obligation went past its deadline (reported once).
    ObligationOverdue = "obligation_overdue",
    /// The platform team reviewed the lane (reopens the rate gate).
    TeamReview = "team_review",

    // Steps hotfixd performs on GitHub.
    /// Step 2: the fix was read from GitHub.
    FixRead = "fix_read",
    /// Step 3: the branch's open PR is reused.
    PrReused = "pr_reused",
    /// Step 3 in a drill: the PR that would have been opened.
    PrDryRun = "pr_dry_run",
    /// Step 3: GitHub was asked to open the PR (intent).
    PrRequested = "pr_requested",
    /// Step 3: opening or recording the PR failed.
    PrFailed = "pr_failed",
    /// Step 3 after a restart: the PR found on GitHub.
    PrReconciled = "pr_reconciled",
    /// Step 3 after a restart: no PR was opened.
    PrNotCreated = "pr_not_created",
    /// Step 3 in a drill: the label that would have been added.
    LabelDryRun = "label_dry_run",
    /// Step 4: hotfixd follows the PR's checks on GitHub.
    ChecksFollowing = "checks_following",
    /// Step 4: a check changed on GitHub.
    CheckProgress = "check_progress",
    /// Step 4: a required check failed.
    CheckFailed = "check_failed",
    /// Step 4: recording a check was refused; following stopped.
    ChecksFailed = "checks_failed",
    /// Step 4: every required check passed.
    ChecksPassed = "checks_passed",
    /// Step 4: following stopped at its timeout.
    ChecksTimeout = "checks_timeout",
    /// Step 7: the cleanup PR was verified on GitHub.
    CleanupVerified = "cleanup_verified",
    /// Step 5 in a drill: the merge that would have been made.
    MergeDryRun = "merge_dry_run",
    /// Step 5: GitHub was asked to merge (intent).
    MergeRequested = "merge_requested",
    /// Step 5: GitHub refused the merge (head moved, not mergeable).
    MergeRefused = "merge_refused",
    /// Step 5: the merge failed (GitHub failing, or recording refused).
    MergeFailed = "merge_failed",
    /// Step 5 after a restart: the merge found on GitHub.
    MergeReconciled = "merge_reconciled",
    /// Step 5 after a restart: the merge was not made.
    MergeNotCompleted = "merge_not_completed",
    /// Step 6 in a drill: the revert that would have been made.
    RevertDryRun = "revert_dry_run",
    /// Step 6: GitHub was asked to open the revert PR (intent).
    RevertRequested = "revert_requested",
    /// Step 6: GitHub opened the revert PR.
    RevertPrOpened = "revert_pr_opened",
    /// Step 6: opening or merging the revert failed.
    RevertFailed = "revert_failed",
    /// Step 6 after a restart: the revert found merged.
    RevertReconciled = "revert_reconciled",
    /// Step 6 after a restart: the revert is not complete.
    RevertNotCompleted = "revert_not_completed",
    /// Step 6: the revert is deployed, Synced and Healthy.
    RevertSynced = "revert_synced",

    // Steps hotfixd performs on Argo CD and Prometheus.
    /// Step 5: Argo CD was asked to sync (intent).
    SyncRequested = "sync_requested",
    /// Step 5: another Argo CD operation is waited out.
    SyncWaiting = "sync_waiting",
    /// Step 5: the app's sync and health changed.
    SyncProgress = "sync_progress",
    /// Step 5 in a drill: Argo CD dry-ran the sync.
    SyncDryRun = "sync_dry_run",
    /// Step 5: the sync failed or timed out.
    SyncFailed = "sync_failed",
    /// Step 5: hotfixd shut down while syncing.
    SyncInterrupted = "sync_interrupted",
    /// Step 5 after a restart: the sync found done.
    SyncReconciled = "sync_reconciled",
    /// Step 5 after a restart: the sync is not done.
    SyncNotCompleted = "sync_not_completed",
    /// Step 6: measuring in Prometheus started.
    VerificationStarted = "verification_started",
    /// Step 6: one sample.
    VerificationSample = "verification_sample",
    /// Step 6: measuring could not decide.
    VerificationFailed = "verification_failed",
    /// Step 6: hotfixd shut down while measuring.
    VerificationInterrupted = "verification_interrupted",

    // The daemon's own.
    /// A chat post failed after its retries.
    NotificationFailed = "notification_failed",
    /// A drill's chat post, not sent.
    NotificationSkipped = "notification_skipped",
    /// A signed checkpoint of the audit trail.
    AuditCheckpoint = "audit_checkpoint",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_is_named_once() {
        let mut seen = std::collections::BTreeSet::new();
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
            assert!(seen.insert(k.as_str()), "{k} named twice");
            assert!(
                k.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{k}"
            );
        }
        assert_eq!(EventKind::parse("merged"), Some(EventKind::Merged));
        assert_eq!(EventKind::parse("from_a_newer_daemon"), None);
    }
}
