//! Single sign-on: `hotfixctl login` signs in to the context's OpenID
//! Provider with the device authorization grant (RFC 8628: the person
//! opens a URL in any browser, the CLI polls), and keeps the ID token and
//! the refresh token in the context's session file
//! (`<profile dir>/sso/<context>.json`, mode 0600). Every command of the
//! context then sends the ID token, refreshed with the refresh token when
//! it has less than [`MARGIN`] left; `hotfixctl logout` deletes the file
//! (and revokes the refresh token where the IdP offers revocation).
//!
//! The context names the IdP:
//!
//! ```toml
//! [contexts.prod]
//! endpoint = "https://hotfixd.internal:50051"
//! oidc_issuer = "https://login.example.com"
//! oidc_client_id = "hotfixctl"
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{CliError, usage};

/// A token with less than this left is refreshed before it is sent.
pub const MARGIN: i64 = 60;
/// What `login` asks the IdP for: the ID token's claims, a refresh token.
pub const SCOPE: &str = "openid profile groups offline_access";

/// Where a context signs in, and where its session is kept.
#[derive(Debug, Clone)]
pub struct Sso {
    pub context: String,
    pub issuer: String,
    pub client_id: String,
    pub session: PathBuf,
}

/// A signed-in session, as the file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub issuer: String,
    pub client_id: String,
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The ID token's `exp` (Unix seconds).
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    device_authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct Tokens {
    id_token: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn unauthenticated(message: String) -> CliError {
    CliError {
        code: 10 + tonic::Code::Unauthenticated as i32,
        message,
    }
}

fn idp_error(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: 10 + tonic::Code::Unavailable as i32,
        message: format!("{what}: {e}"),
    }
}

fn http() -> Result<reqwest::Client, CliError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        // A poll every few seconds: a kept-alive connection the IdP closes
        // meanwhile (Node's default: after 5 s) would fail the next one.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| idp_error("building the HTTP client", e))
}

/// The `exp` of a JWT, read without verifying it (hotfixd verifies).
fn expiry(jwt: &str) -> Option<i64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["exp"].as_i64()
}

/// A claim of a JWT, read without verifying it: for what `login` says.
fn claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match &v[name] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Sso {
    async fn discover(&self, http: &reqwest::Client) -> Result<Discovery, CliError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let d: Discovery = http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| idp_error(&format!("reading {url}"), e))?
            .json()
            .await
            .map_err(|e| idp_error(&format!("reading {url}"), e))?;
        if d.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(idp_error(
                &format!("reading {url}"),
                format!("it names issuer '{}', not '{}'", d.issuer, self.issuer),
            ));
        }
        Ok(d)
    }

    /// The device grant, start to end: `say` is told where to go.
    pub async fn login(&self, say: &mut (dyn Write + Send)) -> Result<Session, CliError> {
        let http = http()?;
        let d = self.discover(&http).await?;
        let (Some(device), Some(token)) = (&d.device_authorization_endpoint, &d.token_endpoint)
        else {
            return Err(usage(format!(
                "the IdP at {} offers no device authorization grant (no \
                 device_authorization_endpoint in its discovery document)",
                self.issuer
            )));
        };
        let auth: DeviceAuthorization = http
            .post(device)
            .form(&[("client_id", self.client_id.as_str()), ("scope", SCOPE)])
            .send()
            .await
            .map_err(|e| idp_error("asking the IdP for a device code", e))?
            .json()
            .await
            .map_err(|e| idp_error("asking the IdP for a device code", e))?;
        match &auth.verification_uri_complete {
            Some(url) => writeln!(
                say,
                "To sign in, open {url}\n(or open {} and enter the code {})",
                auth.verification_uri, auth.user_code
            )?,
            None => writeln!(
                say,
                "To sign in, open {} and enter the code {}",
                auth.verification_uri, auth.user_code
            )?,
        }
        say.flush()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(auth.expires_in);
        let mut interval = auth.interval.unwrap_or(5).max(1);
        let mut unanswered = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
            if std::time::Instant::now() > deadline {
                return Err(unauthenticated(
                    "the code expired before it was approved: run `hotfixctl login` again".into(),
                ));
            }
            let r = match http
                .post(token)
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", auth.device_code.as_str()),
                    ("client_id", self.client_id.as_str()),
                ])
                .send()
                .await
            {
                Ok(r) => r,
                // No answer this time: asked again at the next interval,
                // until the code expires.
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    unanswered += 1;
                    if unanswered >= 5 {
                        return Err(idp_error("asking the IdP for the token", e));
                    }
                    continue;
                }
                Err(e) => return Err(idp_error("asking the IdP for the token", e)),
            };
            unanswered = 0;
            if r.status().is_success() {
                let t: Tokens = r
                    .json()
                    .await
                    .map_err(|e| idp_error("reading the IdP's token", e))?;
                return self.keep(t, None);
            }
            let e: TokenError = r
                .json()
                .await
                .map_err(|e| idp_error("reading the IdP's answer", e))?;
            match e.error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += 5,
                "access_denied" => {
                    return Err(unauthenticated("the sign-in was denied at the IdP".into()));
                }
                "expired_token" => {
                    return Err(unauthenticated(
                        "the code expired before it was approved: run `hotfixctl login` again"
                            .into(),
                    ));
                }
                other => {
                    return Err(unauthenticated(format!(
                        "the IdP refused the sign-in: {other}{}",
                        e.error_description
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
    }

    /// Saves the session the IdP's `tokens` make (a refresh keeps the old
    /// refresh token when the IdP sends no new one).
    fn keep(&self, tokens: Tokens, old_refresh: Option<String>) -> Result<Session, CliError> {
        let id_token = tokens.id_token.ok_or_else(|| {
            idp_error(
                "reading the IdP's token",
                "it has no id_token (the client must be allowed the openid scope)",
            )
        })?;
        let expires_at = expiry(&id_token)
            .ok_or_else(|| idp_error("reading the IdP's token", "its id_token has no exp"))?;
        let s = Session {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            id_token,
            refresh_token: tokens.refresh_token.or(old_refresh),
            expires_at,
        };
        save(&self.session, &s)?;
        Ok(s)
    }

    /// The ID token to send: the session's, refreshed first when it is
    /// about to expire.
    pub async fn token(&self) -> Result<String, CliError> {
        let login = || {
            unauthenticated(format!(
                "not signed in to {} (context {}): run `hotfixctl login`",
                self.issuer, self.context
            ))
        };
        let Some(s) = load(&self.session)? else {
            return Err(login());
        };
        if s.issuer != self.issuer || s.client_id != self.client_id {
            return Err(login());
        }
        let now = chrono::Utc::now().timestamp();
        if s.expires_at - now > MARGIN {
            return Ok(s.id_token);
        }
        let Some(refresh) = s.refresh_token.clone() else {
            return Err(unauthenticated(format!(
                "your sign-in to {} expired: run `hotfixctl login`",
                self.issuer
            )));
        };
        let http = http()?;
        let d = self.discover(&http).await?;
        let token = d
            .token_endpoint
            .ok_or_else(|| idp_error("refreshing the sign-in", "the IdP has no token endpoint"))?;
        let r = http
            .post(&token)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", self.client_id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| idp_error("refreshing the sign-in", e))?;
        if !r.status().is_success() {
            return Err(unauthenticated(format!(
                "your sign-in to {} expired and could not be refreshed ({}): run `hotfixctl login`",
                self.issuer,
                r.status()
            )));
        }
        let t: Tokens = r
            .json()
            .await
            .map_err(|e| idp_error("refreshing the sign-in", e))?;
        Ok(self.keep(t, Some(refresh))?.id_token)
    }

    /// Deletes the session (revoking its refresh token first where the IdP
    /// can); whether there was one.
    pub async fn logout(&self) -> Result<bool, CliError> {
        let Some(s) = load(&self.session)? else {
            return Ok(false);
        };
        if let Some(refresh) = &s.refresh_token
            && let Ok(http) = http()
            && let Ok(d) = self.discover(&http).await
            && let Some(revoke) = d.revocation_endpoint
        {
            // Best effort: the file goes either way.
            let _ = http
                .post(&revoke)
                .form(&[
                    ("token", refresh.as_str()),
                    ("token_type_hint", "refresh_token"),
                    ("client_id", self.client_id.as_str()),
                ])
                .send()
                .await;
        }
        std::fs::remove_file(&self.session)
            .map_err(|e| usage(format!("removing {}: {e}", self.session.display())))?;
        Ok(true)
    }
}

/// What `login` says of a session: who the token names, until when.
pub fn describe(s: &Session) -> String {
    let who = claim(&s.id_token, "preferred_username")
        .or_else(|| claim(&s.id_token, "sub"))
        .unwrap_or_else(|| "?".into());
    let until = chrono::DateTime::from_timestamp(s.expires_at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default();
    format!(
        "signed in to {} as {who} until {until}{}",
        s.issuer,
        if s.refresh_token.is_some() {
            " (refreshed as needed)"
        } else {
            ""
        }
    )
}

fn load(path: &Path) -> Result<Option<Session>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            usage(format!(
                "{}: {e} (delete it and `hotfixctl login`)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(usage(format!("reading {}: {e}", path.display()))),
    }
}

/// Writes the session readable by its owner only (a new file renamed over
/// the old one, so that a crash leaves one or the other whole).
fn save(path: &Path, s: &Session) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |e: std::io::Error| usage(format!("saving {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(
        serde_json::to_string(s)
            .expect("a session serializes")
            .as_bytes(),
    )
    .map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_its_owners_only_and_survives_being_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sso").join("prod.json");
        let s = Session {
            issuer: "https://idp.example".into(),
            client_id: "hotfixctl".into(),
            id_token: "eyJ.eyJ.sig".into(),
            refresh_token: Some("r".into()),
            expires_at: 42,
        };
        save(&path, &s).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.id_token, s.id_token);
        assert_eq!(back.refresh_token, s.refresh_token);
    }

    #[test]
    fn the_expiry_is_read_from_the_token() {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.sig",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"exp": 1_800_000_000, "preferred_username": "alice"}))
        );
        assert_eq!(expiry(&jwt), Some(1_800_000_000));
        assert_eq!(claim(&jwt, "preferred_username").as_deref(), Some("alice"));
        assert_eq!(expiry("not-a-jwt"), None);
    }
}
