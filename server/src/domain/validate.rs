//! Input validation: every check names the field it rejects.
//!
//! Bounds here are the daemon's message limits; the gRPC layer relies on them
//! so that no string or list reaches the store unbounded.

use chrono::NaiveDate;

use super::Refusal;

pub const MAX_SYMPTOM: usize = 200;
pub const MAX_TEXT: usize = 4000;
pub const MAX_COMMIT_MESSAGE: usize = 10_000;
pub const MAX_URL: usize = 2048;
pub const MAX_TITLE: usize = 256;
pub const MAX_FILES: usize = 1000;
pub const MAX_PATH: usize = 1024;
pub const MAX_LABELS: usize = 100;
pub const MAX_LABEL: usize = 50;
pub const MAX_NAME: usize = 100;
pub const MAX_REQUEST_ID: usize = 128;
pub const MAX_BRANCH: usize = 200;

fn invalid(field: &str, reason: impl Into<String>) -> Refusal {
    Refusal::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Characters no typed text may hold: they can rewrite what a terminal,
/// a chat client or a page shows around them. C0 and C1 controls (but the
/// line feed and tab of multi-line text), the bidirectional embeddings,
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder
/// what follows, and the Unicode line and paragraph separators.
fn forbidden(c: char, multi_line: bool) -> Option<&'static str> {
    match c {
        '\n' | '\t' if multi_line => None,
        '\n' | '\r' | '\u{2028}' | '\u{2029}' => Some("a line break (it must be one line)"),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            Some("a bidirectional-text control (it would reorder what is shown)")
        }
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

fn check_chars(field: &str, value: &str, multi_line: bool) -> Result<(), Refusal> {
    match value
        .chars()
        .find_map(|c| forbidden(c, multi_line).map(|why| (c, why)))
    {
        Some((c, why)) => Err(invalid(
            field,
            format!("contains {why} (U+{:04X})", u32::from(c)),
        )),
        None => Ok(()),
    }
}

fn check_bounded(field: &str, value: &str, max: usize, multi_line: bool) -> Result<(), Refusal> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("is longer than {max} characters")));
    }
    check_chars(field, value, multi_line)
}

/// A required, bounded text of one or more lines (a commit message, notes).
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Refusal> {
    check_bounded(field, value, max, true)
}

/// A required, bounded text of one line (a title, a role, a reason): it is
/// shown inside other lines, where a line break would forge a line of its
/// own.
pub fn check_line(field: &str, value: &str, max: usize) -> Result<(), Refusal> {
    check_bounded(field, value, max, false)
}

/// An optional bounded text (empty allowed).
pub fn check_optional_text(field: &str, value: &str, max: usize) -> Result<(), Refusal> {
    if value.is_empty() {
        Ok(())
    } else {
        check_text(field, value, max)
    }
}

/// `INC-YYYY-MM-DD-NNN`, with a real calendar date.
pub fn check_incident_id(field: &str, id: &str) -> Result<(), Refusal> {
    let bad = || {
        invalid(
            field,
            format!(
                "'{}' is not an incident id of the form INC-YYYY-MM-DD-NNN",
                clip(id)
            ),
        )
    };
    let rest = id.strip_prefix("INC-").ok_or_else(bad)?;
    let b = rest.as_bytes();
    if b.len() != 14 || b[4] != b'-' || b[7] != b'-' || b[10] != b'-' {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10) && digits(11..14)) {
        return Err(bad());
    }
    NaiveDate::parse_from_str(&rest[..10], "%Y-%m-%d").map_err(|_| {
        invalid(
            field,
            format!("'{}' names a date that does not exist", clip(id)),
        )
    })?;
    Ok(())
}

/// A GitHub-style login: letters, digits, `-` and `_`, at most 39, not
/// starting with `-`.
fn is_login(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 39
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !h.starts_with('-')
}

/// A GitHub-style handle; a leading `@` is accepted and dropped.
pub fn normalize_handle(field: &str, handle: &str) -> Result<String, Refusal> {
    let h = handle.strip_prefix('@').unwrap_or(handle);
    if is_login(h) {
        Ok(h.to_string())
    } else {
        Err(invalid(
            field,
            format!("'{}' is not a valid handle", clip(handle)),
        ))
    }
}

/// `HH:MM` (UTC).
pub fn check_eta(field: &str, eta: &str) -> Result<(), Refusal> {
    let ok = eta.len() == 5
        && eta.as_bytes()[2] == b':'
        && eta[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && eta[3..].parse::<u8>().is_ok_and(|m| m < 60)
        && eta
            .bytes()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("'{}' is not a time of the form HH:MM (UTC)", clip(eta)),
        ))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// `owner/name`, as GitHub spells repositories.
pub fn check_repository(field: &str, repo: &str) -> Result<(), Refusal> {
    let ok = repo.len() <= 140
        && repo.split_once('/').is_some_and(|(o, n)| {
            is_login(o) && !n.is_empty() && n.chars().all(is_name_char) && n != "." && n != ".."
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "'{}' is not a repository of the form owner/name",
                clip(repo)
            ),
        ))
    }
}

/// An Argo CD application name (a Kubernetes resource name).
pub fn check_app(field: &str, app: &str) -> Result<(), Refusal> {
    let ok = !app.is_empty()
        && app.len() <= 253
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && app.starts_with(|c: char| c.is_ascii_alphanumeric())
        && app.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "'{}' is not an Argo CD application name (lowercase letters, digits, '-', '.')",
                clip(app)
            ),
        ))
    }
}

/// `hotfix/<incident-id>-<slug>`.
pub fn check_branch(field: &str, branch: &str, incident_id: &str) -> Result<(), Refusal> {
    let prefix = format!("hotfix/{incident_id}-");
    let slug = branch.strip_prefix(&prefix);
    let ok = branch.len() <= MAX_BRANCH
        && slug.is_some_and(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "'{}' must be hotfix/{incident_id}-<slug> (slug: lowercase letters, digits, '-')",
                clip(branch)
            ),
        ))
    }
}

fn lower_hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// A full commit SHA: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn check_sha(field: &str, sha: &str) -> Result<(), Refusal> {
    let ok = (sha.len() == 40 || sha.len() == 64) && lower_hex(sha);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "'{}' is not a full commit SHA (40 or 64 lowercase hex digits)",
                clip(sha)
            ),
        ))
    }
}

/// What an approver names: a full commit SHA or a prefix of at least 7 of
/// its lowercase hex digits (as `git log --oneline` shows it).
pub fn check_sha_ref(field: &str, sha: &str) -> Result<(), Refusal> {
    let ok = (7..=64).contains(&sha.len()) && lower_hex(sha);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "'{}' is not a commit SHA or a prefix of at least 7 lowercase hex digits",
                clip(sha)
            ),
        ))
    }
}

/// A relative path inside the repository.
pub fn check_path(field: &str, path: &str) -> Result<(), Refusal> {
    let ok = !path.is_empty()
        && path.len() <= MAX_PATH
        && !path.starts_with('/')
        && !path.chars().any(char::is_control)
        && path.split('/').all(|c| !c.is_empty() && c != "..");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("'{}' is not a relative path in the repository", clip(path)),
        ))
    }
}

pub fn check_url(field: &str, url: &str) -> Result<(), Refusal> {
    let ok = url.len() <= MAX_URL
        && (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || forbidden(c, false).is_some());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("'{}' is not an http(s) URL", clip(url)),
        ))
    }
}

pub fn check_labels(field: &str, labels: &[String]) -> Result<(), Refusal> {
    if labels.len() > MAX_LABELS {
        return Err(invalid(field, format!("has more than {MAX_LABELS} labels")));
    }
    for l in labels {
        check_line(field, l, MAX_LABEL)?;
    }
    Ok(())
}

pub fn check_request_id(field: &str, id: &str) -> Result<(), Refusal> {
    if id.len() > MAX_REQUEST_ID || id.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be at most {MAX_REQUEST_ID} printable characters"),
        ));
    }
    Ok(())
}

/// Shortens user input quoted back in an error.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<(), Refusal>) -> String {
        match r {
            Err(Refusal::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn incident_ids() {
        assert!(check_incident_id("id", "INC-2026-05-20-001").is_ok());
        for bad in [
            "",
            "INC-2026-5-20-001",
            "INC-2026-02-30-001",
            "INC-2026-05-20-01",
            "inc-2026-05-20-001",
            "INC-2026-05-20-0011",
            "INC-2026-05-20-00a",
            "INC-２０２６-05-20-001",
        ] {
            assert_eq!(
                field_of(check_incident_id("incident_id", bad)),
                "incident_id",
                "{bad}"
            );
        }
    }

    #[test]
    fn branches() {
        let inc = "INC-2026-05-20-001";
        assert!(check_branch("b", "hotfix/INC-2026-05-20-001-catalog-nil-deref", inc).is_ok());
        for bad in [
            "hotfix/INC-2026-05-20-001-",
            "hotfix/INC-2026-05-20-002-x",
            "feature/INC-2026-05-20-001-x",
            "hotfix/INC-2026-05-20-001-Bad",
            "hotfix/INC-2026-05-20-001-a/b",
        ] {
            assert!(check_branch("b", bad, inc).is_err(), "{bad}");
        }
    }

    #[test]
    fn handles_etas_repos_apps_shas_paths() {
        assert_eq!(normalize_handle("h", "@alice").unwrap(), "alice");
        assert!(normalize_handle("h", "").is_err());
        assert!(normalize_handle("h", "a b").is_err());
        assert!(check_eta("e", "23:59").is_ok());
        for bad in ["24:00", "1:00", "12:60", "ab:cd", "12-00"] {
            assert!(check_eta("e", bad).is_err(), "{bad}");
        }
        assert!(check_repository("r", "bookstore/catalog").is_ok());
        // Found by the validators fuzzer: an owner of dots was accepted.
        for bad in [
            "bookstore",
            "/x",
            "a/",
            "a/b/c",
            "a/..",
            "../x",
            "..2/9",
            "-a/x",
        ] {
            assert!(check_repository("r", bad).is_err(), "{bad}");
        }
        assert!(check_app("a", "bookstore-catalog-us-east").is_ok());
        assert!(check_app("a", "Catalog").is_err());
        assert!(check_sha("s", &"a".repeat(40)).is_ok());
        assert!(check_sha("s", &"A".repeat(40)).is_err());
        assert!(check_sha("s", "abc").is_err());
        assert!(check_path("p", "catalog/handler.go").is_ok());
        for bad in ["", "/etc/passwd", "a/../b", "a//b"] {
            assert!(check_path("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_are_bounded() {
        assert!(check_text("t", "x", 1).is_ok());
        assert!(check_text("t", "xy", 1).is_err());
        assert!(check_text("t", "  ", 10).is_err());
        assert!(check_text("t", "a\u{7}", 10).is_err());
    }

    #[test]
    fn no_text_can_hide_or_forge_what_is_shown_around_it() {
        // Multi-line text keeps its lines and tabs, nothing else.
        assert!(check_text("notes", "line one\n\tline two", 100).is_ok());
        assert!(check_line("title", "HOTFIX: naïve café ✓", 100).is_ok());
        for bad in [
            "a\rb",
            "a\u{1b}[2Jb",
            "a\u{85}b",
            "a\u{9b}b",
            "a\u{202e}b",
            "a\u{2066}b",
            "a\u{2069}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{0}b",
        ] {
            assert_eq!(field_of(check_text("notes", bad, 100)), "notes", "{bad:?}");
            assert_eq!(field_of(check_line("title", bad, 100)), "title", "{bad:?}");
        }
        // One line is one line.
        for bad in ["x\n@alice approved fix 2222", "x\ty"] {
            assert_eq!(field_of(check_line("title", bad, 100)), "title", "{bad:?}");
        }
        let Err(Refusal::Invalid { reason, .. }) = check_line("role", "db\nbreakglass", 50) else {
            panic!("refused");
        };
        assert!(
            reason.contains("line break") && reason.contains("U+000A"),
            "{reason}"
        );
    }
}
