//! My Number (個人番号): validation and keyed hashing (DESIGN rule 1).
//!
//! A `MyNumber` can be parsed and hashed, nothing else: it has no `Display`, no `Serialize`, and its
//! `Debug` is redacted, so it cannot end up in a log line, a JSON body or a database column by accident.
//! The only thing that is stored is its `PersonKey`, an HMAC-SHA-256 under a server secret.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Clone, PartialEq, Eq)]
pub struct MyNumber([u8; 12]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MyNumberError {
    #[error("My Number must have exactly 12 digits (got {0})")]
    Length(usize),
    #[error("My Number must contain only the digits 0-9")]
    NotDigits,
    #[error("My Number check digit is wrong")]
    CheckDigit,
}

impl MyNumber {
    /// Parses 12 ASCII digits and verifies the check digit.
    pub fn parse(text: &str) -> Result<Self, MyNumberError> {
        let bytes = text.as_bytes();
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(MyNumberError::NotDigits);
        }
        if bytes.len() != 12 {
            return Err(MyNumberError::Length(text.chars().count()));
        }
        let mut digits = [0u8; 12];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = b - b'0';
        }
        if check_digit(&digits[..11]) != digits[11] {
            return Err(MyNumberError::CheckDigit);
        }
        Ok(Self(digits))
    }

    /// Builds a valid number from its first 11 digits by appending the check digit
    /// (used by the synthetic-data generator).
    pub fn from_body(body: u64) -> Self {
        let mut digits = [0u8; 12];
        let mut rest = body % 100_000_000_000;
        for d in digits[..11].iter_mut().rev() {
            *d = (rest % 10) as u8;
            rest /= 10;
        }
        digits[11] = check_digit(&digits[..11]);
        Self(digits)
    }

    /// The 12 digits as text, for writing import files only (never logs or storage).
    pub fn expose_digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn as_ascii(&self) -> [u8; 12] {
        self.0.map(|d| b'0' + d)
    }
}

impl std::fmt::Debug for MyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MyNumber(<redacted>)")
    }
}

/// Check digit of the official formula (行政手続における特定の個人を識別するための番号の利用等に関する
/// 法律施行令 第八条): with P_n the n-th digit counted from the right of the 11-digit body and
/// Q_n = n + 1 for n <= 6, n - 5 for n >= 7, the check digit is 0 when sum(P_n Q_n) mod 11 <= 1,
/// otherwise 11 minus that remainder.
pub fn check_digit(body: &[u8]) -> u8 {
    let r = weighted_remainder(body);
    if r <= 1 { 0 } else { 11 - r }
}

/// sum(P_n Q_n) mod 11 of an 11-digit body. Remainders 0 and 1 both give check digit 0, which is
/// the formula's one blind spot: a single-digit change that moves the remainder between 0 and 1
/// keeps the same check digit and cannot be detected.
pub fn weighted_remainder(body: &[u8]) -> u8 {
    debug_assert_eq!(body.len(), 11);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &p)| {
            let n = i as u32 + 1;
            let q = if n <= 6 { n + 1 } else { n - 5 };
            u32::from(p) * q
        })
        .sum();
    (sum % 11) as u8
}

/// Masks every My Number in `text` with one `*` per digit, for anything the system prints or
/// writes from outside data (reports, rejects files, logs): a value in the wrong column or inside
/// free text must not leak just because it is not where a My Number is expected.
///
/// What counts as a My Number:
/// - any 12 consecutive digits whose last passes the check digit, also inside a longer run of
///   digits: a number glued to its neighbour (a missing separator) is still someone's number, and
///   masking a few digits of an unrelated long number costs less than printing one in clear. About
///   one random 12-digit window in ten passes the check, so long digit runs usually lose a part;
/// - digits are ASCII or full-width (`０`–`９`, as typed with a Japanese input method);
/// - the card's printed form, three groups of four digits separated by one space or hyphen
///   (`1234 5678 9018`), when the groups stand alone: not chained to more letters or digits by
///   another separator or touching them, so the parts of a UUID are left alone.
///
/// Numbers failing the check digit are left as they are (they are not My Numbers); the import
/// masks its `my_number` column whatever it holds.
pub fn mask_my_numbers(text: &str) -> Cow<'_, str> {
    // Most log lines and cells have fewer than 12 digits: nothing to look at.
    if text.chars().filter(|&c| digit_value(c).is_some()).count() < 12 {
        return Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && digit_value(chars[i]).is_some() {
            i += 1;
        }
        if i > start {
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    let passes = |positions: &mut dyn Iterator<Item = usize>| {
        let mut digits = [0u8; 12];
        for (d, p) in digits.iter_mut().zip(positions) {
            *d = digit_value(chars[p]).unwrap_or(0);
        }
        check_digit(&digits[..11]) == digits[11]
    };
    let mut masked = vec![false; chars.len()];
    for run in runs.iter().filter(|r| r.len() >= 12) {
        for start in run.start..=run.end - 12 {
            if passes(&mut (start..start + 12)) {
                masked[start..start + 12].fill(true);
            }
        }
    }
    let word = |c: char| c.is_ascii_alphanumeric() || digit_value(c).is_some();
    // A group boundary: nothing, or a character that neither is part of a word nor links one.
    let free = |beside: Option<&char>, beyond: Option<&char>| match beside {
        None => true,
        Some(&c) if word(c) => false,
        Some(&c) if GROUP_SEPARATORS.contains(&c) => !beyond.is_some_and(|&b| word(b)),
        Some(_) => true,
    };
    for groups in runs.windows(3) {
        let [a, b, c] = groups else { continue };
        let separator = chars.get(a.end).copied();
        let grouped = [a, b, c].iter().all(|g| g.len() == 4)
            && b.start == a.end + 1
            && c.start == b.end + 1
            && separator.is_some_and(|s| GROUP_SEPARATORS.contains(&s))
            && chars.get(b.end).copied() == separator;
        if grouped
            && free(a.start.checked_sub(1).map(|p| &chars[p]), a.start.checked_sub(2).map(|p| &chars[p]))
            && free(chars.get(c.end), chars.get(c.end + 1))
            && passes(&mut a.clone().chain(b.clone()).chain(c.clone()))
        {
            for g in [a, b, c] {
                masked[g.clone()].fill(true);
            }
        }
    }
    if !masked.contains(&true) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(chars.iter().zip(&masked).map(|(&c, &m)| if m { '*' } else { c }).collect())
}

/// How the card prints the number's groups (and how people copy it).
const GROUP_SEPARATORS: [char; 2] = [' ', '-'];

fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((u32::from(c) - u32::from('０')) as u8),
        _ => None,
    }
}

/// An `io::Write` that masks My Numbers in what passes through (for log output). Each write is
/// masked on its own, so callers must write whole messages at once, as tracing's fmt layer does
/// (one write per event).
pub struct MaskingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(mask_my_numbers(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The national server's stable key for a person: HMAC-SHA-256 of the My Number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonKey(pub [u8; 32]);

impl PersonKey {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The key's first eight bytes as a big-endian signed integer: what the licence table is
    /// indexed by (`licences.person_no`). An 8-byte integer index builds and probes faster than one
    /// of 32-byte blobs, the better part of a second per million licences on an initial load. It
    /// is not unique (two people may share it, about once in 10^12 pairs), so every lookup by it
    /// compares the whole key too.
    pub fn number(&self) -> i64 {
        Self::number_of(&self.0)
    }
    /// [`PersonKey::number`] of a key held as bytes (as read from the database).
    pub fn number_of(key: &[u8]) -> i64 {
        let mut first = [0u8; 8];
        let n = key.len().min(8);
        first[..n].copy_from_slice(&key[..n]);
        i64::from_be_bytes(first)
    }
}

impl std::fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonKey({}…)", crate::encoding::hex(&self.0[..4]))
    }
}

/// Keyed hashing of My Numbers. The key is keyed once; each hash clones the prepared state, which
/// keeps hashing millions of registry rows cheap.
#[derive(Clone)]
pub struct MyNumberHasher {
    keyed: Hmac<Sha256>,
}

impl MyNumberHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length") }
    }

    pub fn person_key(&self, number: &MyNumber) -> PersonKey {
        let mut mac = self.keyed.clone();
        mac.update(&number.as_ascii());
        PersonKey(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_valid_numbers_are_accepted() {
        for body in [0u64, 1, 12_345_678_901, 99_999_999_999, 31_415_926_535] {
            let n = MyNumber::from_body(body);
            assert_eq!(MyNumber::parse(&n.expose_digits()), Ok(n));
        }
        // A published example: 123456789018 is valid (check digit 8).
        assert!(MyNumber::parse("123456789018").is_ok());
        assert_eq!(MyNumber::parse("123456789010"), Err(MyNumberError::CheckDigit));
    }

    #[test]
    fn malformed_numbers_are_rejected_with_the_reason() {
        assert_eq!(MyNumber::parse("12345678901"), Err(MyNumberError::Length(11)));
        assert_eq!(MyNumber::parse("1234567890123"), Err(MyNumberError::Length(13)));
        assert_eq!(MyNumber::parse("12345678901a"), Err(MyNumberError::NotDigits));
        assert_eq!(MyNumber::parse("１２３４５６７８９０１８"), Err(MyNumberError::NotDigits));
        assert_eq!(MyNumber::parse(""), Err(MyNumberError::Length(0)));
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let n = MyNumber::parse("123456789018").unwrap();
        assert!(!format!("{n:?}").contains("1234"));
    }

    #[test]
    fn hashing_is_keyed() {
        let n = MyNumber::parse("123456789018").unwrap();
        let a = MyNumberHasher::new(&[1; 32]).person_key(&n);
        let b = MyNumberHasher::new(&[2; 32]).person_key(&n);
        assert_ne!(a, b);
        assert_eq!(a, MyNumberHasher::new(&[1; 32]).person_key(&n));
    }

    #[test]
    fn masking_finds_numbers_wherever_they_stand() {
        // Alone, in text, in a wrong column, glued to other digits, full-width, grouped as printed.
        assert_eq!(mask_my_numbers("123456789018"), "************");
        assert_eq!(mask_my_numbers("番号123456789018です"), "番号************です");
        assert_eq!(mask_my_numbers("03,1000000,123456789018,山田"), "03,1000000,************,山田");
        assert_eq!(mask_my_numbers("2008-04-01123456789018"), "2008-04-01************");
        assert_eq!(mask_my_numbers("1234567890189"), "************9");
        assert_eq!(mask_my_numbers("１２３４５６７８９０１８"), "************");
        assert_eq!(mask_my_numbers("番号 1234 5678 9018 です"), "番号 **** **** **** です");
        assert_eq!(mask_my_numbers("(1234-5678-9018)"), "(****-****-****)");
        assert_eq!(mask_my_numbers("a 123456789018 and 000000000000"), "a ************ and ************");
    }

    #[test]
    fn masking_leaves_everything_else_alone() {
        for text in [
            "",
            "line 11, column my_number: My Number check digit is wrong",
            "123456789010",                         // wrong check digit
            "12345678901",                          // 11 digits
            "2025-06-01 2025-07-01 1985-04-01",     // dates
            "0190b7e4-1234-5678-9018-a1b2c3d4e5f6", // groups chained inside a UUID
            "1234 5678 9018 4444",                  // four groups: not the card's form
            "x1234-5678-9018",                      // touching a letter
        ] {
            assert!(matches!(mask_my_numbers(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn masking_writer_masks_each_write() {
        let mut out = MaskingWriter(Vec::new());
        std::io::Write::write_all(&mut out, b"INFO import file=123456789018.csv\n").unwrap();
        assert_eq!(String::from_utf8(out.0).unwrap(), "INFO import file=************.csv\n");
    }

    proptest! {
        #[test]
        fn every_generated_number_is_accepted(body in 0u64..100_000_000_000) {
            let n = MyNumber::from_body(body);
            prop_assert!(MyNumber::parse(&n.expose_digits()).is_ok());
        }

        #[test]
        fn every_single_digit_change_is_rejected_but_the_formulas_blind_spot(
            body in 0u64..100_000_000_000, pos in 0usize..12, delta in 1u8..10
        ) {
            let original: Vec<u8> = MyNumber::from_body(body).expose_digits().bytes().map(|b| b - b'0').collect();
            let mut changed = original.clone();
            changed[pos] = (changed[pos] + delta) % 10;
            let text: String = changed.iter().map(|d| char::from(b'0' + d)).collect();
            // The check digit itself: always caught. A body digit: caught unless the remainder moved
            // between 0 and 1 (both map to check digit 0), which the official formula cannot see.
            let blind = pos < 11
                && weighted_remainder(&original[..11]) <= 1
                && weighted_remainder(&changed[..11]) <= 1;
            if blind {
                prop_assert!(MyNumber::parse(&text).is_ok());
            } else {
                prop_assert_eq!(MyNumber::parse(&text), Err(MyNumberError::CheckDigit));
            }
        }

        #[test]
        fn changing_the_check_digit_is_always_rejected(body in 0u64..100_000_000_000, delta in 1u8..10) {
            let mut digits: Vec<u8> = MyNumber::from_body(body).expose_digits().into_bytes();
            digits[11] = b'0' + (digits[11] - b'0' + delta) % 10;
            prop_assert_eq!(MyNumber::parse(&String::from_utf8(digits).unwrap()), Err(MyNumberError::CheckDigit));
        }

        #[test]
        fn distinct_numbers_hash_apart(a in 0u64..100_000_000_000, b in 0u64..100_000_000_000) {
            prop_assume!(a != b);
            let h = MyNumberHasher::new(&[7; 32]);
            prop_assert_ne!(h.person_key(&MyNumber::from_body(a)), h.person_key(&MyNumber::from_body(b)));
        }

        #[test]
        fn any_number_in_any_text_is_masked(
            body in 0u64..100_000_000_000,
            prefix in ".{0,40}",
            suffix in ".{0,40}",
            form in 0usize..4,
        ) {
            let digits = MyNumber::from_body(body).expose_digits();
            let written = match form {
                0 => digits.clone(),
                1 => digits.chars().map(|c| char::from_u32(u32::from(c) - u32::from('0') + u32::from('０')).unwrap()).collect(),
                // The grouped form only counts standing alone: set it off with full stops.
                2 => format!("。{} {} {}。", &digits[..4], &digits[4..8], &digits[8..]),
                _ => format!("。{}-{}-{}。", &digits[..4], &digits[4..8], &digits[8..]),
            };
            let text = format!("{prefix}{written}{suffix}");
            let masked = mask_my_numbers(&text);
            prop_assert!(!masked.contains(&digits), "{masked}");
            prop_assert!(!masked.contains(&written), "{masked}");
            prop_assert!(masked.contains("****"), "{masked}");
            // One `*` per character: positions in the text stay where they were.
            prop_assert_eq!(masked.chars().count(), text.chars().count());
        }

        #[test]
        fn text_without_twelve_digits_is_untouched(text in "[^0-9０-９]{0,60}[0-9]{0,11}[^0-9０-９]{0,60}") {
            prop_assert!(matches!(mask_my_numbers(&text), Cow::Borrowed(_)));
        }
    }
}
