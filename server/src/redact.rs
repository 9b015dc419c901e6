//! No configured secret leaves the process.
//!
//! A Slack webhook URL is a credential (whoever holds it posts as hotfixd),
//! and so are the GitHub, Argo CD and Prometheus tokens and the audit
//! signing key. They are registered here when the daemon starts, and every
//! way text leaves the process passes through [`redact`]: event summaries
//! and audit details when a change is committed (`store`), status messages
//! sent to clients (`error`), and log lines of every level (the daemon's
//! log writer, [`Writer`]). The registry only grows: daemons sharing a
//! process (tests) redact each other's secrets too, never fewer.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is shown as.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for (they would match
/// ordinary words); no real token or webhook is this short.
const MIN_SECRET: usize = 8;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers `secret` (and, for a URL, its path and query on their own,
/// which is where a webhook keeps its key).
pub fn register(secret: &str) {
    let secret = secret.trim();
    let mut forms = vec![secret.to_string()];
    if let Some(rest) = secret
        .strip_prefix("https://")
        .or_else(|| secret.strip_prefix("http://"))
        && let Some(i) = rest.find('/')
    {
        forms.push(rest[i..].to_string());
    }
    let mut all = SECRETS.write().expect("secrets lock");
    for f in forms {
        if f.len() >= MIN_SECRET && !all.contains(&f) {
            all.push(f);
        }
    }
    // Longest first, so a URL is replaced whole before its path is.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().expect("secrets lock");
    if !all.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// Standard error, redacted: the daemon's log writer. The fmt layer writes
/// each log line with one call, so a secret is never split across writes.
pub struct Writer;

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
    type Writer = Writer;

    fn make_writer(&'a self) -> Writer {
        Writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_secret_and_a_webhooks_path_are_redacted() {
        register("https://hooks.example/services/T0/B0/sekrit-redact-test");
        register("ghp_redact_test_token");
        register("short");
        let text = "POST https://hooks.example/services/T0/B0/sekrit-redact-test failed; \
                    path /services/T0/B0/sekrit-redact-test; token ghp_redact_test_token; short";
        assert_eq!(
            redact(text),
            "POST [redacted] failed; path [redacted]; token [redacted]; short"
        );
        assert!(matches!(redact("nothing secret"), Cow::Borrowed(_)));
    }
}
