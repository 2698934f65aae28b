//! Sealed contact details for a hand-over between prefectures (DESIGN flow 4).
//!
//! When a nurse moves, her old node relays her contact to the node of her new prefecture through
//! the national server, which keeps no e-mail address (issue #7). The national server queues
//! events for a node until that node pulls them, and a node may be offline for days; a plain
//! relay would leave her address in the national queue meanwhile. So the old node seals the
//! contact to the new node's registered key and the national server carries bytes it cannot read:
//! no table of the national server ever holds her e-mail address, even in transit.
//!
//! The construction is an ECIES over the node's Ed25519 key converted to X25519 (as libsodium's
//! `crypto_box_seal` does with `crypto_sign_ed25519_pk_to_curve25519`): an ephemeral X25519 key,
//! the shared secret through HMAC-SHA-256 into an encryption key and a MAC key, HMAC-SHA-256 in
//! counter mode as the key stream, and HMAC-SHA-256 over the ephemeral key and the ciphertext as
//! the tag (encrypt-then-MAC). Every key is used for one message only. Reusing a signing key for
//! key agreement is sound for Ed25519/X25519 (Thormarker, "On using the same key pair for Ed25519
//! and an X25519 based KEM", 2021) and keeps one key per node to register and rotate.
//!
//! The label binds the purpose, the recipient's key and a context the caller names (the transfer
//! it belongs to), so a box sealed for one node, purpose or transfer does not open as another: a
//! relay cannot swap two nurses' boxes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::federation::{NodePublicKey, NodeSigningKey};

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"ncf/sealed-contact/v1";
const TAG_LEN: usize = 32;
/// Largest plaintext accepted: a contact is a few hundred bytes.
pub const MAX_PLAINTEXT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed box is not valid base64 or too short")]
    Format,
    #[error("sealed box does not open with this key (wrong recipient or altered)")]
    Tampered,
    #[error("plaintext longer than {MAX_PLAINTEXT} bytes")]
    TooLong,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// (encryption key, MAC key) from the shared secret, bound to the label, the ephemeral key and
/// the recipient's key.
fn keys(
    shared: &MontgomeryPoint,
    ephemeral: &MontgomeryPoint,
    recipient: &[u8; 32],
    context: &[u8],
) -> ([u8; 32], [u8; 32]) {
    let length = (context.len() as u64).to_be_bytes();
    let root = mac(shared.as_bytes(), &[LABEL, ephemeral.as_bytes(), recipient, &length, context]);
    (mac(&root, &[b"encrypt"]), mac(&root, &[b"authenticate"]))
}

fn keystream_xor(key: &[u8; 32], data: &mut [u8]) {
    for (block, chunk) in data.chunks_mut(32).enumerate() {
        let stream = mac(key, &[&(block as u64).to_be_bytes()]);
        for (b, s) in chunk.iter_mut().zip(stream) {
            *b ^= s;
        }
    }
}

/// Seals `plaintext` so that only the holder of `recipient`'s private key can read it, and only
/// by naming the same `context`.
pub fn seal(recipient: &NodePublicKey, context: &[u8], plaintext: &[u8]) -> Result<String, SealError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(SealError::TooLong);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source");
    let ephemeral = MontgomeryPoint::mul_base_clamped(secret);
    let shared = recipient.to_montgomery().mul_clamped(secret);
    let (enc, auth) = keys(&shared, &ephemeral, &recipient.to_bytes(), context);
    let mut body = plaintext.to_vec();
    keystream_xor(&enc, &mut body);
    let tag = mac(&auth, &[ephemeral.as_bytes(), &body]);
    let mut out = Vec::with_capacity(32 + body.len() + TAG_LEN);
    out.extend_from_slice(ephemeral.as_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    Ok(STANDARD.encode(out))
}

/// Whether `text` has the shape of a sealed box (base64 of an ephemeral key, a body and a tag, no
/// longer than the largest): what a relay checks so that it never passes on contact details a
/// node sent in the clear. It cannot tell for whom the box is sealed.
pub fn looks_sealed(text: &str) -> bool {
    STANDARD
        .decode(text.trim())
        .is_ok_and(|raw| raw.len() > 32 + TAG_LEN && raw.len() <= 32 + MAX_PLAINTEXT + TAG_LEN)
}

/// Opens a box sealed for this node's key and `context`; refuses one altered, or sealed for
/// another key or context.
pub fn open(key: &NodeSigningKey, context: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
    let raw = STANDARD.decode(sealed.trim()).map_err(|_| SealError::Format)?;
    if raw.len() < 32 + TAG_LEN || raw.len() > 32 + MAX_PLAINTEXT + TAG_LEN {
        return Err(SealError::Format);
    }
    let ephemeral = MontgomeryPoint(raw[..32].try_into().expect("32 bytes"));
    let (body, tag) = raw[32..].split_at(raw.len() - 32 - TAG_LEN);
    let shared = ephemeral.mul_clamped(key.scalar_bytes());
    let (enc, auth) = keys(&shared, &ephemeral, &key.public_key().to_bytes(), context);
    let mut check = <HmacSha256 as KeyInit>::new_from_slice(&auth).expect("any key length");
    check.update(ephemeral.as_bytes());
    check.update(body);
    check.verify_slice(tag).map_err(|_| SealError::Tampered)?;
    let mut plain = body.to_vec();
    keystream_xor(&enc, &mut plain);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_and_nothing_altered_opens() {
        let kyoto = NodeSigningKey::generate();
        let osaka = NodeSigningKey::generate();
        let text = "{\"email\":\"hanako@example.jp\",\"family_name\":\"山田\"}".repeat(3);
        let sealed = seal(&kyoto.public_key(), b"transfer-1", text.as_bytes()).unwrap();
        assert!(!sealed.contains("hanako"));
        assert_eq!(open(&kyoto, b"transfer-1", &sealed).unwrap(), text.as_bytes());
        assert_eq!(open(&osaka, b"transfer-1", &sealed), Err(SealError::Tampered));
        assert_eq!(open(&kyoto, b"transfer-2", &sealed), Err(SealError::Tampered), "bound to its transfer");
        let mut raw = STANDARD.decode(&sealed).unwrap();
        raw[40] ^= 1;
        assert_eq!(open(&kyoto, b"transfer-1", &STANDARD.encode(&raw)), Err(SealError::Tampered));
        assert_eq!(open(&kyoto, b"transfer-1", "not base64!"), Err(SealError::Format));
        // Two seals of the same text differ (a fresh ephemeral key each time).
        assert_ne!(seal(&kyoto.public_key(), b"transfer-1", text.as_bytes()).unwrap(), sealed);
        assert_eq!(seal(&kyoto.public_key(), b"t", &vec![0; MAX_PLAINTEXT + 1]), Err(SealError::TooLong));
    }
}
