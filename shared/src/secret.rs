//! The national server's secret, from which the My Number hashing key and the agency-code key are
//! derived (separate keys, so one use can never be turned into the other).

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{AgencyCodeKey, MyNumberHasher};

pub struct ServerSecret([u8; 32]);

/// A random token of `bytes` bytes from the OS source, as hex (form tokens, session ids, links).
///
/// A token whose hex holds twelve digits that pass the My Number check digit is drawn again: every
/// log line goes through `mask_my_numbers` (rule 1), which would mask them, and a link written to
/// the log (`--mail-to-log`) would then not work. About 1.7 % of 32-byte tokens are redrawn; what
/// is left is uniform over the others, which are still far more than enough.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    loop {
        getrandom::fill(&mut buf).expect("the OS random source is available");
        let token = crate::encoding::hex(&buf);
        if matches!(crate::mask_my_numbers(&token), std::borrow::Cow::Borrowed(_)) {
            return token;
        }
    }
}

/// `digits` decimal digits from the OS random source, each equally likely (bytes 250..=255 are
/// drawn again, so `% 10` has no bias).
pub fn random_digits(digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    let mut buf = [0u8; 16];
    while out.len() < digits {
        getrandom::fill(&mut buf).expect("the OS random source is available");
        for b in buf.iter().copied().filter(|b| *b < 250) {
            if out.len() == digits {
                break;
            }
            out.push(char::from(b'0' + b % 10));
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the server secret {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write the server secret {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the server secret {path} must hold 64 hexadecimal characters")]
    Format { path: String },
}

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        Self(bytes)
    }

    /// Reads the secret file, or creates it (mode 0600) with a fresh random secret when it does not
    /// exist yet. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = crate::encoding::unhex(text.trim())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or(SecretError::Format { path: shown })?;
                Ok((Self(bytes), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = Self::generate();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| SecretError::Write { path: shown.clone(), source })?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(path)
                    .map_err(|source| SecretError::Write { path: shown.clone(), source })?;
                writeln!(file, "{}", crate::encoding::hex(&secret.0))
                    .map_err(|source| SecretError::Write { path: shown, source })?;
                Ok((secret, true))
            }
            Err(source) => Err(SecretError::Read { path: shown, source }),
        }
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    pub fn my_number_hasher(&self) -> MyNumberHasher {
        MyNumberHasher::new(&self.derive(b"ncf/my-number-hash/v1"))
    }

    pub fn agency_code_key(&self) -> AgencyCodeKey {
        AgencyCodeKey::new(&self.derive(b"ncf/agency-code/v1"))
    }

    pub fn proofing_code_key(&self) -> ProofingCodeKey {
        ProofingCodeKey(self.derive(b"ncf/proofing-code/v1"))
    }
}

/// Keys the digests of postal proofing codes. The codes are short (a person types them from a
/// letter), so a plain hash of one could be reversed from a copy of the database by trying them
/// all; keyed by the server secret, it cannot.
#[derive(Clone)]
pub struct ProofingCodeKey([u8; 32]);

impl ProofingCodeKey {
    /// Hex digest of a letter's code, bound to the letter so one digest proves nothing elsewhere.
    pub fn digest(&self, letter_id: &str, code: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(letter_id.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        crate::encoding::hex(&mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn random_tokens_survive_log_masking() {
        for _ in 0..20_000 {
            let token = random_token(32);
            assert_eq!(token.len(), 64);
            assert_eq!(crate::mask_my_numbers(&token), token.as_str());
        }
    }

    use super::*;

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.key");
        let (a, created) = ServerSecret::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = ServerSecret::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(ServerSecret::load_or_create(&path), Err(SecretError::Format { .. })));
    }

    #[test]
    fn derived_keys_differ() {
        let s = ServerSecret::from_bytes([4; 32]);
        let n = crate::MyNumber::parse("123456789018").unwrap();
        let person = s.my_number_hasher().person_key(&n);
        // The agency key is not the hashing key: hashing the same bytes under each differs.
        let as_code = s.agency_code_key().code_for(crate::Prefecture::from_code("13").unwrap(), &person);
        assert_ne!(crate::encoding::base32(person.as_bytes()), as_code.to_string());
    }
}
