//! A certificate authority of a test's own (rcgen): the CA, and leaf
//! certificates it signs for servers and clients.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A certificate with these SANs; returns (cert PEM, key PEM).
    pub fn leaf(&self, sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a client certificate's files; returns (cert path, key path).
    pub fn client_files(&self, name: &str, sans: Vec<SanType>) -> (String, String) {
        let (cert, key) = self.leaf(sans);
        let c = self.dir.path().join(format!("{name}.crt"));
        let k = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c.display().to_string(), k.display().to_string())
    }

    pub fn ca_file(&self) -> String {
        let p = self.dir.path().join("ca.crt");
        std::fs::write(&p, &self.ca_pem).unwrap();
        p.display().to_string()
    }
}

pub fn uri(u: &str) -> SanType {
    SanType::URI(u.try_into().unwrap())
}

pub fn dns(d: &str) -> SanType {
    SanType::DnsName(d.try_into().unwrap())
}
