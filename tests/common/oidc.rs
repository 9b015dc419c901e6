//! A real OpenID Provider for the SSO tests: panva's oidc-provider (npm,
//! OpenID Certified) run by `tools/oidc/provider.mjs`, with the device
//! grant approved in headless Chromium on its own pages
//! (`tools/oidc/approve.mjs`). Nothing here imitates the IdP; the test
//! only plays it where it must sign a token the IdP would not hand out
//! (expired, for another audience), with the IdP's own key.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oidc")
}

/// A running provider; killed when dropped.
pub struct Idp {
    child: Child,
    /// Kept open: the provider may write more.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    pub issuer: String,
    pub port: u16,
    keys: PathBuf,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the provider serves: its signing keys (by kid, kept in `keys`),
/// its clients, its people (login → groups), the ID tokens' lifetime.
pub struct IdpConfig<'a> {
    pub keys: &'a Path,
    pub kids: &'a [&'a str],
    pub clients: &'a [&'a str],
    pub accounts: &'a [(&'a str, &'a [&'a str])],
    pub id_token_ttl: u64,
    /// 0: a free port.
    pub port: u16,
}

impl Idp {
    pub fn start(c: &IdpConfig) -> Idp {
        assert!(
            tools().join("node_modules/oidc-provider").exists(),
            "tools/oidc/node_modules: run scripts/test (it runs npm ci there)"
        );
        let config = serde_json::json!({
            "port": c.port,
            "keys": c.keys,
            "kids": c.kids,
            "clients": c.clients.iter().map(|id| serde_json::json!({"client_id": id})).collect::<Vec<_>>(),
            "accounts": c.accounts.iter().map(|(l, g)| (l.to_string(), serde_json::json!(g))).collect::<serde_json::Map<_, _>>(),
            "id_token_ttl": c.id_token_ttl,
        });
        let mut child = Command::new("node")
            .arg(tools().join("provider.mjs"))
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(c.keys.join("idp.log")).unwrap())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("the IdP said {line:?}: {e}"));
        let issuer = v["issuer"].as_str().unwrap().to_string();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Idp {
            child,
            _stdout: stdout,
            issuer,
            port,
            keys: c.keys.to_path_buf(),
        }
    }

    /// Approves the device sign-in at `url` as `login`, in the browser.
    pub fn approve(url: &str, login: &str) {
        let out = Command::new("node")
            .arg(tools().join("approve.mjs"))
            .args([url, login])
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "approving in the browser failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A token signed with the IdP's key `kid`, with `claims`.
    pub fn sign(&self, kid: &str, claims: serde_json::Value) -> String {
        let pem = std::fs::read(self.keys.join(format!("{kid}.pem"))).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}
