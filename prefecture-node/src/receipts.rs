//! Receipt numbers (受付番号): one for every step a person completes — an opt-in, a notice (web,
//! paper or a bulk-upload row), a consent change — shown on the 完了 page and in her records, and
//! found by staff when she calls.
//!
//! Nine digits, shown in three groups (`482-913-075`): digits only, because they are read over the
//! phone and typed back in any width (`normalize::digits`), and letters like O/0 or I/1 are what
//! gets misheard. Random, not sequential, so a number tells nothing about how many others filed
//! that day, and guessing one is useless without her session or a staff account. They are issued
//! inside the transaction of the record they stand for, so a receipt exists exactly when the
//! record does.

use diesel::prelude::*;
use ncf_shared::db::DbConn;

use crate::Channel;
use crate::schema::receipts;

const DIGITS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    OptIn,
    Notice,
    Consent,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::Notice => "notice",
            Self::Consent => "consent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::OptIn, Self::Notice, Self::Consent].into_iter().find(|k| k.as_str() == s)
    }

    pub fn title_ja(self) -> &'static str {
        match self {
            Self::OptIn => "登録",
            Self::Notice => "届出",
            Self::Consent => "同意の変更",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = receipts, treat_none_as_default_value = false)]
pub struct Receipt {
    pub number: String,
    pub nurse_id: String,
    pub kind: String,
    pub channel: String,
    pub issued_at: chrono::NaiveDateTime,
    /// The token of the confirmation page whose post made it (at most one receipt per token).
    pub submission: Option<String>,
}

impl Receipt {
    pub fn kind(&self) -> Option<ReceiptKind> {
        ReceiptKind::parse(&self.kind)
    }

    pub fn display(&self) -> String {
        display(&self.number)
    }
}

/// `482913075` → `482-913-075`.
pub fn display(number: &str) -> String {
    if number.len() != DIGITS || !number.bytes().all(|b| b.is_ascii_digit()) {
        return number.to_string();
    }
    format!("{}-{}-{}", &number[..3], &number[3..6], &number[6..])
}

/// A receipt number as someone typed or read it (any width, with or without hyphens or spaces),
/// or `None` when it cannot be one.
pub fn parse(text: &str) -> Option<String> {
    let digits = ncf_shared::normalize::digits(text);
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Issues one receipt per nurse id given (the same nurse may appear more than once), inside the
/// caller's transaction.
pub fn issue_many(
    conn: &mut DbConn,
    nurse_ids: &[&str],
    kind: ReceiptKind,
    channel: Channel,
    at: chrono::NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let mut taken = std::collections::HashSet::with_capacity(nurse_ids.len());
    let mut fresh = || loop {
        let number = ncf_shared::secret::random_digits(DIGITS);
        if taken.insert(number.clone()) {
            return number;
        }
    };
    let mut rows: Vec<Receipt> = nurse_ids
        .iter()
        .map(|nurse_id| Receipt {
            number: fresh(),
            nurse_id: nurse_id.to_string(),
            kind: kind.as_str().to_string(),
            channel: channel.as_str().to_string(),
            issued_at: at,
            submission: None,
        })
        .collect();
    // A billion numbers: a clash with an older receipt is rare. Rows are inserted a thousand per
    // statement, skipping a number already taken (no error, which would abort the caller's
    // transaction on PostgreSQL); only when a statement wrote fewer rows than it had are the
    // clashing ones found and given new numbers.
    let mut pending: Vec<usize> = (0..rows.len()).collect();
    while !pending.is_empty() {
        let batch: Vec<Receipt> = pending.iter().map(|&i| rows[i].clone()).collect();
        let mut written = 0;
        ncf_shared::insert_many!(&mut *conn, batch, |c, values| {
            diesel::insert_into(receipts::table).values(values).on_conflict_do_nothing().execute(c).map(|n| {
                written += n;
            })
        });
        if written == batch.len() {
            break;
        }
        let numbers: Vec<&str> = batch.iter().map(|r| r.number.as_str()).collect();
        let mut stored: std::collections::HashMap<String, Receipt> = std::collections::HashMap::new();
        for chunk in numbers.chunks(500) {
            let found: Vec<Receipt> = receipts::table
                .filter(receipts::number.eq_any(chunk))
                .select(Receipt::as_select())
                .load(conn)?;
            stored.extend(found.into_iter().map(|r| (r.number.clone(), r)));
        }
        pending.retain(|&i| stored.get(&rows[i].number) != Some(&rows[i]));
        for &i in &pending {
            rows[i].number = fresh();
        }
    }
    Ok(rows.into_iter().map(|r| r.number).collect())
}

pub fn issue(
    conn: &mut DbConn,
    nurse_id: &str,
    kind: ReceiptKind,
    channel: Channel,
    at: chrono::NaiveDateTime,
) -> QueryResult<String> {
    Ok(issue_many(conn, &[nurse_id], kind, channel, at)?.remove(0))
}

/// The receipt a confirmation page's post already got, if any.
pub fn by_submission(conn: &mut DbConn, submission: &str) -> QueryResult<Option<Receipt>> {
    receipts::table
        .filter(receipts::submission.eq(submission))
        .select(Receipt::as_select())
        .first(conn)
        .optional()
}

/// Ties a receipt to the confirmation page that made it (unique: a second post fails here).
pub fn mark_submission(conn: &mut DbConn, number: &str, submission: &str) -> QueryResult<()> {
    diesel::update(receipts::table.find(number)).set(receipts::submission.eq(submission)).execute(conn)?;
    Ok(())
}

/// A receipt by its number (as stored: nine digits).
pub fn find(conn: &mut DbConn, number: &str) -> QueryResult<Option<Receipt>> {
    receipts::table.find(number).select(Receipt::as_select()).first(conn).optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_in_any_width() {
        assert_eq!(display("482913075"), "482-913-075");
        assert_eq!(parse("482-913-075").as_deref(), Some("482913075"));
        assert_eq!(parse("４８２　９１３　０７５").as_deref(), Some("482913075"));
        assert_eq!(parse("48291307"), None);
        assert_eq!(parse("48291307a"), None);
    }
}

/// A receipt with what it stands for, for the 完了 page and staff.
#[derive(Debug, Clone)]
pub struct ReceiptDetails {
    pub receipt: Receipt,
    /// The notice, for a notice receipt.
    pub notice: Option<crate::notices::Notice>,
    /// The consent changes made under this receipt (an opt-in's consents, or one change).
    pub consents: Vec<crate::consent::ConsentRecord>,
}

/// Her receipt and what it stands for; `None` when there is no such number or it is not hers
/// (the two look the same to the caller).
pub fn details_for(conn: &mut DbConn, nurse_id: &str, number: &str) -> QueryResult<Option<ReceiptDetails>> {
    use crate::schema::{consents, notices};
    let Some(receipt) = find(conn, number)?.filter(|r| r.nurse_id == nurse_id) else {
        return Ok(None);
    };
    let notice = notices::table
        .filter(notices::nurse_id.eq(nurse_id))
        .filter(notices::receipt.eq(number))
        .select(crate::notices::Notice::as_select())
        .first(conn)
        .optional()?;
    let consents = consents::table
        .filter(consents::nurse_id.eq(nurse_id))
        .filter(consents::receipt.eq(number))
        .order(consents::scope)
        .select(crate::consent::ConsentRecord::as_select())
        .load(conn)?;
    Ok(Some(ReceiptDetails { receipt, notice, consents }))
}
