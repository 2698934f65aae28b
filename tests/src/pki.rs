//! A small certificate authority for tests and the local federation: a CA and server
//! certificates for loopback (`localhost`, 127.0.0.1, ::1), written as PEM files, as an operator
//! would receive them from a real CA.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

pub struct LocalCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients trust.
    pub ca_file: PathBuf,
}

/// A server certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl LocalCa {
    /// Creates a CA and writes its certificate to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, format!("Nurse Center Federation {name} CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, issuer.pem()).expect("write CA certificate");
        Self { issuer, ca_file }
    }

    /// Issues a certificate for loopback and writes it to `dir/<name>.pem` and `dir/<name>.key`
    /// (the key with mode 0600), replacing any earlier one.
    pub fn issue(&self, dir: &Path, name: &str) -> ServerCert {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
                .expect("server certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        let cert_file = dir.join(format!("{name}.pem"));
        let key_file = dir.join(format!("{name}.key"));
        // Write through a temporary file and rename, as a renewal tool would, so a reload never
        // sees half a file.
        write_atomically(&cert_file, &format!("{}{}", cert.pem(), self.issuer.pem()), 0o644);
        write_atomically(&key_file, &key.serialize_pem(), 0o600);
        ServerCert { cert_file, key_file }
    }
}

fn write_atomically(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write certificate file");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).expect("set file mode");
    std::fs::rename(&tmp, path).expect("move certificate file into place");
}
