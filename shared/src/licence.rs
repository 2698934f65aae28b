//! Licence-record fields: registration number (籍登録番号), status, sex and names as the registry
//! holds them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 籍登録番号: 1 to 8 digits. Stored and compared in one canonical form (zero-padded to 7 digits), so
/// "123456" typed by a nurse matches "0123456" in the registry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationNumber(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationNumberError {
    #[error("registration number must be 1 to 8 digits 0-9")]
    Format,
    #[error("registration number must not be zero")]
    Zero,
}

impl RegistrationNumber {
    pub fn parse(text: &str) -> Result<Self, RegistrationNumberError> {
        if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegistrationNumberError::Format);
        }
        match text.parse::<u32>() {
            Ok(0) => Err(RegistrationNumberError::Zero),
            Ok(n) => Ok(Self(n)),
            Err(_) => Err(RegistrationNumberError::Format),
        }
    }
    pub fn new(n: u32) -> Option<Self> {
        (1..=99_999_999).contains(&n).then_some(Self(n))
    }
    pub fn value(self) -> u32 {
        self.0
    }
    pub fn canonical(self) -> String {
        format!("{:07}", self.0)
    }
}

impl std::fmt::Debug for RegistrationNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistrationNumber({:07})", self.0)
    }
}
impl std::fmt::Display for RegistrationNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:07}", self.0)
    }
}
impl Serialize for RegistrationNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}
impl<'de> Deserialize<'de> for RegistrationNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Licence status in the registry (資格管理簿).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceStatus {
    Active,
    Lapsed,
    Suspended,
    Revoked,
    Deceased,
}

impl LicenceStatus {
    pub const ALL: [Self; 5] = [Self::Active, Self::Lapsed, Self::Suspended, Self::Revoked, Self::Deceased];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Lapsed => "lapsed",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Deceased => "deceased",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Sex as coded by ISO/IEC 5218 (the registry's column): 0 unknown, 1 male, 2 female, 9 not applicable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sex(u8);

impl Sex {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "0" => Some(Self(0)),
            "1" => Some(Self(1)),
            "2" => Some(Self(2)),
            "9" => Some(Self(9)),
            _ => None,
        }
    }
    pub fn code(self) -> i16 {
        i16::from(self.0)
    }
}

/// Name checks shared by imports and web forms.
pub struct PersonName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than 50 characters")]
    TooLong,
    #[error("contains a control character")]
    Control,
    #[error("must be written in katakana")]
    NotKatakana,
}

impl PersonName {
    pub const MAX_CHARS: usize = 50;

    pub fn check(name: &str) -> Result<(), NameError> {
        if name.trim().is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(NameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        Ok(())
    }

    /// Full-width katakana (including ー, ・ and the ideographic space).
    pub fn check_kana(kana: &str) -> Result<(), NameError> {
        Self::check(kana)?;
        if !kana.chars().all(|c| ('\u{30A1}'..='\u{30FF}').contains(&c) || c == '\u{3000}') {
            return Err(NameError::NotKatakana);
        }
        Ok(())
    }

    /// Comparison form for matching a typed name against the registry: [`crate::normalize::name`],
    /// so width (full-width letters, half-width katakana) and white space of any width do not count.
    pub fn normalize(name: &str) -> String {
        crate::normalize::name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_numbers_have_one_canonical_form() {
        assert_eq!(
            RegistrationNumber::parse("123456").unwrap(),
            RegistrationNumber::parse("0123456").unwrap()
        );
        assert_eq!(RegistrationNumber::parse("123456").unwrap().canonical(), "0123456");
        assert_eq!(RegistrationNumber::parse("12345678").unwrap().canonical(), "12345678");
        assert_eq!(RegistrationNumber::parse(""), Err(RegistrationNumberError::Format));
        assert_eq!(RegistrationNumber::parse("123456789"), Err(RegistrationNumberError::Format));
        assert_eq!(RegistrationNumber::parse("12a"), Err(RegistrationNumberError::Format));
        assert_eq!(RegistrationNumber::parse("-1"), Err(RegistrationNumberError::Format));
        assert_eq!(RegistrationNumber::parse("0000"), Err(RegistrationNumberError::Zero));
    }

    #[test]
    fn statuses_and_sex_codes() {
        for s in LicenceStatus::ALL {
            assert_eq!(LicenceStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(LicenceStatus::parse("Active"), None);
        assert_eq!(Sex::parse("2").map(Sex::code), Some(2));
        assert_eq!(Sex::parse("3"), None);
    }

    #[test]
    fn names_and_kana() {
        assert_eq!(PersonName::check("山田"), Ok(()));
        assert_eq!(PersonName::check("  "), Err(NameError::Empty));
        assert_eq!(PersonName::check("a\u{7}"), Err(NameError::Control));
        assert_eq!(PersonName::check(&"あ".repeat(51)), Err(NameError::TooLong));
        assert_eq!(PersonName::check_kana("ヤマダ"), Ok(()));
        assert_eq!(PersonName::check_kana("やまだ"), Err(NameError::NotKatakana));
        assert_eq!(PersonName::check_kana("ﾔﾏﾀﾞ"), Err(NameError::NotKatakana));
        assert_eq!(PersonName::normalize(" 山田　花子 "), "山田花子");
    }
}
