//! The audit trail's cryptography, shared by the daemon (which seals and
//! signs) and every verifier (`hotfixctl`, `hotfixd audit verify`, a
//! second-language client): the canonical leaf encoding, the chain link,
//! and signed checkpoints in the C2SP signed-note / tlog-checkpoint format.
//!
//! **Leaves.** A record's leaf hash is `SHA-256(0x00 || "hotfixd.audit.v2\n"
//! || u64(seq) || i64(at seconds) || u32(at nanos) || str(actor) ||
//! str(incident_id) || str(action) || str(outcome) || str(detail) ||
//! opt(event_seq))`, integers big-endian, `str` a u32 length then UTF-8
//! bytes, `opt` 0x00 or 0x01 then a u64: the same bytes in any language,
//! whatever its JSON library does. (Records sealed before this encoding
//! hash their JSON; they carry no `v` and verifiers compare their hash.)
//! **Links.** `SHA-256(0x01 || previous chain hash || leaf)`, the first
//! record linking to 32 zero bytes (RFC 6962's domain separation).
//!
//! **Checkpoints.** `<origin>\n<size>\n<base64 chain head>\n`, signed as a
//! C2SP note: a blank line, then `— <key name> <base64(key hash || sig)>`,
//! where the key hash is the first 4 bytes of `SHA-256(name || "\n" ||
//! 0x01 || public key)` and the signature is Ed25519 over the body. Keys
//! are written as the note format spells them: `PRIVATE+KEY+<name>+<hash
//! hex>+<base64(0x01 || seed)>` (the signer's secret) and
//! `<name>+<hash hex>+<base64(0x01 || public key)>` (the verifier key, safe
//! to publish). A checkpoint signed at size N proves the whole trail up to N
//! to anyone holding the verifier key: rewriting any earlier record, even
//! re-sealing every hash after it, changes the head at N.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// What the first record links to.
pub const GENESIS: Hash = [0; 32];

/// The fields of a record that its leaf hash covers.
#[derive(Debug, Clone, Copy)]
pub struct Leaf<'a> {
    pub seq: u64,
    pub at_seconds: i64,
    pub at_nanos: u32,
    pub actor: &'a str,
    pub incident_id: &'a str,
    pub action: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
    pub event_seq: Option<u64>,
}

/// The leaf encoding version records carry once sealed with [`leaf`].
pub const LEAF_VERSION: u32 = 2;

/// The canonical leaf hash of a record.
pub fn leaf(f: &Leaf<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(b"hotfixd.audit.v2\n");
    h.update(f.seq.to_be_bytes());
    h.update(f.at_seconds.to_be_bytes());
    h.update(f.at_nanos.to_be_bytes());
    for s in [f.actor, f.incident_id, f.action, f.outcome, f.detail] {
        h.update((s.len() as u32).to_be_bytes());
        h.update(s.as_bytes());
    }
    match f.event_seq {
        None => h.update([0x00]),
        Some(n) => {
            h.update([0x01]);
            h.update(n.to_be_bytes());
        }
    }
    h.finalize().into()
}

/// The chain hash of a record with leaf `leaf` after `prev`.
pub fn link(prev: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// The algorithm byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['+', ' ', '\n']) || name.chars().any(char::is_control) {
        return Err(format!(
            "key name '{name}' must be non-empty, without '+', spaces or line breaks"
        ));
    }
    Ok(())
}

/// A checkpoint signer: the key name (the log's origin) and its secret.
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

/// A checkpoint verifier key.
#[derive(Clone)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl SigningKey {
    /// A new key named `name` from 32 random bytes.
    pub fn generate(name: &str, seed: [u8; 32]) -> Result<SigningKey, String> {
        check_name(name)?;
        Ok(SigningKey {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hash>+<base64>`.
    pub fn parse(text: &str) -> Result<SigningKey, String> {
        let bad = || "not a signing key (PRIVATE+KEY+<name>+<hash>+<base64>)".to_string();
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        // Names hold no '+'; base64 may.
        let mut parts = rest.splitn(3, '+');
        let (name, hash, b64) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        let bytes = B64.decode(b64).map_err(|_| bad())?;
        let (alg, seed) = bytes.split_first().ok_or_else(bad)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad())?;
        if *alg != ED25519 {
            return Err("only Ed25519 signing keys are supported".into());
        }
        let key = SigningKey::generate(name, seed)?;
        if hex(&key.verifier().hash) != hash {
            return Err("the signing key's hash does not match its name and key".into());
        }
        Ok(key)
    }

    /// The key as `PRIVATE+KEY+…` (a secret).
    pub fn encode(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&self.verifier().hash),
            B64.encode(bytes)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> VerifierKey {
        let key = self.key.verifying_key();
        VerifierKey {
            name: self.name.clone(),
            hash: key_hash(&self.name, key.as_bytes()),
            key,
        }
    }

    /// The signed checkpoint of a trail of `size` records ending at `head`.
    pub fn checkpoint(&self, size: u64, head: &Hash) -> String {
        let body = checkpoint_body(&self.name, size, head);
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.verifier().hash.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

fn checkpoint_body(origin: &str, size: u64, head: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", B64.encode(head))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl VerifierKey {
    /// Parses `<name>+<hash>+<base64>`.
    pub fn parse(text: &str) -> Result<VerifierKey, String> {
        let bad = || "not a verifier key (<name>+<hash>+<base64>)".to_string();
        // Names hold no '+'; base64 may.
        let mut parts = text.trim().splitn(3, '+');
        let (name, hash, b64) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        check_name(name)?;
        let bytes = B64.decode(b64).map_err(|_| bad())?;
        let (alg, public) = bytes.split_first().ok_or_else(bad)?;
        let public: [u8; 32] = public.try_into().map_err(|_| bad())?;
        if *alg != ED25519 {
            return Err("only Ed25519 verifier keys are supported".into());
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| bad())?;
        let computed = key_hash(name, &public);
        if hex(&computed) != hash {
            return Err("the verifier key's hash does not match its name and key".into());
        }
        Ok(VerifierKey {
            name: name.to_string(),
            hash: computed,
            key,
        })
    }

    pub fn encode(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.hash), B64.encode(bytes))
    }

    /// Verifies a signed checkpoint: (origin, size, head) if this key
    /// signed exactly this body.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, String> {
        let (body, sigs) = note
            .split_once("\n\n")
            .ok_or("not a signed note (no blank line before the signatures)")?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let (origin, size, head) = (lines.next(), lines.next(), lines.next());
        let (Some(origin), Some(size), Some(head), None) = (origin, size, head, lines.next())
        else {
            return Err("not a checkpoint (origin, size, root hash)".into());
        };
        if origin != self.name {
            return Err(format!(
                "the checkpoint is of origin '{origin}', the key is '{}'",
                self.name
            ));
        }
        let size: u64 = size.parse().map_err(|_| "the size is not a number")?;
        let head: Hash = B64
            .decode(head)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or("the root hash is not 32 bytes of base64")?;
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                continue;
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(blob) = B64.decode(b64) else { continue };
            if name != self.name || blob.len() != 68 || blob[..4] != self.hash {
                continue;
            }
            let sig = ed25519_dalek::Signature::from_slice(&blob[4..])
                .map_err(|_| "a malformed signature")?;
            return self
                .key
                .verify(body.as_bytes(), &sig)
                .map(|()| Checkpoint { size, head })
                .map_err(|_| format!("the signature of '{}' does not verify", self.name));
        }
        Err(format!("no signature by '{}' on the checkpoint", self.name))
    }
}

/// A verified checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub size: u64,
    pub head: Hash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let key = SigningKey::generate("hotfixd.example/bookstore", [7; 32]).unwrap();
        let note = key.checkpoint(42, &[9; 32]);
        assert!(
            note.starts_with("hotfixd.example/bookstore\n42\n"),
            "{note}"
        );
        let v = VerifierKey::parse(&key.verifier().encode()).unwrap();
        assert_eq!(
            v.verify(&note).unwrap(),
            Checkpoint {
                size: 42,
                head: [9; 32]
            }
        );
        // Round trips of both keys.
        let again = SigningKey::parse(&key.encode()).unwrap();
        assert_eq!(again.checkpoint(42, &[9; 32]), note);
        // Another key of the same name, an altered body, another origin.
        let other = SigningKey::generate("hotfixd.example/bookstore", [8; 32]).unwrap();
        assert!(other.verifier().verify(&note).is_err());
        let forged = note.replace("\n42\n", "\n43\n");
        assert!(v.verify(&forged).unwrap_err().contains("does not verify"));
        let elsewhere = SigningKey::generate("elsewhere", [7; 32]).unwrap();
        assert!(elsewhere.verifier().verify(&note).is_err());
        assert!(SigningKey::parse("PRIVATE+KEY+x+00000000+AAAA").is_err());
        // Whatever the base64 holds ('+' included), keys round trip.
        for seed in 0..64u8 {
            let k = SigningKey::generate("n", [seed; 32]).unwrap();
            SigningKey::parse(&k.encode()).unwrap();
            VerifierKey::parse(&k.verifier().encode()).unwrap();
        }
    }

    #[test]
    fn the_leaf_encoding_is_fixed() {
        let f = Leaf {
            seq: 1,
            at_seconds: 1_779_267_600,
            at_nanos: 5,
            actor: "alice",
            incident_id: "INC-2026-05-20-001",
            action: "approve",
            outcome: "ok",
            detail: "@alice approved fix 111111111111",
            event_seq: Some(3),
        };
        // Any verifier, in any language, computes exactly this (the value
        // was computed independently, with Python's hashlib and struct).
        assert_eq!(
            hex(&leaf(&f)),
            "b1459dec79152da25e6cec9a021c34f12264d4064e456a354162f09948c1ed34"
        );
        let other = Leaf {
            actor: "mallory",
            ..f
        };
        assert_ne!(leaf(&f), leaf(&other));
        // Field boundaries are unambiguous.
        let a = Leaf {
            actor: "ab",
            incident_id: "c",
            ..f
        };
        let b = Leaf {
            actor: "a",
            incident_id: "bc",
            ..f
        };
        assert_ne!(leaf(&a), leaf(&b));
    }
}
