//! From what was typed to what is sent: the CLI's value enums as the wire's
//! enums, and the requests that are a pure function of the command line.
//! No I/O and no daemon: unit-tested here. The spellings people type are
//! the wire names (`hotfix_api::names`), checked below, so each enum value
//! is named once, in the proto.

use hotfix_api::pb;

use crate::cli::{Bypass, CheckResult, Criterion, Declare, Route, Severity};

impl From<Severity> for pb::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::P0 => pb::Severity::P0,
            Severity::P1 => pb::Severity::P1,
            Severity::P2 => pb::Severity::P2,
        }
    }
}

impl From<Criterion> for pb::Criterion {
    fn from(c: Criterion) -> Self {
        match c {
            Criterion::CustomersDown => pb::Criterion::CustomersDown,
            Criterion::DataLoss => pb::Criterion::DataLoss,
            Criterion::SafetyRegulatory => pb::Criterion::SafetyRegulatory,
        }
    }
}

impl From<Route> for pb::MitigationRoute {
    fn from(r: Route) -> Self {
        match r {
            Route::Flag => pb::MitigationRoute::Flag,
            Route::Rollback => pb::MitigationRoute::Rollback,
        }
    }
}

impl From<CheckResult> for pb::CheckResult {
    fn from(r: CheckResult) -> Self {
        match r {
            CheckResult::Success => pb::CheckResult::Success,
            CheckResult::Failure => pb::CheckResult::Failure,
            CheckResult::Pending => pb::CheckResult::Pending,
        }
    }
}

impl From<Bypass> for pb::BypassJustified {
    fn from(b: Bypass) -> Self {
        match b {
            Bypass::Yes => pb::BypassJustified::Yes,
            Bypass::YesButRollback => pb::BypassJustified::YesButRollback,
            Bypass::No => pb::BypassJustified::No,
        }
    }
}

/// `hotfixctl declare`.
pub fn declare(d: Declare, mutation: Option<pb::Mutation>) -> pb::DeclareRequest {
    pb::DeclareRequest {
        mutation,
        incident_id: d.incident,
        severity: pb::Severity::from(d.severity) as i32,
        criteria: d
            .criteria
            .into_iter()
            .map(|c| pb::Criterion::from(c) as i32)
            .collect(),
        symptom: d.symptom,
        approver: d.approver,
        cleanup_owner: d.cleanup_owner,
        merge_eta: d.eta,
        repository: d.repo,
        argocd_app: d.app,
        flag_can_mitigate: d.flag_can_mitigate,
        rollback_can_mitigate: d.rollback_can_mitigate,
        fix_unknown: d.fix_unknown,
        drill: d.drill,
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, ValueEnum};

    use super::*;
    use crate::cli::{Cli, Cmd};

    /// The value people type, as clap spells it.
    fn typed<T: ValueEnum>(v: &T) -> String {
        v.to_possible_value().unwrap().get_name().to_string()
    }

    #[test]
    fn every_value_people_type_is_the_wire_name() {
        for c in Criterion::value_variants() {
            let wire = hotfix_api::criterion_name(pb::Criterion::from(*c) as i32);
            assert_eq!(typed(c), wire);
        }
        for r in Route::value_variants() {
            let wire = hotfix_api::route_name(pb::MitigationRoute::from(*r) as i32);
            assert_eq!(typed(r), wire);
        }
        for r in CheckResult::value_variants() {
            let wire = hotfix_api::check_result_name(pb::CheckResult::from(*r) as i32);
            assert_eq!(typed(r), wire);
        }
        for b in Bypass::value_variants() {
            let wire = hotfix_api::bypass_name(pb::BypassJustified::from(*b) as i32);
            assert_eq!(typed(b), wire);
        }
        for s in Severity::value_variants() {
            let wire = pb::Severity::from(*s)
                .as_str_name()
                .trim_start_matches("SEVERITY_");
            assert_eq!(typed(s), wire.to_ascii_lowercase());
        }
    }

    #[test]
    fn a_declare_command_line_is_its_request() {
        let cli = Cli::try_parse_from([
            "hotfixctl",
            "declare",
            "INC-2026-05-20-001",
            "--symptom",
            "checkout 500s",
            "--criterion",
            "customers-down",
            "--criterion",
            "data-loss",
            "--approver",
            "alice",
            "--cleanup-owner",
            "bob",
            "--eta",
            "09:30",
            "--repo",
            "shop/checkout",
            "--app",
            "checkout",
            "--severity",
            "p1",
            "--drill",
        ])
        .unwrap();
        let Cmd::Declare(d) = cli.command else {
            panic!("parsed as declare");
        };
        let m = Some(pb::Mutation {
            request_id: "r1".into(),
            expected_version: None,
        });
        let r = declare(d, m.clone());
        assert_eq!(r.mutation, m);
        assert_eq!(r.incident_id, "INC-2026-05-20-001");
        assert_eq!(r.severity, pb::Severity::P1 as i32);
        assert_eq!(
            r.criteria,
            [
                pb::Criterion::CustomersDown as i32,
                pb::Criterion::DataLoss as i32
            ]
        );
        assert_eq!(
            (
                r.approver.as_str(),
                r.cleanup_owner.as_str(),
                r.merge_eta.as_str()
            ),
            ("alice", "bob", "09:30")
        );
        assert_eq!(
            (r.repository.as_str(), r.argocd_app.as_str()),
            ("shop/checkout", "checkout")
        );
        assert!(r.drill && !r.flag_can_mitigate && !r.rollback_can_mitigate && !r.fix_unknown);
    }
}
