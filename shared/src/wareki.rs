//! Japanese era dates (和暦), because the dates people copy from a printed licence or certificate are
//! written that way: a nurse's licence says 「昭和41年11月14日生」 and 「平成3年4月1日登録」, and asking
//! her to convert it to 1966 or 1991 herself invites mistakes we could not detect.
//!
//! Forms therefore offer an era select next to year, month and day, and [`parse_fields`] turns what
//! was typed into one `NaiveDate`, telling which of the four fields is wrong and why, in Japanese
//! ([`DateFieldError::message_ja`]). Dates are stored and exchanged as Western dates only; era
//! names are for reading and typing ([`format_wareki`], [`format_with_wareki`]).
//!
//! The eras start on the day the new emperor acceded (the next day for Showa → Heisei), and the
//! last day of an era is the day before the next one starts, so 昭和64年1月7日 exists and
//! 昭和64年1月8日 does not (it is 平成元年1月8日). Meiji is the exception: it was proclaimed on
//! 1868-10-23 but applied to the whole of that year, so every date from 1868-01-01 counts as Meiji 1
//! here, and nothing earlier has an era. (Before 1873 Japan used the lunisolar calendar, so a Meiji
//! date that early on an old document is not the same day in the Gregorian calendar; no licence or
//! birth date we handle is that old.)

use chrono::{Datelike, NaiveDate};

use crate::normalize;

/// The first and last Western years a form accepts (1868 is Meiji 1; 2100 bounds typing errors).
pub const FIRST_YEAR: i32 = 1868;
pub const LAST_YEAR: i32 = 2100;

const fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(d) => d,
        None => panic!("invalid era boundary"),
    }
}

/// A Japanese era, from Meiji on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Era {
    Meiji,
    Taisho,
    Showa,
    Heisei,
    Reiwa,
}

impl Era {
    /// Oldest first.
    pub const ALL: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

    /// The value used in forms and files: "meiji", "taisho", "showa", "heisei", "reiwa".
    pub fn code(self) -> &'static str {
        match self {
            Era::Meiji => "meiji",
            Era::Taisho => "taisho",
            Era::Showa => "showa",
            Era::Heisei => "heisei",
            Era::Reiwa => "reiwa",
        }
    }

    pub fn parse_code(code: &str) -> Option<Era> {
        Era::ALL.into_iter().find(|e| e.code() == code)
    }

    /// 「明治」「大正」「昭和」「平成」「令和」.
    pub fn name_ja(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// The Latin initial forms and spreadsheets use: M, T, S, H, R (R8.3.31).
    pub fn initial(self) -> char {
        match self {
            Era::Meiji => 'M',
            Era::Taisho => 'T',
            Era::Showa => 'S',
            Era::Heisei => 'H',
            Era::Reiwa => 'R',
        }
    }

    /// The first day counted in this era (year 1, 元年). For Meiji this is 1868-01-01 rather than the
    /// day of proclamation (1868-10-23): see the module documentation.
    pub fn first_day(self) -> NaiveDate {
        match self {
            Era::Meiji => ymd(1868, 1, 1),
            Era::Taisho => ymd(1912, 7, 30),
            Era::Showa => ymd(1926, 12, 25),
            Era::Heisei => ymd(1989, 1, 8),
            Era::Reiwa => ymd(2019, 5, 1),
        }
    }

    /// The day before the next era's first day; `None` for the current era.
    pub fn last_day(self) -> Option<NaiveDate> {
        self.next().and_then(|next| next.first_day().pred_opt())
    }

    /// The last year in this era a form accepts: the year of its last day, or for the current era
    /// the year that falls in [`LAST_YEAR`] (令和82年 = 2100).
    pub fn last_year(self) -> u32 {
        let last_western = self.last_day().map_or(LAST_YEAR, |d| d.year());
        (last_western - self.first_day().year() + 1).unsigned_abs()
    }

    fn next(self) -> Option<Era> {
        Era::ALL.into_iter().find(|e| *e > self)
    }
}

/// The era of a date and the year within it (1 = 元年); `None` before 1868.
pub fn era_of(date: NaiveDate) -> Option<(Era, u32)> {
    let era = Era::ALL.into_iter().rev().find(|e| e.first_day() <= date)?;
    Some((era, (date.year() - era.first_day().year() + 1).unsigned_abs()))
}

/// A date given in an era is not a day of that era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WarekiError {
    #[error("no such calendar day")]
    NoSuchDay,
    #[error("{era:?} began on {first}")]
    BeforeEra { era: Era, first: NaiveDate },
    #[error("{era:?} ended on {last}")]
    OutsideEra { era: Era, last: NaiveDate },
}

/// The Western date of an era date; `year` 1 is 元年. 昭和64年1月8日 and 平成31年5月1日 are errors
/// (`OutsideEra`), as are 平成元年1月7日 (`BeforeEra`) and 2月30日 (`NoSuchDay`).
pub fn from_era(era: Era, year: u32, month: u32, day: u32) -> Result<NaiveDate, WarekiError> {
    let first = era.first_day();
    if year == 0 {
        return Err(WarekiError::BeforeEra { era, first });
    }
    let western = i64::from(first.year()) + i64::from(year) - 1;
    let date = i32::try_from(western).ok().and_then(|y| NaiveDate::from_ymd_opt(y, month, day));
    let Some(date) = date else {
        return Err(match era.last_day() {
            Some(last) if western > i64::from(last.year()) => WarekiError::OutsideEra { era, last },
            _ => WarekiError::NoSuchDay,
        });
    };
    if date < first {
        return Err(WarekiError::BeforeEra { era, first });
    }
    match era.last_day() {
        Some(last) if date > last => Err(WarekiError::OutsideEra { era, last }),
        _ => Ok(date),
    }
}

/// 「元」 for year 1, the number otherwise.
fn era_year_ja(year: u32) -> String {
    if year == 1 { "元".to_owned() } else { year.to_string() }
}

/// 「昭和41年11月14日」, 「令和元年5月1日」; a date before 1868 in Western form (「1867年1月1日」).
pub fn format_wareki(date: NaiveDate) -> String {
    match era_of(date) {
        Some((era, year)) => {
            format!("{}{}年{}月{}日", era.name_ja(), era_year_ja(year), date.month(), date.day())
        }
        None => format!("{}年{}月{}日", date.year(), date.month(), date.day()),
    }
}

/// 「1966年11月14日（昭和41年）」, 「2019年5月1日（令和元年）」; a date before 1868 without the era part.
pub fn format_with_wareki(date: NaiveDate) -> String {
    let western = format!("{}年{}月{}日", date.year(), date.month(), date.day());
    match era_of(date) {
        Some((era, year)) => format!("{western}（{}{}年）", era.name_ja(), era_year_ja(year)),
        None => western,
    }
}

/// What is wrong with one of the date fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("empty")]
    Missing,
    #[error("not in the expected form")]
    Format,
    #[error("outside {min}..={max}")]
    Range { min: u32, max: u32 },
}

/// Which part of a four-field date (era, year, month, day) is wrong, or that the date as a whole
/// is not a day (2月30日, 昭和64年1月8日).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateFieldError {
    #[error("era: {0}")]
    Era(FieldProblem),
    #[error("year: {0}")]
    Year(FieldProblem),
    #[error("month: {0}")]
    Month(FieldProblem),
    #[error("day: {0}")]
    Day(FieldProblem),
    #[error(transparent)]
    Date(#[from] WarekiError),
}

impl DateFieldError {
    /// What to tell the person, next to the date; `label` names the date (「生年月日」).
    pub fn message_ja(&self, label: &str) -> String {
        let part = |part: &str, problem: &FieldProblem| match problem {
            FieldProblem::Missing => format!("{label}の{part}を入力してください。"),
            FieldProblem::Format => format!("{label}の{part}は数字で入力してください。"),
            FieldProblem::Range { min, max } => {
                format!("{label}の{part}は{min}から{max}の数字で入力してください。")
            }
        };
        match self {
            DateFieldError::Era(FieldProblem::Missing) => format!("{label}の元号を選んでください。"),
            DateFieldError::Era(_) => format!("{label}の元号を選び直してください。"),
            DateFieldError::Year(p) => part("年", p),
            DateFieldError::Month(p) => part("月", p),
            DateFieldError::Day(p) => part("日", p),
            DateFieldError::Date(WarekiError::NoSuchDay) => format!("{label}にその日付はありません。"),
            DateFieldError::Date(WarekiError::BeforeEra { era, first }) => {
                format!("{}は{}からです。", era.name_ja(), in_era_ja(*era, *first))
            }
            DateFieldError::Date(WarekiError::OutsideEra { era, last }) => {
                format!("{}は{}までです。", era.name_ja(), in_era_ja(*era, *last))
            }
        }
    }
}

/// 「64年1月7日」: a day of `era` without the era name.
fn in_era_ja(era: Era, date: NaiveDate) -> String {
    let year = (date.year() - era.first_day().year() + 1).unsigned_abs();
    format!("{}年{}月{}日", era_year_ja(year), date.month(), date.day())
}

/// The era select's value for a Western year.
pub const SEIREKI: &str = "seireki";

/// A date from four form fields: the era select (an [`Era::code`], or [`SEIREKI`] for a Western
/// year; the Japanese names 「昭和」…「西暦」 are accepted too, for files), and year, month and day as
/// typed. Numbers may be full-width and may carry their unit (「41年」「11月」「14日」); the year of
/// an era may be 「元」 or 「元年」. Western years run from 1868 to 2100.
pub fn parse_fields(era: &str, year: &str, month: &str, day: &str) -> Result<NaiveDate, DateFieldError> {
    let era_text = normalize::name(era).to_ascii_lowercase();
    let era = match era_text.as_str() {
        "" => return Err(DateFieldError::Era(FieldProblem::Missing)),
        SEIREKI | "西暦" => None,
        text => Some(
            Era::ALL
                .into_iter()
                .find(|e| e.code() == text || e.name_ja() == text)
                .ok_or(DateFieldError::Era(FieldProblem::Format))?,
        ),
    };
    let year = number(year, '年', era.is_some()).map_err(DateFieldError::Year)?;
    let (min_year, max_year) = match era {
        Some(era) => (1, era.last_year()),
        None => (FIRST_YEAR.unsigned_abs(), LAST_YEAR.unsigned_abs()),
    };
    if !(min_year..=max_year).contains(&year) {
        return Err(DateFieldError::Year(FieldProblem::Range { min: min_year, max: max_year }));
    }
    let month = number(month, '月', false).map_err(DateFieldError::Month)?;
    if !(1..=12).contains(&month) {
        return Err(DateFieldError::Month(FieldProblem::Range { min: 1, max: 12 }));
    }
    let day = number(day, '日', false).map_err(DateFieldError::Day)?;
    if !(1..=31).contains(&day) {
        return Err(DateFieldError::Day(FieldProblem::Range { min: 1, max: 31 }));
    }
    match era {
        Some(era) => Ok(from_era(era, year, month, day)?),
        None => i32::try_from(year)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, month, day))
            .ok_or(DateFieldError::Date(WarekiError::NoSuchDay)),
    }
}

/// A number as typed: any width, separators ignored, an optional trailing unit, 「元」 for 1 where
/// allowed. Too many digits saturate, so they fail the caller's range check rather than the format.
fn number(raw: &str, unit: char, gannen: bool) -> Result<u32, FieldProblem> {
    let text = normalize::digits(raw);
    if text.is_empty() {
        return Err(FieldProblem::Missing);
    }
    let text = text.strip_suffix(unit).unwrap_or(&text);
    if gannen && text == "元" {
        return Ok(1);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldProblem::Format);
    }
    Ok(text.bytes().fold(0u32, |n, b| n.saturating_mul(10).saturating_add(u32::from(b - b'0'))))
}

/// A date as people write it in one field: 2026-03-31, 2026/3/31, 2026年3月31日, 令和8年3月31日
/// or 令和元年5月1日, in any width; `None` when it is not a real date in that form (or its era).
pub fn parse_written(text: &str) -> Option<NaiveDate> {
    let text: String = crate::normalize::width(text.trim()).chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(rest) = text.strip_suffix('日') {
        let (year_part, rest) = rest.split_once('年')?;
        let (month, day) = rest.split_once('月')?;
        return match Era::ALL.iter().find(|e| year_part.starts_with(e.name_ja())) {
            Some(era) => parse_fields(era.code(), &year_part[era.name_ja().len()..], month, day).ok(),
            None => parse_fields(SEIREKI, year_part, month, day).ok(),
        };
    }
    // R8.3.31, H31/4/30, S41-11-14: an era's initial (upper or lower case) before the year.
    let initial = text.chars().next().map(|c| c.to_ascii_uppercase());
    if let Some(era) = Era::ALL.iter().find(|e| Some(e.initial()) == initial) {
        let parts: Vec<&str> = text[1..].split(['.', '/', '-']).collect();
        return match parts.as_slice() {
            [year, month, day] => parse_fields(era.code(), year, month, day).ok(),
            _ => None,
        };
    }
    let text = text.replace(['/', '.'], "-");
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.is_empty() || d.is_empty() || m.len() > 2 || d.len() > 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

#[cfg(test)]
mod written_tests {
    use super::*;

    #[test]
    fn dates_as_people_write_them() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(parse_written("2026-03-31"), day(2026, 3, 31));
        assert_eq!(parse_written("２０２６／３／３１"), day(2026, 3, 31));
        assert_eq!(parse_written("2026年3月31日"), day(2026, 3, 31));
        assert_eq!(parse_written("令和8年3月31日"), day(2026, 3, 31));
        assert_eq!(parse_written("令和元年5月1日"), day(2019, 5, 1));
        assert_eq!(parse_written("昭和41年11月14日"), day(1966, 11, 14));
        assert_eq!(parse_written("平成31年5月1日"), None, "Heisei ended on April 30");
        assert_eq!(parse_written("2026年2月30日"), None);
        assert_eq!(parse_written("3月31日"), None);
        assert_eq!(parse_written("2026-3-"), None);
        assert_eq!(parse_written("2026.3.31"), day(2026, 3, 31));
        assert_eq!(parse_written("R8.3.31"), day(2026, 3, 31));
        assert_eq!(parse_written("ｓ41.11.14"), day(1966, 11, 14));
        assert_eq!(parse_written("H31.5.1"), None);
        assert_eq!(parse_written("X8.3.31"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn eras_have_codes_names_and_boundaries() {
        for era in Era::ALL {
            assert_eq!(Era::parse_code(era.code()), Some(era));
            assert_eq!(era_of(era.first_day()), Some((era, 1)));
            if let Some(last) = era.last_day() {
                assert_eq!(era_of(last).map(|(e, _)| e), Some(era));
                assert_eq!(era_of(last.succ_opt().unwrap()).map(|(e, y)| (e > era, y)), Some((true, 1)));
            }
        }
        assert_eq!(Era::parse_code("Showa"), None);
        assert_eq!(Era::Showa.name_ja(), "昭和");
        assert_eq!(Era::Meiji.last_day(), Some(d(1912, 7, 29)));
        assert_eq!(Era::Showa.last_day(), Some(d(1989, 1, 7)));
        assert_eq!(Era::Heisei.last_day(), Some(d(2019, 4, 30)));
        assert_eq!(Era::Reiwa.last_day(), None);
        let last_years: Vec<u32> = Era::ALL.iter().map(|e| e.last_year()).collect();
        assert_eq!(last_years, [45, 15, 64, 31, 82]);
        assert_eq!(era_of(d(1867, 12, 31)), None);
        assert_eq!(era_of(d(1868, 1, 1)), Some((Era::Meiji, 1)));
        assert_eq!(era_of(d(1966, 11, 14)), Some((Era::Showa, 41)));
        assert_eq!(era_of(d(1989, 1, 7)), Some((Era::Showa, 64)));
        assert_eq!(era_of(d(1989, 1, 8)), Some((Era::Heisei, 1)));
    }

    #[test]
    fn era_dates_to_western_dates() {
        assert_eq!(from_era(Era::Showa, 41, 11, 14), Ok(d(1966, 11, 14)));
        assert_eq!(from_era(Era::Heisei, 31, 4, 30), Ok(d(2019, 4, 30)));
        assert_eq!(from_era(Era::Reiwa, 1, 5, 1), Ok(d(2019, 5, 1)));
        assert_eq!(from_era(Era::Showa, 64, 1, 7), Ok(d(1989, 1, 7)));
        assert_eq!(
            from_era(Era::Showa, 64, 1, 8),
            Err(WarekiError::OutsideEra { era: Era::Showa, last: d(1989, 1, 7) })
        );
        assert_eq!(
            from_era(Era::Heisei, 31, 5, 1),
            Err(WarekiError::OutsideEra { era: Era::Heisei, last: d(2019, 4, 30) })
        );
        assert_eq!(
            from_era(Era::Heisei, 1, 1, 7),
            Err(WarekiError::BeforeEra { era: Era::Heisei, first: d(1989, 1, 8) })
        );
        assert!(matches!(from_era(Era::Reiwa, 0, 5, 1), Err(WarekiError::BeforeEra { .. })));
        assert_eq!(from_era(Era::Heisei, 2, 2, 30), Err(WarekiError::NoSuchDay));
        assert_eq!(from_era(Era::Reiwa, u32::MAX, 1, 1), Err(WarekiError::NoSuchDay));
        assert!(matches!(from_era(Era::Taisho, 100, 2, 30), Err(WarekiError::OutsideEra { .. })));
        assert_eq!(from_era(Era::Meiji, 1, 1, 1), Ok(d(1868, 1, 1)));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_wareki(d(1966, 11, 14)), "昭和41年11月14日");
        assert_eq!(format_wareki(d(2019, 5, 1)), "令和元年5月1日");
        assert_eq!(format_wareki(d(1989, 1, 7)), "昭和64年1月7日");
        assert_eq!(format_wareki(d(1989, 1, 8)), "平成元年1月8日");
        assert_eq!(format_wareki(d(1867, 1, 1)), "1867年1月1日");
        assert_eq!(format_with_wareki(d(1966, 11, 14)), "1966年11月14日（昭和41年）");
        assert_eq!(format_with_wareki(d(2019, 5, 1)), "2019年5月1日（令和元年）");
        assert_eq!(format_with_wareki(d(1867, 1, 1)), "1867年1月1日");
    }

    #[test]
    fn form_fields() {
        assert_eq!(parse_fields("showa", "41", "11", "14"), Ok(d(1966, 11, 14)));
        assert_eq!(parse_fields("showa", "４１", "１１", "１４"), Ok(d(1966, 11, 14)));
        assert_eq!(parse_fields("showa", "４１年", "１１月", "１４日"), Ok(d(1966, 11, 14)));
        assert_eq!(parse_fields(" 昭和 ", " 41 ", "11", "14"), Ok(d(1966, 11, 14)));
        assert_eq!(parse_fields("reiwa", "元", "5", "1"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_fields("reiwa", "元年", "05", "01"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_fields("heisei", "元", "1", "8"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_fields("heisei", "31", "4", "30"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_fields("seireki", "１９６６", "11", "14"), Ok(d(1966, 11, 14)));
        assert_eq!(parse_fields("西暦", "1966年", "11", "14"), Ok(d(1966, 11, 14)));

        use DateFieldError as E;
        use FieldProblem as P;
        assert_eq!(parse_fields("", "41", "11", "14"), Err(E::Era(P::Missing)));
        assert_eq!(parse_fields("edo", "41", "11", "14"), Err(E::Era(P::Format)));
        assert_eq!(parse_fields("showa", "", "11", "14"), Err(E::Year(P::Missing)));
        assert_eq!(parse_fields("showa", "四十一", "11", "14"), Err(E::Year(P::Format)));
        assert_eq!(parse_fields("seireki", "元", "11", "14"), Err(E::Year(P::Format)));
        assert_eq!(parse_fields("showa", "0", "11", "14"), Err(E::Year(P::Range { min: 1, max: 64 })));
        assert_eq!(parse_fields("showa", "65", "1", "1"), Err(E::Year(P::Range { min: 1, max: 64 })));
        assert_eq!(
            parse_fields("seireki", "1867", "1", "1"),
            Err(E::Year(P::Range { min: 1868, max: 2100 }))
        );
        assert_eq!(
            parse_fields("seireki", "99999999999", "1", "1"),
            Err(E::Year(P::Range { min: 1868, max: 2100 }))
        );
        assert_eq!(parse_fields("showa", "41", " ", "14"), Err(E::Month(P::Missing)));
        assert_eq!(parse_fields("showa", "41", "11x", "14"), Err(E::Month(P::Format)));
        assert_eq!(parse_fields("showa", "41", "13", "14"), Err(E::Month(P::Range { min: 1, max: 12 })));
        assert_eq!(parse_fields("showa", "41", "11", ""), Err(E::Day(P::Missing)));
        assert_eq!(parse_fields("showa", "41", "11", "元"), Err(E::Day(P::Format)));
        assert_eq!(parse_fields("showa", "41", "11", "32"), Err(E::Day(P::Range { min: 1, max: 31 })));
        assert_eq!(parse_fields("showa", "41", "2", "30"), Err(E::Date(WarekiError::NoSuchDay)));
        assert_eq!(parse_fields("seireki", "2023", "2", "29"), Err(E::Date(WarekiError::NoSuchDay)));
        assert!(matches!(
            parse_fields("heisei", "31", "5", "1"),
            Err(E::Date(WarekiError::OutsideEra { .. }))
        ));
    }

    #[test]
    fn messages_in_japanese() {
        let msg =
            |e: &str, y: &str, m: &str, d: &str| parse_fields(e, y, m, d).unwrap_err().message_ja("生年月日");
        assert_eq!(msg("", "41", "11", "14"), "生年月日の元号を選んでください。");
        assert_eq!(msg("edo", "41", "11", "14"), "生年月日の元号を選び直してください。");
        assert_eq!(msg("showa", "", "11", "14"), "生年月日の年を入力してください。");
        assert_eq!(msg("showa", "x", "11", "14"), "生年月日の年は数字で入力してください。");
        assert_eq!(msg("showa", "65", "11", "14"), "生年月日の年は1から64の数字で入力してください。");
        assert_eq!(msg("showa", "41", "", "14"), "生年月日の月を入力してください。");
        assert_eq!(msg("showa", "41", "十一", "14"), "生年月日の月は数字で入力してください。");
        assert_eq!(msg("showa", "41", "13", "14"), "生年月日の月は1から12の数字で入力してください。");
        assert_eq!(msg("showa", "41", "11", "0"), "生年月日の日は1から31の数字で入力してください。");
        assert_eq!(msg("showa", "41", "2", "30"), "生年月日にその日付はありません。");
        assert_eq!(msg("showa", "64", "1", "8"), "昭和は64年1月7日までです。");
        assert_eq!(msg("heisei", "31", "5", "1"), "平成は31年4月30日までです。");
        assert_eq!(msg("heisei", "元", "1", "7"), "平成は元年1月8日からです。");
    }

    #[test]
    fn every_day_of_the_calendar_round_trips() {
        let mut date = d(FIRST_YEAR, 1, 1);
        while date.year() <= LAST_YEAR {
            let (era, year) = era_of(date).unwrap();
            assert_eq!(from_era(era, year, date.month(), date.day()), Ok(date));
            let parts = (year.to_string(), date.month().to_string(), date.day().to_string());
            assert_eq!(parse_fields(era.code(), &parts.0, &parts.1, &parts.2), Ok(date));
            date = date.succ_opt().unwrap();
        }
    }

    proptest! {
        #[test]
        fn every_date_round_trips(
            offset in 0i64..=(d(LAST_YEAR, 12, 31) - d(FIRST_YEAR, 1, 1)).num_days(),
            full_width in any::<bool>(),
            with_unit in any::<bool>(),
        ) {
            let date = d(FIRST_YEAR, 1, 1) + chrono::Duration::days(offset);
            let (era, year) = era_of(date).unwrap();
            prop_assert_eq!(from_era(era, year, date.month(), date.day()), Ok(date));
            prop_assert!(year <= era.last_year());

            let typed = |n: String, unit: &str| {
                let n = if full_width {
                    n.chars().map(|c| char::from_u32(u32::from(c) + 0xFEE0).unwrap()).collect()
                } else {
                    n
                };
                if with_unit { format!("{n}{unit}") } else { n }
            };
            let year_text = if year == 1 && with_unit { "元年".to_owned() } else { typed(year.to_string(), "年") };
            let month_text = typed(date.month().to_string(), "月");
            let day_text = typed(date.day().to_string(), "日");
            prop_assert_eq!(parse_fields(era.code(), &year_text, &month_text, &day_text), Ok(date));
            prop_assert_eq!(
                parse_fields(SEIREKI, &typed(date.year().to_string(), "年"), &month_text, &day_text),
                Ok(date)
            );
            let formatted = format_wareki(date);
            prop_assert!(formatted.starts_with(era.name_ja()));
        }
    }
}
