//! Notices at the national server: per link, the one that decides whether she works (issue #7:
//! the latest by effective date, ties to the later filing; `ncf_shared::notice::deciding`).
//!
//! Kept in `latest_notices` as pushes apply notices, so a status refresh reads one row per link
//! instead of every notice she ever filed. Pushes hold the provision chain's lock, so reading what
//! is held and writing what is later cannot interleave with another push.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::upsert::excluded;
use ncf_shared::Prefecture;
use ncf_shared::db::DbConn;

use crate::latent::NoticeFact;
use crate::schema::latest_notices;

/// Merges each link's newly applied deciding notice (prefecture, agency code, (effective date,
/// filed at, working)) with the one held: the later by `deciding` stays.
pub fn keep_latest<'a>(
    conn: &mut DbConn,
    candidates: impl IntoIterator<Item = (&'a str, &'a str, (NaiveDate, NaiveDateTime, bool))>,
) -> QueryResult<()> {
    let candidates: Vec<_> = candidates.into_iter().collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let codes: Vec<&str> = candidates.iter().map(|(_, code, _)| *code).collect();
    let held = latest_of(conn, &codes)?;
    let rows: Vec<_> = candidates
        .into_iter()
        .filter(|(p, c, fact)| {
            let held = Prefecture::from_code(p)
                .and_then(|p| held.get(&(p, c.to_string())))
                .map(|n| (n.effective_on, n.filed_at, false));
            // `deciding` keeps the last of equals: listed after what is held, the candidate (a
            // notice applied later) wins a tie.
            ncf_shared::notice::deciding(held.into_iter().chain([(fact.0, fact.1, true)]))
                .is_some_and(|(_, _, candidate)| candidate)
        })
        .map(|(p, c, (effective_on, filed_at, working))| {
            (
                latest_notices::prefecture.eq(p),
                latest_notices::agency_code.eq(c),
                latest_notices::effective_on.eq(effective_on),
                latest_notices::filed_at.eq(filed_at),
                latest_notices::working.eq(working),
            )
        })
        .collect();
    for chunk in rows.chunks(1000) {
        match &mut *conn {
            DbConn::Postgresql(c) => diesel::insert_into(latest_notices::table)
                .values(chunk)
                .on_conflict((latest_notices::prefecture, latest_notices::agency_code))
                .do_update()
                .set((
                    latest_notices::effective_on.eq(excluded(latest_notices::effective_on)),
                    latest_notices::filed_at.eq(excluded(latest_notices::filed_at)),
                    latest_notices::working.eq(excluded(latest_notices::working)),
                ))
                .execute(c)?,
            // diesel puts many rows into one SQLite statement only without ON CONFLICT; SQLite's
            // REPLACE does the same here (the key is the only constraint).
            DbConn::Sqlite(c) => diesel::replace_into(latest_notices::table).values(chunk).execute(c)?,
        };
    }
    Ok(())
}

/// Forgets a link's deciding notice (her notices were deleted with `address_linkage`).
pub fn forget_latest(conn: &mut DbConn, node: Prefecture, agency_code: &str) -> QueryResult<usize> {
    diesel::delete(
        latest_notices::table
            .filter(latest_notices::prefecture.eq(node.code()))
            .filter(latest_notices::agency_code.eq(agency_code)),
    )
    .execute(conn)
}

/// A link's deciding notice as read: prefecture, agency code, effective date, filed at, working.
pub const COLUMNS: (
    latest_notices::prefecture,
    latest_notices::agency_code,
    latest_notices::effective_on,
    latest_notices::filed_at,
    latest_notices::working,
) = (
    latest_notices::prefecture,
    latest_notices::agency_code,
    latest_notices::effective_on,
    latest_notices::filed_at,
    latest_notices::working,
);

/// The deciding notice of each of these links, keyed by (prefecture, agency code).
pub fn latest_of(
    conn: &mut DbConn,
    codes: &[&str],
) -> QueryResult<HashMap<(Prefecture, String), NoticeFact>> {
    let mut out = HashMap::new();
    for chunk in codes.chunks(2000) {
        let rows: Vec<(String, String, NaiveDate, NaiveDateTime, bool)> = latest_notices::table
            .filter(latest_notices::agency_code.eq_any(chunk))
            .select(COLUMNS)
            .load(conn)?;
        for (p, code, effective_on, filed_at, working) in rows {
            if let Some(p) = Prefecture::from_code(&p) {
                out.insert((p, code), NoticeFact { effective_on, filed_at, working });
            }
        }
    }
    Ok(out)
}
