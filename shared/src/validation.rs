//! Field-level validation results shared by every form and API that checks input: one wrong field
//! and what to tell the person, in Japanese, so pages can show it next to the field.
//!
//! The `required_*` helpers are the checks most forms repeat (a name, a reading, an e-mail address,
//! a number): each normalises the raw input through `normalize` and returns the value to store, so
//! that every form accepts the same spellings and words the same mistake the same way.

use crate::normalize;

/// One wrong field, with what to tell the person in Japanese.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// A required name (person, facility): [`normalize::name`], then not empty, no control characters,
/// at most `max_chars` characters.
pub fn required_name(
    field: &'static str,
    label: &str,
    raw: &str,
    max_chars: usize,
) -> Result<String, FieldError> {
    let value = normalize::name(raw);
    if value.is_empty() {
        return Err(FieldError::new(field, format!("{label}を入力してください。")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, format!("{label}に使えない文字が含まれています。")));
    }
    too_long(field, label, &value, max_chars)?;
    Ok(value)
}

/// A required reading (フリガナ): [`normalize::kana`] (hiragana and half-width katakana become
/// katakana, spaces go), then not empty, at most `max_chars` characters, katakana only.
pub fn required_kana(
    field: &'static str,
    label: &str,
    raw: &str,
    max_chars: usize,
) -> Result<String, FieldError> {
    let value = normalize::kana(raw);
    if value.is_empty() {
        return Err(FieldError::new(field, format!("{label}を入力してください。")));
    }
    too_long(field, label, &value, max_chars)?;
    if !normalize::is_katakana(&value) {
        return Err(FieldError::new(field, format!("{label}はカタカナで入力してください。")));
    }
    Ok(value)
}

/// The longest e-mail address accepted (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;

/// A required e-mail address: [`normalize::email`], then a simple shape check (one '@', something
/// before it, a domain with a dot inside, no spaces). Whether the address receives mail is for a
/// confirmation mail to find out, not for a pattern.
pub fn required_email(field: &'static str, label: &str, raw: &str) -> Result<String, FieldError> {
    let value = normalize::email(raw);
    if value.is_empty() {
        return Err(FieldError::new(field, format!("{label}を入力してください。")));
    }
    too_long(field, label, &value, EMAIL_MAX_CHARS)?;
    let shape_ok = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !shape_ok {
        return Err(FieldError::new(
            field,
            format!("{label}の形式が正しくありません（例: hanako@example.jp）。"),
        ));
    }
    Ok(value)
}

/// A required number typed with or without separators (registration number, postal code, phone
/// number): [`normalize::digits`], then ASCII digits only, `min_len` to `max_len` of them.
pub fn required_digits(
    field: &'static str,
    label: &str,
    raw: &str,
    min_len: usize,
    max_len: usize,
) -> Result<String, FieldError> {
    let value = normalize::digits(raw);
    if value.is_empty() {
        return Err(FieldError::new(field, format!("{label}を入力してください。")));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(field, format!("{label}は数字で入力してください。")));
    }
    if !(min_len..=max_len).contains(&value.len()) {
        let length =
            if min_len == max_len { format!("{min_len}桁") } else { format!("{min_len}〜{max_len}桁") };
        return Err(FieldError::new(field, format!("{label}は{length}の数字で入力してください。")));
    }
    Ok(value)
}

fn too_long(field: &'static str, label: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(field, format!("{label}は{max_chars}文字以内で入力してください。")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T>(r: Result<T, FieldError>) -> String {
        match r {
            Ok(_) => String::new(),
            Err(e) => {
                assert_eq!(e.field, "f");
                e.message
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(required_name("f", "氏名", " 伊藤　裕子 ", 10), Ok("伊藤裕子".to_owned()));
        assert_eq!(required_name("f", "氏名", "ｲﾄｳ", 10), Ok("イトウ".to_owned()));
        assert_eq!(message(required_name("f", "氏名", " 　", 10)), "氏名を入力してください。");
        assert_eq!(message(required_name("f", "氏名", "伊藤裕子", 3)), "氏名は3文字以内で入力してください。");
        assert_eq!(
            message(required_name("f", "氏名", "伊藤\u{7}", 10)),
            "氏名に使えない文字が含まれています。"
        );
    }

    #[test]
    fn readings() {
        assert_eq!(required_kana("f", "フリガナ", "いとう　ゆうこ", 20), Ok("イトウユウコ".to_owned()));
        assert_eq!(required_kana("f", "フリガナ", "ｲﾄｳ ﾕｳｺ", 20), Ok("イトウユウコ".to_owned()));
        assert_eq!(message(required_kana("f", "フリガナ", "", 20)), "フリガナを入力してください。");
        assert_eq!(
            message(required_kana("f", "フリガナ", "イトウ", 2)),
            "フリガナは2文字以内で入力してください。"
        );
        assert_eq!(
            message(required_kana("f", "フリガナ", "伊藤", 20)),
            "フリガナはカタカナで入力してください。"
        );
        assert_eq!(
            message(required_kana("f", "フリガナ", "Ito", 20)),
            "フリガナはカタカナで入力してください。"
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            required_email("f", "メールアドレス", " Hanako@Example.JP "),
            Ok("Hanako@example.jp".to_owned())
        );
        assert_eq!(
            required_email("f", "メールアドレス", "ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ"),
            Ok("hanako@example.jp".to_owned())
        );
        assert_eq!(
            message(required_email("f", "メールアドレス", "　")),
            "メールアドレスを入力してください。"
        );
        let long = format!("{}@example.jp", "a".repeat(250));
        assert_eq!(
            message(required_email("f", "メールアドレス", &long)),
            "メールアドレスは254文字以内で入力してください。"
        );
        let bad = "メールアドレスの形式が正しくありません（例: hanako@example.jp）。";
        for raw in [
            "hanako",
            "@example.jp",
            "hanako@example",
            "a@b@example.jp",
            "hana ko@example.jp",
            "a@.jp",
            "a@jp.",
            "a@b..jp",
        ] {
            assert_eq!(message(required_email("f", "メールアドレス", raw)), bad, "{raw}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(required_digits("f", "郵便番号", "１００－０００１", 7, 7), Ok("1000001".to_owned()));
        assert_eq!(required_digits("f", "電話番号", "090 1234 5678", 10, 11), Ok("09012345678".to_owned()));
        assert_eq!(message(required_digits("f", "郵便番号", " - ", 7, 7)), "郵便番号を入力してください。");
        assert_eq!(
            message(required_digits("f", "郵便番号", "〒100", 7, 7)),
            "郵便番号は数字で入力してください。"
        );
        assert_eq!(
            message(required_digits("f", "郵便番号", "100", 7, 7)),
            "郵便番号は7桁の数字で入力してください。"
        );
        assert_eq!(
            message(required_digits("f", "電話番号", "0901234", 10, 11)),
            "電話番号は10〜11桁の数字で入力してください。"
        );
    }
}
