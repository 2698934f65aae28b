//! TLS for both binaries (DESIGN rule 6: TLS everywhere but loopback): a rustls server
//! configuration from PEM files whose certificate can be replaced without a restart, and the rule
//! for which national-server URLs a node accepts.
//!
//! Reloading: the configuration resolves its certificate through [`ReloadableCert`], which holds
//! the current key pair behind an atomic pointer. [`ReloadableCert::reload`] reads the files
//! again and swaps them in; new connections get the new certificate, open ones keep theirs. A
//! reload that fails (a half-written file, a key that does not match) keeps the old certificate
//! and says why, so a renewal mistake never takes the server down. The binaries call it on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the private key in {path} is not usable: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
}

/// Installs ring as the process's rustls provider (STACK trap 8: with more than one provider
/// compiled in, rustls cannot choose by itself). Safe to call more than once.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { path: path.to_path_buf(), reason: e.to_string() })
}

/// Every certificate in a PEM file (a chain: leaf first).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read { path: path.to_path_buf(), reason: format!("not PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

fn load_key_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    install_provider();
    let certs = load_certificates(cert_path)?;
    let key_error = |reason: String| TlsError::Key { path: key_path.to_path_buf(), reason };
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|e| key_error(e.to_string()))?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .ok_or_else(|| TlsError::Config("no rustls crypto provider installed".into()))?;
    let certified = CertifiedKey::from_der(certs, key, provider).map_err(|e| key_error(e.to_string()))?;
    Ok(certified)
}

/// The server's certificate and key, replaceable while it runs.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let pair = load_key_pair(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::from_pointee(pair),
        }))
    }

    /// Reads the files again; on success new connections use them, on failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_key_pair(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(pair));
        Ok(())
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, no client certificates: nodes
    /// authenticate by signing each request) that serves the current certificate.
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        install_provider();
        rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(self.clone())
    }

    /// Reloads on every SIGHUP until the process ends; logs each outcome. Spawn it on the
    /// server's runtime.
    pub async fn reload_on_sighup(self: Arc<Self>) {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; certificates reload only on restart");
            return;
        };
        while hangups.recv().await.is_some() {
            match self.reload() {
                Ok(()) => tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; still serving the previous one")
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Whether a host name is this machine's loopback: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The national server's URL as a node accepts it: `https://…`, or `http://…` only on loopback
/// (a local test or a TLS-terminating proxy on the same machine). Returns the URL without a
/// trailing slash.
pub fn check_national_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| format!("national URL {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    if host.is_empty() {
        return Err(format!("national URL {url:?} names no host"));
    }
    // The scheme in lower case: the client decides "https only" from it.
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(format!("https://{rest}")),
        "http" if is_loopback_host(host) => Ok(format!("http://{rest}")),
        "http" => Err(format!(
            "national URL {url:?} is plain http to another machine: use https:// (plain http is allowed on loopback only)"
        )),
        other => Err(format!("national URL scheme {other:?} is not supported; use https://")),
    }
}

/// The address a server prints and clients use: `https://` when it serves TLS.
pub fn base_url(tls: bool, addr: std::net::SocketAddr) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// Plain HTTP is served only on loopback; anything reachable from elsewhere needs a certificate.
pub fn check_plain_listen(listen: &str) -> Result<(), String> {
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    if is_loopback_host(host) {
        Ok(())
    } else {
        Err(format!(
            "listening on {listen} without TLS would expose personal data to the network: give --tls-cert and --tls-key, or listen on a loopback address"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_urls_need_https_except_on_loopback() {
        assert_eq!(
            check_national_url("https://national.example.jp/").unwrap(),
            "https://national.example.jp"
        );
        assert!(check_national_url("http://127.0.0.1:8080").is_ok());
        assert!(check_national_url("http://127.9.9.9:8080").is_ok());
        assert!(check_national_url("http://localhost:8080").is_ok());
        assert_eq!(check_national_url("HTTP://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(check_national_url("HTTPS://national.example.jp").unwrap(), "https://national.example.jp");
        assert!(check_national_url("http://[::1]:8080").is_ok());
        let refused = check_national_url("http://national.example.jp").unwrap_err();
        assert!(refused.contains("https://"), "{refused}");
        assert!(check_national_url("http://10.0.0.5:8080").is_err());
        assert!(check_national_url("http://127.0.0.1.example.jp").is_err());
        assert!(check_national_url("ftp://127.0.0.1").is_err());
        assert!(check_national_url("national.example.jp").is_err());
        assert!(check_national_url("https://").is_err());
    }

    #[test]
    fn plain_http_listens_on_loopback_only() {
        assert!(check_plain_listen("127.0.0.1:8080").is_ok());
        assert!(check_plain_listen("[::1]:8080").is_ok());
        assert!(check_plain_listen("localhost:0").is_ok());
        assert!(check_plain_listen("0.0.0.0:8080").is_err());
        assert!(check_plain_listen("192.0.2.1:443").is_err());
    }

    #[test]
    fn missing_or_wrong_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = ReloadableCert::load(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = ReloadableCert::load(&cert, &key).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
