//! Enum values as people and JSON output spell them: the proto names
//! without their type prefix, lowercase-with-dashes for CLI values.

use crate::pb;

/// `STATE_PR_OPEN` -> `PR_OPEN`.
pub fn state_name(state: i32) -> &'static str {
    let s = pb::State::try_from(state).unwrap_or(pb::State::Unspecified);
    s.as_str_name().trim_start_matches("STATE_")
}

/// `PR_OPEN` or `pr-open` -> the state.
pub fn parse_state(name: &str) -> Option<pb::State> {
    let upper = name.trim().to_ascii_uppercase().replace('-', "_");
    pb::State::from_str_name(&format!("STATE_{upper}")).filter(|s| *s != pb::State::Unspecified)
}

fn strip_lower(full: &str, prefix: &str) -> String {
    full.trim_start_matches(prefix)
        .to_ascii_lowercase()
        .replace('_', "-")
}

pub fn check_result_name(v: i32) -> String {
    let r = pb::CheckResult::try_from(v).unwrap_or(pb::CheckResult::Unspecified);
    strip_lower(r.as_str_name(), "CHECK_RESULT_")
}

pub fn criterion_name(v: i32) -> String {
    let r = pb::Criterion::try_from(v).unwrap_or(pb::Criterion::Unspecified);
    strip_lower(r.as_str_name(), "CRITERION_")
}

pub fn bypass_name(v: i32) -> String {
    let r = pb::BypassJustified::try_from(v).unwrap_or(pb::BypassJustified::Unspecified);
    strip_lower(r.as_str_name(), "BYPASS_JUSTIFIED_")
}

pub fn route_name(v: i32) -> String {
    let r = pb::MitigationRoute::try_from(v).unwrap_or(pb::MitigationRoute::Unspecified);
    strip_lower(r.as_str_name(), "MITIGATION_ROUTE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        assert_eq!(state_name(pb::State::PrOpen as i32), "PR_OPEN");
        assert_eq!(parse_state("pr-open"), Some(pb::State::PrOpen));
        assert_eq!(parse_state("UNSPECIFIED"), None);
        assert_eq!(parse_state("nope"), None);
        assert_eq!(
            criterion_name(pb::Criterion::CustomersDown as i32),
            "customers-down"
        );
    }
}
