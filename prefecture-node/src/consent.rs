//! Consent records (DESIGN rule 3): one row per change of one scope, versioned, with the text the
//! nurse was shown; and the consent gate that decides what may leave this node.

use std::collections::BTreeMap;

use diesel::prelude::*;
use ncf_shared::ConsentScope;
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;
use sha2::{Digest, Sha256};

use crate::Channel;
use crate::error::NodeError;
use crate::outbox;
use crate::schema::consents;
use ncf_shared::contract::{ConsentChanged, NodeToNational, ProofingMethod};

/// Version of the consent texts below; bump it whenever a text changes.
pub const TEXT_VERSION: &str = "2026-11-v1";

/// A text version as people read it: `2026-11-v1` → 「2026年11月版」 (a second revision in the
/// same month: 「2026年11月版（改訂2）」). Versions count changes of the text, never her decisions.
pub fn text_version_ja(version: &str) -> String {
    let mut parts = version.splitn(3, '-');
    let (Some(year), Some(month), revision) = (parts.next(), parts.next(), parts.next()) else {
        return version.to_string();
    };
    let (Ok(year), Ok(month)) = (year.parse::<u32>(), month.parse::<u32>()) else {
        return version.to_string();
    };
    match revision.and_then(|r| r.strip_prefix('v')).and_then(|r| r.parse::<u32>().ok()) {
        Some(n) if n > 1 => format!("{year}年{month}月版（改訂{n}）"),
        _ => format!("{year}年{month}月版"),
    }
}

/// The full text shown next to each scope's checkbox.
pub fn text_ja(scope: ConsentScope) -> &'static str {
    match scope {
        ConsentScope::AddressLinkage => {
            "国（厚生労働省）の共通サーバーが、住民基本台帳の情報（住所・氏名・死亡の事実）を用いて、\
             あなたのお住まいの市区町村を確認することに同意します。この同意がない場合、あなたの届出はこの\
             ナースセンターの外には送られません。同意はいつでも取り消すことができ、取り消した場合、共通\
             サーバーは次回の同期でこの同意に基づく情報を削除します。"
        }
        ConsentScope::JobSupport => {
            "あなたが選んだ距離の範囲内の求人情報を、ナースセンターからメールでお知らせすることに同意します。\
             お知らせはいつでも停止できます。"
        }
        ConsentScope::TrainingInfo => {
            "あなたが選んだ距離の範囲内の研修・復職支援の情報を、ナースセンターからメールでお知らせすることに\
             同意します。お知らせはいつでも停止できます。"
        }
        ConsentScope::ShareWithResidencePrefecture => {
            "あなたが他の都道府県に転居した場合に、転居先の都道府県ナースセンターがあなたの連絡先（氏名・\
             メールアドレス・電話番号）を受け取り、就業支援のために連絡することに同意します。"
        }
    }
}

/// What withdrawing a scope does, in her words (shown before she confirms and on the receipt).
pub fn withdrawal_effect_ja(scope: ConsentScope) -> &'static str {
    match scope {
        ConsentScope::AddressLinkage => {
            "国のデータベース（厚生労働省）は、次にこのセンターから情報が届いたときに、この同意にもとづいて受け取ったあなたの届出を削除します。住所の照合も行われなくなります。"
        }
        ConsentScope::JobSupport => "求人情報のお知らせメールが届かなくなります。",
        ConsentScope::TrainingInfo => "研修・復職支援のお知らせメールが届かなくなります。",
        ConsentScope::ShareWithResidencePrefecture => {
            "転居しても、転居先のナースセンターに連絡先は渡されません。手続き中の引継ぎも行われません。"
        }
    }
}

pub fn text_sha256(scope: ConsentScope) -> String {
    ncf_shared::encoding::hex(&Sha256::digest(text_ja(scope).as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub struct ConsentRecord {
    pub id: String,
    pub nurse_id: String,
    pub scope: String,
    pub granted: bool,
    pub version: i32,
    pub text_version: String,
    pub text_sha256: String,
    pub channel: String,
    pub entered_by: Option<String>,
    pub recorded_at: chrono::NaiveDateTime,
    /// How she was proofed when she decided: `none`, `post` or `counter`.
    pub proofing: String,
    /// The receipt number of the step that made this change (shared by the scopes decided in
    /// one step; `None` for changes made before receipts existed).
    pub receipt: Option<String>,
}

/// What the gate knows about a nurse: the latest decision per scope (a scope never decided counts
/// as not given) and whether, and how, she proved who she is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentConsents {
    decisions: BTreeMap<ConsentScope, bool>,
    proofed: Option<ProofingMethod>,
}

impl CurrentConsents {
    /// An applicant to one of this node's training sessions, relayed by the national server: she
    /// proved who she is at her home node (`method`, as relayed) and asked for exactly what the
    /// one event about her here carries back (`attendance_recorded`, which needs no scope). She
    /// gave this node no consent, so nothing else about her can pass the gate.
    pub fn relayed_applicant(method: ProofingMethod) -> Self {
        Self { decisions: BTreeMap::new(), proofed: Some(method) }
    }

    pub fn granted(&self, scope: ConsentScope) -> bool {
        self.decisions.get(&scope).copied().unwrap_or(false)
    }

    pub fn proofed(&self) -> Option<ProofingMethod> {
        self.proofed
    }

    /// As recorded beside each consent and notice.
    pub fn proofing_label(&self) -> &'static str {
        self.proofed.map_or("none", ProofingMethod::as_str)
    }

    /// The same decisions, as they stand once she has proved who she is.
    pub fn with_proofing(mut self, method: ProofingMethod) -> Self {
        self.proofed = Some(method);
        self
    }
}

/// The consent gate (DESIGN rule 3): whether this event may leave the node. Nothing about her
/// leaves before she has proved who she is (licence details are printed on a certificate every
/// employer copies, so they prove nothing). Then what each kind needs is defined once, in the
/// contract (`NodeToNational::required_consent`): consent changes and her proofing always travel
/// (the national server must learn of a withdrawal to delete what it holds); notices need
/// `address_linkage`; contact details need `share_with_residence_prefecture`.
pub fn covers(current: &CurrentConsents, event: &NodeToNational) -> bool {
    let any_of = event.required_consent();
    current.proofed.is_some() && (any_of.is_empty() || any_of.iter().any(|scope| current.granted(*scope)))
}

pub fn current(conn: &mut DbConn, nurse_id: &str) -> QueryResult<CurrentConsents> {
    Ok(current_many(conn, &[nurse_id])?.remove(nurse_id).unwrap_or_default())
}

/// The current consents of each of these nurses (an entry for every id given).
pub fn current_many(
    conn: &mut DbConn,
    nurse_ids: &[&str],
) -> QueryResult<std::collections::HashMap<String, CurrentConsents>> {
    let mut wanted: Vec<&str> = nurse_ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut current: std::collections::HashMap<String, CurrentConsents> =
        wanted.iter().map(|id| (id.to_string(), CurrentConsents::default())).collect();
    for chunk in wanted.chunks(1000) {
        let proofed: Vec<(String, Option<String>)> = crate::schema::nurses::table
            .filter(crate::schema::nurses::id.eq_any(chunk))
            .filter(crate::schema::nurses::proofed_at.is_not_null())
            .select((crate::schema::nurses::id, crate::schema::nurses::proofing_method))
            .load(conn)?;
        for (nurse_id, method) in proofed {
            if let Some(c) = current.get_mut(&nurse_id) {
                c.proofed = method.as_deref().and_then(ProofingMethod::parse);
            }
        }
        let rows: Vec<(String, String, bool)> = consents::table
            .filter(consents::nurse_id.eq_any(chunk))
            .order((consents::nurse_id, consents::scope, consents::version))
            .select((consents::nurse_id, consents::scope, consents::granted))
            .load(conn)?;
        // Ordered by version, so the last row of each scope wins.
        for (nurse_id, scope, granted) in rows {
            if let (Some(scope), Some(c)) = (ConsentScope::parse(&scope), current.get_mut(&nurse_id)) {
                c.decisions.insert(scope, granted);
            }
        }
    }
    Ok(current)
}

pub fn history(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Vec<ConsentRecord>> {
    consents::table
        .filter(consents::nurse_id.eq(nurse_id))
        .order((consents::recorded_at, consents::scope, consents::version))
        .select(ConsentRecord::as_select())
        .load(conn)
}

/// Records the nurse's decisions for the given scopes. Only real changes are written (granting a
/// scope already granted writes nothing); each change gets the next version of its scope and a
/// `consent_changed` event in the outbox, all in one transaction, under one new receipt number.
/// Returns the records written.
pub fn record(
    conn: &mut DbConn,
    nurse_id: &str,
    decisions: &[(ConsentScope, bool)],
    channel: Channel,
    entered_by: Option<&str>,
) -> Result<Vec<ConsentRecord>, NodeError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        record_in(conn, nurse_id, decisions, channel, entered_by, None)
    })
}

/// [`record`] inside the caller's transaction; `receipt` is the step's receipt when the caller
/// issued one (an opt-in), otherwise a consent receipt is issued if anything changed.
pub(crate) fn record_in(
    conn: &mut DbConn,
    nurse_id: &str,
    decisions: &[(ConsentScope, bool)],
    channel: Channel,
    entered_by: Option<&str>,
    receipt: Option<&str>,
) -> Result<Vec<ConsentRecord>, NodeError> {
    {
        let agency_code = crate::nurses::agency_code_of(conn, nurse_id)?;
        let before = current(conn, nurse_id)?;
        let now = ncf_shared::time::now_utc();
        let mut written = Vec::new();
        let mut receipt = receipt.map(str::to_string);
        for &(scope, granted) in decisions {
            let latest: Option<i32> = consents::table
                .filter(consents::nurse_id.eq(nurse_id).and(consents::scope.eq(scope.as_str())))
                .select(diesel::dsl::max(consents::version))
                .first(conn)?;
            let decided_before = latest.is_some();
            if decided_before && before.granted(scope) == granted || !decided_before && !granted {
                continue;
            }
            if receipt.is_none() {
                receipt = Some(crate::receipts::issue(
                    conn,
                    nurse_id,
                    crate::receipts::ReceiptKind::Consent,
                    channel,
                    now,
                )?);
            }
            let record = ConsentRecord {
                id: RecordId::new().0,
                nurse_id: nurse_id.to_string(),
                scope: scope.as_str().to_string(),
                granted,
                version: latest.unwrap_or(0) + 1,
                text_version: TEXT_VERSION.to_string(),
                text_sha256: text_sha256(scope),
                channel: channel.as_str().to_string(),
                entered_by: entered_by.map(str::to_string),
                recorded_at: now,
                proofing: before.proofing_label().to_string(),
                receipt: receipt.clone(),
            };
            diesel::insert_into(consents::table).values(&record).execute(conn)?;
            let event = changed_event(&record, agency_code.clone())?;
            outbox::enqueue_if_covered(conn, &before, &event, Some(nurse_id))?;
            written.push(record);
        }
        // Her distance travels only under job_support or training_info: when the first of them is
        // given, it follows the consent that lets it.
        let wanted_before =
            before.granted(ConsentScope::JobSupport) || before.granted(ConsentScope::TrainingInfo);
        let wants_now = written.iter().any(|r| {
            r.granted
                && (r.scope == ConsentScope::JobSupport.as_str()
                    || r.scope == ConsentScope::TrainingInfo.as_str())
        });
        if wants_now && !wanted_before {
            let after = current(conn, nurse_id)?;
            let event = crate::nurses::distance_event(conn, nurse_id)?;
            outbox::enqueue_if_covered(conn, &after, &event, Some(nurse_id))?;
        }
        Ok(written)
    }
}

/// The event that tells the national server of a recorded decision.
pub(crate) fn changed_event(
    record: &ConsentRecord,
    agency_code: ncf_shared::AgencyCode,
) -> Result<NodeToNational, NodeError> {
    let scope = ConsentScope::parse(&record.scope).ok_or_else(|| {
        NodeError::Database(diesel::result::Error::DeserializationError(
            format!("consent {} has an unknown scope", record.id).into(),
        ))
    })?;
    Ok(NodeToNational::ConsentChanged(ConsentChanged {
        agency_code,
        scope,
        granted: record.granted,
        version: record.version,
        text_version: record.text_version.clone(),
        text_sha256: record.text_sha256.clone(),
        recorded_at: record.recorded_at.and_utc(),
    }))
}

/// Her latest decision per scope, as recorded (scope order).
pub fn latest_records(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Vec<ConsentRecord>> {
    let all: Vec<ConsentRecord> = consents::table
        .filter(consents::nurse_id.eq(nurse_id))
        .order((consents::scope, consents::version))
        .select(ConsentRecord::as_select())
        .load(conn)?;
    let mut latest: BTreeMap<String, ConsentRecord> = BTreeMap::new();
    for record in all {
        latest.insert(record.scope.clone(), record);
    }
    Ok(latest.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts nurses agreed to are pinned: changing a text without bumping `TEXT_VERSION`
    /// would record consents to words she never saw. Update both together.
    #[test]
    fn text_versions_read_as_dates() {
        assert_eq!(text_version_ja("2026-11-v1"), "2026年11月版");
        assert_eq!(text_version_ja("2027-04-v2"), "2027年4月版（改訂2）");
        assert_eq!(text_version_ja("odd"), "odd");
    }

    #[test]
    fn consent_texts_are_pinned_to_their_version() {
        assert_eq!(TEXT_VERSION, "2026-11-v1");
        let pinned = [
            (
                ConsentScope::AddressLinkage,
                "5a254615165ccae54aa2e5eefb0b97714b8990d2db513257e2d9215457714062",
            ),
            (ConsentScope::JobSupport, "639639d7e536e34bdfb95357e6d9967831a78f110ed8f36e0f61aa4a50adb45f"),
            (ConsentScope::TrainingInfo, "8d8d87bd9abb639335e939617391ab7535da2cfe37a021d78b607d5aa3f90a17"),
            (
                ConsentScope::ShareWithResidencePrefecture,
                "ca29edd9d8f6949183e0981b6979b9ac16c8e2024864512b7ae2169929ce02f9",
            ),
        ];
        for (scope, hash) in pinned {
            assert!(text_ja(scope).chars().count() > 40, "{scope:?}");
            assert_eq!(text_sha256(scope), hash, "{scope:?}");
        }
    }

    fn event(scope: ConsentScope) -> NodeToNational {
        let code = ncf_shared::AgencyCode::parse(&"A".repeat(52)).unwrap();
        match scope {
            ConsentScope::AddressLinkage => NodeToNational::NoticeFiled(ncf_shared::contract::NoticeFiled {
                agency_code: code,
                notice_id: "n".into(),
                filed_at: chrono::Utc::now(),
                notice: crate::notices::NoticeBody::EmploymentStatus {
                    employed: false,
                    workplace_type: None,
                    workplace_lgcode: None,
                    weekly_hours: None,
                    as_of: None,
                },
            }),
            ConsentScope::ShareWithResidencePrefecture => {
                NodeToNational::TransferContact(ncf_shared::contract::TransferContact {
                    agency_code: code,
                    transfer_id: "t".into(),
                    sealed_contact: "sealed".into(),
                })
            }
            _ => NodeToNational::ConsentChanged(ConsentChanged {
                agency_code: code,
                scope,
                granted: false,
                version: 2,
                text_version: TEXT_VERSION.into(),
                text_sha256: text_sha256(scope),
                recorded_at: chrono::Utc::now(),
            }),
        }
    }

    fn proofed(decisions: &[(ConsentScope, bool)]) -> CurrentConsents {
        CurrentConsents {
            decisions: decisions.iter().copied().collect(),
            proofed: Some(ProofingMethod::Post),
        }
    }

    #[test]
    fn the_gate_follows_the_scopes_once_she_is_proofed() {
        let consent = event(ConsentScope::JobSupport);
        let notice = event(ConsentScope::AddressLinkage);
        let contact = event(ConsentScope::ShareWithResidencePrefecture);
        let none = proofed(&[]);
        assert!(covers(&none, &consent));
        assert!(!covers(&none, &notice));
        assert!(!covers(&none, &contact));
        let linked = proofed(&[(ConsentScope::AddressLinkage, true)]);
        assert!(covers(&linked, &notice));
        assert!(!covers(&linked, &contact));
        let withdrawn = proofed(&[(ConsentScope::AddressLinkage, false)]);
        assert!(!covers(&withdrawn, &notice));
        let share = proofed(&[(ConsentScope::ShareWithResidencePrefecture, true)]);
        assert!(covers(&share, &contact));
        assert!(!covers(&share, &notice));
    }

    #[test]
    fn nothing_leaves_before_she_is_proofed() {
        let all: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
        let unproofed = CurrentConsents { decisions: all.iter().copied().collect(), proofed: None };
        for scope in ConsentScope::ALL {
            assert!(!covers(&unproofed, &event(scope)), "{scope:?}");
        }
        let counter = unproofed.with_proofing(ProofingMethod::Counter);
        assert!(ConsentScope::ALL.into_iter().all(|s| covers(&counter, &event(s))));
        assert_eq!(counter.proofing_label(), "counter");
    }
}
