//! The national figures (issue #9): what is counted, for which place, with which columns, and the
//! published table both the national server's pages and a node's prefecture pages show. Counts
//! only, never a person; every table passes through `suppression` before anyone sees it.

use serde::{Deserialize, Serialize};

use crate::suppression::Cell;
use crate::{ConsentScope, NoticeKind, Prefecture, Qualification};

/// One figure national staff can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// 登録されている看護職免許, by qualification.
    LicencesRegistered,
    /// 有効な看護職免許 (active and not deleted ex officio), by qualification.
    LicencesActive,
    /// 登録（オプトイン）した看護職, by the node she opted in at.
    OptedIn,
    /// 本人確認を終えた看護職, by node.
    Proofed,
    /// 同意, by scope and node.
    Consents,
    /// 潜在看護職 (issue #7's rule), by where she lives.
    Latent,
    /// 潜在看護職のうち、求人・研修が1件以上ある方.
    LatentMatched,
    /// 掲載中の求人・研修, by kind and publishing prefecture.
    PostingsOpen,
    /// 再就業: latent and matched, then an employment notice; by the month it took effect.
    BackAtWork,
    /// 届出, by kind and node, by the month filed.
    Notices,
    /// 都道府県間の引継ぎ, by the receiving prefecture, by the month relayed.
    Handovers,
    /// 職権抹消 (deaths in the resident data), by the month of deletion.
    Deletions,
    /// 届出勧奨の発行, by kind.
    RemindersIssued,
    /// 届出勧奨の解消, by kind.
    RemindersResolved,
    /// 研修の受講, by the prefecture holding the session.
    TrainingAttended,
}

/// Where a figure counts a person or a thing, which decides how far down it can be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Where she lives (resident data): by prefecture and by municipality.
    Residence,
    /// The node she is registered at, or that published or received: by prefecture only.
    Node,
}

/// What a figure's columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    Count,
    Qualification,
    Scope,
    PostingKind,
    NoticeKind,
    ReminderKind,
}

impl Figure {
    pub const ALL: [Self; 15] = [
        Self::LicencesRegistered,
        Self::LicencesActive,
        Self::OptedIn,
        Self::Proofed,
        Self::Consents,
        Self::Latent,
        Self::LatentMatched,
        Self::PostingsOpen,
        Self::BackAtWork,
        Self::Notices,
        Self::Handovers,
        Self::Deletions,
        Self::RemindersIssued,
        Self::RemindersResolved,
        Self::TrainingAttended,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Self::LicencesRegistered => "licences_registered",
            Self::LicencesActive => "licences_active",
            Self::OptedIn => "opted_in",
            Self::Proofed => "proofed",
            Self::Consents => "consents",
            Self::Latent => "latent",
            Self::LatentMatched => "latent_matched",
            Self::PostingsOpen => "postings_open",
            Self::BackAtWork => "back_at_work",
            Self::Notices => "notices",
            Self::Handovers => "handovers",
            Self::Deletions => "deletions",
            Self::RemindersIssued => "reminders_issued",
            Self::RemindersResolved => "reminders_resolved",
            Self::TrainingAttended => "training_attended",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    pub fn title_ja(self) -> &'static str {
        match self {
            Self::LicencesRegistered => "登録されている看護職免許",
            Self::LicencesActive => "有効な看護職免許",
            Self::OptedIn => "登録した看護職（ナースセンター別）",
            Self::Proofed => "本人確認を終えた看護職（ナースセンター別）",
            Self::Consents => "同意（項目別）",
            Self::Latent => "潜在看護職",
            Self::LatentMatched => "求人・研修の紹介がある潜在看護職",
            Self::PostingsOpen => "掲載中の求人・研修",
            Self::BackAtWork => "再就業した看護職（紹介のあった潜在看護職のうち）",
            Self::Notices => "届出（種類別）",
            Self::Handovers => "都道府県間の引継ぎ（転入先）",
            Self::Deletions => "職権による免許の抹消（死亡）",
            Self::RemindersIssued => "届出勧奨の発行",
            Self::RemindersResolved => "届出勧奨の解消",
            Self::TrainingAttended => "研修の受講（開催都道府県）",
        }
    }

    /// What a count is of, for the table's heading (人, 件).
    pub fn unit_ja(self) -> &'static str {
        match self {
            Self::PostingsOpen | Self::Notices | Self::Handovers | Self::Deletions => "件",
            Self::LicencesRegistered | Self::LicencesActive | Self::Consents => "件",
            Self::RemindersIssued | Self::RemindersResolved => "件",
            _ => "人",
        }
    }

    /// A state at the month's latest refresh (`true`), or events during the month.
    pub fn is_state(self) -> bool {
        matches!(
            self,
            Self::LicencesRegistered
                | Self::LicencesActive
                | Self::OptedIn
                | Self::Proofed
                | Self::Consents
                | Self::Latent
                | Self::LatentMatched
                | Self::PostingsOpen
        )
    }

    pub fn place(self) -> Place {
        match self {
            Self::LicencesRegistered
            | Self::LicencesActive
            | Self::Latent
            | Self::LatentMatched
            | Self::BackAtWork
            | Self::Deletions
            | Self::RemindersIssued
            | Self::RemindersResolved => Place::Residence,
            Self::OptedIn
            | Self::Proofed
            | Self::Consents
            | Self::PostingsOpen
            | Self::Notices
            | Self::Handovers
            | Self::TrainingAttended => Place::Node,
        }
    }

    pub fn columns(self) -> Columns {
        match self {
            Self::LicencesRegistered | Self::LicencesActive | Self::Deletions => Columns::Qualification,
            Self::Consents => Columns::Scope,
            Self::PostingsOpen => Columns::PostingKind,
            Self::Notices => Columns::NoticeKind,
            Self::RemindersIssued | Self::RemindersResolved => Columns::ReminderKind,
            _ => Columns::Count,
        }
    }

    /// The stored breakdown codes of the columns, with their headings.
    pub fn column_labels(self) -> Vec<(&'static str, &'static str)> {
        match self.columns() {
            Columns::Count => vec![("", "人数・件数")],
            Columns::Qualification => {
                Qualification::all().filter(|q| q.is_nursing()).map(|q| (q.code(), q.name_ja())).collect()
            }
            Columns::Scope => ConsentScope::ALL.iter().map(|s| (s.as_str(), s.title_ja())).collect(),
            Columns::PostingKind => {
                crate::posting::PostingKind::ALL.iter().map(|k| (k.as_str(), k.label_ja())).collect()
            }
            Columns::NoticeKind => NoticeKind::ALL.iter().map(|k| (k.as_str(), k.title_ja())).collect(),
            Columns::ReminderKind => {
                crate::contract::ReminderKind::ALL.iter().map(|k| (k.as_str(), k.title_ja())).collect()
            }
        }
    }
}

/// A calendar month in Japan time, as `2026-12` in URLs and storage and 「2026年12月」 on pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// Months from 2000 to 2100: anything else is a typing mistake.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("月は 2026-12 の形（西暦年-月）で指定してください: {text}");
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(2000..=2100).contains(&year) || !(1..=12).contains(&month) {
            return Err(format!("月の範囲が正しくありません（2000-01〜2100-12、月は01〜12）: {text}"));
        }
        Ok(Self { year, month })
    }

    pub fn of(date: chrono::NaiveDate) -> Self {
        use chrono::Datelike;
        Self { year: date.year(), month: date.month() }
    }

    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    pub fn label_ja(self) -> String {
        format!("{}年{}月", self.year, self.month)
    }

    pub fn first_day(self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a parsed month has a first day")
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self { year: self.year - 1, month: 12 }
        } else {
            Self { month: self.month - 1, ..self }
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl TryFrom<String> for Month {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.key()
    }
}

/// One row of a published table: a prefecture or a municipality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FigureRow {
    /// The prefecture code (two digits) or the municipality's lgcode (six).
    pub code: String,
    pub name_ja: String,
    pub cells: Vec<Cell>,
    pub total: Cell,
}

/// A figure for one month as anyone may see it: suppressed, with its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FigureTable {
    pub figure: Figure,
    pub month: Month,
    /// `None`: Japan, a row per prefecture; a prefecture: a row per municipality (for figures
    /// counted where she lives) or the prefecture's one row.
    pub prefecture: Option<Prefecture>,
    /// Column headings (Japanese), one per cell of a row.
    pub columns: Vec<String>,
    pub rows: Vec<FigureRow>,
    pub column_totals: Vec<Cell>,
    pub total: Cell,
}

/// The monthly series of a figure's total (Japan, or one prefecture), each month as its table
/// published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trend {
    pub figure: Figure,
    pub prefecture: Option<Prefecture>,
    pub points: Vec<(Month, Cell)>,
}

/// The trend line as SVG: a point per month, gaps where a month's value is hidden.
pub struct TrendChart {
    pub width: u32,
    pub height: u32,
    pub lines: Vec<String>,
    pub dots: Vec<(f64, f64, String)>,
    pub hidden: Vec<(f64, String)>,
    pub labels: Vec<(f64, String)>,
    pub max_label: String,
    pub axis_y: f64,
}

fn trend_chart(trend: &Trend, unit: &str) -> TrendChart {
    let (width, height, left, right, top, bottom) = (640u32, 260u32, 70.0, 20.0, 20.0, 40.0);
    let n = trend.points.len();
    let max = trend.points.iter().filter_map(|(_, c)| c.value()).max().unwrap_or(0).max(1);
    let x = |i: usize| {
        if n <= 1 {
            left + (f64::from(width) - left - right) / 2.0
        } else {
            left + i as f64 * (f64::from(width) - left - right) / (n - 1) as f64
        }
    };
    let y = |v: u64| top + (1.0 - v as f64 / max as f64) * (f64::from(height) - top - bottom);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut dots = Vec::new();
    let mut hidden = Vec::new();
    for (i, (month, cell)) in trend.points.iter().enumerate() {
        match cell.value() {
            Some(v) => {
                current.push_str(&format!(
                    "{}{:.1} {:.1}",
                    if current.is_empty() { "M" } else { "L" },
                    x(i),
                    y(v)
                ));
                dots.push((x(i), y(v), format!("{}: {}{unit}", month.label_ja(), cell.label_ja())));
            }
            None => {
                if !current.is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
                hidden.push((x(i), format!("{}: {}", month.label_ja(), cell.label_ja())));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    // Month labels: at most about eight, evenly spaced.
    let every = n.div_ceil(8).max(1);
    let labels = trend
        .points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, (m, _))| (x(i), m.key()))
        .collect();
    TrendChart {
        width,
        height,
        lines,
        dots,
        hidden,
        labels,
        max_label: Cell::Shown(max).label_ja(),
        axis_y: f64::from(height) - bottom,
    }
}

/// What a figures page is asked for (`?figure=latent&month=2026-12&pref=13`), checked: the
/// figure (default: latent nurses), the month (`None`: the latest with figures) and the
/// prefecture (`None`: Japan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub figure: Figure,
    pub month: Option<Month>,
    pub prefecture: Option<Prefecture>,
}

/// A figures page's query string as sent (`?figure=latent&month=2026-12&pref=13`); the
/// binaries read it with their web framework, [`ChoiceQuery::check`] says what is wrong with it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChoiceQuery {
    pub figure: String,
    pub month: String,
    pub pref: String,
}

/// What to say when the query string cannot be read at all (an unknown field, say).
pub fn unreadable_query(reason: &dyn std::fmt::Display) -> String {
    format!("URLの指定を読み取れません（{reason}）。使える項目は figure, month, pref です。")
}

impl ChoiceQuery {
    /// The checked choice, or what is wrong (Japanese, naming the value).
    pub fn check(&self) -> Result<Choice, String> {
        let figure = if self.figure.is_empty() {
            Figure::Latent
        } else {
            Figure::parse(&self.figure)
                .ok_or_else(|| format!("そのような数値はありません: {}", self.figure))?
        };
        let month = if self.month.is_empty() { None } else { Some(Month::parse(&self.month)?) };
        let prefecture = if self.pref.is_empty() || self.pref == "00" {
            None
        } else {
            Some(Prefecture::from_code(&self.pref).ok_or_else(|| {
                format!("都道府県コードは01〜47（全国は00）で指定してください: {}", self.pref)
            })?)
        };
        Ok(Choice { figure, month, prefecture })
    }
}

/// `POST /federation/v1/figures`: a node asks for one figure of its own prefecture (the
/// prefecture is the calling node's, never a field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiguresRequest {
    pub figure: Figure,
    /// `None`: the latest month with figures.
    pub month: Option<Month>,
}

/// One figure as a page shows it: the month's table, the trend, the months there are, and when
/// the figures were counted. The national server's pages and the answer to a node's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiguresView {
    pub table: FigureTable,
    pub trend: Trend,
    pub months: Vec<Month>,
    pub refreshed_at: Option<chrono::NaiveDateTime>,
    /// For back at work: each month's count as a share of the latent nurses with a match that
    /// month, in tenths of a per cent (125 = 12.5%), where both are published; empty for other
    /// figures.
    #[serde(default)]
    pub share: Vec<(Month, Option<u64>)>,
}

impl FigureTable {
    /// 「有効な看護職免許（東京都・2026年12月）」
    pub fn title_ja(&self) -> String {
        let place = self.prefecture.map_or("全国", |p| p.name_ja());
        format!("{}（{}・{}）", self.figure.title_ja(), place, self.month.label_ja())
    }

    /// The download's file name: `figures-latent-2026-12-13.csv` (`00` for Japan).
    pub fn file_name(&self) -> String {
        let area = self.prefecture.map_or("00".to_string(), |p| p.code());
        format!("figures-{}-{}-{area}.csv", self.figure.key(), self.month.key())
    }

    /// The table as CSV: UTF-8 with a BOM (so Excel opens it in Japanese), CRLF, a title line,
    /// the headings, a row per area and the totals, each cell as the page shows it.
    pub fn csv(&self) -> Vec<u8> {
        let mut records: Vec<Vec<String>> = vec![vec![
            self.title_ja(),
            format!("単位: {}", self.figure.unit_ja()),
            "10未満の数と、そこから計算できてしまう数は「10未満」と表示しています。".to_string(),
        ]];
        let mut heading = vec!["コード".to_string(), "地域".to_string()];
        heading.extend(self.columns.iter().cloned());
        heading.push("計".into());
        records.push(heading);
        for row in &self.rows {
            let mut record = vec![row.code.clone(), row.name_ja.clone()];
            record.extend(row.cells.iter().map(|c| c.csv()));
            record.push(row.total.csv());
            records.push(record);
        }
        let mut totals = vec![String::new(), "計".to_string()];
        totals.extend(self.column_totals.iter().map(|c| c.csv()));
        totals.push(self.total.csv());
        records.push(totals);
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::from(*b"\xEF\xBB\xBF"));
        for record in &records {
            w.write_record(record).expect("writing CSV to memory");
        }
        w.into_inner().expect("writing CSV to memory")
    }
}

/// Each month of `part` as a share of the same month of `whole`, in tenths of a per cent
/// (rounded), where both are published and `whole` is not zero: a ratio of two published numbers
/// tells nothing they do not.
pub fn share_of(part: &Trend, whole: &Trend) -> Vec<(Month, Option<u64>)> {
    part.points
        .iter()
        .map(|(m, p)| {
            let of = whole.points.iter().find(|(n, _)| n == m).and_then(|(_, c)| c.value());
            let share = match (p.value(), of) {
                (Some(p), Some(of)) if of > 0 => Some((p * 1000 + of / 2) / of),
                _ => None,
            };
            (*m, share)
        })
        .collect()
}

/// What back at work counts, beside its figures.
const BACK_AT_WORK_NOTE: &str = "再就業は、求人・研修の紹介があった潜在看護職が、その後に就業の届出をした数です（届出の就業日の月）。割合は、その月に紹介があった潜在看護職の数に対する割合で、どちらかが10未満の月は表示しません。";

/// What the figures part of a page shows, built once for the national pages and a node's
/// prefecture pages (`shared/templates/figures_body.html` renders it).
pub struct FiguresPage {
    /// Where the choice form goes (`/figures`, `/staff/figures`).
    pub action: &'static str,
    pub figures: Vec<(&'static str, &'static str, bool)>,
    /// The areas to choose from (empty at a node: its own prefecture only).
    pub prefectures: Vec<(String, &'static str, bool)>,
    pub months: Vec<(String, String, bool)>,
    pub title: String,
    pub unit: &'static str,
    pub place_note: &'static str,
    pub chart: TrendChart,
    pub csv_url: String,
    pub refreshed: Option<String>,
    pub table: FigureTable,
    /// Whether a row's name links to that prefecture's municipalities.
    pub rows_link: bool,
    /// Back at work as a share of matched latent nurses: (month, 「12.5%」 or 「—」).
    pub share: Vec<(String, String)>,
    /// What the figure counts, where that needs saying.
    pub note: Option<&'static str>,
}

impl FiguresPage {
    pub fn new(view: FiguresView, action: &'static str, choose_prefecture: bool) -> Self {
        let FiguresView { table, trend, mut months, refreshed_at, share } = view;
        if !months.contains(&table.month) {
            months.push(table.month);
        }
        let figure = table.figure;
        let area = table.prefecture.map_or("00".to_string(), |p| p.code());
        let prefectures = if choose_prefecture {
            std::iter::once(("00".to_string(), "全国", table.prefecture.is_none()))
                .chain(Prefecture::all().map(|p| (p.code(), p.name_ja(), table.prefecture == Some(p))))
                .collect()
        } else {
            Vec::new()
        };
        let mut csv_url = format!("{action}.csv?figure={}&month={}", figure.key(), table.month.key());
        if choose_prefecture {
            csv_url.push_str(&format!("&pref={area}"));
        }
        Self {
            action,
            figures: Figure::ALL.iter().map(|f| (f.key(), f.title_ja(), *f == figure)).collect(),
            prefectures,
            months: months.iter().rev().map(|m| (m.key(), m.label_ja(), *m == table.month)).collect(),
            title: table.title_ja(),
            unit: figure.unit_ja(),
            place_note: match (figure.place(), table.prefecture) {
                (Place::Residence, None) => "住民票の住所の都道府県で数えています。",
                (Place::Residence, Some(_)) => "住民票の住所の市区町村で数えています。",
                (Place::Node, _) => "ナースセンター（都道府県）ごとに数えています。市区町村別はありません。",
            },
            chart: trend_chart(&trend, figure.unit_ja()),
            csv_url,
            refreshed: refreshed_at.map(crate::time::datetime_ja),
            rows_link: choose_prefecture && table.prefecture.is_none(),
            note: (figure == Figure::BackAtWork).then_some(BACK_AT_WORK_NOTE),
            share: share
                .iter()
                .map(|(m, p)| {
                    let pct = p.map_or("—（10未満を含む月）".to_string(), |p| {
                        format!("{}.{}%", p / 10, p % 10)
                    });
                    (m.label_ja(), pct)
                })
                .collect(),
            table,
        }
    }
}

/// One prefecture on the map: its shape, colour class and what its `<title>` says.
pub struct MapShape {
    pub code: String,
    pub path: String,
    pub class: &'static str,
    pub title: String,
    pub value: String,
}

pub struct LegendEntry {
    pub class: &'static str,
    pub label: String,
}

/// Five classes of equal width between the smallest and largest shown values; hidden values
/// (「10未満」) have their own hatched class.
fn classes(values: &[Option<u64>]) -> (Vec<&'static str>, Vec<LegendEntry>) {
    const CLASSES: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
    let shown: Vec<u64> = values.iter().flatten().copied().collect();
    let (lo, hi) = (shown.iter().min().copied().unwrap_or(0), shown.iter().max().copied().unwrap_or(0));
    let step = ((hi - lo) as f64 / 5.0).max(1.0);
    let class_of = |v: u64| CLASSES[(((v - lo) as f64 / step) as usize).min(4)];
    let per_value = values.iter().map(|v| v.map_or("cs", class_of)).collect();
    let mut legend = Vec::new();
    if !shown.is_empty() {
        for (i, class) in CLASSES.iter().enumerate() {
            let from = lo + (step * i as f64).ceil() as u64;
            let to = if i == 4 { hi } else { lo + (step * (i + 1) as f64).ceil() as u64 - 1 };
            if from > to && i > 0 {
                continue;
            }
            legend.push(LegendEntry {
                class,
                label: format!("{}〜{}", Cell::Shown(from).label_ja(), Cell::Shown(to.max(from)).label_ja()),
            });
        }
    }
    legend.push(LegendEntry { class: "cs", label: Cell::Suppressed.label_ja() });
    (per_value, legend)
}

/// The map of Japan coloured by each prefecture's total in a Japan table.
pub struct MapView {
    pub width: f64,
    pub shapes: Vec<MapShape>,
    /// The frame around an inset (Okinawa), as path data.
    pub frame: String,
    pub legend: Vec<LegendEntry>,
}

impl MapView {
    /// `outlines`: each prefecture's path data, in code order (01…47), as the table's rows are.
    pub fn new(table: &FigureTable, outlines: &[(u8, String)], width: f64, frame: &str) -> Self {
        let values: Vec<Option<u64>> = table.rows.iter().map(|r| r.total.value()).collect();
        let (per_value, legend) = classes(&values);
        let shapes = outlines
            .iter()
            .zip(table.rows.iter().zip(per_value))
            .map(|((_, path), (row, class))| MapShape {
                code: row.code.clone(),
                path: path.clone(),
                class,
                title: format!("{}: {}", row.name_ja, row.total.label_ja()),
                value: row.total.label_ja(),
            })
            .collect();
        Self { width, shapes, frame: frame.to_string(), legend }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_given_only_where_both_counts_are_published() {
        let month = |k: &str| Month::parse(k).unwrap();
        let trend = |points: Vec<(&str, Cell)>| Trend {
            figure: Figure::BackAtWork,
            prefecture: None,
            points: points.into_iter().map(|(k, c)| (month(k), c)).collect(),
        };
        let back = trend(vec![
            ("2026-10", Cell::Shown(12)),
            ("2026-11", Cell::Suppressed),
            ("2026-12", Cell::Shown(30)),
        ]);
        let matched = trend(vec![
            ("2026-10", Cell::Shown(96)),
            ("2026-11", Cell::Shown(80)),
            ("2026-12", Cell::Suppressed),
        ]);
        assert_eq!(
            share_of(&back, &matched),
            vec![(month("2026-10"), Some(125)), (month("2026-11"), None), (month("2026-12"), None)]
        );
    }

    #[test]
    fn months_are_read_as_written_and_bad_ones_named() {
        assert_eq!(Month::parse("2026-12").unwrap().label_ja(), "2026年12月");
        assert_eq!(Month::parse("2027-01").unwrap().previous().key(), "2026-12");
        for bad in ["2026-13", "2026-00", "1999-12", "26-12", "2026/12", "", "2026-1"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert!(Month::parse("2026-13").unwrap_err().contains("2026-13"));
    }

    #[test]
    fn every_figure_has_a_key_that_parses_back_and_columns() {
        for f in Figure::ALL {
            assert_eq!(Figure::parse(f.key()), Some(f));
            assert!(!f.column_labels().is_empty());
        }
        assert_eq!(Figure::parse("nurses"), None);
    }
}
