//! The federation protocol between nodes and the national server: message types and Ed25519 request
//! signing (DESIGN rule 6).
//!
//! A request carries four headers: the signing key's id, a Unix timestamp, a random nonce and the
//! signature over [`canonical_message`], which binds method, path, timestamp, nonce and a SHA-256 of
//! the body. The receiver checks the key is registered, the signature, that the timestamp is within
//! [`MAX_CLOCK_SKEW_SECS`], and that the nonce was not seen before (replay).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AgencyCode;
use crate::contract::{Envelope, ErrorCode, ProvisionPurpose, RejectCode};

pub const HEADER_KEY: &str = "x-ncf-key";
pub const HEADER_TIMESTAMP: &str = "x-ncf-timestamp";
pub const HEADER_NONCE: &str = "x-ncf-nonce";
pub const HEADER_SIGNATURE: &str = "x-ncf-signature";
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// Largest federation request body the server reads.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("malformed header {0}")]
    Malformed(&'static str),
    #[error("request signed by an unknown key")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("timestamp is {0} s away from the server clock (at most {MAX_CLOCK_SKEW_SECS} s allowed)")]
    Stale(i64),
    #[error("nonce already used: replayed request")]
    Replayed,
}

/// The bytes that are signed.
pub fn canonical_message(method: &str, path: &str, timestamp: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = crate::encoding::hex(&Sha256::digest(body));
    format!("ncf-federation-v1\n{}\n{path}\n{timestamp}\n{nonce}\n{body_hash}", method.to_ascii_uppercase())
        .into_bytes()
}

pub fn check_freshness(timestamp: i64, now: i64) -> Result<(), SignatureError> {
    let skew = now - timestamp;
    if skew.abs() > MAX_CLOCK_SKEW_SECS { Err(SignatureError::Stale(skew)) } else { Ok(()) }
}

/// A node's private signing key. The file form is the base64 of the 32-byte seed.
pub struct NodeSigningKey(SigningKey);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub key_id: String,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

impl SignedHeaders {
    pub fn pairs(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_KEY, self.key_id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

impl NodeSigningKey {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn from_base64(text: &str) -> Option<Self> {
        let seed: [u8; 32] = B64.decode(text.trim()).ok()?.try_into().ok()?;
        Some(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    pub fn public_key(&self) -> NodePublicKey {
        NodePublicKey(self.0.verifying_key())
    }

    /// The X25519 secret of this key, for opening boxes sealed to it (`sealed`).
    pub(crate) fn scalar_bytes(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }

    pub fn sign(&self, method: &str, path: &str, body: &[u8], timestamp: i64, nonce: &str) -> SignedHeaders {
        let signature = self.0.sign(&canonical_message(method, path, timestamp, nonce, body));
        SignedHeaders {
            key_id: self.public_key().key_id(),
            timestamp,
            nonce: nonce.to_string(),
            signature: B64.encode(signature.to_bytes()),
        }
    }

    /// Signs with the current time and a fresh random nonce.
    pub fn sign_now(&self, method: &str, path: &str, body: &[u8]) -> SignedHeaders {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        self.sign(method, path, body, chrono::Utc::now().timestamp(), &crate::encoding::hex(&nonce))
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct NodePublicKey(VerifyingKey);

impl std::fmt::Debug for NodePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodePublicKey({})", self.key_id())
    }
}

impl NodePublicKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes: [u8; 32] = B64
            .decode(text.trim())
            .map_err(|_| "public key is not base64".to_string())?
            .try_into()
            .map_err(|_| "public key must be 32 bytes (44 base64 characters)".to_string())?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| "public key is not a valid Ed25519 point".to_string())
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    pub(crate) fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The X25519 form of this key, for sealing to it (`sealed`).
    pub(crate) fn to_montgomery(&self) -> curve25519_dalek::montgomery::MontgomeryPoint {
        self.0.to_montgomery()
    }

    /// Short public fingerprint that names the key in requests: the first 16 hex digits of SHA-256.
    pub fn key_id(&self) -> String {
        crate::encoding::hex(&Sha256::digest(self.0.as_bytes())[..8])
    }

    pub fn verify(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
        signature: &str,
    ) -> Result<(), SignatureError> {
        let bytes: [u8; 64] = B64
            .decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureError::Malformed(HEADER_SIGNATURE))?;
        self.0
            .verify(&canonical_message(method, path, timestamp, nonce, body), &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureError::BadSignature)
    }
}

/// A nonce must be 16-64 characters of `[0-9A-Za-z_-]`, so it can be stored and compared as is.
pub fn nonce_is_well_formed(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `POST /federation/v1/identity-link`: a nurse's licence claims, as typed on the node's page.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityLinkRequest {
    /// Qualification code, "01".."31" (03 = 看護師).
    #[schema(example = "03")]
    pub qualification: String,
    /// 籍登録番号, 1-8 digits.
    #[schema(example = "0123456")]
    pub registration_number: String,
    pub family_name: String,
    pub given_name: String,
    /// Katakana.
    pub family_name_kana: String,
    pub given_name_kana: String,
    /// YYYY-MM-DD.
    #[schema(example = "1985-04-01")]
    pub birth_date: String,
    /// Set only by the node's staff pages, for a counter check with her licence certificate in
    /// hand: the staff member's id. Then a mismatch names the fields that differ (and says when
    /// the licence is not active), and the national server records the lookup with this id. The
    /// public pages leave it out and get only match or no match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_lookup: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityLinkResponse {
    /// This node's code for the person (機関別符号).
    #[schema(value_type = String)]
    pub agency_code: AgencyCode,
}

/// `POST /federation/v1/proofing/letter`: post her a one-time code (identity proofing by post).
/// The letter goes to the address of her resident registration, which the node never learns.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LetterRequest {
    #[schema(value_type = String)]
    pub agency_code: AgencyCode,
}

/// The answer to a [`LetterRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LetterResponse {
    /// A letter is queued for the next postal batch; its code is valid for `valid_days` from
    /// printing. `letter_id` is what the code is checked against.
    Queued { letter_id: String, valid_days: u32 },
    /// No current address in the resident data (moved abroad, not yet imported, deceased): no
    /// letter can be sent; she proves who she is at the counter instead.
    NoAddress,
    /// Too many letters for her recently; the earlier ones are still on their way.
    TooMany,
}

/// `POST /federation/v1/proofing/code`: the code she typed from her letter.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeCheckRequest {
    #[schema(value_type = String)]
    pub agency_code: AgencyCode,
    pub letter_id: String,
    pub code: String,
}

/// The answer to a [`CodeCheckRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CodeCheckResponse {
    /// The code is right: she is proofed by post from now on.
    Proofed,
    /// Wrong code; `tries_left` more before the letter is spent.
    Wrong { tries_left: u32 },
    /// The letter is spent (5 wrong tries), expired, already used or unknown: a new one is needed.
    NewLetterNeeded,
    /// The letter has not been printed yet, so no code can be right.
    NotSentYet,
}

/// `POST /federation/v1/push`: outbox events in sequence order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Each opens as a [`crate::contract::NodeToNational`].
    pub events: Vec<Envelope>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
// Answers are read leniently: a field added by a newer national server must not break an
// older node.
pub struct PushResponse {
    /// The last sequence number the national server holds without a gap: the node's new cursor.
    /// A node accepts it only if it is a sequence number it sent.
    pub last_seq: i64,
    /// Events that can never be applied (consumed, not applied): the node parks and reports them.
    #[serde(default)]
    pub rejected: Vec<RejectedEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
// Answers are read leniently: a field added by a newer national server must not break an
// older node.
pub struct RejectedEvent {
    pub seq: i64,
    pub code: RejectCode,
    /// What was wrong, for staff and logs.
    pub reason: String,
}

/// `POST /federation/v1/postings`: the calling node's postings, new or changed since the last
/// answer (issue #8). Not about any person, so not through the consent gate; each carries its
/// whole state, so sending one twice changes nothing.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostingsPush {
    pub postings: Vec<PublishedPosting>,
}

/// Postings per request (and the national server's limit).
pub const MAX_POSTINGS_PER_PUSH: usize = 200;

/// A posting's whole state at its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedPosting {
    pub posting_id: String,
    /// Grows with every edit at the node; the national server keeps the highest it has seen.
    pub version: i64,
    /// Withdrawn by staff: leaves every list.
    pub withdrawn: bool,
    pub body: crate::posting::PostingBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
// Answers are read leniently: a field added by a newer national server must not break an
// older node.
pub struct PostingsPushResponse {
    /// Each posting sent, with the version now held (a stale version leaves the newer one).
    pub stored: Vec<PostingVersion>,
    /// Postings the national server will never take at that version, with what is wrong.
    #[serde(default)]
    pub refused: Vec<PostingRefusal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostingVersion {
    pub posting_id: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostingRefusal {
    pub posting_id: String,
    pub version: i64,
    /// What is wrong, in Japanese, for staff.
    pub reason: String,
}

/// `POST /federation/v1/pull`: the calling node's queued events after its cursor.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The node's pull cursor: the last queue sequence it has stored.
    pub after: i64,
    /// At most this many events (1-1000).
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
// Answers are read leniently: a field added by a newer national server must not break an
// older node.
pub struct PullResponse {
    /// Events in sequence order, without gaps, starting at `after + 1`; each opens as a
    /// [`crate::contract::NationalToNode`].
    pub events: Vec<Envelope>,
}

/// `POST /federation/v1/provisions`: a nurse's entries in the data-provision record.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionsQuery {
    #[schema(value_type = String)]
    pub agency_code: AgencyCode,
}

/// One entry of the data-provision record, as her node shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
// Answers are read leniently: a field added by a newer national server must not break an
// older node.
pub struct ProvisionListing {
    pub seq: i64,
    pub recorded_at: chrono::NaiveDateTime,
    /// `national` or `node:NN`.
    pub source: String,
    pub recipient: String,
    /// What was provided, e.g. `consent:job_support`, `notice:separation`, `contact:email`.
    pub fields: Vec<String>,
    pub purpose: ProvisionPurpose,
}

/// Error body of every JSON endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind.
    pub error: ErrorCode,
    /// What was wrong, for a person.
    pub message: String,
    /// For `claims_mismatch` (staff lookups only): the claims that did not match the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatched: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tampering() {
        let key = NodeSigningKey::generate();
        let public = key.public_key();
        let h = key.sign("POST", "/federation/v1/identity-link", b"{}", 1_700_000_000, "0123456789abcdef");
        assert_eq!(h.key_id, public.key_id());
        let ok = |m: &str, p: &str, b: &[u8], t: i64, n: &str| public.verify(m, p, b, t, n, &h.signature);
        assert_eq!(
            ok("POST", "/federation/v1/identity-link", b"{}", 1_700_000_000, "0123456789abcdef"),
            Ok(())
        );
        assert_eq!(
            ok("POST", "/federation/v1/identity-link", b"{ }", 1_700_000_000, "0123456789abcdef"),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            ok("POST", "/federation/v1/push", b"{}", 1_700_000_000, "0123456789abcdef"),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            ok("POST", "/federation/v1/identity-link", b"{}", 1_700_000_001, "0123456789abcdef"),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            ok("POST", "/federation/v1/identity-link", b"{}", 1_700_000_000, "0123456789abcdeX"),
            Err(SignatureError::BadSignature)
        );
        let other = NodeSigningKey::generate().public_key();
        assert_eq!(
            other.verify(
                "POST",
                "/federation/v1/identity-link",
                b"{}",
                1_700_000_000,
                "0123456789abcdef",
                &h.signature
            ),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            public.verify("POST", "/", b"", 0, "x", "###"),
            Err(SignatureError::Malformed(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn keys_round_trip_through_text() {
        let key = NodeSigningKey::generate();
        let again = NodeSigningKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = NodePublicKey::parse(&key.public_key().to_base64()).unwrap();
        assert_eq!(public, key.public_key());
        assert!(NodePublicKey::parse("abc").is_err());
        assert!(NodeSigningKey::from_base64("abc").is_none());
    }

    #[test]
    fn freshness_window_is_five_minutes() {
        assert_eq!(check_freshness(1000, 1300), Ok(()));
        assert_eq!(check_freshness(1300, 1000), Ok(()));
        assert_eq!(check_freshness(1000, 1301), Err(SignatureError::Stale(301)));
        assert_eq!(check_freshness(1302, 1000), Err(SignatureError::Stale(-302)));
    }

    #[test]
    fn nonce_shape() {
        assert!(nonce_is_well_formed("0123456789abcdef"));
        assert!(!nonce_is_well_formed("short"));
        assert!(!nonce_is_well_formed("0123456789abcdef'--"));
    }
}
