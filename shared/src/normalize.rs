//! Input normalisation in one place, for forms, staff search and bulk upload alike.
//!
//! People type the same thing in many ways: a registration number in full-width digits
//! (「０１２３４５６」), a name with an ideographic space or none (「伊藤　裕子」「伊藤裕子」), a reading in
//! hiragana, katakana or the half-width katakana of older systems (「いとう」「イトウ」「ｲﾄｳ」). If every
//! form, search box and importer cleaned input its own way, the same nurse would be found on one
//! page and not on the next, and a CSV row would be rejected where the form accepted it. So every
//! caller goes through these functions, and each one says exactly what it changes:
//!
//! * [`width`] is the base: it only undoes width differences (full-width ASCII, half-width
//!   katakana, the ideographic space, dash look-alikes) and never removes a character.
//! * [`name`], [`kana`], [`digits`], [`email`] and [`search_key`] build on it for one kind of field.
//!
//! Validation (what is allowed) is not done here: these functions never reject input, so a
//! validator sees the normalised value and can say precisely what is wrong with it
//! (see `validation`).

/// Full-width katakana for the half-width katakana U+FF66 (ｦ) to U+FF9D (ﾝ), in code-point order.
const HALF_WIDTH_KATAKANA: [char; 56] = [
    'ヲ', 'ァ', 'ィ', 'ゥ', 'ェ', 'ォ', 'ャ', 'ュ', 'ョ', 'ッ', 'ー', 'ア', 'イ', 'ウ', 'エ', 'オ', 'カ',
    'キ', 'ク', 'ケ', 'コ', 'サ', 'シ', 'ス', 'セ', 'ソ', 'タ', 'チ', 'ツ', 'テ', 'ト', 'ナ', 'ニ', 'ヌ',
    'ネ', 'ノ', 'ハ', 'ヒ', 'フ', 'ヘ', 'ホ', 'マ', 'ミ', 'ム', 'メ', 'モ', 'ヤ', 'ユ', 'ヨ', 'ラ', 'リ',
    'ル', 'レ', 'ロ', 'ワ', 'ン',
];

/// Distance from a hiragana to its katakana (あ U+3042 → ア U+30A2).
const HIRAGANA_TO_KATAKANA: u32 = 0x60;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Dakuten: ﾞ (half-width) or U+3099 (combining, as in decomposed text from macOS).
    Voiced,
    /// Handakuten: ﾟ (half-width) or U+309A (combining).
    SemiVoiced,
}

fn mark_of(c: char) -> Option<Mark> {
    match c {
        '\u{FF9E}' | '\u{3099}' => Some(Mark::Voiced),
        '\u{FF9F}' | '\u{309A}' => Some(Mark::SemiVoiced),
        _ => None,
    }
}

/// The one character for a kana followed by a (semi-)voiced mark: カ+ﾞ → ガ, ハ+ﾟ → パ, ウ+ﾞ → ヴ,
/// ワ+ﾞ → ヷ; hiragana likewise (か+゙ → が). `None` when the pair has no single character.
fn compose(base: char, mark: Mark) -> Option<char> {
    let code = u32::from(base);
    let hiragana = ('\u{3041}'..='\u{3096}').contains(&base);
    let kata = if hiragana { code + HIRAGANA_TO_KATAKANA } else { code };
    let voiced_plus_one = matches!(
        kata,
        0x30AB | 0x30AD | 0x30AF | 0x30B1 | 0x30B3 // カキクケコ
        | 0x30B5 | 0x30B7 | 0x30B9 | 0x30BB | 0x30BD // サシスセソ
        | 0x30BF | 0x30C1 | 0x30C4 | 0x30C6 | 0x30C8
    ); // タチツテト
    let ha_row = matches!(kata, 0x30CF | 0x30D2 | 0x30D5 | 0x30D8 | 0x30DB); // ハヒフヘホ
    let composed = match (mark, kata) {
        (Mark::Voiced, _) if voiced_plus_one || ha_row => kata + 1,
        (Mark::SemiVoiced, _) if ha_row => kata + 2,
        (Mark::Voiced, 0x30A6) => 0x30F4, // ウ → ヴ (う → ゔ)
        (Mark::Voiced, 0x30EF..=0x30F2) if !hiragana => kata + 8, // ワヰヱヲ → ヷヸヹヺ
        (Mark::Voiced, 0x30FD) => 0x30FE, // ヽ → ヾ
        (Mark::Voiced, 0x309D) => 0x309E, // ゝ → ゞ
        _ => return None,
    };
    let composed = if hiragana { composed - HIRAGANA_TO_KATAKANA } else { composed };
    char::from_u32(composed)
}

/// Undoes width differences and nothing else; no character is removed.
///
/// * Full-width ASCII (U+FF01–U+FF5E, e.g. 「０」「Ａ」「＠」「－」) becomes ASCII.
/// * The ideographic space U+3000 becomes a space.
/// * Half-width katakana (U+FF61–U+FF9F) becomes full-width, and a following voiced or semi-voiced
///   mark is composed into one character (ｶﾞ → ガ, ﾊﾟ → パ, ｳﾞ → ヴ); so is a decomposed mark
///   (U+3099, U+309A) after any kana, as found in text copied from macOS. A mark with nothing to
///   compose with stays a visible mark (ﾞ → ゛, ﾟ → ゜).
/// * Dash look-alikes typed in numbers (U+2010–U+2013, U+2212 「−」) become '-'. The long vowel mark
///   「ー」 is left alone: it belongs to kana (「ナース」), and guessing when it meant a hyphen is for the
///   caller ([`digits`] does not guess either).
///
/// `width(width(s)) == width(s)` for every string.
pub fn width(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if let Some(mark) = mark_of(c)
            && let Some(composed) = out.chars().next_back().and_then(|prev| compose(prev, mark))
        {
            out.pop();
            out.push(composed);
            continue;
        }
        let mapped = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{2010}'..='\u{2013}' | '\u{2212}' => '-',
            '\u{FF61}' => '。',
            '\u{FF62}' => '「',
            '\u{FF63}' => '」',
            '\u{FF64}' => '、',
            '\u{FF65}' => '・',
            '\u{FF66}'..='\u{FF9D}' => HALF_WIDTH_KATAKANA[(u32::from(c) - 0xFF66) as usize],
            '\u{FF9E}' => '゛',
            '\u{FF9F}' => '゜',
            _ => c,
        };
        out.push(mapped);
    }
    out
}

/// A person's name for storing and comparing: [`width`], then every white-space character removed,
/// so 「伊藤 裕子」「伊藤　裕子」「伊藤裕子」 are the same name.
pub fn name(s: &str) -> String {
    width(s).chars().filter(|c| !c.is_whitespace()).collect()
}

/// A reading (フリガナ): [`name`], then hiragana turned into katakana, so 「いとう」「ｲﾄｳ」「イトウ」 all
/// give 「イトウ」. Whether the result is all katakana is for [`is_katakana`] to say.
pub fn kana(s: &str) -> String {
    name(s).chars().map(hiragana_to_katakana).collect()
}

fn hiragana_to_katakana(c: char) -> char {
    match c {
        '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' => {
            char::from_u32(u32::from(c) + HIRAGANA_TO_KATAKANA).unwrap_or(c)
        }
        _ => c,
    }
}

/// Dashes people type between the parts of a number: in a number field, the kana long mark ー
/// (what a Japanese keyboard gives for the '-' key in kana mode), ― and the minus signs are the
/// hyphen they look like.
fn is_number_dash(c: char) -> bool {
    matches!(c, '-' | 'ー' | '―' | 'ｰ')
}

/// A number typed with separators (registration number, postal code, receipt number): [`width`],
/// then white space and dashes removed. Anything else stays, so the validator can reject 「12a」
/// instead of this function quietly turning it into something else.
pub fn digits(s: &str) -> String {
    width(s).chars().filter(|&c| !c.is_whitespace() && !is_number_dash(c)).collect()
}

/// A phone number as typed: [`width`], trimmed, white space removed, and every dash (ー, ―) made
/// the hyphen it stands for: 「０９０ー１２３４ー５６７８」 → `090-1234-5678`.
pub fn phone(s: &str) -> String {
    width(s).chars().filter(|c| !c.is_whitespace()).map(|c| if is_number_dash(c) { '-' } else { c }).collect()
}

/// はい/いいえ as forms and CSV files say it (also yes/no, true/false, 1/0, あり/なし, 有/無), in
/// any width and case; `None` for anything else.
pub fn yes_no(s: &str) -> Option<bool> {
    match width(s.trim()).trim().to_lowercase().as_str() {
        "yes" | "true" | "1" | "はい" | "あり" | "有" => Some(true),
        "no" | "false" | "0" | "いいえ" | "なし" | "無" => Some(false),
        _ => None,
    }
}

/// An e-mail address: [`width`], surrounding white space trimmed, and the domain (after the last
/// '@') in lower case. The local part keeps its case: a mail server may treat it as case-sensitive.
pub fn email(s: &str) -> String {
    let w = width(s);
    let trimmed = w.trim();
    match trimmed.rfind('@') {
        Some(at) => format!("{}@{}", &trimmed[..at], trimmed[at + 1..].to_lowercase()),
        None => trimmed.to_owned(),
    }
}

/// The key staff search compares: [`kana`], then ASCII lower case, so one key matches kanji names,
/// readings in either kana, e-mail fragments and numbers typed in any width. Apply it to both the
/// query and the stored value.
pub fn search_key(s: &str) -> String {
    let mut key = kana(s);
    key.make_ascii_lowercase();
    key
}

/// True for a non-empty string of full-width katakana only (U+30A1–U+30FA), with 「ー」, 「・」 and
/// the iteration marks 「ヽ」「ヾ」. Spaces are not katakana: check the result of [`kana`].
pub fn is_katakana(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| ('\u{30A1}'..='\u{30FE}').contains(&c))
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn numbers_typed_with_kana_dashes() {
        assert_eq!(digits("１２３ー４５６ー７８９"), "123456789");
        assert_eq!(phone("０９０ー１２３４ー５６７８"), "090-1234-5678");
        assert_eq!(phone(" 06 6000 0000 "), "0660000000");
        assert_eq!(yes_no("ＹＥＳ"), Some(true));
        assert_eq!(yes_no(" いいえ "), Some(false));
        assert_eq!(yes_no("たぶん"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn width_maps_full_width_ascii_and_spaces() {
        assert_eq!(width("０１２３ＡＢＣｚ＠．－＋"), "0123ABCz@.-+");
        assert_eq!(width("伊藤　裕子"), "伊藤 裕子");
        assert_eq!(width("〒１００‐０００１"), "〒100-0001");
        assert_eq!(width("03\u{2212}1234\u{2013}5678\u{2011}9\u{2012}0"), "03-1234-5678-9-0");
        // The long vowel mark is kana, not a hyphen.
        assert_eq!(width("ナース　０９０ー"), "ナース 090ー");
        assert_eq!(width("already plain 漢字 ひらがな"), "already plain 漢字 ひらがな");
    }

    #[test]
    fn width_composes_half_width_katakana() {
        assert_eq!(width("ｲﾄｳ ﾕｳｺ"), "イトウ ユウコ");
        assert_eq!(width("ｶﾞｷﾞｸﾞｹﾞｺﾞ"), "ガギグゲゴ");
        assert_eq!(width("ﾊﾟﾋﾟﾌﾟﾍﾟﾎﾟﾊﾞ"), "パピプペポバ");
        assert_eq!(width("ｳﾞｧｲｵﾘﾝ"), "ヴァイオリン");
        assert_eq!(width("ﾜﾞｦﾞ"), "ヷヺ");
        assert_eq!(width("ﾅｰｽ･ｾﾝﾀｰ｡｢ﾃｽﾄ｣､"), "ナース・センター。「テスト」、");
        // A mark with nothing to compose with stays visible.
        assert_eq!(width("ﾅﾞﾏﾟﾞ"), "ナ゛マ゜゛");
        assert_eq!(width("ﾞｱ"), "゛ア");
        // Decomposed kana (macOS) and a full-width base with a half-width mark.
        assert_eq!(width("カ\u{3099}か\u{3099}ハ\u{309A}う\u{3099}"), "ガがパゔ");
        assert_eq!(width("カﾞ"), "ガ");
    }

    #[test]
    fn names_ignore_spaces_of_any_width() {
        assert_eq!(name("伊藤 裕子"), "伊藤裕子");
        assert_eq!(name("伊藤　裕子"), "伊藤裕子");
        assert_eq!(name(" 伊藤裕子\t"), "伊藤裕子");
        assert_eq!(name("ｲﾄｳ ﾕｳｺ"), "イトウユウコ");
    }

    #[test]
    fn kana_is_katakana_from_any_input() {
        for typed in ["いとう", "ｲﾄｳ", "イトウ", "い と う", "いトｳ"] {
            assert_eq!(kana(typed), "イトウ", "{typed}");
        }
        assert_eq!(kana("がっこう ゝゞ"), "ガッコウヽヾ");
        assert_eq!(kana("ゔぁ"), "ヴァ");
        assert!(is_katakana(&kana("さとう　はなこ")));
        assert!(!is_katakana(&kana("佐藤")));
    }

    #[test]
    fn digits_drop_separators_only() {
        assert_eq!(digits("０９０－１２３４－５６７８"), "09012345678");
        assert_eq!(digits(" 100-0001 "), "1000001");
        assert_eq!(digits("１２３　４５６"), "123456");
        assert_eq!(digits("03\u{2212}1234"), "031234");
        assert_eq!(digits("12a"), "12a");
        assert_eq!(digits("〒100"), "〒100");
    }

    #[test]
    fn email_lowercases_the_domain_only() {
        assert_eq!(email(" Hanako.Sato@Example.JP "), "Hanako.Sato@example.jp");
        assert_eq!(email("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ　"), "hanako@example.jp");
        assert_eq!(email("NoAt"), "NoAt");
        assert_eq!(email(""), "");
    }

    #[test]
    fn search_keys_match_across_widths_and_kana() {
        assert_eq!(search_key("ｲﾄｳ"), search_key("いとう"));
        assert_eq!(search_key("伊藤　裕子"), search_key("伊藤裕子"));
        assert_eq!(search_key("Ｈａｎａｋｏ@Example.jp"), "hanako@example.jp");
        assert_eq!(search_key("０１２３"), "0123");
    }

    #[test]
    fn katakana_check() {
        assert!(is_katakana("イトウ"));
        assert!(is_katakana("ナース・センター"));
        assert!(is_katakana("ヽヾヴヷヺァ"));
        assert!(!is_katakana(""));
        assert!(!is_katakana("イトウ ユウコ"));
        assert!(!is_katakana("いとう"));
        assert!(!is_katakana("ｲﾄｳ"));
        assert!(!is_katakana("ヿ"));
    }

    /// Half-width katakana, each optionally followed by ﾞ where a voiced form exists (as typed on a
    /// half-width keyboard), and ﾟ likewise.
    fn half_width_katakana() -> impl Strategy<Value = String> {
        let unit = (0xFF66u32..=0xFF9D, 0u8..3).prop_map(|(code, mark)| {
            let c = char::from_u32(code).unwrap_or('ｱ');
            let full = HALF_WIDTH_KATAKANA[(code - 0xFF66) as usize];
            let mut s = c.to_string();
            if mark == 1 && compose(full, Mark::Voiced).is_some() {
                s.push('ﾞ');
            } else if mark == 2 && compose(full, Mark::SemiVoiced).is_some() {
                s.push('ﾟ');
            }
            s
        });
        proptest::collection::vec(unit, 1..16).prop_map(|units| units.concat())
    }

    proptest! {
        #[test]
        fn full_width_digits_equal_half_width(ascii in "[0-9]{0,20}") {
            let full: String = ascii
                .chars()
                .map(|c| char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c))
                .collect();
            prop_assert_eq!(digits(&full), digits(&ascii));
            prop_assert_eq!(width(&full), width(&ascii));
            prop_assert_eq!(search_key(&full), search_key(&ascii));
            prop_assert_eq!(digits(&full), ascii);
        }

        #[test]
        fn half_width_katakana_becomes_katakana(s in half_width_katakana()) {
            let w = width(&s);
            prop_assert!(is_katakana(&w), "{} -> {}", s, w);
            prop_assert!(is_katakana(&kana(&s)));
            // Each unit becomes exactly one character.
            let marks = s.chars().filter(|&c| c == 'ﾞ' || c == 'ﾟ').count();
            prop_assert_eq!(w.chars().count(), s.chars().count() - marks);
        }

        #[test]
        fn width_is_idempotent(s in any::<String>()) {
            let once = width(&s);
            prop_assert_eq!(width(&once), once);
        }

        #[test]
        fn width_is_idempotent_on_japanese(s in "[\u{3000}-\u{30FF}\u{FF01}-\u{FF9F}\u{2010}-\u{2013}\u{2212} a-z0-9-]{0,24}") {
            let once = width(&s);
            prop_assert_eq!(width(&once), once.clone());
            prop_assert_eq!(kana(&once), kana(&s));
        }

        #[test]
        fn hiragana_and_katakana_give_the_same_kana(codes in proptest::collection::vec(0x3041u32..=0x3096, 0..16)) {
            let hiragana: String = codes.iter().filter_map(|&c| char::from_u32(c)).collect();
            let katakana: String = codes.iter().filter_map(|&c| char::from_u32(c + 0x60)).collect();
            prop_assert_eq!(kana(&hiragana), kana(&katakana));
            prop_assert_eq!(kana(&hiragana), katakana);
        }
    }
}
