//! The federation contract: every event that travels between a node and the national server, one
//! enum per direction, and the enums both sides read back (provision purposes, error kinds, why an
//! event was refused). Both binaries build and read events only through these types, so a renamed
//! kind or field fails to compile on both sides instead of failing at run time (DESIGN flow 3,
//! `docs/architecture.md` "The federation contract").
//!
//! ## On the wire
//! An event travels in an [`Envelope`]: the sender's gap-free sequence number, a unique event id,
//! the kind's name, the version of that kind's payload, and the payload itself, kept as raw JSON
//! until the receiver opens it. The same envelope is stored in the node's outbox and inbox and in
//! the national server's per-node queue, so an event is serialised once when it is decided.
//!
//! ## Versions and unknown input, on purpose
//! Each kind has a version. Adding an optional field or changing a field's meaning bumps it; a
//! receiver still reads every older version of a kind it knows. What a receiver does with input it
//! does not understand ([`Unreadable`]):
//! - a kind it does not know, or a newer version of a kind it knows, comes from a newer peer: the
//!   event is kept, reported, and applied once this side runs code that knows it
//!   ([`Unreadable::awaits_upgrade`]);
//! - a payload that does not fit its own kind and version (a missing field, an unknown field, a
//!   wrong type) can never be applied: it is refused on its own and the events after it go on.
//!
//! ## Consent
//! What each personal kind needs before it may leave a node is defined once, beside the kind
//! ([`NodeToNational::required_consent`]): the node's consent gate, the national server's check on
//! arrival and the pages that tell a nurse where a notice will go all read it from here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::notice::NoticeBody;
use crate::{AgencyCode, ConsentScope, NoticeKind};

/// What a receiver cannot read in an envelope, and whether that can ever change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("event kind {kind:?} is not known to this version of the software")]
    UnknownKind { kind: String },
    #[error("{kind} version {version} is newer than this software reads (up to {known})")]
    NewerVersion { kind: String, version: u16, known: u16 },
    #[error("malformed {kind} payload: {reason}")]
    Malformed { kind: String, reason: String },
}

impl Unreadable {
    /// True when the event comes from a newer peer and will be readable after an upgrade; false
    /// when it is wrong for good.
    pub fn awaits_upgrade(&self) -> bool {
        matches!(self, Self::UnknownKind { .. } | Self::NewerVersion { .. })
    }
}

/// serde's message without the values it quotes: a malformed payload may carry a name or a phone
/// number, and the reason is stored and logged. Field names and positions stay.
fn redacted(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if quoted {
                out.push('…');
            }
            quoted = !quoted;
            out.push(c);
        } else if !quoted {
            out.push(c);
        }
    }
    // `unknown variant \`VALUE\`, expected …` quotes the value in backticks.
    if let Some(start) = out.find("unknown variant `") {
        let value_start = start + "unknown variant `".len();
        if let Some(len) = out[value_start..].find('`') {
            out.replace_range(value_start..value_start + len, "…");
        }
    }
    out
}

/// A message of one direction of the contract: an enum with one variant per kind.
pub trait Message: Sized {
    /// Every kind of this direction with the newest version this software reads.
    const KINDS: &'static [(&'static str, u16)];
    fn kind(&self) -> &'static str;
    fn version(&self) -> u16;
    /// The payload alone, as JSON.
    fn payload_json(&self) -> String;
    /// Reads a payload of `kind` written at `version`.
    fn decode(kind: &str, version: u16, payload: &str) -> Result<Self, Unreadable>;
}

/// Defines one direction's enum: each variant wraps a payload struct and names its wire kind and
/// current version. The serde representation (`{"kind": …, "payload": …}`) and [`Message`] come
/// from the same list, so they cannot disagree.
macro_rules! direction {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($payload:ty) = ($kind:literal, $version:literal), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "payload")]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $kind)] $variant($payload), )+
        }

        impl Message for $name {
            const KINDS: &'static [(&'static str, u16)] = &[$(($kind, $version)),+];

            fn kind(&self) -> &'static str {
                match self { $( Self::$variant(_) => $kind, )+ }
            }

            fn version(&self) -> u16 {
                match self { $( Self::$variant(_) => $version, )+ }
            }

            fn payload_json(&self) -> String {
                let json = match self { $( Self::$variant(p) => serde_json::to_string(p), )+ };
                json.expect("contract payloads are plain data and always serialise")
            }

            fn decode(kind: &str, version: u16, payload: &str) -> Result<Self, Unreadable> {
                match kind {
                    $( $kind => {
                        if version > $version {
                            return Err(Unreadable::NewerVersion { kind: kind.into(), version, known: $version });
                        }
                        if payload.contains("\\u0000") {
                            // No database text column can hold NUL: refused here, on its own,
                            // instead of failing a whole batch at the insert.
                            return Err(Unreadable::Malformed { kind: kind.into(), reason: "a NUL character".into() });
                        }
                        serde_json::from_str::<$payload>(payload)
                            .map(Self::$variant)
                            .map_err(|e| Unreadable::Malformed { kind: kind.into(), reason: redacted(&e) })
                    } )+
                    other => Err(Unreadable::UnknownKind { kind: other.into() }),
                }
            }
        }
    };
}

direction! {
    /// Events a node pushes to the national server.
    pub enum NodeToNational {
        /// A consent given or withdrawn (always travels: the national server must learn of a
        /// withdrawal to delete what the scope let it hold).
        ConsentChanged(ConsentChanged) = ("consent_changed", 1),
        /// A separation or employment-status notice (under `address_linkage`). Version 2 adds the
        /// employment status's optional `as_of` date (version 1 bodies read as without it).
        NoticeFiled(NoticeFiled) = ("notice_filed", 2),
        /// Her contact details as the consent text names them (under
        /// `share_with_residence_prefecture`). Sent by nodes before issue #7 only: the national
        /// server now keeps no contact details, accepts this kind from older nodes, records the
        /// provision and stores nothing of it.
        ContactChanged(ContactChanged) = ("contact_changed", 1),
        /// She proved who she is (always travels, once: only after it does anything else about
        /// her leave the node).
        IdentityProofed(IdentityProofed) = ("identity_proofed", 1),
        /// Her contact, sealed to the node of the prefecture she moved to, answering a
        /// [`MovedOut`] that asked for it (under `share_with_residence_prefecture`).
        TransferContact(TransferContact) = ("transfer_contact", 1),
        /// She confirmed a hand-over at this node (the new one): from now on this node is her
        /// home node. Always travels, like `identity_proofed`: it is how this link becomes proofed.
        TransferConfirmed(TransferConfirmed) = ("transfer_confirmed", 1),
        /// The distance from home within which she wants job and training information (issue
        /// #8; under `job_support` or `training_info`).
        PreferenceChanged(PreferenceChanged) = ("preference_changed", 1),
        /// She wants to attend a training session another node publishes (研修の参加希望, issue
        /// #8; under `training_info`, and her consent to this one hand-over of her contact,
        /// recorded at the node). The national server answers with the publishing node's key.
        TrainingWish(TrainingWish) = ("training_wish", 1),
        /// Her contact, sealed to the publishing node's key, answering [`TrainingWishAnswered`].
        TrainingContact(TrainingContact) = ("training_contact", 1),
        /// The publishing node recorded whether an applicant attended, and for how many hours
        /// (for her training history at her home node). About an applicant the national server
        /// relayed, by the code it gave this node for her.
        AttendanceRecorded(AttendanceRecorded) = ("attendance_recorded", 1),
    }
}

direction! {
    /// Events the national server queues for a node, which the node pulls.
    pub enum NationalToNode {
        /// What the national server deleted after a withdrawal, for her page.
        WithdrawalApplied(WithdrawalApplied) = ("withdrawal_applied", 1),
        /// What the national server holds about her: latent or not, and whether this node is her
        /// home node (issue #7). Sent when it changes.
        StatusChanged(StatusChanged) = ("status_changed", 1),
        /// She moved out of this node's prefecture; with `share_with_residence_prefecture`, where
        /// to, and a request to seal her contact for the node there.
        MovedOut(MovedOut) = ("moved_out", 1),
        /// A pending transfer: she moved into this node's prefecture; her contact (sealed by the
        /// old node to this node's key) and this node's code for her. She confirms it here.
        MovedIn(MovedIn) = ("moved_in", 1),
        /// Delete her contact details and sessions and stop every message; keep notices as
        /// records. Says nothing about why.
        Erase(Erase) = ("erase", 1),
        /// A filing reminder (届出勧奨) for her, shown on her page and to staff.
        ReminderDue(ReminderDue) = ("reminder_due", 1),
        /// A pending transfer will not complete (she withdrew the consent it rested on, moved
        /// again or died): the new node deletes it and its invitation.
        TransferCancelled(TransferCancelled) = ("transfer_cancelled", 1),
        /// Her list of the nearest open postings of one kind changed (issue #8): what to add
        /// (with each posting as published) and what to remove. Sent to her home node only.
        MatchesChanged(MatchesChanged) = ("matches_changed", 1),
        /// The answer to her [`TrainingWish`]: the publishing node's key to seal her contact to,
        /// or why it cannot go (Japanese, for her page).
        TrainingWishAnswered(TrainingWishAnswered) = ("training_wish_answered", 1),
        /// To the publishing node: someone wants to attend one of its training sessions; her
        /// contact, sealed by her home node to this node's key, and this node's code for her.
        TrainingApplicant(TrainingApplicant) = ("training_applicant", 1),
        /// To her home node: the publishing node recorded her attendance.
        TrainingAttended(TrainingAttended) = ("training_attended", 1),
    }
}

impl NodeToNational {
    /// The consents of which at least one must be given before this event may leave the node (and
    /// that the national server checks again on arrival); empty for events that always travel.
    pub fn required_consent(&self) -> &'static [ConsentScope] {
        match self {
            Self::ConsentChanged(_) => &[],
            Self::NoticeFiled(_) => &[NoticeFiled::REQUIRES],
            Self::ContactChanged(_) => &[ContactChanged::REQUIRES],
            Self::IdentityProofed(_) => &[],
            Self::TransferContact(_) => &[TransferContact::REQUIRES],
            Self::TransferConfirmed(_) => &[],
            Self::PreferenceChanged(_) => PreferenceChanged::REQUIRES_ANY,
            Self::TrainingWish(_) | Self::TrainingContact(_) => &[TrainingWish::REQUIRES],
            // Not about one of this node's nurses: about an applicant another node relayed, who
            // asked for exactly this (see `TrainingApplicant`).
            Self::AttendanceRecorded(_) => &[],
        }
    }

    /// Whether the event names one of the sending node's links (every kind but
    /// `attendance_recorded`, which names an applicant by the code the national server gave the
    /// node with her contact, and which the national server checks against that relay instead).
    pub fn names_a_link(&self) -> bool {
        !matches!(self, Self::AttendanceRecorded(_))
    }

    /// The person the event is about, by the sending node's code for her.
    pub fn agency_code(&self) -> &AgencyCode {
        match self {
            Self::ConsentChanged(e) => &e.agency_code,
            Self::NoticeFiled(e) => &e.agency_code,
            Self::ContactChanged(e) => &e.agency_code,
            Self::IdentityProofed(e) => &e.agency_code,
            Self::TransferContact(e) => &e.agency_code,
            Self::TransferConfirmed(e) => &e.agency_code,
            Self::PreferenceChanged(e) => &e.agency_code,
            Self::TrainingWish(e) => &e.agency_code,
            Self::TrainingContact(e) => &e.agency_code,
            Self::AttendanceRecorded(e) => &e.agency_code,
        }
    }
}

/// The consent under which a notice of this kind leaves the node, for pages that say beforehand
/// where it will go: separations and employment statuses travel as [`NoticeFiled`]; a change
/// notice never leaves (`None`): the national server keeps no contact details, and her current
/// ones are handed over, sealed, only when she moves ([`TransferContact`]).
pub fn consent_for_notice(kind: NoticeKind) -> Option<ConsentScope> {
    match kind {
        NoticeKind::Change => None,
        NoticeKind::Separation | NoticeKind::EmploymentStatus => Some(NoticeFiled::REQUIRES),
    }
}

impl NationalToNode {
    pub fn agency_code(&self) -> &AgencyCode {
        match self {
            Self::WithdrawalApplied(e) => &e.agency_code,
            Self::StatusChanged(e) => &e.agency_code,
            Self::MovedOut(e) => &e.agency_code,
            Self::MovedIn(e) => &e.agency_code,
            Self::Erase(e) => &e.agency_code,
            Self::ReminderDue(e) => &e.agency_code,
            Self::TransferCancelled(e) => &e.agency_code,
            Self::MatchesChanged(e) => &e.agency_code,
            Self::TrainingWishAnswered(e) => &e.agency_code,
            Self::TrainingApplicant(e) => &e.agency_code,
            Self::TrainingAttended(e) => &e.agency_code,
        }
    }
}

/// `consent_changed` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentChanged {
    pub agency_code: AgencyCode,
    pub scope: ConsentScope,
    pub granted: bool,
    /// The scope's version at the node: 1 for her first decision, one more for each change.
    pub version: i32,
    /// The version and SHA-256 of the consent text she was shown.
    pub text_version: String,
    pub text_sha256: String,
    pub recorded_at: DateTime<Utc>,
}

/// How a nurse proved who she is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofingMethod {
    /// A one-time code posted to the address of her resident registration.
    Post,
    /// Staff checked her licence certificate and a photo ID in person.
    Counter,
    /// Registered before identity proofing existed (issue #5): her data already flowed under the
    /// rules of the time, and her withdrawals must keep reaching the national server.
    Legacy,
    /// Handed over from the nurse center of the prefecture she lived in, where she had proved who
    /// she is; she confirmed the hand-over by the link mailed to her (issue #7). Never sent in an
    /// `identity_proofed` event: the hand-over travels as `transfer_confirmed`.
    Transfer,
}

impl ProofingMethod {
    pub const ALL: [Self; 4] = [Self::Post, Self::Counter, Self::Legacy, Self::Transfer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Counter => "counter",
            Self::Legacy => "legacy",
            Self::Transfer => "transfer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn title_ja(self) -> &'static str {
        match self {
            Self::Post => "郵送の確認コード",
            Self::Counter => "窓口での確認",
            Self::Legacy => "本人確認の導入前からの登録",
            Self::Transfer => "転居前のナースセンターでの本人確認",
        }
    }
}

/// `identity_proofed` v1: she proved who she is at this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProofed {
    pub agency_code: AgencyCode,
    pub method: ProofingMethod,
    pub proofed_at: DateTime<Utc>,
}

/// `notice_filed` v1: a separation or employment-status notice. Change notices never travel as
/// notices: what they change travels as [`ContactChanged`], under its own scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeFiled {
    pub agency_code: AgencyCode,
    pub notice_id: String,
    pub filed_at: DateTime<Utc>,
    pub notice: NoticeBody,
}

impl NoticeFiled {
    pub const REQUIRES: ConsentScope = ConsentScope::AddressLinkage;
}

/// `contact_changed` v1: exactly what the `share_with_residence_prefecture` text names — name,
/// e-mail and phone — and only what changed (`None`: unchanged). Her address never travels: the
/// national server has it from the resident data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactChanged {
    pub agency_code: AgencyCode,
    /// The change notice that caused it; `None` when granting the scope sent her current details.
    pub notice_id: Option<String>,
    pub changed_at: DateTime<Utc>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl ContactChanged {
    pub const REQUIRES: ConsentScope = ConsentScope::ShareWithResidencePrefecture;

    /// The names of the fields this event provides, as the data-provision record lists them.
    pub fn provided_fields(&self) -> Vec<&'static str> {
        [
            ("family_name", self.family_name.is_some()),
            ("given_name", self.given_name.is_some()),
            ("email", self.email.is_some()),
            ("phone", self.phone.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// `withdrawal_applied` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalApplied {
    pub agency_code: AgencyCode,
    pub scope: ConsentScope,
    /// The scope version whose withdrawal was applied.
    pub version: i32,
    pub notices_deleted: i64,
    pub deleted_at: DateTime<Utc>,
}

/// `status_changed` v1: what the national server holds about her, as this node may know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChanged {
    pub agency_code: AgencyCode,
    /// Latent (licensed, alive, latest notice by effective date says not working, and job or
    /// training information wanted at her home link).
    pub latent: bool,
    /// This node is her home node: the only one that contacts her.
    pub home_here: bool,
    /// The prefecture she lives in, by the resident data (under `address_linkage`); given to a
    /// node other than that prefecture's only under `share_with_residence_prefecture`.
    pub residence: Option<crate::Prefecture>,
    pub decided_at: DateTime<Utc>,
}

/// Asks the old node to seal her contact for the node of the prefecture she moved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub transfer_id: String,
    /// The destination node's registered Ed25519 public key (base64): the contact is sealed to
    /// it, so the national server relays what it cannot read (`crate::sealed`).
    pub recipient_key: String,
}

/// `moved_out` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedOut {
    pub agency_code: AgencyCode,
    /// Where she moved, only under `share_with_residence_prefecture` at this node.
    pub destination: Option<crate::Prefecture>,
    /// Present when her contact is to be handed over (that consent given, and a node registered
    /// for the destination).
    pub transfer: Option<TransferRequest>,
    pub decided_at: DateTime<Utc>,
}

/// Her contact as the `share_with_residence_prefecture` text names it: what a [`TransferContact`]
/// seals and a [`MovedIn`] carries sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedContact {
    pub family_name: String,
    pub given_name: String,
    pub email: String,
    pub phone: Option<String>,
}

impl SealedContact {
    pub const FIELDS: [&'static str; 4] = ["family_name", "given_name", "email", "phone"];
}

/// `transfer_contact` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferContact {
    pub agency_code: AgencyCode,
    pub transfer_id: String,
    /// A [`SealedContact`] as JSON, sealed to the destination node's key.
    pub sealed_contact: String,
}

impl TransferContact {
    pub const REQUIRES: ConsentScope = ConsentScope::ShareWithResidencePrefecture;
}

/// Her licence as the registry holds it, so that the new node can register her without asking
/// her to type it again (she proved who she is at the old node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferredLicence {
    pub qualification: crate::Qualification,
    pub registration_number: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: chrono::NaiveDate,
}

impl TransferredLicence {
    pub const FIELDS: [&'static str; 5] =
        ["qualification", "registration_number", "family_name_kana", "given_name_kana", "birth_date"];
}

/// `moved_in` v1: a pending transfer at the new node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedIn {
    /// This node's code for her (a new identity link made at the hand-over).
    pub agency_code: AgencyCode,
    pub transfer_id: String,
    pub from: crate::Prefecture,
    pub sealed_contact: String,
    pub licence: TransferredLicence,
    /// How she proved who she is at the old node.
    pub proofing_method: ProofingMethod,
    pub decided_at: DateTime<Utc>,
}

/// `transfer_confirmed` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfirmed {
    pub agency_code: AgencyCode,
    pub transfer_id: String,
    pub confirmed_at: DateTime<Utc>,
}

/// `transfer_cancelled` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferCancelled {
    /// The new node's code for her (as in the `moved_in`).
    pub agency_code: AgencyCode,
    pub transfer_id: String,
    pub decided_at: DateTime<Utc>,
}

/// `erase` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erase {
    pub agency_code: AgencyCode,
    pub decided_at: DateTime<Utc>,
}

/// Why a filing reminder (届出勧奨) is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    /// Her name in the resident data changed and the registry still has the old one (名簿訂正).
    NameDiffers,
    /// The resident data records a death and the registry still lists the licence active
    /// (籍の抹消申請, filed by the family).
    DeceasedRegistryActive,
}

impl ReminderKind {
    pub const ALL: [Self; 2] = [Self::NameDiffers, Self::DeceasedRegistryActive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameDiffers => "name_differs",
            Self::DeceasedRegistryActive => "deceased_registry_active",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn title_ja(self) -> &'static str {
        match self {
            Self::NameDiffers => "籍の訂正（氏名の変更）の届出をお願いします",
            Self::DeceasedRegistryActive => "籍の抹消の申請をお願いします",
        }
    }

    pub fn explanation_ja(self) -> &'static str {
        match self {
            Self::NameDiffers => {
                "住民票の氏名が変わりましたが、免許の籍はまだ以前の氏名です。氏名が変わった日から30日以内に、籍の訂正を申請してください。"
            }
            Self::DeceasedRegistryActive => "ご家族の方は籍の抹消を申請してください。",
        }
    }
}

/// `reminder_due` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderDue {
    pub agency_code: AgencyCode,
    pub reminder_id: String,
    pub kind: ReminderKind,
    /// The date of the fact that caused it (e.g. the name change).
    pub since: chrono::NaiveDate,
}

/// `preference_changed` v1: the distance from home she chose (one of
/// [`crate::posting::DISTANCE_CHOICES_KM`]). Employment types and the digest cadence stay at her
/// node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferenceChanged {
    pub agency_code: AgencyCode,
    pub distance_km: u32,
    pub changed_at: DateTime<Utc>,
}

impl PreferenceChanged {
    /// Her distance is of use only for the information she asked for: either scope carries it.
    pub const REQUIRES_ANY: &'static [ConsentScope] = &[ConsentScope::JobSupport, ConsentScope::TrainingInfo];
}

/// A posting across the federation: the prefecture whose node published it and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostingRef {
    pub prefecture: crate::Prefecture,
    pub posting_id: String,
}

/// One posting added to (or changed in) her list: as published, and how far from her home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchedPosting {
    pub posting: PostingRef,
    /// The publishing node's version of the posting (an edit sends it again with a higher one).
    pub version: i64,
    /// Great-circle distance from her home point, in metres.
    pub distance_m: u32,
    pub body: crate::posting::PostingBody,
}

/// `matches_changed` v1: changes to her list of nearest open postings of one kind (at most
/// [`crate::posting::MATCHES_PER_KIND`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchesChanged {
    pub agency_code: AgencyCode,
    pub kind: crate::posting::PostingKind,
    pub added: Vec<MatchedPosting>,
    pub removed: Vec<PostingRef>,
    pub decided_at: DateTime<Utc>,
}

/// `training_wish` v1: she wants to attend a training session (研修の参加希望).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingWish {
    pub agency_code: AgencyCode,
    /// Her node's id for the wish: every later event about it names it.
    pub wish_id: String,
    pub posting: PostingRef,
    /// SHA-256 (hex) of the consent text she agreed to: her contact to the node that holds the
    /// session. Kept with the wish at both ends.
    pub consent_text_sha256: String,
    pub requested_at: DateTime<Utc>,
}

impl TrainingWish {
    /// Only training she was told of under `training_info` can be asked for.
    pub const REQUIRES: ConsentScope = ConsentScope::TrainingInfo;
}

/// `training_wish_answered` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingWishAnswered {
    pub agency_code: AgencyCode,
    pub wish_id: String,
    /// The publishing node's registered public key (base64): seal her contact to it.
    pub recipient_key: Option<String>,
    /// Why her contact will not go (Japanese, for her page): the session closed or was
    /// withdrawn, or its node is not connected.
    pub refused: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// What a training applicant's contact holds: sealed by her home node, opened by the publishing
/// node's staff pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedApplicant {
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub qualification: crate::Qualification,
    pub email: String,
    pub phone: Option<String>,
}

impl SealedApplicant {
    pub const FIELDS: [&'static str; 7] = [
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "qualification",
        "email",
        "phone",
    ];
}

/// `training_contact` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingContact {
    pub agency_code: AgencyCode,
    pub wish_id: String,
    /// A [`SealedApplicant`] as JSON, sealed to the publishing node's key with the wish id as
    /// context.
    pub sealed_contact: String,
}

/// `training_applicant` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingApplicant {
    /// This (publishing) node's code for her; she need not be registered here.
    pub agency_code: AgencyCode,
    pub wish_id: String,
    pub posting_id: String,
    /// Her home node's prefecture.
    pub from: crate::Prefecture,
    pub sealed_contact: String,
    /// How she proved who she is at her home node.
    pub proofing_method: ProofingMethod,
    pub decided_at: DateTime<Utc>,
}

/// `attendance_recorded` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceRecorded {
    /// The code [`TrainingApplicant`] gave this node for her.
    pub agency_code: AgencyCode,
    pub wish_id: String,
    pub attended: bool,
    /// Hours she attended (0 when she did not).
    pub hours: u16,
    pub recorded_at: DateTime<Utc>,
}

/// `training_attended` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingAttended {
    pub agency_code: AgencyCode,
    pub wish_id: String,
    pub attended: bool,
    pub hours: u16,
    pub recorded_at: DateTime<Utc>,
}

/// One event on the wire and at rest, in either direction.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
// The envelope itself may grow fields; an older receiver ignores them (the payload is where
// versions matter).
pub struct Envelope {
    /// The sender's gap-free sequence number (the node's outbox, or the national per-node queue).
    pub seq: i64,
    pub event_id: String,
    /// The kind's wire name, e.g. `consent_changed`.
    pub kind: String,
    /// The version of this kind's payload.
    pub version: u16,
    /// The payload, read only when the receiver opens the envelope.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        (self.seq, &self.event_id, &self.kind, self.version, self.payload.get())
            == (other.seq, &other.event_id, &other.kind, other.version, other.payload.get())
    }
}

impl Envelope {
    /// Wraps a typed message.
    pub fn seal<M: Message>(seq: i64, event_id: impl Into<String>, message: &M) -> Self {
        Self::from_stored(
            seq,
            event_id.into(),
            message.kind().into(),
            message.version(),
            message.payload_json(),
        )
        .expect("a serialised payload is valid JSON")
    }

    /// Rebuilds an envelope from its stored columns without reading the payload.
    pub fn from_stored(
        seq: i64,
        event_id: String,
        kind: String,
        version: u16,
        payload: String,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self { seq, event_id, kind, version, payload: RawValue::from_string(payload)? })
    }

    /// Reads the typed message.
    pub fn open<M: Message>(&self) -> Result<M, Unreadable> {
        M::decode(&self.kind, self.version, self.payload.get())
    }
}

/// Why a provision of personal data happened (DESIGN rule 5), as her page explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProvisionPurpose {
    /// Her licence claims checked and this node's code for her given.
    IdentityLink,
    /// A consent decision recorded.
    ConsentRecord,
    /// A notice used to learn whether she works.
    LatentNurseIdentification,
    /// Contact details held for the nurse center where she lives.
    ResidencePrefectureSupport,
    /// The confirmation that what a withdrawn consent covered was deleted.
    ConsentWithdrawal,
    /// How and when she proved who she is (post or counter).
    IdentityProofing,
    /// Whether she is a latent nurse and which node is her home, told to a node.
    LatentStatus,
    /// Her hand-over to the nurse center of the prefecture she moved to.
    HandOver,
    /// Her contact details deleted at a node (ex-officio deletion of her licence).
    Erasure,
    /// A filing reminder (届出勧奨).
    FilingReminder,
    /// Job and training postings near her home, sent to her home node (issue #8).
    PostingMatches,
    /// Her wish to attend a training session, with her contact, to the node that holds it.
    TrainingApplication,
    /// Her attendance at a training session, to her home node for her training history.
    TrainingRecord,
    /// A purpose added by a newer national server.
    #[serde(other)]
    Other,
}

impl ProvisionPurpose {
    pub const ALL: [Self; 13] = [
        Self::IdentityLink,
        Self::ConsentRecord,
        Self::LatentNurseIdentification,
        Self::ResidencePrefectureSupport,
        Self::ConsentWithdrawal,
        Self::IdentityProofing,
        Self::LatentStatus,
        Self::HandOver,
        Self::Erasure,
        Self::FilingReminder,
        Self::PostingMatches,
        Self::TrainingApplication,
        Self::TrainingRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentityLink => "identity_link",
            Self::ConsentRecord => "consent_record",
            Self::LatentNurseIdentification => "latent_nurse_identification",
            Self::ResidencePrefectureSupport => "residence_prefecture_support",
            Self::ConsentWithdrawal => "consent_withdrawal",
            Self::IdentityProofing => "identity_proofing",
            Self::LatentStatus => "latent_status",
            Self::HandOver => "hand_over",
            Self::Erasure => "erasure",
            Self::FilingReminder => "filing_reminder",
            Self::PostingMatches => "posting_matches",
            Self::TrainingApplication => "training_application",
            Self::TrainingRecord => "training_record",
            Self::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    pub fn title_ja(self) -> &'static str {
        match self {
            Self::IdentityLink => "資格の照合（本人確認）",
            Self::ConsentRecord => "同意の記録",
            Self::LatentNurseIdentification => "届出による就業状況の把握",
            Self::ResidencePrefectureSupport => "お住まいの都道府県での就業支援",
            Self::ConsentWithdrawal => "同意の取消による削除の確認",
            Self::IdentityProofing => "本人確認の記録",
            Self::LatentStatus => "就業支援の対象かどうかのお知らせ",
            Self::HandOver => "転居先の都道府県ナースセンターへの引継ぎ",
            Self::Erasure => "連絡先の削除",
            Self::FilingReminder => "届出のお願い",
            Self::PostingMatches => "お住まいの近くの求人・研修のお知らせ",
            Self::TrainingApplication => "研修の参加希望（研修を行うナースセンターへ）",
            Self::TrainingRecord => "研修の受講記録（研修歴）",
            Self::Other => "その他",
        }
    }
}

/// The machine-readable kind of every error answer of the national server (`ErrorBody.error`).
/// A kind added by a newer server reads as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// A replayed nonce, or a write that conflicts with the current state.
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Identity link: the claims do not match an active licence. The only answer the public pages'
    /// requests get, whatever differed, so that they cannot be used to read the registry.
    NoMatch,
    /// Identity link, staff lookup at the counter: the claims do not match the registry
    /// (`mismatched` names them).
    ClaimsMismatch,
    /// Identity link, staff lookup at the counter: the licence is not active.
    LicenceNotActive,
    /// Identity link: 5 failed attempts for this licence in 24 hours (or too many from the node in
    /// an hour); refused until the window passes.
    AttemptsExhausted,
    TooManyRequests,
    /// The calling node's key was revoked at the national server (`nodes revoke`): its requests
    /// are refused until a new key is registered.
    NodeRevoked,
    Unavailable,
    Internal,
    #[serde(other)]
    Other,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NoMatch => "no_match",
            Self::ClaimsMismatch => "claims_mismatch",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::LicenceNotActive => "licence_not_active",
            Self::TooManyRequests => "too_many_requests",
            Self::NodeRevoked => "node_revoked",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Other => "other",
        }
    }
}

/// Why the national server consumed a pushed event without applying it. Every one is permanent:
/// sending the same event again cannot succeed, so the node parks it and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The event names an agency code this node never linked (or that the national server no
    /// longer knows, e.g. after a restore).
    UnknownAgencyCode,
    /// Her consents, as the national server holds them, do not cover the event.
    NotCovered,
    /// The payload does not fit its kind and version.
    Malformed,
    /// The kind is known but this content can never be applied (e.g. a change notice sent as a
    /// notice).
    Invalid,
    /// She has not proved who she is: nothing about her but the proofing itself is held.
    NotProofed,
    /// A code from a newer server.
    #[serde(other)]
    Other,
}

impl RejectCode {
    /// The wire name, as stored beside a parked or rejected event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownAgencyCode => "unknown_agency_code",
            Self::NotCovered => "not_covered",
            Self::Malformed => "malformed",
            Self::Invalid => "invalid",
            Self::NotProofed => "not_proofed",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{SeparationReason, WorkplaceType};
    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;

    fn code() -> impl Strategy<Value = AgencyCode> {
        "[A-Z2-7]{52}".prop_map(|s| AgencyCode::parse(&s).expect("base32 of 32 bytes"))
    }

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..4_000_000_000, 0u32..1_000_000)
            .prop_map(|(s, us)| Utc.timestamp_opt(s, us * 1000).single().expect("in range"))
    }

    fn scope() -> impl Strategy<Value = ConsentScope> {
        prop::sample::select(ConsentScope::ALL.to_vec())
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::of("\\PC{0,20}")
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (1950i32..2030, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).expect("valid day"))
    }

    fn notice() -> impl Strategy<Value = NoticeBody> {
        prop_oneof![
            (date(), prop::sample::select(SeparationReason::ALL.to_vec()), any::<bool>(), text()).prop_map(
                |(left_on, reason, wish_to_return, return_when)| NoticeBody::Separation {
                    left_on,
                    reason,
                    wish_to_return,
                    return_when
                }
            ),
            (
                any::<bool>(),
                prop::option::of(prop::sample::select(WorkplaceType::ALL.to_vec())),
                prop::option::of("[0-9]{6}"),
                prop::option::of(0u8..=80)
            )
                .prop_map(|(employed, workplace_type, workplace_lgcode, weekly_hours)| {
                    NoticeBody::EmploymentStatus {
                        employed,
                        workplace_type,
                        workplace_lgcode,
                        weekly_hours,
                        as_of: None,
                    }
                }),
        ]
    }

    fn node_to_national() -> impl Strategy<Value = NodeToNational> {
        prop_oneof![
            (code(), scope(), any::<bool>(), 1i32..1000, "\\PC{0,12}", "[0-9a-f]{64}", time()).prop_map(
                |(agency_code, scope, granted, version, text_version, text_sha256, recorded_at)| {
                    NodeToNational::ConsentChanged(ConsentChanged {
                        agency_code,
                        scope,
                        granted,
                        version,
                        text_version,
                        text_sha256,
                        recorded_at,
                    })
                }
            ),
            (code(), "[0-9a-f-]{36}", time(), notice()).prop_map(
                |(agency_code, notice_id, filed_at, notice)| {
                    NodeToNational::NoticeFiled(NoticeFiled { agency_code, notice_id, filed_at, notice })
                }
            ),
            (code(), prop::sample::select(ProofingMethod::ALL.to_vec()), time()).prop_map(
                |(agency_code, method, proofed_at)| {
                    NodeToNational::IdentityProofed(IdentityProofed { agency_code, method, proofed_at })
                }
            ),
            (code(), prop::option::of("[0-9a-f-]{36}"), time(), text(), text(), text(), text()).prop_map(
                |(agency_code, notice_id, changed_at, family_name, given_name, email, phone)| {
                    NodeToNational::ContactChanged(ContactChanged {
                        agency_code,
                        notice_id,
                        changed_at,
                        family_name,
                        given_name,
                        email,
                        phone,
                    })
                }
            ),
            (code(), "[0-9a-f-]{36}", "[A-Za-z0-9+/=]{0,200}").prop_map(
                |(agency_code, transfer_id, sealed_contact)| {
                    NodeToNational::TransferContact(TransferContact {
                        agency_code,
                        transfer_id,
                        sealed_contact,
                    })
                }
            ),
            (code(), "[0-9a-f-]{36}", time()).prop_map(|(agency_code, transfer_id, confirmed_at)| {
                NodeToNational::TransferConfirmed(TransferConfirmed {
                    agency_code,
                    transfer_id,
                    confirmed_at,
                })
            }),
        ]
    }

    fn prefecture() -> impl Strategy<Value = crate::Prefecture> {
        (1u8..=47).prop_map(|n| crate::Prefecture::from_code(&format!("{n:02}")).expect("01-47"))
    }

    fn national_to_node() -> impl Strategy<Value = NationalToNode> {
        prop_oneof![
            (code(), scope(), 1i32..1000, 0i64..1000, time()).prop_map(
                |(agency_code, scope, version, notices_deleted, deleted_at)| {
                    NationalToNode::WithdrawalApplied(WithdrawalApplied {
                        agency_code,
                        scope,
                        version,
                        notices_deleted,
                        deleted_at,
                    })
                },
            ),
            (code(), any::<bool>(), any::<bool>(), prop::option::of(prefecture()), time()).prop_map(
                |(agency_code, latent, home_here, residence, decided_at)| {
                    NationalToNode::StatusChanged(StatusChanged {
                        agency_code,
                        latent,
                        home_here,
                        residence,
                        decided_at,
                    })
                }
            ),
            (
                code(),
                prop::option::of(prefecture()),
                prop::option::of(("[0-9a-f-]{36}", "[A-Za-z0-9+/]{43}=")),
                time()
            )
                .prop_map(|(agency_code, destination, transfer, decided_at)| {
                    NationalToNode::MovedOut(MovedOut {
                        agency_code,
                        destination,
                        transfer: transfer.map(|(transfer_id, recipient_key)| TransferRequest {
                            transfer_id,
                            recipient_key,
                        }),
                        decided_at,
                    })
                }),
            (
                code(),
                "[0-9a-f-]{36}",
                prefecture(),
                "[A-Za-z0-9+/=]{0,200}",
                "[0-9]{6}",
                "\\PC{1,10}",
                date(),
                time()
            )
                .prop_map(
                    |(
                        agency_code,
                        transfer_id,
                        from,
                        sealed_contact,
                        registration_number,
                        kana,
                        birth_date,
                        decided_at,
                    )| {
                        NationalToNode::MovedIn(MovedIn {
                            agency_code,
                            transfer_id,
                            from,
                            sealed_contact,
                            licence: TransferredLicence {
                                qualification: crate::Qualification::from_code("03").expect("看護師"),
                                registration_number,
                                family_name_kana: kana.clone(),
                                given_name_kana: kana,
                                birth_date,
                            },
                            proofing_method: ProofingMethod::Counter,
                            decided_at,
                        })
                    }
                ),
            (code(), time()).prop_map(|(agency_code, decided_at)| NationalToNode::Erase(Erase {
                agency_code,
                decided_at
            })),
            (code(), "[0-9a-f-]{36}", prop::sample::select(ReminderKind::ALL.to_vec()), date()).prop_map(
                |(agency_code, reminder_id, kind, since)| {
                    NationalToNode::ReminderDue(ReminderDue { agency_code, reminder_id, kind, since })
                }
            ),
        ]
    }

    /// Both representations give back the same value: serde's tagged form, and the envelope as it
    /// travels and is stored (including through the wire JSON of the envelope itself).
    fn round_trips<M: Message + Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        message: &M,
    ) {
        let json = serde_json::to_value(message).unwrap();
        assert_eq!(json["kind"], message.kind());
        assert_eq!(&serde_json::from_value::<M>(json).unwrap(), message);
        let envelope = Envelope::seal(7, "e-7", message);
        assert_eq!(&envelope.open::<M>().unwrap(), message);
        let wire = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(&back.open::<M>().unwrap(), message);
        assert!(M::KINDS.contains(&(message.kind(), message.version())));
    }

    proptest! {
        #[test]
        fn every_node_event_round_trips(message in node_to_national()) {
            round_trips(&message);
        }

        #[test]
        fn every_national_event_round_trips(message in national_to_node()) {
            round_trips(&message);
        }
    }

    #[test]
    fn unknown_kinds_and_newer_versions_wait_for_an_upgrade_and_bad_payloads_do_not() {
        let unknown =
            Envelope::from_stored(1, "a".into(), "preference_changed".into(), 1, "{}".into()).unwrap();
        let error = unknown.open::<NationalToNode>().unwrap_err();
        assert_eq!(error, Unreadable::UnknownKind { kind: "preference_changed".into() });
        assert!(error.awaits_upgrade());

        let newer =
            Envelope::from_stored(2, "b".into(), "withdrawal_applied".into(), 9, "{}".into()).unwrap();
        let error = newer.open::<NationalToNode>().unwrap_err();
        assert_eq!(
            error,
            Unreadable::NewerVersion { kind: "withdrawal_applied".into(), version: 9, known: 1 }
        );
        assert!(error.awaits_upgrade());

        // Same version, an extra field: wrong for good (a newer writer would have bumped the version).
        let extra = Envelope::from_stored(3, "c".into(), "withdrawal_applied".into(), 1, r#"{"x":1}"#.into())
            .unwrap();
        let error = extra.open::<NationalToNode>().unwrap_err();
        assert!(matches!(error, Unreadable::Malformed { .. }), "{error:?}");
        assert!(!error.awaits_upgrade());
    }

    #[test]
    fn malformed_reasons_do_not_repeat_the_values() {
        let code = "A".repeat(52);
        let bad_type = format!(
            r#"{{"agency_code":"{code}","scope":"job_support","granted":"090-1234-5678","version":1,"text_version":"v","text_sha256":"x","recorded_at":"2026-11-27T00:00:00Z"}}"#
        );
        let Unreadable::Malformed { reason, .. } =
            NodeToNational::decode("consent_changed", 1, &bad_type).unwrap_err()
        else {
            panic!("malformed")
        };
        assert!(!reason.contains("090-1234-5678") && reason.contains("invalid type"), "{reason}");
        let bad_variant =
            bad_type.replace(r#""job_support""#, r#""山田花子""#).replace(r#""090-1234-5678""#, "true");
        let Unreadable::Malformed { reason, .. } =
            NodeToNational::decode("consent_changed", 1, &bad_variant).unwrap_err()
        else {
            panic!("malformed")
        };
        assert!(!reason.contains("山田花子") && reason.contains("unknown variant"), "{reason}");
        let nul = bad_type.replace(r#""090-1234-5678""#, "true").replace(r#""v""#, r#""a\u0000b""#);
        let error = NodeToNational::decode("consent_changed", 1, &nul).unwrap_err();
        assert_eq!(
            error,
            Unreadable::Malformed { kind: "consent_changed".into(), reason: "a NUL character".into() }
        );
    }

    #[test]
    fn contact_changes_carry_no_address() {
        let with_address = serde_json::json!({
            "agency_code": "A".repeat(52), "notice_id": null, "changed_at": "2026-11-27T00:00:00Z",
            "family_name": null, "given_name": null, "email": "a@b.jp", "phone": null, "address": "東京都"
        });
        let error = NodeToNational::decode("contact_changed", 1, &with_address.to_string()).unwrap_err();
        assert!(matches!(error, Unreadable::Malformed { .. }));
    }

    #[test]
    fn consent_requirements_are_defined_once() {
        let at = Utc.timestamp_opt(0, 0).unwrap();
        let code = AgencyCode::parse(&"A".repeat(52)).unwrap();
        let consent = NodeToNational::ConsentChanged(ConsentChanged {
            agency_code: code.clone(),
            scope: ConsentScope::JobSupport,
            granted: false,
            version: 2,
            text_version: "v".into(),
            text_sha256: "0".repeat(64),
            recorded_at: at,
        });
        assert!(consent.required_consent().is_empty());
        let distance = NodeToNational::PreferenceChanged(PreferenceChanged {
            agency_code: code.clone(),
            distance_km: 20,
            changed_at: at,
        });
        assert_eq!(distance.required_consent(), [ConsentScope::JobSupport, ConsentScope::TrainingInfo]);
        let contact = NodeToNational::ContactChanged(ContactChanged {
            agency_code: code,
            notice_id: None,
            changed_at: at,
            family_name: None,
            given_name: None,
            email: Some("a@b.jp".into()),
            phone: None,
        });
        assert_eq!(contact.required_consent(), [ConsentScope::ShareWithResidencePrefecture]);
        assert_eq!(consent_for_notice(NoticeKind::Separation), Some(ConsentScope::AddressLinkage));
        assert_eq!(consent_for_notice(NoticeKind::Change), None);
    }

    #[test]
    fn purposes_and_codes_have_stable_names() {
        for p in ProvisionPurpose::ALL {
            assert_eq!(ProvisionPurpose::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"claims_mismatch\"").unwrap(),
            ErrorCode::ClaimsMismatch
        );
        assert_eq!(serde_json::from_str::<ErrorCode>("\"brand_new\"").unwrap(), ErrorCode::Other);
        assert_eq!(serde_json::from_str::<RejectCode>("\"brand_new\"").unwrap(), RejectCode::Other);
        for code in [
            RejectCode::UnknownAgencyCode,
            RejectCode::NotCovered,
            RejectCode::Malformed,
            RejectCode::Invalid,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
