//! What the national server tells a node about a nurse's life (issue #7): her status (latent or
//! not, whether this node is her home node, where she lives), an erasure, a filing reminder.
//! Hand-overs are in `transfers`.
//!
//! **Home node.** Only her home node contacts her, so that she never hears twice: once another
//! node is her home node (`home_here = false`), this node sends her no notices or digests; her
//! own page still works and she can still sign in to it.
//!
//! **Erase.** Sent to every node linked to her when the national server records an ex-officio
//! deletion of her licence; it does not say why. Her e-mail address and phone number are deleted,
//! her sessions and sign-in links end, mail queued to her is dropped, and nothing is sent to her
//! again. Her notices and consent records stay: they are legal records.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ncf_shared::contract::{ReminderDue, StatusChanged};
use ncf_shared::db::DbConn;
use ncf_shared::{Prefecture, per_backend};

use crate::schema::{login_links, mail_outbox, national_status, nurses, reminders, sessions};

/// Makes sure she has a status row; returns its key.
pub(crate) fn status_row(conn: &mut DbConn, nurse_id: &str) -> QueryResult<String> {
    per_backend!(&mut *conn, c => diesel::insert_into(national_status::table)
        .values(national_status::nurse_id.eq(nurse_id))
        .on_conflict(national_status::nurse_id)
        .do_nothing()
        .execute(c))?;
    Ok(nurse_id.to_string())
}

/// Whether her contact details were erased here on the national server's instruction.
pub fn erased(conn: &mut DbConn, nurse_id: &str) -> QueryResult<bool> {
    Ok(national_status::table
        .find(nurse_id)
        .select(national_status::erased_at)
        .first::<Option<chrono::NaiveDateTime>>(conn)
        .optional()?
        .flatten()
        .is_some())
}

pub fn apply_status(conn: &mut DbConn, nurse_id: &str, s: &StatusChanged) -> QueryResult<()> {
    let key = status_row(conn, nurse_id)?;
    diesel::update(national_status::table.find(&key))
        .set((
            national_status::latent.eq(s.latent),
            national_status::home_here.eq(s.home_here),
            national_status::residence.eq(s.residence.map(Prefecture::code)),
            national_status::decided_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Erases her contact details at this node (every registration with this code, proofed or not,
/// and a pending transfer for it).
pub fn erase(conn: &mut DbConn, agency_code: &str, now: NaiveDateTime) -> QueryResult<usize> {
    let found: Vec<(String, String)> = nurses::table
        .filter(nurses::agency_code.eq(agency_code))
        .select((nurses::id, nurses::email))
        .load(conn)?;
    for (id, email) in &found {
        diesel::update(nurses::table.find(id))
            .set((nurses::email.eq(""), nurses::phone.eq(None::<String>)))
            .execute(conn)?;
        crate::nurses::refresh_search_key(conn, id)?;
        diesel::delete(
            sessions::table.filter(sessions::kind.eq("nurse")).filter(sessions::subject_id.eq(id)),
        )
        .execute(conn)?;
        diesel::delete(login_links::table.filter(login_links::nurse_id.eq(id))).execute(conn)?;
        if !email.is_empty() {
            diesel::delete(
                mail_outbox::table
                    .filter(mail_outbox::to_address.eq(email))
                    .filter(mail_outbox::state.eq("queued")),
            )
            .execute(conn)?;
        }
        crate::postings::forget_matches(conn, id)?;
        let key = status_row(conn, id)?;
        diesel::update(national_status::table.find(&key))
            .set((
                national_status::erased_at.eq(now),
                national_status::latent.eq(Some(false)),
                national_status::home_here.eq(Some(false)),
                national_status::residence.eq(None::<String>),
            ))
            .execute(conn)?;
    }
    // A pending transfer for her, with its invitation still queued.
    crate::transfers::forget(conn, None, Some(agency_code))?;
    // Her contact as an applicant to this node's training (she asked at her home node).
    let applicants = crate::training::forget_applicant(conn, agency_code)?;
    tracing::info!(
        registrations = found.len(),
        applicants,
        "contact details erased on the national server's instruction"
    );
    Ok(found.len())
}

pub fn record_reminder(
    conn: &mut DbConn,
    nurse_id: &str,
    r: &ReminderDue,
    now: NaiveDateTime,
) -> QueryResult<()> {
    per_backend!(&mut *conn, c => diesel::insert_into(reminders::table)
        .values((
            reminders::id.eq(&r.reminder_id),
            reminders::nurse_id.eq(nurse_id),
            reminders::kind.eq(r.kind.as_str()),
            reminders::since.eq(r.since),
            reminders::received_at.eq(now),
        ))
        .on_conflict(reminders::id)
        .do_nothing()
        .execute(c))?;
    Ok(())
}

/// What her page and the staff page show of the national server's view of her.
#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = national_status)]
pub struct NationalStatus {
    pub latent: Option<bool>,
    pub home_here: Option<bool>,
    pub residence: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    pub moved_out_at: Option<NaiveDateTime>,
    pub moved_out_to: Option<String>,
    pub erased_at: Option<NaiveDateTime>,
}

impl NationalStatus {
    pub fn residence_ja(&self) -> Option<&'static str> {
        self.residence.as_deref().and_then(Prefecture::from_code).map(Prefecture::name_ja)
    }

    /// 転出 as staff and she read it: with the destination only when she allowed it to be told.
    pub fn moved_out_ja(&self) -> Option<String> {
        self.moved_out_at?;
        Some(match self.moved_out_to.as_deref().and_then(Prefecture::from_code) {
            Some(p) => format!("転出（{}へ）", p.name_ja()),
            None => "都道府県外へ転出".to_string(),
        })
    }

    /// May this node contact her (notices, digests)? Not once another node is her home node or
    /// her contact was erased.
    pub fn may_contact(&self) -> bool {
        self.erased_at.is_none() && self.home_here != Some(false)
    }
}

pub fn status_of(conn: &mut DbConn, nurse_id: &str) -> QueryResult<NationalStatus> {
    Ok(national_status::table
        .find(nurse_id)
        .select(NationalStatus::as_select())
        .first(conn)
        .optional()?
        .unwrap_or_default())
}

/// Her reminders, newest first: (kind, since).
pub fn reminders_of(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Vec<(String, chrono::NaiveDate)>> {
    reminders::table
        .filter(reminders::nurse_id.eq(nurse_id))
        .order(reminders::received_at.desc())
        .select((reminders::kind, reminders::since))
        .load(conn)
}

/// The national server's view of her, as her page and the staff page both show it (one wording
/// for both): labelled lines, and her filing reminders (title, explanation, since).
#[derive(Debug, Clone, Default)]
pub struct StatusView {
    pub lines: Vec<(&'static str, String)>,
    pub reminders: Vec<(&'static str, &'static str, String)>,
}

pub fn view(conn: &mut DbConn, nurse_id: &str, here: Prefecture) -> QueryResult<StatusView> {
    let s = status_of(conn, nurse_id)?;
    let mut lines = Vec::new();
    if s.erased_at.is_some() {
        lines.push(("連絡先", "国からの指示により削除しました（届出の記録は保存しています）".to_string()));
    }
    if let Some(moved) = s.moved_out_ja() {
        lines.push(("転出", moved));
    }
    if let Some(latent) = s.latent {
        lines.push((
            "就業支援の対象",
            if latent {
                "対象です（看護職として就業していない方）"
            } else {
                "対象ではありません"
            }
            .to_string(),
        ));
    }
    match s.home_here {
        Some(true) => {
            lines.push(("ご案内するセンター", format!("{}ナースセンター（このセンター）", here.name_ja())))
        }
        Some(false) => lines.push(("ご案内するセンター", "他の都道府県のナースセンター".to_string())),
        None => {}
    }
    if let Some(p) = s.residence_ja() {
        lines.push(("お住まいの都道府県（住民票）", p.to_string()));
    }
    if let Some(at) = s.decided_at {
        lines.push(("国のデータベースでの判定日時", ncf_shared::time::datetime_ja(at)));
    }
    let reminders = reminders_of(conn, nurse_id)?
        .into_iter()
        .filter_map(|(kind, since)| {
            let kind = ncf_shared::contract::ReminderKind::parse(&kind)?;
            Some((kind.title_ja(), kind.explanation_ja(), ncf_shared::time::date_ja(since)))
        })
        .collect();
    Ok(StatusView { lines, reminders })
}
