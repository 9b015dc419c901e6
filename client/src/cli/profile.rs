//! Where a command goes and as whom: the flags (and their `HOTFIXCTL_*`
//! environment variables) over the profile file's context over the
//! defaults.
//!
//! The profile (`~/.config/hotfixctl/config.toml`) names contexts, each an
//! endpoint with the files that authenticate to it, so that nobody has to
//! type a token into a shell's history:
//!
//! ```toml
//! context = "prod"            # used when --context is not given
//!
//! [contexts.prod]
//! endpoint = "https://hotfixd.internal:50051"
//! token_file = "prod.token"   # relative to this file; ~/ is $HOME
//! ca_file = "/etc/hotfixd/ca.pem"
//!
//! [contexts.dev]
//! endpoint = "http://127.0.0.1:50051"
//! token_file = "~/.config/hotfixctl/dev.token"
//! ```
//!
//! A context's credentials only go to its own endpoint: `--endpoint`
//! given without `--context` reads no profile at all.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Cli, CliError, usage};
use crate::TlsFiles;

/// hotfixd's address when neither a flag nor a context names one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    /// The context used when `--context` is not given.
    context: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, Context>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Context {
    endpoint: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    /// Single sign-on: the IdP `hotfixctl login` signs in to, and the
    /// client id it signs in as (`sso.rs`).
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
}

/// A context and its name.
type Named = (String, Context);

/// Where to connect, and with what.
#[derive(Debug)]
pub struct Target {
    pub endpoint: String,
    pub token: Option<String>,
    pub tls: TlsFiles,
    /// The context signs in with SSO (its token comes from the session
    /// when no other is given).
    pub sso: Option<super::sso::Sso>,
}

/// The profile file's path: `--config`, else the default (see
/// [`default_path`]) from this process's environment.
pub fn path(cli: &Cli) -> Option<PathBuf> {
    if let Some(p) = &cli.config {
        return Some(p.clone());
    }
    default_path(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

/// `$XDG_CONFIG_HOME/hotfixctl/config.toml`, else
/// `$HOME/.config/hotfixctl/config.toml` (None without either; an empty
/// or relative XDG_CONFIG_HOME is ignored, as the XDG spec says).
pub fn default_path(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let xdg = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(x) => x,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("hotfixctl").join("config.toml"))
}

/// Reads the profile at `path`; a missing file is an empty profile unless
/// `needed` (then it is an error naming what asked for it).
fn read(path: &Path, needed: Option<&str>) -> Result<Profile, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match needed {
                None => Ok(Profile::default()),
                Some(what) => Err(usage(format!(
                    "{what}: there is no profile file {} (create it with a \
                     [contexts.NAME] table, or give --config FILE)",
                    path.display()
                ))),
            };
        }
        Err(e) => return Err(usage(format!("reading {}: {e}", path.display()))),
    };
    toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// The target of `cli`'s command: each of endpoint, token, CA and client
/// certificate from its flag if given, else from the context, else the
/// default.
pub fn resolve(cli: &Cli) -> Result<Target, CliError> {
    let (context, origin) = context(cli)?;
    let (name, ctx) = context.unwrap_or_default();
    let file = |p: &Option<PathBuf>| p.as_ref().map(|p| expand(p, origin.as_deref()));
    let token = match (&cli.token, &cli.token_file, &ctx.token_file) {
        (Some(t), _, _) => Some(t.clone()),
        (None, Some(f), _) => Some(read_token(f, "--token-file")?),
        (None, None, Some(f)) => Some(read_token(
            &expand(f, origin.as_deref()),
            &context_field(cli, "token_file"),
        )?),
        (None, None, None) => None,
    };
    let (cert, key) = match (&cli.cert, &ctx.cert, &ctx.key) {
        (Some(_), _, _) => (cli.cert.clone(), cli.key.clone()),
        (None, Some(_), Some(_)) => (file(&ctx.cert), file(&ctx.key)),
        (None, None, None) => (None, None),
        (None, _, _) => {
            return Err(usage(format!(
                "{}: cert and key go together: give both, or neither",
                context_field(cli, "cert")
            )));
        }
    };
    let endpoint = match (&cli.endpoint, ctx.endpoint) {
        (Some(e), _) => checked_endpoint(e, "--endpoint")?,
        (None, Some(e)) => checked_endpoint(&e, &context_field(cli, "endpoint"))?,
        (None, None) => DEFAULT_ENDPOINT.to_string(),
    };
    let sso = match (&ctx.oidc_issuer, &ctx.oidc_client_id, &origin) {
        (None, None, _) => None,
        (Some(issuer), Some(client_id), Some(dir)) => Some(super::sso::Sso {
            context: name.clone(),
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            session: dir.join("sso").join(format!("{name}.json")),
        }),
        _ => {
            return Err(usage(format!(
                "{}: oidc_issuer and oidc_client_id go together: give both, or neither",
                context_field(cli, "oidc_issuer")
            )));
        }
    };
    Ok(Target {
        endpoint,
        token,
        sso,
        tls: TlsFiles {
            ca: cli.ca_file.clone().or_else(|| file(&ctx.ca_file)),
            cert,
            key,
        },
    })
}

/// The context in use, if any, and the directory its relative paths are
/// relative to.
fn context(cli: &Cli) -> Result<(Option<Named>, Option<PathBuf>), CliError> {
    if cli.endpoint.is_some() && cli.context.is_none() {
        return Ok((None, None));
    }
    let Some(path) = path(cli) else {
        return match &cli.context {
            Some(name) => Err(usage(format!(
                "--context {name}: neither HOME nor XDG_CONFIG_HOME is set, so there is no \
                 profile file; give --config FILE"
            ))),
            None => Ok((None, None)),
        };
    };
    let needed = cli.context.as_ref().map(|n| format!("--context {n}"));
    let mut profile = read(&path, needed.as_deref())?;
    let name = match (&cli.context, &profile.context) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => return Ok((None, None)),
    };
    let Some(ctx) = profile.contexts.remove(&name) else {
        let has: Vec<&str> = profile.contexts.keys().map(String::as_str).collect();
        let has = if has.is_empty() {
            "it has none".to_string()
        } else {
            format!("it has: {}", has.join(", "))
        };
        let what = match &cli.context {
            Some(_) => format!("--context {name}"),
            None => format!("context = \"{name}\""),
        };
        return Err(usage(format!(
            "{what}: {} has no [contexts.{name}] ({has})",
            path.display()
        )));
    };
    let dir = path.parent().map(Path::to_path_buf);
    Ok((Some((name, ctx)), dir))
}

/// How an error names a context's field: `--context NAME's token_file`.
fn context_field(cli: &Cli, field: &str) -> String {
    match &cli.context {
        Some(n) => format!("the {field} of --context {n}"),
        None => format!("the profile's default context's {field}"),
    }
}

/// `endpoint` if it is a URL hotfixctl can connect to (`http://` or
/// `https://`, a host, optionally a port), else a usage error naming
/// `what` and what to type instead.
fn checked_endpoint(endpoint: &str, what: &str) -> Result<String, CliError> {
    let scheme = endpoint.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(usage(format!(
                "{what} {endpoint}: the scheme must be http:// (plain text: loopback, \
                 `hotfixd --dev`) or https:// (TLS), not {other}://"
            )));
        }
        None => {
            return Err(usage(format!(
                "{what} {endpoint}: give the scheme: http://{endpoint} (plain text: loopback, \
                 `hotfixd --dev`) or https://{endpoint} (TLS)"
            )));
        }
    }
    let uri: Result<tonic::codegen::http::Uri, _> = endpoint.parse();
    match uri {
        Ok(u) if u.host().is_some_and(|h| !h.is_empty()) => Ok(endpoint.to_string()),
        Ok(_) => Err(usage(format!("{what} {endpoint}: names no host"))),
        Err(e) => Err(usage(format!("{what} {endpoint}: not a URL ({e})"))),
    }
}

/// `~/x` under $HOME; a relative path under `dir` (the profile's).
fn expand(p: &Path, dir: Option<&Path>) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    match dir {
        Some(d) if p.is_relative() => d.join(p),
        _ => p.to_path_buf(),
    }
}

/// The token in `path`: one line, the file readable by its owner only (a
/// token another local user can read is not yours alone).
fn read_token(path: &Path, what: &str) -> Result<String, CliError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("{what} {shown}: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(usage(format!(
                "{what} {shown}: readable by others (mode {mode:04o}); `chmod 600 {shown}` \
                 and issue a new token if others could have read it"
            )));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{what} {shown}: {e}")))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.trim().is_empty() {
        return Err(usage(format!("{what} {shown}: the file is empty")));
    }
    if token.contains(['\n', '\r']) || token != token.trim() {
        return Err(usage(format!(
            "{what} {shown}: holds more than the token (one line, no spaces around it)"
        )));
    }
    Ok(token.to_string())
}

/// One context, as `hotfixctl contexts` shows it (no credential).
#[derive(Debug)]
pub struct Listed {
    pub name: String,
    pub endpoint: String,
    /// The one a command would use.
    pub current: bool,
}

/// The contexts of the profile, for `hotfixctl contexts`, and the file
/// read.
pub fn list(cli: &Cli) -> Result<(PathBuf, Vec<Listed>), CliError> {
    let path = path(cli).ok_or_else(|| {
        usage("neither HOME nor XDG_CONFIG_HOME is set, so there is no profile file; give --config FILE")
    })?;
    let profile = read(&path, Some("contexts"))?;
    let current = cli.context.clone().or(profile.context.clone());
    let rows = profile
        .contexts
        .into_iter()
        .map(|(name, c)| Listed {
            current: current.as_deref() == Some(name.as_str()),
            endpoint: c.endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            name,
        })
        .collect();
    Ok((path, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_follows_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_path(os("/x/conf"), os("/home/bob")),
            Some(PathBuf::from("/x/conf/hotfixctl/config.toml"))
        );
        assert_eq!(
            default_path(None, os("/home/bob")),
            Some(PathBuf::from("/home/bob/.config/hotfixctl/config.toml"))
        );
        // Empty or relative XDG_CONFIG_HOME: ignored.
        for xdg in ["", "conf"] {
            assert_eq!(
                default_path(os(xdg), os("/home/bob")),
                Some(PathBuf::from("/home/bob/.config/hotfixctl/config.toml"))
            );
        }
        assert_eq!(default_path(None, None), None);
        assert_eq!(default_path(os(""), os("")), None);
    }

    #[test]
    fn an_endpoint_needs_its_scheme_and_a_host() {
        assert_eq!(
            checked_endpoint("http://127.0.0.1:50051", "--endpoint").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert!(checked_endpoint("https://hotfixd.internal", "--endpoint").is_ok());
        let e = checked_endpoint("127.0.0.1:50051", "--endpoint").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(
            e.message
                .starts_with("--endpoint 127.0.0.1:50051: give the scheme: http://127.0.0.1:50051"),
            "{e}"
        );
        let e = checked_endpoint("grpc://h:1", "--endpoint").unwrap_err();
        assert!(e.message.contains("not grpc://"), "{e}");
        let e = checked_endpoint("http://", "--endpoint").unwrap_err();
        assert_eq!(e.code, 2, "{e}");
    }

    #[test]
    fn paths_in_a_context_are_under_home_or_the_profiles_directory() {
        let dir = Path::new("/etc/hotfixctl");
        assert_eq!(
            expand(Path::new("prod.token"), Some(dir)),
            PathBuf::from("/etc/hotfixctl/prod.token")
        );
        assert_eq!(
            expand(Path::new("/abs/ca.pem"), Some(dir)),
            PathBuf::from("/abs/ca.pem")
        );
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                expand(Path::new("~/t"), Some(dir)),
                PathBuf::from(home).join("t")
            );
        }
    }
}
