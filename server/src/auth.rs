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
    pub token_sha256: String,
}

/// Maps token hashes to principals.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    by_hash: HashMap<[u8; 32], Principal>,
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
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&e.token_sha256, &mut hash).map_err(|_| {
                format!("{field}.token_sha256: must be 64 hex digits (see `hotfixd token new`)")
            })?;
            if r.directory.contains_key(&handle) {
                return Err(format!("{field}.handle: '{handle}' appears twice"));
            }
            if r.by_hash.contains_key(&hash) {
                return Err(format!(
                    "{field}.token_sha256: the same token is used by two principals"
                ));
            }
            r.directory.insert(handle.clone(), e.roles.clone());
            r.by_hash.insert(
                hash,
                Principal {
                    handle,
                    roles: e.roles.clone(),
                },
            );
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
    /// The principal carries the roles it holds now (`roles`: the roster's,
    /// or a GitHub team's for a mapped role).
    pub fn intercept(&self, roles: &Roles, mut req: Request<()>) -> Result<Request<()>, Status> {
        let header = req.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing 'authorization: Bearer <token>' metadata")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Status::unauthenticated("authorization metadata must be 'Bearer <token>'")
            })?;
        match self.authenticate(token.trim()) {
            Some(p) => {
                let p = roles.principal(&p.handle).unwrap_or_else(|| p.clone());
                req.extensions_mut().insert(p);
                Ok(req)
            }
            None => {
                tracing::warn!("rejected an unknown bearer token");
                Err(Status::unauthenticated("unknown token"))
            }
        }
    }
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
        }
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
