//! Time as stored: UTC `NaiveDateTime` truncated to microseconds, so that SQLite (text, nanoseconds)
//! and PostgreSQL (microseconds) hold exactly the same value and round-trips compare equal.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SubsecRound, Utc};

pub fn now_utc() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Parses an ISO date (`YYYY-MM-DD`) strictly: exactly ten characters, a real calendar day, and a
/// year between 1900 and 2100 (anything else in a registry file is a typing error).
pub fn parse_date(text: &str) -> Result<NaiveDate, DateError> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(DateError::Format);
    }
    // Digits are checked above; no format-string parsing on this hot path (imports).
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let year = num(0..4) as i32;
    if !(1900..=2100).contains(&year) {
        return Err(DateError::OutOfRange);
    }
    NaiveDate::from_ymd_opt(year, num(5..7), num(8..10)).ok_or(DateError::NoSuchDay)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("not a date in YYYY-MM-DD form")]
    Format,
    #[error("no such calendar day")]
    NoSuchDay,
    #[error("year outside 1900-2100")]
    OutOfRange,
}

/// A date as people in Japan write it: 2026年10月31日 (no leading zeros).
pub fn date_ja(date: NaiveDate) -> String {
    use chrono::Datelike as _;
    format!("{}年{}月{}日", date.year(), date.month(), date.day())
}

/// Today in Japan: what "today" means for every date a person types (a notice's date, a 受付日,
/// a birth date). From midnight to 9:00 in Japan the UTC date is still yesterday, and a check
/// against it would refuse today's date as "in the future".
pub fn today_jst() -> NaiveDate {
    jst_date(now_utc())
}

/// The day a stored time (UTC) falls on in Japan.
pub fn jst_date(t: NaiveDateTime) -> NaiveDate {
    (t + chrono::Duration::hours(9)).date()
}

/// A stored time (UTC) as people in Japan read it, in Japan time: 2026年10月31日 9:05.
pub fn datetime_ja(t: NaiveDateTime) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let offset = chrono::FixedOffset::east_opt(9 * 3600).expect("JST offset");
    let local = to_utc(t).with_timezone(&offset);
    format!("{}年{}月{}日 {}:{:02}", local.year(), local.month(), local.day(), local.hour(), local.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_real_iso_dates() {
        assert_eq!(parse_date("1990-04-01").map(|d| d.to_string()), Ok("1990-04-01".into()));
        assert_eq!(parse_date("1990-4-1"), Err(DateError::Format));
        assert_eq!(parse_date("1990/04/01"), Err(DateError::Format));
        assert_eq!(parse_date("2023-02-29"), Err(DateError::NoSuchDay));
        assert_eq!(parse_date("1850-01-01"), Err(DateError::OutOfRange));
        assert_eq!(parse_date("１９９０-04-01"), Err(DateError::Format));
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        let t = now_utc();
        assert_eq!(chrono::Timelike::nanosecond(&t) % 1000, 0);
    }

    #[test]
    fn japan_days_start_nine_hours_before_utc_days() {
        let t = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap().and_hms_opt(22, 15, 0).unwrap();
        assert_eq!(jst_date(t), NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
        let t = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap().and_hms_opt(14, 59, 0).unwrap();
        assert_eq!(jst_date(t), NaiveDate::from_ymd_opt(2026, 11, 27).unwrap());
    }

    #[test]
    fn times_read_in_japan_time() {
        let t = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap().and_hms_opt(15, 5, 0).unwrap();
        assert_eq!(datetime_ja(t), "2026年11月1日 0:05");
    }

    #[test]
    fn dates_read_as_people_write_them() {
        assert_eq!(date_ja(NaiveDate::from_ymd_opt(2026, 10, 31).unwrap()), "2026年10月31日");
        assert_eq!(date_ja(NaiveDate::from_ymd_opt(2027, 1, 5).unwrap()), "2027年1月5日");
    }
}
