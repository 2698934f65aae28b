//! My Number (個人番号): validation and keyed hashing (DESIGN rule 1).
//!
//! A `MyNumber` can be parsed and hashed, nothing else: it has no `Display`, no `Serialize`, and its
//! `Debug` is redacted, so it cannot end up in a log line, a JSON body or a database column by accident.
//! The only thing that is stored is its `PersonKey`, an HMAC-SHA-256 under a server secret.

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
    }
}
