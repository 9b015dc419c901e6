//! Entry points of the fuzz targets in `fuzz/` (`cargo +nightly fuzz run
//! NAME`). They live here so that `cargo test` replays the committed corpus
//! through the same code (server/tests/fuzz_corpus.rs). Each one feeds
//! untrusted bytes to a parser or validator and checks what must hold for
//! any input: no panic, every refusal names its field, and what is accepted
//! really has the promised shape.

use crate::domain::validate::*;
use crate::domain::{Command, Refusal};

fn named(r: Refusal, field: &str) {
    match r {
        Refusal::Invalid { field: f, .. } => assert_eq!(f, field, "the refusal names its field"),
        other => panic!("a validator answered {other:?}"),
    }
}

/// Every validator, on the input as one string.
pub fn validators(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match check_incident_id("incident_id", s) {
        Ok(()) => {
            assert!(
                s.len() == 18 && s.starts_with("INC-"),
                "{s:?} accepted as an incident id"
            );
            assert!(s[4..].bytes().all(|b| b.is_ascii_digit() || b == b'-'));
        }
        Err(e) => named(e, "incident_id"),
    }
    match normalize_handle("approver", s) {
        Ok(h) => assert!(!h.is_empty() && h.len() <= 39 && !h.contains('@')),
        Err(e) => named(e, "approver"),
    }
    if let Err(e) = check_eta("merge_eta", s) {
        named(e, "merge_eta");
    }
    match check_repository("repository", s) {
        Ok(()) => {
            let (owner, name) = s.split_once('/').expect("owner/name");
            assert!(
                owner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && name != "."
                    && name != ".."
                    && !name.contains('/'),
                "{s:?}"
            );
        }
        Err(e) => named(e, "repository"),
    }
    if let Err(e) = check_app("argocd_app", s) {
        named(e, "argocd_app");
    }
    if let Err(e) = check_branch("branch", s, "INC-2026-05-20-001") {
        named(e, "branch");
    }
    match check_sha("sha", s) {
        // SHA-1 (40) or SHA-256 (64) object names, lowercase as git prints them.
        Ok(()) => assert!(
            (s.len() == 40 || s.len() == 64)
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{s:?}"
        ),
        Err(e) => named(e, "sha"),
    }
    match check_path("files.path", s) {
        Ok(()) => assert!(
            !s.starts_with('/') && !s.split('/').any(|p| p == ".."),
            "{s:?}"
        ),
        Err(e) => named(e, "files.path"),
    }
    if let Err(e) = check_url("url", s) {
        named(e, "url");
    }
    if let Err(e) = check_request_id("request_id", s) {
        named(e, "request_id");
    }
    match check_text("commit_message", s, MAX_COMMIT_MESSAGE) {
        Ok(()) => assert!(!s.trim().is_empty()),
        Err(e) => named(e, "commit_message"),
    }
}

/// A lane command as JSON (the shape commands are stored in): its input
/// checks never panic and name the field they refuse.
pub fn command(data: &[u8]) {
    let Ok(cmd) = serde_json::from_slice::<Command>(data) else {
        return;
    };
    if let Err(r) = cmd.validate() {
        assert!(
            matches!(r, Refusal::Invalid { ref field, .. } if !field.is_empty()),
            "{r:?}"
        );
    }
}

/// The configuration file: parsing and policy checks never panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = toml::from_str::<crate::config::FileConfig>(text) {
        if let Ok(p) = file.policy.to_policy() {
            assert!(
                p.required_checks.iter().any(|c| c == "scan"),
                "scan configured away"
            );
        }
        let _ = crate::auth::Roster::new(&file.principals);
    }
}

/// Bearer tokens and the authorization header: only the right token
/// authenticates, and no header value panics the interceptor.
pub fn token(data: &[u8]) {
    use crate::auth::{PrincipalEntry, Roster, hash_token};
    use crate::domain::Role;
    let roster = Roster::new(&[PrincipalEntry {
        handle: "bob".into(),
        roles: [Role::Engineer].into(),
        token_sha256: hex::encode(hash_token("hfx_the-right-token")),
        san: String::new(),
    }])
    .expect("roster");
    let roles = crate::roles::Roles::from_roster(roster.directory().clone());
    if let Ok(s) = std::str::from_utf8(data) {
        let who = roster.authenticate(s).map(|p| p.handle.clone());
        assert_eq!(who.is_some(), s == "hfx_the-right-token");
    }
    let mut req = tonic::Request::new(());
    if let Ok(v) = tonic::metadata::MetadataValue::try_from(data) {
        req.metadata_mut().insert("authorization", v);
        if let Ok(r) = roster.intercept(&roles, req) {
            let p = crate::auth::principal(&r).expect("a principal");
            assert_eq!(p.handle, "bob");
            let header = String::from_utf8_lossy(data);
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim);
            assert_eq!(
                token,
                Some("hfx_the-right-token"),
                "authenticated by {data:?}"
            );
        }
    }
}

/// Audit records as JSON lines: verifying never panics, and records sealed
/// in order always verify.
pub fn audit_chain(data: &[u8]) {
    use crate::store::{AuditRecord, chain};
    let text = String::from_utf8_lossy(data);
    let records: Vec<AuditRecord> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let _ = chain::verify(records.iter().cloned().map(Ok));
    let mut prev = chain::GENESIS;
    let sealed: Vec<AuditRecord> = records
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.seq = i as u64 + 1;
            prev = chain::seal(&mut r, &prev);
            r
        })
        .collect();
    let report = chain::verify(sealed.iter().cloned().map(Ok));
    assert!(report.first_bad.is_none(), "{report:?}");
    assert_eq!(report.verified, sealed.len() as u64);
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets by name, for the corpus replay.
pub const TARGETS: [(&str, Target); 5] = [
    ("validators", validators),
    ("command", command),
    ("config", config),
    ("token", token),
    ("audit_chain", audit_chain),
];
