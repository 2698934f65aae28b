//! The national copy of every node's postings (issue #8): taken from `POST
//! /federation/v1/postings`, the federation's non-personal path. A posting names no person, so it
//! passes no consent gate; it is checked with the same `PostingBody::validate` the node's pages
//! use, and kept by publishing prefecture and posting id at the highest version seen, so a resent
//! or late posting changes nothing. Whoever a change may concern (holding it, or living within
//! the largest distance of where it was or is) gets a list refresh in the same transaction.

use chrono::{Datelike, NaiveDate};
use diesel::prelude::*;
use ncf_shared::contract::PostingRef;
use ncf_shared::db::DbConn;
use ncf_shared::federation::{PostingRefusal, PostingVersion, PostingsPushResponse, PublishedPosting};
use ncf_shared::posting::qualification_bits;
use ncf_shared::{Prefecture, per_backend};

use crate::matching::Place;
use crate::provisions::ChainWriter;
use crate::schema::{postings, sequences};

/// The last day (days from the common era) whose newly opened postings were matched.
const OPENED_THROUGH: &str = "postings_opened_through";

/// Whether a node's posting id is acceptable: what node ids look like (UUIDs), at most 64
/// characters of letters, digits and `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Stores what a node sent and refreshes the lists it may change; one transaction.
pub fn store(
    conn: &mut DbConn,
    node: Prefecture,
    sent: &[PublishedPosting],
    today: NaiveDate,
) -> QueryResult<PostingsPushResponse> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let mut chain = ChainWriter::begin(conn)?;
        let mut answer = PostingsPushResponse { stored: Vec::new(), refused: Vec::new() };
        let mut refs = Vec::new();
        let mut places = Vec::new();
        let now = ncf_shared::time::now_utc();
        for p in sent {
            let refuse = |reason: String| PostingRefusal {
                posting_id: p.posting_id.clone(),
                version: p.version,
                reason,
            };
            if !valid_id(&p.posting_id) || p.version < 1 {
                answer.refused.push(refuse("掲載IDまたは版が正しくありません。".into()));
                continue;
            }
            // A withdrawal needs no valid body (a municipality merged away since must not keep a
            // posting in lists): the stored copy is marked withdrawn.
            if p.withdrawn {
                let changed = diesel::update(
                    postings::table
                        .find((node.code(), &p.posting_id))
                        .filter(postings::version.lt(p.version)),
                )
                .set((
                    postings::withdrawn.eq(true),
                    postings::version.eq(p.version),
                    postings::received_at.eq(now),
                ))
                .execute(conn)?;
                if changed > 0 {
                    refs.push(PostingRef { prefecture: node, posting_id: p.posting_id.clone() });
                }
                answer.stored.push(PostingVersion { posting_id: p.posting_id.clone(), version: p.version });
                continue;
            }
            if let Err(errors) = p.body.validate() {
                let reason = errors.into_iter().map(|e| e.message).collect::<Vec<_>>().join(" ");
                answer.refused.push(refuse(reason));
                continue;
            }
            let Some((lat, lng)) = p.body.place.lat_lng() else {
                answer.refused.push(refuse("場所が日本国内ではありません。".into()));
                continue;
            };
            let before: Option<(i64, f64, f64)> = postings::table
                .find((node.code(), &p.posting_id))
                .select((postings::version, postings::lat, postings::lng))
                .first(conn)
                .optional()?;
            let held = before.map(|b| b.0);
            if held.is_some_and(|v| v >= p.version) {
                answer
                    .stored
                    .push(PostingVersion { posting_id: p.posting_id.clone(), version: held.unwrap_or(0) });
                continue;
            }
            let body = serde_json::to_string(&p.body).expect("a posting serialises");
            let row = (
                postings::prefecture.eq(node.code()),
                postings::posting_id.eq(&p.posting_id),
                postings::version.eq(p.version),
                postings::kind.eq(p.body.kind.as_str()),
                postings::qualifications.eq(qualification_bits(&p.body.qualifications)),
                postings::lat.eq(lat),
                postings::lng.eq(lng),
                postings::valid_from.eq(p.body.valid_from),
                postings::valid_until.eq(p.body.valid_until),
                postings::withdrawn.eq(p.withdrawn),
                postings::body.eq(&body),
                postings::received_at.eq(now),
            );
            per_backend!(&mut *conn, c => diesel::insert_into(postings::table)
                .values(row.clone())
                .on_conflict((postings::prefecture, postings::posting_id))
                .do_update()
                .set(row.clone())
                .execute(c))?;
            if let Some((_, lat, lng)) = before {
                places.push(Place::new(lat, lng));
            }
            places.push(Place::new(lat, lng));
            refs.push(PostingRef { prefecture: node, posting_id: p.posting_id.clone() });
            answer.stored.push(PostingVersion { posting_id: p.posting_id.clone(), version: p.version });
        }
        if !refs.is_empty() {
            let people = crate::matches::near_postings(conn, &refs, &places)?;
            let report = crate::matches::refresh(conn, &mut chain, &people, today)?;
            tracing::info!(
                node = %node,
                postings = refs.len(),
                people = people.len(),
                lists = report.lists_changed,
                "postings stored"
            );
        }
        chain.finish(conn)?;
        Ok(answer)
    })
}

/// Refreshes the lists that hold a posting no longer open (expired since, or withdrawn), and those
/// of the people near postings whose first day has come since the last sweep: run by `serve`
/// every 10 minutes and by `rematch`. Days are Japan's.
pub fn sweep_closed(conn: &mut DbConn, today: NaiveDate) -> QueryResult<usize> {
    let mut people = crate::matches::holding_closed(conn, today)?;
    // Postings published ahead of their first day, which has come since the last sweep: the
    // people near them get them now.
    let today_n = i64::from(today.num_days_from_ce());
    let swept_through: i64 = sequences::table
        .find(OPENED_THROUGH)
        .select(sequences::last_value)
        .first(conn)
        .optional()?
        .unwrap_or(today_n - 1);
    if swept_through < today_n {
        let since = NaiveDate::from_num_days_from_ce_opt(swept_through as i32 + 1).unwrap_or(today);
        let opened: Vec<(String, String, f64, f64)> = postings::table
            .filter(postings::valid_from.between(since, today))
            .filter(postings::valid_until.ge(today))
            .filter(postings::withdrawn.eq(false))
            .select((postings::prefecture, postings::posting_id, postings::lat, postings::lng))
            .load(conn)?;
        let refs: Vec<PostingRef> = opened
            .iter()
            .filter_map(|(p, id, _, _)| {
                Some(PostingRef { prefecture: Prefecture::from_code(p)?, posting_id: id.clone() })
            })
            .collect();
        let places: Vec<Place> = opened.iter().map(|(_, _, lat, lng)| Place::new(*lat, *lng)).collect();
        if !refs.is_empty() {
            people.extend(crate::matches::near_postings(conn, &refs, &places)?);
        }
        per_backend!(&mut *conn, c => diesel::insert_into(sequences::table)
            .values((sequences::name.eq(OPENED_THROUGH), sequences::last_value.eq(today_n)))
            .on_conflict(sequences::name)
            .do_update()
            .set(sequences::last_value.eq(today_n))
            .execute(c))?;
    }
    people.sort();
    people.dedup();
    if people.is_empty() {
        return Ok(0);
    }
    ncf_shared::db::write_transaction(conn, |conn| {
        let mut chain = ChainWriter::begin(conn)?;
        let report = crate::matches::refresh(conn, &mut chain, &people, today)?;
        chain.finish(conn)?;
        Ok(report.lists_changed)
    })
}

/// `serve`'s sweep: [`sweep_closed`] now and every `period`, on the blocking pool.
pub async fn sweep_every(pool: ncf_shared::db::Pool, period: std::time::Duration) {
    loop {
        let pool = pool.clone();
        let swept = actix_web::web::block(move || -> Result<usize, String> {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            sweep_closed(&mut conn, ncf_shared::time::today_jst()).map_err(|e| e.to_string())
        })
        .await;
        match swept {
            Ok(Ok(0)) => {}
            Ok(Ok(lists)) => tracing::info!(lists, "closed postings dropped from lists"),
            Ok(Err(e)) => tracing::error!(error = %e, "closed-posting sweep failed"),
            Err(e) => tracing::error!(error = %e, "closed-posting sweep failed"),
        }
        actix_web::rt::time::sleep(period).await;
    }
}
