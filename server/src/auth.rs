//! Identity from credentials: bearer tokens are hashed (SHA-256) and looked
//! up in the roster. No plain-text token is stored, and no request field can
//! name a different actor: handlers get the `Principal` only from here.

use std::collections::{BTreeSet, HashMap};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::domain::{Directory, Principal, Role};
use crate::roles::Roles;

/// One roster entry, as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    pub handle: String,
    pub roles: BTreeSet<Role>,
    /// Lowercase hex SHA-256 of the bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_sha256: String,
    /// Client-certificate identity (mutual TLS): a SPIFFE URI
    /// (`spiffe://trust-domain/path`) or a DNS name in the certificate's SAN.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub san: String,
}

/// Maps token hashes to principals.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    by_hash: HashMap<[u8; 32], Principal>,
    /// Client-certificate identity → handle.
    by_san: HashMap<String, String>,
    directory: Directory,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token (256 bits, hex) and its SHA-256.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("hfx_{}", hex::encode(bytes));
    let hash = hex::encode(hash_token(&token));
    (token, hash)
}

impl Roster {
    pub fn new(entries: &[PrincipalEntry]) -> Result<Roster, String> {
        let mut r = Roster::default();
        for (i, e) in entries.iter().enumerate() {
            let field = format!("principals[{i}]");
            let handle = crate::domain::validate::normalize_handle("handle", &e.handle)
                .map_err(|err| format!("{field}.handle: {err}"))?;
            if e.roles.is_empty() {
                return Err(format!("{field}.roles: at least one role is required"));
            }
            if e.token_sha256.is_empty() && e.san.is_empty() {
                return Err(format!(
                    "{field}: needs token_sha256 (see `hotfixd token new`) or san (a client \
                     certificate identity), or both"
                ));
            }
            if r.directory.contains_key(&handle) {
                return Err(format!("{field}.handle: '{handle}' appears twice"));
            }
            if !e.token_sha256.is_empty() {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&e.token_sha256, &mut hash).map_err(|_| {
                    format!("{field}.token_sha256: must be 64 hex digits (see `hotfixd token new`)")
                })?;
                if r.by_hash.contains_key(&hash) {
                    return Err(format!(
                        "{field}.token_sha256: the same token is used by two principals"
                    ));
                }
                r.by_hash.insert(
                    hash,
                    Principal {
                        handle: handle.clone(),
                        roles: e.roles.clone(),
                    },
                );
            }
            if !e.san.is_empty() {
                let san = e.san.to_ascii_lowercase();
                let valid = san.strip_prefix("spiffe://").is_some_and(|rest| {
                    rest.split_once('/')
                        .is_some_and(|(td, path)| !td.is_empty() && !path.is_empty())
                }) || (!san.contains("://") && san.contains('.') && !san.contains(' '));
                if !valid {
                    return Err(format!(
                        "{field}.san: '{}' is neither a SPIFFE ID (spiffe://domain/path) nor a DNS name",
                        e.san
                    ));
                }
                if r.by_san.insert(san, handle.clone()).is_some() {
                    return Err(format!(
                        "{field}.san: the same identity names two principals"
                    ));
                }
            }
            r.directory.insert(handle.clone(), e.roles.clone());
        }
        Ok(r)
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        self.by_hash.get(&hash_token(token))
    }

    /// The tonic interceptor: requires `authorization: Bearer <token>` and
    /// puts the principal into the request's extensions.
    /// The handle a client certificate names: its one URI SAN (a SPIFFE
    /// ID), or else the DNS-name SAN listed in the roster.
    pub fn certificate_principal(&self, der: &[u8]) -> Result<String, String> {
        let (uris, dns) = certificate_sans(der)?;
        if uris.len() > 1 {
            return Err(format!(
                "the client certificate has {} URI SANs ({}); exactly one identity is accepted",
                uris.len(),
                uris.join(", ")
            ));
        }
        let mut named: Vec<&String> = match uris.first() {
            Some(u) => self.by_san.get(u).into_iter().collect(),
            None => dns.iter().filter_map(|d| self.by_san.get(d)).collect(),
        };
        named.dedup();
        match named.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "the client certificate's identity ({}) is not in the roster",
                uris.iter()
                    .chain(&dns)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err("the client certificate's DNS names name more than one principal".into()),
        }
    }

    /// The tonic interceptor: identity from a verified client certificate
    /// (mutual TLS) and/or `authorization: Bearer <token>`; when both are
    /// given they must name the same principal. The principal carries the
    /// roles it holds now (`roles`: the roster's, or a GitHub team's).
    pub fn intercept(&self, roles: &Roles, mut req: Request<()>) -> Result<Request<()>, Status> {
        let certs = req.peer_certs();
        let p = self.principal_of(
            roles,
            None,
            certs.as_deref().map(Vec::as_slice),
            req.metadata().get("authorization").map(|v| v.as_bytes()),
        )?;
        req.extensions_mut().insert(p);
        Ok(req)
    }

    /// The principal of a call: its client certificate chain (leaf first)
    /// and/or its `authorization` header's value.
    pub fn principal_of(
        &self,
        roles: &Roles,
        oidc: Option<&crate::oidc::Oidc>,
        peer_certs: Option<&[tonic::transport::CertificateDer<'static>]>,
        authorization: Option<&[u8]>,
    ) -> Result<Principal, Status> {
        let by_cert = match peer_certs {
            Some(chain) if !chain.is_empty() => {
                // Failures are logged by the caller, at a bounded rate
                // (`grpc::guard`).
                Some(
                    self.certificate_principal(chain[0].as_ref())
                        .map_err(Status::unauthenticated)?,
                )
            }
            _ => None,
        };
        let mut sso = None;
        let by_token = match authorization {
            None => None,
            Some(header) => {
                let token = std::str::from_utf8(header)
                    .ok()
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .ok_or_else(|| {
                        Status::unauthenticated("authorization metadata must be 'Bearer <token>'")
                    })?;
                let token = token.trim();
                match oidc {
                    // An SSO token: the IdP's word, never the roster's.
                    Some(idp) if crate::oidc::is_jwt(token) => {
                        let person = idp
                            .verify(token)
                            .map_err(|r| Status::unauthenticated(r.0))?;
                        sso = Some(person.clone());
                        Some(person.handle)
                    }
                    _ => match self.authenticate(token) {
                        Some(p) => Some(p.handle.clone()),
                        None => return Err(Status::unauthenticated("unknown token")),
                    },
                }
            }
        };
        let handle = match (by_cert, by_token) {
            (Some(c), Some(t)) if c != t => {
                return Err(Status::unauthenticated(format!(
                    "the client certificate names @{c} but the token names @{t}"
                )));
            }
            (Some(h), _) | (None, Some(h)) => h,
            (None, None) => {
                return Err(Status::unauthenticated(
                    "missing 'authorization: Bearer <token>' metadata (or a client certificate)",
                ));
            }
        };
        if let Some(person) = sso {
            return Ok(person.principal(roles.principal(&handle)));
        }
        roles
            .principal(&handle)
            .ok_or_else(|| Status::unauthenticated(format!("@{handle} is no longer in the roster")))
    }
}

/// URI and DNS-name SANs of a certificate (lowercased).
fn certificate_sans(der: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("the client certificate's SAN does not parse: {e}"))?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match name {
            GeneralName::URI(u) => uris.push(u.to_ascii_lowercase()),
            GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
            _ => {}
        }
    }
    Ok((uris, dns))
}

/// The principal the interceptor attached.
pub fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated principal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(handle: &str, role: Role, token: &str) -> PrincipalEntry {
        PrincipalEntry {
            handle: handle.into(),
            roles: [role].into(),
            token_sha256: hex::encode(hash_token(token)),
            san: String::new(),
        }
    }

    #[test]
    fn roster_identities_are_checked() {
        let mut cert_only = entry("deployer", Role::Service, "x");
        cert_only.token_sha256 = String::new();
        cert_only.san = "spiffe://bookstore.internal/ns/ci/sa/deployer".into();
        Roster::new(&[cert_only.clone()]).unwrap();
        let mut neither = cert_only.clone();
        neither.san = String::new();
        assert!(
            Roster::new(&[neither])
                .unwrap_err()
                .contains("token_sha256")
        );
        for bad in ["spiffe://", "spiffe://td", "http://x.example/y", "no dots"] {
            let mut e = cert_only.clone();
            e.san = bad.into();
            assert!(Roster::new(&[e]).unwrap_err().contains(".san"), "{bad}");
        }
        let mut twin = cert_only.clone();
        twin.handle = "other".into();
        assert!(
            Roster::new(&[cert_only, twin])
                .unwrap_err()
                .contains("two principals")
        );
    }

    #[test]
    fn tokens_authenticate_by_hash_only() {
        let (token, hash) = new_token();
        assert_eq!(hash, hex::encode(hash_token(&token)));
        assert_ne!(new_token().0, token, "tokens are random");
        let roster = Roster::new(&[entry("bob", Role::Engineer, &token)]).unwrap();
        assert_eq!(roster.authenticate(&token).unwrap().handle, "bob");
        assert!(
            roster.authenticate(&hash).is_none(),
            "the hash is not a token"
        );
        assert!(roster.authenticate("").is_none());
    }

    #[test]
    fn roster_errors_name_the_entry() {
        let dup = Roster::new(&[
            entry("bob", Role::Engineer, "a"),
            entry("bob", Role::Service, "b"),
        ]);
        assert!(dup.unwrap_err().contains("principals[1].handle"));
        let same_token = Roster::new(&[
            entry("bob", Role::Engineer, "a"),
            entry("eve", Role::Service, "a"),
        ]);
        assert!(
            same_token
                .unwrap_err()
                .contains("principals[1].token_sha256")
        );
        let mut bad = entry("bob", Role::Engineer, "a");
        bad.token_sha256 = "xyz".into();
        assert!(Roster::new(&[bad]).unwrap_err().contains("64 hex digits"));
    }

    #[test]
    fn the_interceptor_takes_identity_from_the_token_alone() {
        let roster = Roster::new(&[entry("bob", Role::Engineer, "t-bob")]).unwrap();
        let roles = Roles::from_roster(roster.directory().clone());
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", "Bearer t-bob".parse().unwrap());
        req.metadata_mut()
            .insert("x-actor", "alice".parse().unwrap());
        let req = roster.intercept(&roles, req).unwrap();
        assert_eq!(principal(&req).unwrap().handle, "bob");
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert("authorization", "Basic t-bob".parse().unwrap());
        assert_eq!(
            roster.intercept(&roles, wrong).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            roster
                .intercept(&roles, Request::new(()))
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
    }
}
