//! Identity proofing (issue #5): licence details are printed on a certificate every employer
//! copies, so they (and an e-mail address) do not show who is typing them. Until a nurse has
//! proved who she is, this node keeps her account and her choices but the consent gate
//! (`consent::covers`) lets nothing about her leave.
//!
//! Every route ends in [`complete`] with a [`Proof`]; the gate reads only what `complete`
//! records, so a further route (a My Number card over OpenID Connect) is one more way to reach
//! `complete`, not a change to the gate. The routes today:
//! - **post**: she asks for a letter; the national server posts a one-time code to the address of
//!   her resident registration (this node never learns it) and checks the code she types;
//! - **counter**: staff who checked her licence certificate and a photo ID in person mark her
//!   proofed, recorded with their id and the document.
//!
//! Several unproofed registrations may claim one licence. The one that completes proofing keeps
//! it; the others are removed (nothing of theirs ever left the node) and their addresses told.

use diesel::prelude::*;
use ncf_shared::contract::{IdentityProofed, NodeToNational, NoticeFiled, ProofingMethod};
use ncf_shared::db::DbConn;

use crate::consent;
use crate::error::NodeError;
use crate::nurses::{self, Nurse};
use crate::outbox;
use crate::schema::{
    consents, inbox, login_links, notices, nurses as nurses_table, outbox as outbox_table, proofing_letters,
    sessions, withdrawal_confirmations,
};

/// Photo IDs staff may record at the counter (with her licence certificate).
pub const COUNTER_DOCUMENTS: [&str; 5] =
    ["運転免許証", "マイナンバーカード", "パスポート", "在留カード", "その他の写真付き公的身分証"];

/// How she proved who she is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub method: ProofingMethod,
    /// Staff who checked her documents (counter route).
    pub staff_id: Option<String>,
    /// The photo ID checked (counter route).
    pub document: Option<String>,
}

impl Proof {
    pub fn by_post() -> Self {
        Self { method: ProofingMethod::Post, staff_id: None, document: None }
    }

    /// Refuses a document outside [`COUNTER_DOCUMENTS`].
    pub fn at_counter(staff_id: &str, document: &str) -> Result<Self, NodeError> {
        if !COUNTER_DOCUMENTS.contains(&document) {
            return Err(NodeError::Invalid(vec![ncf_shared::validation::FieldError::new(
                "document",
                "確認した本人確認書類を選んでください。",
            )]));
        }
        Ok(Self {
            method: ProofingMethod::Counter,
            staff_id: Some(staff_id.to_string()),
            document: Some(document.to_string()),
        })
    }
}

/// What [`complete`] did.
#[derive(Debug, Default)]
pub struct Completed {
    /// Events queued for the national server (her proofing, then her current consents, notices
    /// and contact details as her consents cover them).
    pub queued: usize,
    /// Addresses of the other registrations for her licence, now removed; the caller tells them.
    pub removed_addresses: Vec<String>,
    /// She was proofed already: nothing changed.
    pub already: bool,
}

/// Records her proof, removes the other registrations for her licence, and queues what her
/// consents cover, all in one transaction.
pub fn complete(conn: &mut DbConn, nurse_id: &str, proof: &Proof) -> Result<Completed, NodeError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let nurse = nurses::get(conn, nurse_id)?.ok_or(NodeError::NotFound("nurse"))?;
        if nurse.proofed() {
            return Ok(Completed { already: true, ..Completed::default() });
        }
        let agency_code = nurses::agency_code_of(conn, nurse_id)?;
        if let Some(holder) = nurses::proofed_by_agency_code(conn, &agency_code)? {
            // Someone else proved this licence first: two people cannot both be her.
            tracing::warn!(nurse = %nurse_id, holder = %holder.id, "proofing for a licence already proofed here");
            return Err(NodeError::Conflict("この免許はすでに別の登録で本人確認が済んでいます。"));
        }
        let now = ncf_shared::time::now_utc();
        diesel::update(nurses_table::table.find(nurse_id))
            .set((
                nurses_table::proofing_method.eq(proof.method.as_str()),
                nurses_table::proofed_at.eq(now),
                nurses_table::proofed_by.eq(proof.staff_id.as_deref()),
                nurses_table::proofing_document.eq(proof.document.as_deref()),
            ))
            .execute(conn)
            .map_err(|e| match e {
                // Another registration for her licence was proofed at the same moment.
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => NodeError::Conflict("この免許はすでに別の登録で本人確認が済んでいます。"),
                e => NodeError::Database(e),
            })?;
        let removed_addresses = remove_other_registrations(conn, &nurse)?;

        // Her proofing first, then what she decided and filed while unproofed, as it stands now.
        let gate = consent::current(conn, nurse_id)?;
        let mut events = vec![NodeToNational::IdentityProofed(IdentityProofed {
            agency_code: agency_code.clone(),
            method: proof.method,
            proofed_at: now.and_utc(),
        })];
        for record in consent::latest_records(conn, nurse_id)? {
            events.push(consent::changed_event(&record, agency_code.clone())?);
        }
        events.push(crate::nurses::distance_event(conn, nurse_id)?);
        for notice in notices::table
            .filter(notices::nurse_id.eq(nurse_id))
            .order((notices::filed_at, notices::id))
            .select(crate::notices::Notice::as_select())
            .load(conn)?
        {
            // A change notice stays here (her contact travels only at a hand-over).
            match notice.body() {
                Some(body) if !matches!(body, crate::notices::NoticeBody::Change { .. }) => {
                    events.push(NodeToNational::NoticeFiled(NoticeFiled {
                        agency_code: agency_code.clone(),
                        notice_id: notice.id.clone(),
                        filed_at: notice.filed_at.and_utc(),
                        notice: body,
                    }));
                }
                _ => {}
            }
        }
        let pending: Vec<outbox::Pending<'_>> = events
            .iter()
            .map(|event| outbox::Pending { event, consents: &gate, nurse_id: Some(nurse_id) })
            .collect();
        let queued = outbox::enqueue_many(conn, &pending)?.into_iter().flatten().count();
        tracing::info!(nurse = %nurse_id, method = proof.method.as_str(), queued, removed = removed_addresses.len(), "identity proofed");
        Ok(Completed { queued, removed_addresses, already: false })
    })
}

/// Deletes the unproofed registrations that claimed the same licence (their data never left this
/// node), and returns their addresses.
pub(crate) fn remove_other_registrations(
    conn: &mut DbConn,
    keeper: &Nurse,
) -> Result<Vec<String>, NodeError> {
    let others: Vec<(String, String)> = nurses_table::table
        .filter(nurses_table::agency_code.eq(&keeper.agency_code))
        .filter(nurses_table::id.ne(&keeper.id))
        .filter(nurses_table::proofed_at.is_null())
        .select((nurses_table::id, nurses_table::email))
        .load(conn)?;
    for (id, _) in &others {
        diesel::delete(
            sessions::table.filter(sessions::kind.eq("nurse")).filter(sessions::subject_id.eq(id)),
        )
        .execute(conn)?;
        diesel::delete(login_links::table.filter(login_links::nurse_id.eq(id))).execute(conn)?;
        diesel::delete(proofing_letters::table.filter(proofing_letters::nurse_id.eq(id))).execute(conn)?;
        diesel::delete(withdrawal_confirmations::table.filter(withdrawal_confirmations::nurse_id.eq(id)))
            .execute(conn)?;
        diesel::delete(inbox::table.filter(inbox::nurse_id.eq(id))).execute(conn)?;
        diesel::delete(outbox_table::table.filter(outbox_table::nurse_id.eq(id))).execute(conn)?;
        diesel::delete(consents::table.filter(consents::nurse_id.eq(id))).execute(conn)?;
        diesel::delete(notices::table.filter(notices::nurse_id.eq(id))).execute(conn)?;
        diesel::delete(nurses_table::table.find(id)).execute(conn)?;
    }
    Ok(others.into_iter().map(|(_, email)| email).filter(|e| *e != keeper.email).collect())
}

/// Remembers which letter she asked for (the national server's id), so that only her page can
/// check its code.
pub fn record_letter(conn: &mut DbConn, nurse_id: &str, letter_id: &str, valid_days: u32) -> QueryResult<()> {
    diesel::insert_into(proofing_letters::table)
        .values((
            proofing_letters::letter_id.eq(letter_id),
            proofing_letters::nurse_id.eq(nurse_id),
            proofing_letters::requested_at.eq(ncf_shared::time::now_utc()),
            proofing_letters::valid_days.eq(valid_days as i32),
        ))
        .execute(conn)?;
    Ok(())
}

/// Her latest letter: its id and when she asked for it.
pub fn latest_letter(
    conn: &mut DbConn,
    nurse_id: &str,
) -> QueryResult<Option<(String, chrono::NaiveDateTime)>> {
    proofing_letters::table
        .filter(proofing_letters::nurse_id.eq(nurse_id))
        .order(proofing_letters::requested_at.desc())
        .select((proofing_letters::letter_id, proofing_letters::requested_at))
        .first(conn)
        .optional()
}
