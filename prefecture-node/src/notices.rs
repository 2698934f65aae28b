//! Notices (DESIGN flow 2): 離職届 (separation), 就業状況 (employment status) and 変更届 (change).
//! Append-only; the latest separation or employment-status notice decides whether she works.

use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;

use crate::Channel;
use crate::consent;
use crate::error::NodeError;
use crate::outbox;
use crate::receipts::ReceiptKind;
use crate::schema::notices;
use ncf_shared::contract::{NodeToNational, NoticeFiled};
pub use ncf_shared::notice::{
    NoticeBody, SeparationReason, WorkplaceType, code_of, from_code, looks_like_email, looks_like_phone,
};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = notices, treat_none_as_default_value = false)]
pub struct Notice {
    pub id: String,
    pub nurse_id: String,
    pub kind: String,
    pub body: String,
    pub channel: String,
    pub entered_by: Option<String>,
    pub filed_at: chrono::NaiveDateTime,
    /// How she was proofed when it was filed: `none`, `post` or `counter`.
    pub proofing: String,
    /// Its receipt number (`None` for notices filed before receipts existed).
    pub receipt: Option<String>,
    /// A paper form's 受付日: the day the center received it.
    pub received_on: Option<chrono::NaiveDate>,
}

impl Notice {
    pub fn body(&self) -> Option<NoticeBody> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The outcome of filing: the notice, and the outbox sequence when it may leave the node.
#[derive(Debug)]
pub struct Filed {
    pub notice: Notice,
    pub outbox_seq: Option<i64>,
}

/// Files a notice: validated, appended, and queued for the national server in the same
/// transaction when her consents cover it (otherwise it stays at this node).
pub fn file(
    conn: &mut DbConn,
    nurse_id: &str,
    body: &NoticeBody,
    channel: Channel,
    entered_by: Option<&str>,
) -> Result<Filed, NodeError> {
    let mut filed = file_many(conn, &[(nurse_id, body)], channel, entered_by, None)?;
    Ok(filed.pop().expect("one notice in, one out"))
}

/// Files a paper form staff entered, with the day the center received it (受付日), which must
/// not be in the future.
pub fn file_paper(
    conn: &mut DbConn,
    nurse_id: &str,
    body: &NoticeBody,
    staff_id: &str,
    received_on: chrono::NaiveDate,
) -> Result<Filed, NodeError> {
    if received_on > ncf_shared::time::today_jst() {
        return Err(NodeError::Invalid(vec![crate::error::FieldError::new(
            "received_on",
            "受付日に未来の日付は指定できません。",
        )]));
    }
    let mut filed = file_many(conn, &[(nurse_id, body)], Channel::Paper, Some(staff_id), Some(received_on))?;
    Ok(filed.pop().expect("one notice in, one out"))
}

/// Files notices in one transaction, all or none: every body is checked before anything is
/// written. The nurses' agency codes and consents are read once for the whole batch and the
/// notices and their events are written a thousand rows per statement, so a bundle of paper
/// 離職届 costs a few statements rather than a few per notice (and holds SQLite's write lock for
/// that much less time).
pub fn file_many(
    conn: &mut DbConn,
    items: &[(&str, &NoticeBody)],
    channel: Channel,
    entered_by: Option<&str>,
    received_on: Option<chrono::NaiveDate>,
) -> Result<Vec<Filed>, NodeError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        file_many_in(conn, items, channel, entered_by, received_on)
    })
}

/// [`file_many`] inside the caller's transaction (the bulk upload and a confirmed submission
/// check for repeats in the same transaction that files).
pub(crate) fn file_many_in(
    conn: &mut DbConn,
    items: &[(&str, &NoticeBody)],
    channel: Channel,
    entered_by: Option<&str>,
    received_on: Option<chrono::NaiveDate>,
) -> Result<Vec<Filed>, NodeError> {
    let now = ncf_shared::time::now_utc();
    for (_, body) in items {
        body.validate(ncf_shared::time::jst_date(now)).map_err(NodeError::Invalid)?;
    }
    {
        let ids: Vec<&str> = items.iter().map(|(id, _)| *id).collect();
        let agency_codes = crate::nurses::agency_codes_of(conn, &ids)?;
        let consents = consent::current_many(conn, &ids)?;
        let receipts = crate::receipts::issue_many(conn, &ids, ReceiptKind::Notice, channel, now)?;
        let mut notices = Vec::with_capacity(items.len());
        let mut events = Vec::with_capacity(items.len());
        for ((nurse_id, body), receipt) in items.iter().zip(receipts) {
            let agency_code = agency_codes[*nurse_id].clone();
            let notice = Notice {
                id: RecordId::new().0,
                nurse_id: nurse_id.to_string(),
                kind: body.kind().as_str().to_string(),
                body: serde_json::to_string(body).expect("notice bodies serialise"),
                channel: channel.as_str().to_string(),
                entered_by: entered_by.map(str::to_string),
                filed_at: now,
                proofing: consents[*nurse_id].proofing_label().to_string(),
                receipt: Some(receipt),
                received_on,
            };
            let event = match body {
                // A change notice updates her record here and stays here: the national server
                // keeps no contact details, and her current ones are handed over (sealed) only
                // when she moves and has allowed it (`transfers`).
                NoticeBody::Change { family_name, given_name, email, phone, .. } => {
                    fn trimmed(v: &Option<String>) -> Option<&str> {
                        v.as_deref().map(str::trim)
                    }
                    let change = crate::nurses::ContactChange {
                        family_name: trimmed(family_name),
                        given_name: trimmed(given_name),
                        email: trimmed(email),
                        phone: trimmed(phone),
                    };
                    crate::nurses::update_contact(conn, nurse_id, &change)?;
                    if change.email.is_some() {
                        // A new address is tried afresh: the old one was what bounced.
                        crate::digests::clear_bounce(conn, nurse_id)?;
                    }
                    None
                }
                _ => Some(NodeToNational::NoticeFiled(NoticeFiled {
                    agency_code,
                    notice_id: notice.id.clone(),
                    filed_at: now.and_utc(),
                    notice: (*body).clone(),
                })),
            };
            events.push(event);
            notices.push(notice);
        }
        ncf_shared::insert_many!(&mut *conn, notices, |c, values| diesel::insert_into(notices::table)
            .values(values)
            .execute(c));
        let pending: Vec<outbox::Pending<'_>> = items
            .iter()
            .zip(&events)
            .filter_map(|((nurse_id, _), event)| {
                Some(outbox::Pending {
                    event: event.as_ref()?,
                    consents: &consents[*nurse_id],
                    nurse_id: Some(nurse_id),
                })
            })
            .collect();
        let mut seqs = outbox::enqueue_many(conn, &pending)?.into_iter();
        Ok(notices
            .into_iter()
            .zip(&events)
            .map(|(notice, event)| Filed {
                notice,
                outbox_seq: event.as_ref().and_then(|_| seqs.next().flatten()),
            })
            .collect())
    }
}

/// What a person may not file this way, whatever the form said: a 受付日 in the future; on her own
/// page, a new sign-in address (it changes only at the counter: a stolen session could otherwise
/// move the account to another address for good). The confirmation step shows these too.
pub fn submission_problems(
    body: &NoticeBody,
    channel: Channel,
    received_on: Option<chrono::NaiveDate>,
) -> Vec<crate::error::FieldError> {
    let mut problems = Vec::new();
    if received_on.is_some_and(|day| day > ncf_shared::time::today_jst()) {
        problems.push(crate::error::FieldError::new("received_on", "受付日に未来の日付は指定できません。"));
    }
    if channel == Channel::Web && matches!(body, NoticeBody::Change { email: Some(_), .. }) {
        problems.push(crate::error::FieldError::new(
            "email",
            "メールアドレスの変更は、なりすましを防ぐため、センターの窓口でお受けしています（「お困りのとき」をご覧ください）。",
        ));
    }
    problems
}

/// A confirmed submission: filed now, or already filed by an earlier post of the same
/// confirmation page (a double click, a reload, a retry).
#[derive(Debug)]
pub enum Submitted {
    Filed(Filed),
    Again { receipt: String },
}

/// Files the notice of one confirmation page at most once. `submission` is the random token that
/// page carried; it is stored with the notice's receipt (unique), so a second post of the page,
/// even in parallel, files nothing and gets the first one's receipt.
pub fn file_submission(
    conn: &mut DbConn,
    nurse_id: &str,
    body: &NoticeBody,
    channel: Channel,
    entered_by: Option<&str>,
    received_on: Option<chrono::NaiveDate>,
    submission: &str,
) -> Result<Submitted, NodeError> {
    let problems = submission_problems(body, channel, received_on);
    if !problems.is_empty() {
        return Err(NodeError::Invalid(problems));
    }
    let earlier = |conn: &mut DbConn| -> Result<Option<Submitted>, NodeError> {
        Ok(crate::receipts::by_submission(conn, submission)?
            .filter(|r| r.nurse_id == nurse_id)
            .map(|r| Submitted::Again { receipt: r.number }))
    };
    let attempt = ncf_shared::db::write_transaction(conn, |conn| {
        if let Some(again) = earlier(conn)? {
            return Ok(again);
        }
        // Staff changing her address at the counter: the old address is told, in the same
        // transaction (a stolen staff session cannot move an account silently either).
        let old_email = match body {
            NoticeBody::Change { email: Some(_), .. } => crate::nurses::get(conn, nurse_id)?.map(|n| n.email),
            _ => None,
        };
        let mut filed = file_many_in(conn, &[(nurse_id, body)], channel, entered_by, received_on)?;
        let filed = filed.pop().expect("one notice in, one out");
        if let Some(number) = &filed.notice.receipt {
            crate::receipts::mark_submission(conn, number, submission)?;
        }
        if let Some(old) = old_email {
            crate::mail::enqueue(
                conn,
                &old,
                "【ナースセンター】メールアドレスを変更しました",
                "ナースセンターです。\n\n窓口でのお手続きにより、ご登録のメールアドレスを変更しました。今後のお知らせは新しいアドレスにお送りします。\nお心当たりがない場合は、すぐにセンターへご連絡ください。\n",
            )?;
        }
        Ok(Submitted::Filed(filed))
    });
    match attempt {
        // The same page posted in parallel on PostgreSQL: the other post filed it first.
        Err(NodeError::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => earlier(conn)?.ok_or_else(|| NodeError::Conflict("この届出は処理中です。")),
        other => other,
    }
}

/// Her notices, newest first.
pub fn for_nurse(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Vec<Notice>> {
    notices::table
        .filter(notices::nurse_id.eq(nurse_id))
        .order((notices::filed_at.desc(), notices::id.desc()))
        .select(Notice::as_select())
        .load(conn)
}

/// Whether she works, by her separation and employment-status notices judged by their effective
/// dates, as the national server judges them (`None`: no such notice).
pub fn employed(notices_newest_first: &[Notice]) -> Option<bool> {
    // Oldest first: `deciding` keeps the last of equals, so of two notices filed at the same
    // instant with the same date the one stored later decides, as at the national server.
    let facts = notices_newest_first.iter().rev().filter_map(|n| {
        let body = n.body()?;
        let effective_on = body.effective_on(ncf_shared::time::jst_date(n.filed_at))?;
        Some((effective_on, n.filed_at, body.says_working()?))
    });
    ncf_shared::notice::deciding(facts).map(|(_, _, working)| working)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(body: &NoticeBody, filed_at: &str) -> Notice {
        Notice {
            id: String::new(),
            nurse_id: String::new(),
            kind: body.kind().as_str().to_string(),
            body: serde_json::to_string(body).unwrap(),
            channel: "web".into(),
            entered_by: None,
            filed_at: chrono::NaiveDateTime::parse_from_str(filed_at, "%Y-%m-%d %H:%M").unwrap(),
            proofing: "counter".into(),
            receipt: None,
            received_on: None,
        }
    }

    fn date(s: &str) -> chrono::NaiveDate {
        s.parse().unwrap()
    }

    /// The staff page's 就業状況 follows effective dates, not the order of filing: an employer's
    /// separation entered later but dated before her own employment notice does not make her
    /// "not working".
    #[test]
    fn employment_is_judged_by_effective_date() {
        let separation = |left_on: &str| NoticeBody::Separation {
            left_on: date(left_on),
            reason: SeparationReason::Childcare,
            wish_to_return: true,
            return_when: None,
        };
        let working = |as_of: Option<&str>| NoticeBody::EmploymentStatus {
            employed: true,
            workplace_type: None,
            workplace_lgcode: None,
            weekly_hours: None,
            as_of: as_of.map(date),
        };
        assert_eq!(employed(&[]), None);
        let own_then_employer = [
            notice(&working(Some("2026-09-01")), "2026-09-02 01:00"),
            notice(&separation("2026-03-31"), "2026-10-01 01:00"),
        ];
        assert_eq!(employed(&own_then_employer), Some(true));
        let later_separation = [
            notice(&working(None), "2026-04-01 01:00"),
            notice(&separation("2026-08-31"), "2026-09-01 01:00"),
        ];
        assert_eq!(employed(&later_separation), Some(false));
        // Same effective date: the one filed later decides.
        let same_day = [
            notice(&separation("2026-05-01"), "2026-05-02 01:00"),
            notice(&working(Some("2026-05-01")), "2026-05-03 01:00"),
        ];
        assert_eq!(employed(&same_day), Some(true));
    }
}
