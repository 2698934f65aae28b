//! Hand-over between prefectures at the nodes (DESIGN flow 4, issue #7).
//!
//! **At the old node** a `moved_out` says she moved out of this prefecture. Staff and her page
//! show 転出, with the destination only when `share_with_residence_prefecture` is given here. When
//! the national server asks for her contact, this node seals it — exactly what that consent's
//! text names: name, e-mail, phone — to the destination node's key and pushes it through the
//! consent gate (`transfer_contact`). The national server relays the sealed box and can read
//! none of it.
//!
//! **At the new node** a `moved_in` is a pending transfer, not a registration: her contact
//! (opened here), her licence as the registry holds it, and this node's code for her. She is
//! invited by e-mail; the link shows this center and its consents; when she confirms, she is
//! registered here, already proofed (she proved who she is at the old node), the consents she
//! gives here are recorded, and `transfer_confirmed` makes this node her home node. Until then
//! the old node stays her home node.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ncf_shared::contract::{
    MovedIn, MovedOut, NodeToNational, ProofingMethod, SealedContact, TransferConfirmed, TransferContact,
};
use ncf_shared::db::DbConn;
use ncf_shared::federation::{NodePublicKey, NodeSigningKey};
use ncf_shared::{ConsentScope, PersonName, Prefecture};

use crate::error::NodeError;
use crate::nurses::{self, NewNurse, Nurse};
use crate::schema::{national_status, nurses as nurses_table, transfers_in};
use crate::{Channel, consent, outbox};

/// How long the invitation link works.
pub const INVITATION_DAYS: i64 = 30;

/// Records that she moved out and, when asked and allowed, queues her sealed contact.
pub fn moved_out(conn: &mut DbConn, nurse_id: &str, m: &MovedOut, now: NaiveDateTime) -> Result<(), String> {
    let upsert = crate::life_events::status_row(conn, nurse_id).map_err(|e| e.to_string())?;
    diesel::update(national_status::table.find(&upsert))
        .set((
            national_status::moved_out_at.eq(now),
            national_status::moved_out_to.eq(m.destination.map(Prefecture::code)),
        ))
        .execute(conn)
        .map_err(|e| e.to_string())?;
    let Some(request) = &m.transfer else { return Ok(()) };
    let nurse = nurses::get(conn, nurse_id).map_err(|e| e.to_string())?.ok_or("nurse not found")?;
    let gate = consent::current(conn, nurse_id).map_err(|e| e.to_string())?;
    if !gate.granted(ConsentScope::ShareWithResidencePrefecture) {
        // Withdrawn here after the national server asked: nothing leaves (the gate would refuse
        // it anyway; saying so keeps the inbox honest).
        return Ok(());
    }
    let recipient =
        NodePublicKey::parse(&request.recipient_key).map_err(|e| format!("recipient key: {e}"))?;
    let contact = SealedContact {
        family_name: nurse.family_name.clone(),
        given_name: nurse.given_name.clone(),
        email: nurse.email.clone(),
        phone: nurse.phone.clone(),
    };
    let json = serde_json::to_vec(&contact).map_err(|e| e.to_string())?;
    let sealed = ncf_shared::sealed::seal(&recipient, request.transfer_id.as_bytes(), &json)
        .map_err(|e| e.to_string())?;
    let event = NodeToNational::TransferContact(TransferContact {
        agency_code: m.agency_code.clone(),
        transfer_id: request.transfer_id.clone(),
        sealed_contact: sealed,
    });
    outbox::enqueue_if_covered(conn, &gate, &event, Some(nurse_id)).map_err(|e| e.to_string())?;
    tracing::info!(nurse = %nurse_id, "moved out: contact sealed for the destination node");
    Ok(())
}

/// Stores a pending transfer (a repeated event changes nothing). The sealed contact is opened
/// with this node's key; one that does not open, or that a page would refuse, fails the event.
pub fn moved_in(
    conn: &mut DbConn,
    key: Option<&NodeSigningKey>,
    m: &MovedIn,
    now: NaiveDateTime,
) -> Result<(), String> {
    let key = key.ok_or("this process has no node key to open the sealed contact")?;
    let plain = ncf_shared::sealed::open(key, m.transfer_id.as_bytes(), &m.sealed_contact)
        .map_err(|e| e.to_string())?;
    let contact: SealedContact =
        serde_json::from_slice(&plain).map_err(|_| "the sealed contact is not a contact".to_string())?;
    if PersonName::check(&contact.family_name).is_err() || PersonName::check(&contact.given_name).is_err() {
        return Err("the sealed contact has no valid name".into());
    }
    if !ncf_shared::notice::looks_like_email(&contact.email) {
        return Err("the sealed contact has no valid e-mail address".into());
    }
    let values = (
        transfers_in::transfer_id.eq(&m.transfer_id),
        transfers_in::agency_code.eq(m.agency_code.as_str()),
        transfers_in::from_prefecture.eq(m.from.code()),
        transfers_in::family_name.eq(&contact.family_name),
        transfers_in::given_name.eq(&contact.given_name),
        transfers_in::email.eq(&contact.email),
        transfers_in::phone.eq(contact.phone.as_deref().filter(|p| ncf_shared::notice::looks_like_phone(p))),
        transfers_in::qualification.eq(m.licence.qualification.code()),
        transfers_in::registration_number.eq(&m.licence.registration_number),
        transfers_in::family_name_kana.eq(&m.licence.family_name_kana),
        transfers_in::given_name_kana.eq(&m.licence.given_name_kana),
        transfers_in::birth_date.eq(m.licence.birth_date),
        transfers_in::proofing_method.eq(m.proofing_method.as_str()),
        transfers_in::received_at.eq(now),
    );
    ncf_shared::per_backend!(&mut *conn, c => diesel::insert_into(transfers_in::table)
        .values(values)
        .on_conflict(transfers_in::transfer_id)
        .do_nothing()
        .execute(c))
    .map_err(|e| e.to_string())?;
    tracing::info!(from = %m.from, "moved in: pending transfer stored");
    Ok(())
}

/// Deletes a pending transfer (and an invitation still queued for it): the national server
/// cancelled it, or her contact was erased. A confirmed one is left alone.
pub fn forget(
    conn: &mut DbConn,
    filter_transfer: Option<&str>,
    filter_code: Option<&str>,
) -> QueryResult<usize> {
    let mut query = transfers_in::table.filter(transfers_in::confirmed_at.is_null()).into_boxed();
    if let Some(id) = filter_transfer {
        query = query.filter(transfers_in::transfer_id.eq(id.to_string()));
    }
    if let Some(code) = filter_code {
        query = query.filter(transfers_in::agency_code.eq(code.to_string()));
    }
    let rows: Vec<(String, String)> =
        query.select((transfers_in::transfer_id, transfers_in::email)).load(conn)?;
    for (id, email) in &rows {
        diesel::delete(
            crate::schema::mail_outbox::table
                .filter(crate::schema::mail_outbox::to_address.eq(email))
                .filter(crate::schema::mail_outbox::state.eq("queued")),
        )
        .execute(conn)?;
        diesel::delete(transfers_in::table.find(id)).execute(conn)?;
    }
    Ok(rows.len())
}

/// Mails an invitation for each pending transfer not invited yet; returns how many. Called by
/// the serving node after a pull (it knows its public address; `sync` alone does not). Pending
/// transfers whose link expired unused are deleted here (her contact is not kept for nothing).
pub fn invite_pending(conn: &mut DbConn, public_url: &str, here: Prefecture) -> QueryResult<usize> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let expired_before = ncf_shared::time::now_utc() - chrono::Duration::days(INVITATION_DAYS);
        diesel::delete(
            transfers_in::table
                .filter(transfers_in::confirmed_at.is_null())
                .filter(transfers_in::invited_at.lt(expired_before)),
        )
        .execute(conn)?;
        let pending: Vec<(String, String, String, String, String)> = transfers_in::table
            .filter(transfers_in::invited_at.is_null())
            .filter(transfers_in::confirmed_at.is_null())
            .select((
                transfers_in::transfer_id,
                transfers_in::from_prefecture,
                transfers_in::family_name,
                transfers_in::given_name,
                transfers_in::email,
            ))
            .load(conn)?;
        let now = ncf_shared::time::now_utc();
        for (id, from, family, given, email) in &pending {
            let token = ncf_shared::secret::random_token(32);
            diesel::update(transfers_in::table.find(id))
                .set((
                    transfers_in::token_sha256.eq(crate::auth::digest(&token)),
                    transfers_in::invited_at.eq(now),
                ))
                .execute(conn)?;
            let from = Prefecture::from_code(from).map_or("", |p| p.name_ja());
            let body = format!(
                "{family} {given} 様\n\n\
                 {from}のナースセンターから、お住まいの{here}のナースセンターへの引継ぎのご案内です。\n\
                 {here}ナースセンターからの求人・研修のお知らせを受け取るには、次のリンクを開いて、内容を確認のうえ引継ぎを完了してください（{INVITATION_DAYS}日間有効）。\n\n\
                 {public_url}/transfer/{token}\n\n\
                 完了するまでは、これまでどおり{from}のナースセンターがご案内します。\n\
                 お心当たりのない場合は、このメールを破棄してください。\n",
                here = here.name_ja(),
            );
            crate::mail::enqueue_until(
                conn,
                email,
                &format!("{}ナースセンターへの引継ぎのご案内", here.name_ja()),
                &body,
                Some(now + chrono::Duration::days(INVITATION_DAYS)),
            )?;
        }
        Ok(pending.len())
    })
}

/// A pending transfer as her confirmation page shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = transfers_in)]
pub struct PendingTransfer {
    pub transfer_id: String,
    pub agency_code: String,
    pub from_prefecture: String,
    pub family_name: String,
    pub given_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub qualification: String,
    pub registration_number: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: chrono::NaiveDate,
    pub proofing_method: String,
    pub invited_at: Option<NaiveDateTime>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub nurse_id: Option<String>,
}

impl PendingTransfer {
    pub fn from(&self) -> Option<Prefecture> {
        Prefecture::from_code(&self.from_prefecture)
    }

    fn expired(&self, now: NaiveDateTime) -> bool {
        self.invited_at.is_some_and(|at| at + chrono::Duration::days(INVITATION_DAYS) < now)
    }
}

/// The transfer a link's token opens: `None` for an unknown, used or expired link (one answer for
/// all three, as for sign-in links).
pub fn by_token(conn: &mut DbConn, token: &str) -> QueryResult<Option<PendingTransfer>> {
    let now = ncf_shared::time::now_utc();
    Ok(transfers_in::table
        .filter(transfers_in::token_sha256.eq(crate::auth::digest(token)))
        .select(PendingTransfer::as_select())
        .first(conn)
        .optional()?
        .filter(|t| t.confirmed_at.is_none() && !t.expired(now)))
}

/// She confirms: registered here, proofed by the hand-over, her consents for this center
/// recorded, and the national server told (`transfer_confirmed` goes first, so that her consents
/// arrive for a proofed link). Confirming twice (a double click) registers her once.
/// What [`confirm`] did: her registration, a session to sign her in, and the receipt number.
pub struct Confirmed {
    pub nurse: Nurse,
    pub session: String,
    pub receipt: String,
    /// Addresses of other (unproofed) registrations for her licence, now removed; to be told.
    pub removed_addresses: Vec<String>,
}

pub fn confirm(
    conn: &mut DbConn,
    token: &str,
    decisions: &[(ConsentScope, bool)],
) -> Result<Confirmed, NodeError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let t = by_token(conn, token)?.ok_or(NodeError::NotFound("transfer"))?;
        let code = ncf_shared::AgencyCode::parse(&t.agency_code).ok_or(NodeError::NotFound("transfer"))?;
        if nurses::proofed_by_agency_code(conn, &code)?.is_some() {
            // Registered and proofed here already (she opted in here herself meanwhile): the
            // link has nothing left to do.
            return Err(NodeError::NotFound("transfer"));
        }
        let nurse = nurses::register(
            conn,
            NewNurse {
                agency_code: code.clone(),
                qualification: t.qualification.clone(),
                registration_number: t.registration_number.clone(),
                family_name: t.family_name.clone(),
                given_name: t.given_name.clone(),
                family_name_kana: t.family_name_kana.clone(),
                given_name_kana: t.given_name_kana.clone(),
                birth_date: t.birth_date,
                email: t.email.clone(),
                phone: t.phone.clone(),
                max_distance_km: 20,
            },
        )?;
        let now = ncf_shared::time::now_utc();
        diesel::update(nurses_table::table.find(&nurse.id))
            .set((
                nurses_table::proofing_method.eq(ProofingMethod::Transfer.as_str()),
                nurses_table::proofed_at.eq(now),
                nurses_table::proofing_document
                    .eq(t.from().map(|p| format!("{}ナースセンターからの引継ぎ", p.name_ja()))),
            ))
            .execute(conn)?;
        // Her contact now lives in her registration; the transfer keeps no copy of it.
        diesel::update(transfers_in::table.find(&t.transfer_id))
            .set((
                transfers_in::confirmed_at.eq(now),
                transfers_in::nurse_id.eq(&nurse.id),
                transfers_in::email.eq(""),
                transfers_in::phone.eq(None::<String>),
            ))
            .execute(conn)?;
        // As when she proves who she is: unproofed registrations for her licence (someone holding
        // a copy of it) are removed, and their addresses returned to be told.
        let nurse_now = nurses::get(conn, &nurse.id)?.ok_or(NodeError::NotFound("nurse"))?;
        let removed_addresses = crate::proofing::remove_other_registrations(conn, &nurse_now)?;
        let gate = consent::current(conn, &nurse.id)?;
        let event = NodeToNational::TransferConfirmed(TransferConfirmed {
            agency_code: code,
            transfer_id: t.transfer_id.clone(),
            confirmed_at: now.and_utc(),
        });
        outbox::enqueue_if_covered(conn, &gate, &event, Some(&nurse.id))?;
        let receipt =
            crate::receipts::issue(conn, &nurse.id, crate::receipts::ReceiptKind::OptIn, Channel::Web, now)?;
        consent::record_in(conn, &nurse.id, decisions, Channel::Web, None, Some(&receipt))?;
        let (session, _) = crate::auth::start_session(conn, crate::auth::SessionKind::Nurse, &nurse.id)?;
        tracing::info!(nurse = %nurse.id, "hand-over confirmed by her");
        let nurse = nurses::get(conn, &nurse.id)?.ok_or(NodeError::NotFound("nurse"))?;
        Ok(Confirmed { nurse, session, receipt, removed_addresses })
    })
}

/// Pending transfers into this prefecture, for staff.
pub fn pending(conn: &mut DbConn) -> QueryResult<Vec<PendingTransfer>> {
    transfers_in::table
        .filter(transfers_in::confirmed_at.is_null())
        .order(transfers_in::received_at.desc())
        .select(PendingTransfer::as_select())
        .load(conn)
}

/// The hand-over she came by, if she did.
pub fn of_nurse(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Option<PendingTransfer>> {
    transfers_in::table
        .filter(transfers_in::nurse_id.eq(nurse_id))
        .select(PendingTransfer::as_select())
        .first(conn)
        .optional()
}
