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

#[cfg(test)]
mod tests {
    use super::*;

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
