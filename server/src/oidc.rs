//! Single sign-on for people: ID tokens of the organization's OpenID
//! Provider (`[oidc]`), verified against its discovery document and JWKS.
//!
//! A bearer token shaped as a JWT goes here instead of the roster's
//! tokens. It is accepted only if
//! - its header names an asymmetric algorithm the IdP's key for its `kid`
//!   has (never `none`, never a shared secret);
//! - that key, from the IdP's JWKS, verifies its signature;
//! - `iss` is the configured issuer (as discovery also says), `aud` holds
//!   the configured audience (the CLI's client id), `exp` is ahead and
//!   `nbf` behind (30 s of clock skew);
//! - the `username_claim` (`preferred_username`) is a valid handle.
//!
//! The handle is that claim; the roles are those `[oidc.roles]` maps the
//! `groups_claim`'s groups to, with what the roster (or a GitHub team)
//! gives the same handle. Every refusal is UNAUTHENTICATED and says what
//! to do (`hotfixctl login`).
//!
//! Keys: discovery and the JWKS are read at start-up and every
//! `jwks_refresh`; a token whose `kid` is not known makes the guard read
//! the JWKS again first (at most every [`REREAD_AFTER`]), so a key the IdP
//! rotated in is taken at once, and one it rotated out is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::domain::{Principal, Role};

/// An unknown `kid` reads the JWKS again at most this often.
pub const REREAD_AFTER: Duration = Duration::from_secs(10);
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY: u64 = 30;

/// `[oidc]` as the daemon runs it.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The IdP's issuer URL (discovery is at
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// What `aud` must hold: the client id `hotfixctl login` signs in with.
    pub audience: String,
    /// The claim that is the handle.
    pub username_claim: String,
    /// The claim listing the person's groups.
    pub groups_claim: String,
    /// Group → the roles its members hold.
    pub roles: BTreeMap<String, BTreeSet<Role>>,
    /// How often discovery and the JWKS are read again.
    pub jwks_refresh: Duration,
    /// A token with an unknown `kid` reads them again at most this often
    /// ([`REREAD_AFTER`]).
    pub reread_after: Duration,
    pub timeout: Duration,
}

/// What discovery says (the fields hotfixd and hotfixctl use).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

struct Key {
    key: DecodingKey,
    alg: Algorithm,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<Key>>,
    /// When the JWKS was last read (successfully or not).
    read_at: Option<Instant>,
    /// Why the last read failed, if it did.
    failed: Option<String>,
}

/// The verifier: settings, the IdP's keys, an HTTP client.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One read of the IdP at a time.
    reading: tokio::sync::Mutex<()>,
    /// Tokens verified with the current keys, by SHA-256: an RS256
    /// verification costs ~200 µs of CPU, so a CLI's repeated calls with
    /// one token pay it once. Emptied whenever the keys are read (so a key
    /// rotated out refuses its tokens at once), and when full.
    verified: std::sync::Mutex<HashMap<[u8; 32], Person>>,
}

/// Verified tokens remembered at most.
const VERIFIED: usize = 10_000;

/// Why a token is refused: the text of the UNAUTHENTICATED answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn refused(why: impl std::fmt::Display) -> Refused {
    Refused(format!("SSO token refused: {why}"))
}

/// A value from an unverified token, fit to quote in an answer or a log
/// line: no control character (no forged line, no terminal escape), at
/// most 80 characters.
fn quoted(v: &str) -> String {
    let mut out: String = v
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(80)
        .collect();
    if v.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Whether a bearer token is shaped as a JWT (three base64url parts, a
/// JSON header): such a token is never looked up in the roster.
pub fn is_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

/// The header's `alg` and `kid`, read without trusting them.
fn header(token: &str) -> Result<(String, Option<String>), Refused> {
    #[derive(Deserialize)]
    struct Header {
        alg: Option<String>,
        kid: Option<String>,
    }
    let first = token.split('.').next().unwrap_or_default();
    let h: Header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refused("its header is not base64url JSON"))?;
    Ok((h.alg.unwrap_or_default(), h.kid))
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Arc<Oidc>, String> {
        crate::integrations::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("oidc: building the HTTP client: {e}"))?;
        Ok(Arc::new(Oidc {
            settings,
            http,
            keys: RwLock::default(),
            reading: tokio::sync::Mutex::new(()),
            verified: Default::default(),
        }))
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Reads discovery and the JWKS now; the keys replace the old ones
    /// whole (a key the IdP no longer publishes is no longer taken).
    pub async fn read_keys(&self) -> Result<usize, String> {
        let _one = self.reading.lock().await;
        let result = self.fetch().await;
        let mut keys = self.keys.write().expect("keys lock");
        keys.read_at = Some(Instant::now());
        match result {
            Ok(by_kid) => {
                let n = by_kid.len();
                keys.by_kid = by_kid;
                keys.failed = None;
                self.verified.lock().expect("verified lock").clear();
                Ok(n)
            }
            Err(e) => {
                keys.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Key>>, String> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let d: Discovery = self.get_json(&url, "the discovery document").await?;
        if d.issuer.trim_end_matches('/') != issuer {
            return Err(format!(
                "the discovery document at {url} names issuer '{}', not '{issuer}'",
                d.issuer
            ));
        }
        let set: JwkSet = self.get_json(&d.jwks_uri, "the JWKS").await?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
            {
                continue;
            }
            let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(a), _) => match key_algorithm(*a) {
                    Some(a) => a,
                    None => continue,
                },
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
                // A shared secret is never an IdP's signing key here.
                (None, AlgorithmParameters::OctetKey(_)) => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                by_kid.insert(kid, Arc::new(Key { key, alg }));
            }
        }
        if by_kid.is_empty() {
            return Err(format!(
                "the JWKS at {} holds no signing key hotfixd can use",
                d.jwks_uri
            ));
        }
        Ok(by_kid)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, String> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("reading {what} at {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("reading {what} at {url}: {}", r.status()));
        }
        r.json()
            .await
            .map_err(|e| format!("reading {what} at {url}: {e}"))
    }

    /// Before a request is authenticated: a JWT whose `kid` is not known
    /// has the JWKS read again (at most every [`REREAD_AFTER`]).
    pub async fn prepare(&self, authorization: Option<&[u8]>) {
        let Some(token) = authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| is_jwt(t))
        else {
            return;
        };
        let Ok((_, Some(kid))) = header(token) else {
            return;
        };
        let stale = {
            let keys = self.keys.read().expect("keys lock");
            !keys.by_kid.contains_key(&kid)
                && keys
                    .read_at
                    .is_none_or(|at| at.elapsed() >= self.settings.reread_after)
        };
        if stale && let Err(e) = self.read_keys().await {
            tracing::warn!(error = %e, "reading the IdP's keys failed");
        }
    }

    /// The person a token names, or why it is refused: from the tokens
    /// already verified with the current keys while unexpired, else
    /// verified now.
    pub fn verify(&self, token: &str) -> Result<Person, Refused> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        {
            let mut verified = self.verified.lock().expect("verified lock");
            match verified.get(&digest) {
                Some(p) if now < p.expires_at + LEEWAY as i64 => return Ok(p.clone()),
                Some(_) => {
                    verified.remove(&digest);
                }
                None => {}
            }
        }
        let person = self.verify_now(token)?;
        let mut verified = self.verified.lock().expect("verified lock");
        if verified.len() >= VERIFIED {
            verified.clear();
        }
        verified.insert(digest, person.clone());
        Ok(person)
    }

    fn verify_now(&self, token: &str) -> Result<Person, Refused> {
        let (alg, kid) = header(token)?;
        if alg.eq_ignore_ascii_case("none") || alg.is_empty() {
            return Err(refused(
                "it is unsigned (alg: none); sign in again with `hotfixctl login`",
            ));
        }
        let kid = kid.ok_or_else(|| refused("its header names no key (kid)"))?;
        let key = {
            let keys = self.keys.read().expect("keys lock");
            match keys.by_kid.get(&kid) {
                Some(k) => k.clone(),
                None if keys.by_kid.is_empty() => {
                    return Err(refused(format!(
                        "hotfixd could not read the IdP's keys ({}); static tokens and \
                         client certificates still work",
                        keys.failed.as_deref().unwrap_or("not read yet")
                    )));
                }
                None => {
                    return Err(refused(format!(
                        "it is signed with key '{}', which the IdP at {} does not publish \
                         (rotated out?); sign in again with `hotfixctl login`",
                        quoted(&kid),
                        self.settings.issuer
                    )));
                }
            }
        };
        if alg.parse::<Algorithm>().ok() != Some(key.alg) {
            return Err(refused(format!(
                "its header says alg {}, but the IdP's key '{}' is {:?}",
                quoted(&alg),
                quoted(&kid),
                key.alg
            )));
        }
        let mut v = Validation::new(key.alg);
        v.set_issuer(&[self.settings.issuer.trim_end_matches('/')]);
        v.set_audience(&[&self.settings.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &v)
            .map_err(|e| self.explain(token, e))?
            .claims;
        let name = &self.settings.username_claim;
        let handle = claims[name.as_str()].as_str().ok_or_else(|| {
            refused(format!(
                "it has no '{name}' claim (oidc.username_claim) to name you by"
            ))
        })?;
        let handle = crate::domain::validate::normalize_handle(name, handle)
            .map_err(|e| refused(format!("its '{name}' claim: {e}")))?;
        let groups: Vec<String> = match &claims[self.settings.groups_claim.as_str()] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::String(g) => vec![g.clone()],
            _ => Vec::new(),
        };
        let roles = groups
            .iter()
            .filter_map(|g| self.settings.roles.get(g))
            .flatten()
            .copied()
            .collect();
        Ok(Person {
            handle,
            groups,
            roles,
            expires_at: claims["exp"].as_i64().unwrap_or_default(),
        })
    }

    /// A refusal of jsonwebtoken's, in words that say what to do.
    fn explain(&self, token: &str, e: jsonwebtoken::errors::Error) -> Refused {
        use jsonwebtoken::errors::ErrorKind as K;
        let unverified = || -> serde_json::Value {
            token
                .split('.')
                .nth(1)
                .and_then(|p| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(p)
                        .ok()
                })
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        match e.kind() {
            K::ExpiredSignature => {
                let at = unverified()["exp"]
                    .as_i64()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M:%SZ")))
                    .unwrap_or_default();
                refused(format!("your sign-in expired{at}; run `hotfixctl login`"))
            }
            K::ImmatureSignature => refused("it is not valid yet (nbf); check the clocks"),
            K::InvalidIssuer => refused(format!(
                "it was issued by '{}', not by the IdP hotfixd trusts ({}); run `hotfixctl login`",
                quoted(unverified()["iss"].as_str().unwrap_or("?")),
                self.settings.issuer
            )),
            K::InvalidAudience => refused(format!(
                "it is for {} (aud), not for hotfixd ('{}'); run `hotfixctl login`",
                quoted(&unverified()["aud"].to_string()),
                self.settings.audience
            )),
            K::InvalidSignature => refused("its signature does not verify"),
            K::MissingRequiredClaim(c) => refused(format!("it has no '{}' claim", quoted(c))),
            K::InvalidAlgorithm => refused("its algorithm is not its key's"),
            other => refused(format!("it is not a valid JWT ({other:?})")),
        }
    }

    /// Reads the keys every `jwks_refresh` (every 30 s while the IdP
    /// cannot be read), until `stop`.
    pub async fn run_refresher(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            let wait = match self.read_keys().await {
                Ok(_) => self.settings.jwks_refresh,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the IdP's keys failed; SSO tokens are refused until it answers");
                    Duration::from_secs(30).min(self.settings.jwks_refresh)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

fn key_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        // HS*: a shared secret is no IdP's public key.
        _ => return None,
    })
}

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub handle: String,
    pub groups: Vec<String>,
    /// From `[oidc.roles]`.
    pub roles: BTreeSet<Role>,
    /// The token's `exp` (Unix seconds).
    pub expires_at: i64,
}

impl Person {
    /// The principal: its handle, the roles its groups map to and those the
    /// roster (or a GitHub team) gives the same handle.
    pub fn principal(&self, directory: Option<Principal>) -> Principal {
        let mut roles = self.roles.clone();
        if let Some(p) = directory {
            roles.extend(p.roles);
        }
        Principal {
            handle: self.handle.clone(),
            roles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_token_says_is_quoted_without_control_characters() {
        assert_eq!(
            quoted("https://idp\n2026 INFO forged"),
            "https://idp?2026 INFO forged"
        );
        assert_eq!(quoted("\u{1b}[2J"), "?[2J");
        let long = "x".repeat(200);
        assert_eq!(quoted(&long).chars().count(), 81);
    }

    #[test]
    fn only_jwt_shaped_tokens_go_to_the_idp() {
        assert!(is_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!is_jwt("dev-alice"));
        assert!(!is_jwt("eyJ.only-two"));
    }

    fn verifier() -> Arc<Oidc> {
        Oidc::new(OidcSettings {
            issuer: "https://idp.example".into(),
            audience: "hotfixctl".into(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            roles: BTreeMap::new(),
            jwks_refresh: Duration::from_secs(300),
            reread_after: REREAD_AFTER,
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn a_remembered_token_is_taken_only_until_it_expires() {
        use sha2::Digest;
        let oidc = verifier();
        let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJleHAiOjF9.c2ln";
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let person = |expires_at| Person {
            handle: "erin".into(),
            groups: vec![],
            roles: BTreeSet::new(),
            expires_at,
        };
        let now = chrono::Utc::now().timestamp();
        oidc.verified
            .lock()
            .unwrap()
            .insert(digest, person(now + 600));
        assert_eq!(oidc.verify(token).unwrap().handle, "erin", "remembered");
        // Past its exp (and the skew): verified again, here refused (no key).
        oidc.verified
            .lock()
            .unwrap()
            .insert(digest, person(now - LEEWAY as i64 - 1));
        assert!(oidc.verify(token).is_err());
        assert!(oidc.verified.lock().unwrap().is_empty(), "forgotten");
    }

    #[test]
    fn an_unsigned_token_is_refused_before_any_key_is_looked_up() {
        let oidc = verifier();
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none"})),
            b64(
                serde_json::json!({"preferred_username": "alice", "iss": "https://idp.example", "aud": "hotfixctl", "exp": 4_000_000_000u64})
            )
        );
        let e = oidc.verify(&none).unwrap_err();
        assert!(e.0.contains("unsigned (alg: none)"), "{e}");
        assert!(e.0.contains("hotfixctl login"), "{e}");
    }
}
