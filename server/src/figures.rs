//! The national figures (issue #9): counted from the national server's own tables into
//! `figure_cells`, read back as suppressed tables for the dashboard, its CSV files and the nodes'
//! prefecture pages.
//!
//! Why a stored refresh and not a query per page: the counts run over millions of rows, while a
//! page shows one month of one figure. A refresh counts each figure once, at the finest place it
//! has (a municipality for figures counted where she lives, the node's prefecture otherwise), in
//! one `GROUP BY` per source table, and adds the prefecture and Japan rows up itself; the pages
//! then read a few dozen stored rows. The state of things (licences, latent nurses, postings
//! open) is kept per month, so each month's latest refresh becomes its figure and the trend lines
//! build up; events (notices, hand-overs, deletions, reminders, training, back at work) carry their
//! own dates and are recounted for every month.
//!
//! Nothing here publishes a count: [`table`] passes every table through
//! `ncf_shared::suppression` (privacy rule 4), and a prefecture's municipalities are suppressed
//! under the row the Japan table published for it, so the two views cannot be played against
//! each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_shared::Prefecture;
use ncf_shared::db::DbConn;
use ncf_shared::figures::{Figure, FigureRow, FigureTable, FiguresView, Month, Place, Trend};
use ncf_shared::suppression::{self, Cell};

use crate::schema::{figure_cells, figure_refreshes};

/// The area code of Japan as a whole in `figure_cells`.
pub const JAPAN: &str = "00";

#[derive(Debug, QueryableByName)]
struct Counted {
    #[diesel(sql_type = Text)]
    month: String,
    #[diesel(sql_type = Text)]
    area: String,
    #[diesel(sql_type = Text)]
    breakdown: String,
    #[diesel(sql_type = BigInt)]
    value: i64,
    /// A second count from the same scan (active licences beside registered ones, and so on).
    #[diesel(sql_type = BigInt)]
    also: i64,
}

/// The month (`YYYY-MM`, Japan time) of a timestamp column stored in UTC.
fn month_of_time(conn: &DbConn, column: &str) -> String {
    match conn {
        DbConn::Sqlite(_) => format!("strftime('%Y-%m', {column}, '+9 hours')"),
        DbConn::Postgresql(_) => format!("to_char({column} + interval '9 hours', 'YYYY-MM')"),
    }
}

/// The month (`YYYY-MM`) of a date column.
fn month_of_date(conn: &DbConn, column: &str) -> String {
    match conn {
        DbConn::Sqlite(_) => format!("substr({column}, 1, 7)"),
        DbConn::Postgresql(_) => format!("to_char({column}, 'YYYY-MM')"),
    }
}

/// What one refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSummary {
    pub month: Month,
    pub cells: usize,
    pub millis: i64,
}

/// Counts every figure again: the current month's state figures and every month's events.
/// One transaction, so a page never reads half a refresh.
pub fn refresh(conn: &mut DbConn, today: NaiveDate) -> QueryResult<RefreshSummary> {
    let started = std::time::Instant::now();
    let month = Month::of(today);
    let cells = ncf_shared::db::write_transaction(conn, |conn| {
        track_matched_latent(conn, month)?;
        let counted = count_all(conn, month, today)?;
        let rows = roll_up(counted);
        let state: Vec<&str> = Figure::ALL.iter().filter(|f| f.is_state()).map(|f| f.key()).collect();
        let events: Vec<&str> = Figure::ALL.iter().filter(|f| !f.is_state()).map(|f| f.key()).collect();
        diesel::delete(
            figure_cells::table
                .filter(figure_cells::figure.eq_any(&state))
                .filter(figure_cells::month.eq(month.key())),
        )
        .execute(conn)?;
        diesel::delete(figure_cells::table.filter(figure_cells::figure.eq_any(&events))).execute(conn)?;
        let values: Vec<_> = rows
            .iter()
            .map(|((figure, month, area, breakdown), value)| {
                (
                    figure_cells::figure.eq(*figure),
                    figure_cells::month.eq(month),
                    figure_cells::area.eq(area),
                    figure_cells::breakdown.eq(breakdown),
                    figure_cells::value.eq(*value),
                )
            })
            .collect();
        ncf_shared::insert_many!(conn, values, |c, chunk| diesel::insert_into(figure_cells::table)
            .values(chunk)
            .execute(c));
        Ok::<_, diesel::result::Error>(rows.len())
    })?;
    let millis = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    diesel::insert_into(figure_refreshes::table)
        .values((
            figure_refreshes::id.eq(ncf_shared::ids::RecordId::new().0),
            figure_refreshes::refreshed_at.eq(ncf_shared::time::now_utc()),
            figure_refreshes::millis.eq(millis),
            figure_refreshes::cells.eq(cells as i64),
        ))
        .execute(conn)?;
    tracing::info!(month = %month, cells, millis, "figures refreshed");
    Ok(RefreshSummary { month, cells, millis })
}

/// When the figures were last refreshed, and how long it took (ms).
pub fn last_refresh(conn: &mut DbConn) -> QueryResult<Option<(chrono::NaiveDateTime, i64)>> {
    figure_refreshes::table
        .order(figure_refreshes::refreshed_at.desc())
        .select((figure_refreshes::refreshed_at, figure_refreshes::millis))
        .first(conn)
        .optional()
}

/// Latent nurses with at least one match enter `matched_latent` (once, with the month first seen);
/// anyone in it whose employment notice took effect on or after that month is back at work.
fn track_matched_latent(conn: &mut DbConn, month: Month) -> QueryResult<()> {
    // The month is a typed value written as digits and a dash: safe to write into the statement.
    diesel::sql_query(format!(
        "INSERT INTO matched_latent (person_key, matched_month, area, back_on) \
         SELECT s.person_key, '{month}', COALESCE(r.lgcode, ''), NULL \
         FROM person_status s LEFT JOIN residents r ON r.person_key = s.person_key \
         WHERE s.latent = TRUE \
           AND EXISTS (SELECT 1 FROM match_entries m WHERE m.person_key = s.person_key) \
           AND NOT EXISTS (SELECT 1 FROM matched_latent t WHERE t.person_key = s.person_key)"
    ))
    .execute(conn)?;
    let since = month_of_date(conn, "s.employment_since");
    diesel::sql_query(format!(
        "UPDATE matched_latent SET back_on = (SELECT s.employment_since FROM person_status s \
           WHERE s.person_key = matched_latent.person_key) \
         WHERE back_on IS NULL AND EXISTS (SELECT 1 FROM person_status s \
           WHERE s.person_key = matched_latent.person_key AND s.employment = 'working' \
             AND s.employment_since IS NOT NULL AND {since} >= matched_latent.matched_month)"
    ))
    .execute(conn)?;
    Ok(())
}

type Key = (&'static str, String, String, String);

/// Every figure at its finest place: (figure, month, area, breakdown) → count.
fn count_all(conn: &mut DbConn, month: Month, today: NaiveDate) -> QueryResult<Vec<(Key, i64)>> {
    let current = month.key();
    let mut out: Vec<(Key, i64)> = Vec::new();
    let mut put = |figure: Figure, rows: Vec<Counted>, also: Option<Figure>| {
        for r in rows {
            let month = if figure.is_state() { current.clone() } else { r.month.clone() };
            if let Some(also) = also {
                out.push(((also.key(), month.clone(), r.area.clone(), r.breakdown.clone()), r.also));
            }
            out.push(((figure.key(), month, r.area, r.breakdown), r.value));
        }
    };
    let load = |conn: &mut DbConn, sql: String| diesel::sql_query(sql).load::<Counted>(conn);

    // Licences by where the holder lives: registered, and of those active (not deleted ex officio).
    put(
        Figure::LicencesRegistered,
        load(
            conn,
            "SELECT '' AS month, r.lgcode AS area, l.qualification AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, \
               CAST(SUM(CASE WHEN l.status = 'active' AND d.registration_number IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS also \
             FROM licences l JOIN residents r ON r.person_key = l.person_key \
             LEFT JOIN licence_deletions d ON d.qualification = l.qualification \
               AND d.registration_number = l.registration_number \
             WHERE r.lgcode IS NOT NULL GROUP BY r.lgcode, l.qualification"
                .into(),
        )?,
        Some(Figure::LicencesActive),
    );
    // Registrations and proofed ones, by the node.
    put(
        Figure::OptedIn,
        load(
            conn,
            "SELECT '' AS month, prefecture AS area, '' AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, \
               CAST(SUM(CASE WHEN proofed_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS also \
             FROM identity_links GROUP BY prefecture"
                .into(),
        )?,
        Some(Figure::Proofed),
    );
    put(
        Figure::Consents,
        load(
            conn,
            "SELECT '' AS month, prefecture AS area, scope AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, CAST(0 AS BIGINT) AS also \
             FROM nurse_consents WHERE granted = TRUE GROUP BY prefecture, scope"
                .into(),
        )?,
        None,
    );
    // Latent nurses by where they live, and those with at least one match.
    put(
        Figure::Latent,
        load(
            conn,
            "SELECT '' AS month, r.lgcode AS area, '' AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, \
               CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM match_entries m WHERE m.person_key = s.person_key) \
                 THEN 1 ELSE 0 END) AS BIGINT) AS also \
             FROM person_status s JOIN residents r ON r.person_key = s.person_key \
             WHERE s.latent = TRUE AND r.lgcode IS NOT NULL GROUP BY r.lgcode"
                .into(),
        )?,
        Some(Figure::LatentMatched),
    );
    let day = today.format("%Y-%m-%d").to_string();
    put(
        Figure::PostingsOpen,
        load(
            conn,
            format!(
                "SELECT '' AS month, prefecture AS area, kind AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, CAST(0 AS BIGINT) AS also \
                 FROM postings WHERE withdrawn = FALSE AND valid_from <= '{day}' AND valid_until >= '{day}' \
                 GROUP BY prefecture, kind"
            ),
        )?,
        None,
    );
    // Events, by their own month.
    let m = month_of_date(conn, "back_on");
    put(
        Figure::BackAtWork,
        load(
            conn,
            format!(
                "SELECT {m} AS month, area, '' AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, CAST(0 AS BIGINT) AS also \
                 FROM matched_latent WHERE back_on IS NOT NULL AND area <> '' GROUP BY {m}, area"
            ),
        )?,
        None,
    );
    let m = month_of_time(conn, "filed_at");
    put(
        Figure::Notices,
        load(
            conn,
            format!(
                "SELECT {m} AS month, prefecture AS area, kind AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, CAST(0 AS BIGINT) AS also \
                 FROM nurse_notices GROUP BY {m}, prefecture, kind"
            ),
        )?,
        None,
    );
    let m = month_of_time(conn, "relayed_at");
    put(
        Figure::Handovers,
        load(
            conn,
            format!(
                "SELECT {m} AS month, to_prefecture AS area, '' AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, CAST(0 AS BIGINT) AS also \
                 FROM transfers WHERE relayed_at IS NOT NULL GROUP BY {m}, to_prefecture"
            ),
        )?,
        None,
    );
    let m = month_of_date(conn, "d.deleted_on");
    put(
        Figure::Deletions,
        load(
            conn,
            format!(
                "SELECT {m} AS month, r.lgcode AS area, d.qualification AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, \
                   CAST(0 AS BIGINT) AS also \
                 FROM licence_deletions d JOIN residents r ON r.person_key = d.person_key \
                 WHERE r.lgcode IS NOT NULL GROUP BY {m}, r.lgcode, d.qualification"
            ),
        )?,
        None,
    );
    for (figure, column) in
        [(Figure::RemindersIssued, "n.created_at"), (Figure::RemindersResolved, "n.resolved_at")]
    {
        let m = month_of_time(conn, column);
        put(
            figure,
            load(
                conn,
                format!(
                    "SELECT {m} AS month, r.lgcode AS area, n.kind AS breakdown, CAST(COUNT(*) AS BIGINT) AS value, CAST(0 AS BIGINT) AS also \
                     FROM reminders n JOIN residents r ON r.person_key = n.person_key \
                     WHERE {column} IS NOT NULL AND r.lgcode IS NOT NULL GROUP BY {m}, r.lgcode, n.kind"
                ),
            )?,
            None,
        );
    }
    // Training attendance by the prefecture holding the session (the counts of issue #8).
    let attended = crate::training::attendance_counts(conn)?
        .into_iter()
        .filter(|c| c.attended > 0)
        .map(|c| Counted {
            month: c.month,
            area: c.prefecture.code(),
            breakdown: String::new(),
            value: c.attended,
            also: 0,
        })
        .collect();
    put(Figure::TrainingAttended, attended, None);
    Ok(out)
}

/// Adds municipality counts up into their prefecture and every prefecture into Japan.
fn roll_up(counted: Vec<(Key, i64)>) -> BTreeMap<Key, i64> {
    let mut rows: BTreeMap<Key, i64> = BTreeMap::new();
    for ((figure, month, area, breakdown), value) in counted {
        if value == 0 {
            continue;
        }
        let mut areas = vec![JAPAN.to_string()];
        if area.len() == 6 {
            areas.push(area[..2].to_string());
        }
        areas.push(area);
        for area in areas {
            *rows.entry((figure, month.clone(), area, breakdown.clone())).or_default() += value;
        }
    }
    rows
}

/// The months that have any count of this figure, oldest first.
pub fn months(conn: &mut DbConn, figure: Figure) -> QueryResult<Vec<Month>> {
    let keys: Vec<String> = figure_cells::table
        .filter(figure_cells::figure.eq(figure.key()))
        .select(figure_cells::month)
        .distinct()
        .order(figure_cells::month)
        .load(conn)?;
    Ok(keys.iter().filter_map(|k| Month::parse(k).ok()).collect())
}

/// Stored counts of one figure and month for these areas: area → breakdown → count.
fn stored(
    conn: &mut DbConn,
    figure: Figure,
    month: Month,
    areas: &[String],
) -> QueryResult<BTreeMap<String, BTreeMap<String, u64>>> {
    let rows: Vec<(String, String, i64)> = figure_cells::table
        .filter(figure_cells::figure.eq(figure.key()))
        .filter(figure_cells::month.eq(month.key()))
        .filter(figure_cells::area.eq_any(areas))
        .select((figure_cells::area, figure_cells::breakdown, figure_cells::value))
        .load(conn)?;
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (area, breakdown, value) in rows {
        out.entry(area).or_default().insert(breakdown, u64::try_from(value).unwrap_or(0));
    }
    Ok(out)
}

/// A figure's table for Japan (a row per prefecture) or one prefecture (a row per municipality
/// for figures counted where she lives; its one row otherwise), suppressed.
pub fn table(
    conn: &mut DbConn,
    figure: Figure,
    month: Month,
    prefecture: Option<Prefecture>,
) -> QueryResult<FigureTable> {
    let columns = figure.column_labels();
    let prefectures: Vec<Prefecture> = Prefecture::all().collect();
    let codes: Vec<String> = prefectures.iter().map(|p| p.code()).collect();
    let counts = stored(conn, figure, month, &codes)?;
    let grid = |rows: &[String], counts: &BTreeMap<String, BTreeMap<String, u64>>| -> Vec<Vec<u64>> {
        rows.iter()
            .map(|a| {
                columns
                    .iter()
                    .map(|(b, _)| counts.get(a).and_then(|m| m.get(*b)).copied().unwrap_or(0))
                    .collect()
            })
            .collect()
    };
    let japan = suppression::suppress(&grid(&codes, &counts));
    let japan_rows: Vec<FigureRow> = prefectures
        .iter()
        .zip(japan.cells.iter().zip(&japan.row_totals))
        .map(|(p, (cells, total))| FigureRow {
            code: p.code(),
            name_ja: p.name_ja().to_string(),
            cells: cells.clone(),
            total: *total,
        })
        .collect();
    let headings = columns.iter().map(|(_, h)| (*h).to_string()).collect();
    let Some(p) = prefecture else {
        return Ok(FigureTable {
            figure,
            month,
            prefecture: None,
            columns: headings,
            rows: japan_rows,
            column_totals: japan.column_totals,
            total: japan.total,
        });
    };
    let parent = japan_rows.into_iter().find(|r| r.code == p.code()).expect("every prefecture has a row");
    if figure.place() == Place::Node {
        return Ok(FigureTable {
            figure,
            month,
            prefecture: Some(p),
            columns: headings,
            column_totals: parent.cells.clone(),
            total: parent.total,
            rows: vec![parent],
        });
    }
    // Municipalities where people live: a designated city's wards, not the city beside them.
    let places: Vec<&ncf_shared::Municipality> = p.municipalities().filter(|m| !m.has_wards).collect();
    let lgcodes: Vec<String> = places.iter().map(|m| m.lgcode.clone()).collect();
    let counts = stored(conn, figure, month, &lgcodes)?;
    let published =
        suppression::suppress_within(&grid(&lgcodes, &counts), Some((&parent.cells, parent.total)));
    Ok(FigureTable {
        figure,
        month,
        prefecture: Some(p),
        columns: headings,
        rows: places
            .iter()
            .zip(published.cells.into_iter().zip(published.row_totals))
            .map(|(m, (cells, total))| FigureRow {
                code: m.lgcode.clone(),
                name_ja: m.name_ja.clone(),
                cells,
                total,
            })
            .collect(),
        column_totals: published.column_totals,
        total: published.total,
    })
}

/// The monthly series of a figure's total for Japan or one prefecture: each month's value as that
/// month's Japan table published it (so the line never shows what a table hides).
pub fn trend(conn: &mut DbConn, figure: Figure, prefecture: Option<Prefecture>) -> QueryResult<Trend> {
    let mut points = Vec::new();
    for month in months(conn, figure)? {
        let japan = table(conn, figure, month, None)?;
        let cell = match prefecture {
            None => japan.total,
            Some(p) => japan.rows.iter().find(|r| r.code == p.code()).map_or(Cell::Suppressed, |r| r.total),
        };
        points.push((month, cell));
    }
    Ok(Trend { figure, prefecture, points })
}

/// `serve`'s refresh: once at start-up, then every `every`. A failed refresh is logged and the
/// pages keep showing the last one.
pub async fn refresh_every(pool: ncf_shared::db::Pool, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let pool = pool.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            refresh(&mut conn, ncf_shared::time::today_jst()).map_err(|e| e.to_string())
        })
        .await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "figures refresh failed"),
            Err(e) => tracing::error!(error = %e, "figures refresh did not run"),
        }
    }
}

/// One figure as a page shows it: the month's table (the latest month with figures when none is
/// asked for), the trend, the months there are, when they were counted.
pub fn view(
    conn: &mut DbConn,
    figure: Figure,
    month: Option<Month>,
    prefecture: Option<Prefecture>,
) -> QueryResult<FiguresView> {
    let months = months(conn, figure)?;
    let month =
        month.or_else(|| months.last().copied()).unwrap_or_else(|| Month::of(ncf_shared::time::today_jst()));
    let trend = trend(conn, figure, prefecture)?;
    // Back at work as a share of the latent nurses with a match that month: both counts as their
    // tables published them, so the share tells nothing the two do not.
    let share = if figure == Figure::BackAtWork {
        let matched = self::trend(conn, Figure::LatentMatched, prefecture)?;
        ncf_shared::figures::share_of(&trend, &matched)
    } else {
        Vec::new()
    };
    Ok(FiguresView {
        table: table(conn, figure, month, prefecture)?,
        trend,
        months,
        refreshed_at: last_refresh(conn)?.map(|(at, _)| at),
        share,
    })
}

/// What a view is asked for by: figure, month (`None`: the latest) and prefecture (`None`: Japan).
pub type ViewKey = (Figure, Option<Month>, Option<Prefecture>);

/// How long a figures view or page is kept, and how many at most. The latest month of every
/// figure for Japan and each prefecture is 720 choices; past months are read far less. A kept page
/// is some 80 kB (plain and compressed), so the pages stay under about 80 MB whatever is asked for;
/// a choice beyond the limit is only made again.
pub const VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(60);
pub const MAX_VIEWS: usize = 2_000;
pub const MAX_PAGES: usize = 1_000;

/// Figures views as pages and nodes asked for them, kept for [`VIEW_TTL`].
pub struct ViewCache(ncf_shared::cache::TtlCache<ViewKey, FiguresView>);

impl Default for ViewCache {
    fn default() -> Self {
        Self(ncf_shared::cache::TtlCache::new(VIEW_TTL, MAX_VIEWS))
    }
}

impl ViewCache {
    pub fn view(
        &self,
        conn: &mut DbConn,
        figure: Figure,
        month: Option<Month>,
        prefecture: Option<Prefecture>,
    ) -> QueryResult<Arc<FiguresView>> {
        self.0.get_or_try((figure, month, prefecture), || view(conn, figure, month, prefecture))
    }
}
