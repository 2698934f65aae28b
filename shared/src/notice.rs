//! Notice kinds (DESIGN flow 2). Notices are append-only; the latest by effective date decides a
//! nurse's status (`deciding`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::Municipality;
use crate::licence::PersonName;
use crate::validation::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// 離職届: date left, reason, wish to return.
    Separation,
    /// 就業状況: employed or not, workplace type and municipality, weekly hours.
    EmploymentStatus,
    /// 変更届: name, address, contact.
    Change,
}

impl NoticeKind {
    pub const ALL: [Self; 3] = [Self::Separation, Self::EmploymentStatus, Self::Change];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Separation => "separation",
            Self::EmploymentStatus => "employment_status",
            Self::Change => "change",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
    pub fn title_ja(self) -> &'static str {
        match self {
            Self::Separation => "離職届",
            Self::EmploymentStatus => "就業状況届",
            Self::Change => "変更届",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeparationReason {
    Childcare,
    FamilyCare,
    OwnHealth,
    Marriage,
    Relocation,
    CareerChange,
    Retirement,
    Other,
}

impl SeparationReason {
    pub const ALL: [Self; 8] = [
        Self::Childcare,
        Self::FamilyCare,
        Self::OwnHealth,
        Self::Marriage,
        Self::Relocation,
        Self::CareerChange,
        Self::Retirement,
        Self::Other,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Childcare => "出産・育児",
            Self::FamilyCare => "家族の介護",
            Self::OwnHealth => "本人の健康上の理由",
            Self::Marriage => "結婚",
            Self::Relocation => "転居",
            Self::CareerChange => "他分野への転職",
            Self::Retirement => "定年・退職",
            Self::Other => "その他",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkplaceType {
    Hospital,
    Clinic,
    VisitingNursing,
    CareFacility,
    PublicHealth,
    School,
    Company,
    Other,
}

impl WorkplaceType {
    pub const ALL: [Self; 8] = [
        Self::Hospital,
        Self::Clinic,
        Self::VisitingNursing,
        Self::CareFacility,
        Self::PublicHealth,
        Self::School,
        Self::Company,
        Self::Other,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Hospital => "病院",
            Self::Clinic => "診療所",
            Self::VisitingNursing => "訪問看護ステーション",
            Self::CareFacility => "介護施設",
            Self::PublicHealth => "保健所・市区町村",
            Self::School => "学校・養成所",
            Self::Company => "企業",
            Self::Other => "その他",
        }
    }
}

/// The snake_case code of a unit enum (as stored in notice bodies and used in forms and CSV).
pub fn code_of<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The unit enum value with this code, if any.
/// A separation reason by code (`childcare`) or by its Japanese label (`出産・育児`), as forms and
/// employers' files give it.
pub fn parse_reason(text: &str) -> Option<SeparationReason> {
    let text = crate::normalize::width(text.trim());
    let text = text.trim();
    from_code(text).or_else(|| SeparationReason::ALL.into_iter().find(|r| r.label_ja() == text))
}

pub fn from_code<T: serde::de::DeserializeOwned>(code: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(code.trim().to_string())).ok()
}

/// What a notice says, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoticeBody {
    Separation {
        left_on: NaiveDate,
        reason: SeparationReason,
        wish_to_return: bool,
        /// When she would like to return, in her words (e.g. 「来年4月ごろ」).
        return_when: Option<String>,
    },
    EmploymentStatus {
        employed: bool,
        workplace_type: Option<WorkplaceType>,
        workplace_lgcode: Option<String>,
        weekly_hours: Option<u8>,
        /// The day this status holds from (e.g. the first day at a new job); without it, the day
        /// the notice was filed. Notices are judged by this date (issue #7).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_of: Option<NaiveDate>,
    },
    Change {
        family_name: Option<String>,
        given_name: Option<String>,
        address: Option<String>,
        email: Option<String>,
        phone: Option<String>,
    },
}

impl NoticeBody {
    /// The day the notice speaks for (離職日, or the employment status's date, else the day it
    /// was filed); `None` for a change notice, which says nothing about work. The latest notice
    /// by this date decides whether she works; ties go to the one filed later.
    pub fn effective_on(&self, filed_on: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::Separation { left_on, .. } => Some(*left_on),
            Self::EmploymentStatus { as_of, .. } => Some(as_of.unwrap_or(filed_on)),
            Self::Change { .. } => None,
        }
    }

    /// Whether the notice says she works as a nurse (`None` for a change notice).
    pub fn says_working(&self) -> Option<bool> {
        match self {
            Self::Separation { .. } => Some(false),
            Self::EmploymentStatus { employed, .. } => Some(*employed),
            Self::Change { .. } => None,
        }
    }

    pub fn kind(&self) -> NoticeKind {
        match self {
            Self::Separation { .. } => NoticeKind::Separation,
            Self::EmploymentStatus { .. } => NoticeKind::EmploymentStatus,
            Self::Change { .. } => NoticeKind::Change,
        }
    }

    /// Checks the content; every problem comes back with a Japanese message.
    pub fn validate(&self, today: NaiveDate) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        match self {
            Self::Separation { left_on, return_when, .. } => {
                if *left_on > today {
                    errors.push(FieldError::new("left_on", "離職日に未来の日付は指定できません。"));
                }
                if return_when.as_ref().is_some_and(|w| w.chars().count() > 100) {
                    errors.push(FieldError::new(
                        "return_when",
                        "復職希望時期は100文字以内で入力してください。",
                    ));
                }
            }
            Self::EmploymentStatus { employed, workplace_type, workplace_lgcode, weekly_hours, as_of } => {
                if as_of.is_some_and(|d| d > today) {
                    errors.push(FieldError::new("as_of", "就業状況の日付に未来の日付は指定できません。"));
                }
                if *employed && workplace_type.is_none() {
                    errors.push(FieldError::new(
                        "workplace_type",
                        "就業中の場合は勤務先の種類を選んでください。",
                    ));
                }
                if let Some(code) = workplace_lgcode
                    && Municipality::by_lgcode(code).is_none()
                {
                    errors.push(FieldError::new(
                        "workplace_lgcode",
                        "勤務先の市区町村コードが正しくありません。",
                    ));
                }
                if weekly_hours.is_some_and(|h| h > 80) {
                    errors
                        .push(FieldError::new("weekly_hours", "週の勤務時間は0〜80時間で入力してください。"));
                }
                if !*employed
                    && (workplace_type.is_some() || workplace_lgcode.is_some() || weekly_hours.is_some())
                {
                    errors.push(FieldError::new(
                        "employed",
                        "就業していない場合は勤務先の情報を入力しないでください。",
                    ));
                }
            }
            Self::Change { family_name, given_name, address, email, phone } => {
                let values = [family_name, given_name, address, email, phone];
                if values.iter().all(|v| v.is_none()) {
                    errors.push(FieldError::new("change", "変更する項目を1つ以上入力してください。"));
                }
                for (field, value) in [("family_name", family_name), ("given_name", given_name)] {
                    if let Some(v) = value
                        && PersonName::check(v).is_err()
                    {
                        errors.push(FieldError::new(field, "氏名は1〜50文字で入力してください。"));
                    }
                }
                if address.as_ref().is_some_and(|a| a.trim().is_empty() || a.chars().count() > 200) {
                    errors.push(FieldError::new("address", "住所は1〜200文字で入力してください。"));
                }
                if email.as_ref().is_some_and(|e| !looks_like_email(e)) {
                    errors.push(FieldError::new("email", "メールアドレスの形式が正しくありません。"));
                }
                if phone.as_ref().is_some_and(|p| !looks_like_phone(p)) {
                    errors.push(FieldError::new("phone", "電話番号は数字とハイフンで入力してください。"));
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// One line in Japanese for lists (staff pages, her own page).
    /// Each field as a confirmation page lists it: (label, value in Japanese).
    pub fn details_ja(&self) -> Vec<(&'static str, String)> {
        let yes_no = |b: bool, yes: &str, no: &str| if b { yes.to_string() } else { no.to_string() };
        match self {
            Self::Separation { left_on, reason, wish_to_return, return_when } => {
                let mut lines = vec![
                    ("離職日", crate::time::date_ja(*left_on)),
                    ("離職の理由", reason.label_ja().to_string()),
                    ("復職の希望", yes_no(*wish_to_return, "希望する", "希望しない")),
                ];
                lines.extend(return_when.clone().map(|w| ("復職を希望する時期", w)));
                lines
            }
            Self::EmploymentStatus { employed, workplace_type, workplace_lgcode, weekly_hours, as_of } => {
                let mut lines =
                    vec![("看護職としての就業", yes_no(*employed, "就業している", "就業していない"))];
                lines.extend(as_of.map(|d| ("この状況の日付", crate::time::date_ja(d))));
                lines.extend(workplace_type.map(|t| ("勤務先の種類", t.label_ja().to_string())));
                lines.extend(
                    workplace_lgcode
                        .as_deref()
                        .and_then(Municipality::by_lgcode)
                        .map(|m| ("勤務先の市区町村", m.name_ja.clone())),
                );
                lines.extend(weekly_hours.map(|h| ("週の勤務時間", format!("{h}時間"))));
                lines
            }
            Self::Change { family_name, given_name, address, email, phone } => [
                ("新しい姓", family_name),
                ("新しい名", given_name),
                ("新しい住所", address),
                ("新しいメールアドレス", email),
                ("新しい電話番号", phone),
            ]
            .into_iter()
            .filter_map(|(label, value)| value.clone().map(|v| (label, v)))
            .collect(),
        }
    }

    pub fn summary_ja(&self) -> String {
        match self {
            Self::Separation { left_on, reason, wish_to_return, return_when } => {
                let wish = match (wish_to_return, return_when) {
                    (true, Some(when)) => format!("復職希望あり（{when}）"),
                    (true, None) => "復職希望あり".to_string(),
                    (false, _) => "復職希望なし".to_string(),
                };
                format!("{} 離職（{}）、{wish}", crate::time::date_ja(*left_on), reason.label_ja())
            }
            Self::EmploymentStatus { employed: false, .. } => "就業していない".to_string(),
            Self::EmploymentStatus {
                employed: true, workplace_type, workplace_lgcode, weekly_hours, ..
            } => {
                let mut parts = vec!["就業中".to_string()];
                parts.extend(workplace_type.map(|t| t.label_ja().to_string()));
                parts.extend(
                    workplace_lgcode.as_deref().and_then(Municipality::by_lgcode).map(|m| m.name_ja.clone()),
                );
                parts.extend(weekly_hours.map(|h| format!("週{h}時間")));
                parts.join("、")
            }
            Self::Change { family_name, given_name, address, email, phone } => {
                let changed: Vec<&str> = [
                    (family_name.is_some(), "姓"),
                    (given_name.is_some(), "名"),
                    (address.is_some(), "住所"),
                    (email.is_some(), "メールアドレス"),
                    (phone.is_some(), "電話番号"),
                ]
                .into_iter()
                .filter_map(|(changed, label)| changed.then_some(label))
                .collect();
                format!("変更: {}", changed.join("、"))
            }
        }
    }
}

/// Which notice about work decides (issue #7: notices are judged by their effective date): the
/// latest by effective date (離職日, or the employment status's date, else the day filed), ties to
/// the one filed later. Items are (effective date, filed at, whatever the caller carries along);
/// `None` when there is none. The national server's latent rule and the node's pages both ask here.
pub fn deciding<T>(
    notices: impl IntoIterator<Item = (NaiveDate, chrono::NaiveDateTime, T)>,
) -> Option<(NaiveDate, chrono::NaiveDateTime, T)> {
    notices.into_iter().max_by_key(|(effective_on, filed_at, _)| (*effective_on, *filed_at))
}

pub fn looks_like_email(text: &str) -> bool {
    let text = text.trim();
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && text.len() <= 254
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

pub fn looks_like_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    (10..=11).contains(&digits) && text.chars().all(|c| c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(NoticeKind::Separation.title_ja(), "離職届");
        assert_eq!(NoticeKind::parse("resignation"), None);
    }

    fn day(s: &str) -> NaiveDate {
        crate::time::parse_date(s).unwrap()
    }

    #[test]
    fn bodies_are_checked_with_japanese_messages() {
        let today = day("2026-11-26");
        let future = NoticeBody::Separation {
            left_on: day("2027-01-01"),
            reason: SeparationReason::Childcare,
            wish_to_return: true,
            return_when: None,
        };
        let errors = future.validate(today).unwrap_err();
        assert_eq!(errors[0].field, "left_on");
        assert!(errors[0].message.contains("未来"));

        let employed_without_type = NoticeBody::EmploymentStatus {
            employed: true,
            workplace_type: None,
            workplace_lgcode: None,
            weekly_hours: None,
            as_of: None,
        };
        assert_eq!(employed_without_type.validate(today).unwrap_err()[0].field, "workplace_type");

        let bad_place = NoticeBody::EmploymentStatus {
            employed: true,
            workplace_type: Some(WorkplaceType::Hospital),
            workplace_lgcode: Some("999999".into()),
            weekly_hours: Some(90),
            as_of: None,
        };
        let fields: Vec<_> = bad_place.validate(today).unwrap_err().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["workplace_lgcode", "weekly_hours"]);

        let empty_change = NoticeBody::Change {
            family_name: None,
            given_name: None,
            address: None,
            email: None,
            phone: None,
        };
        assert_eq!(empty_change.validate(today).unwrap_err()[0].field, "change");
        let bad_contact = NoticeBody::Change {
            family_name: None,
            given_name: None,
            address: None,
            email: Some("hanako@".into()),
            phone: Some("03-12".into()),
        };
        let fields: Vec<_> = bad_contact.validate(today).unwrap_err().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["email", "phone"]);
    }

    #[test]
    fn bodies_round_trip_as_tagged_json_and_refuse_unknown_fields() {
        let body = NoticeBody::Separation {
            left_on: day("2026-03-31"),
            reason: SeparationReason::FamilyCare,
            wish_to_return: true,
            return_when: Some("来年4月ごろ".into()),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["kind"], "separation");
        assert_eq!(serde_json::from_value::<NoticeBody>(json).unwrap(), body);
        let extra = serde_json::json!({"kind": "change", "email": "a@b.jp", "salary": 1});
        assert!(serde_json::from_value::<NoticeBody>(extra).is_err());
    }

    #[test]
    fn contact_formats() {
        assert!(looks_like_email("hanako.yamada@example.jp"));
        assert!(!looks_like_email("hanako@example"));
        assert!(!looks_like_email("hana ko@example.jp"));
        assert!(looks_like_phone("090-1234-5678"));
        assert!(looks_like_phone("0312345678"));
        assert!(!looks_like_phone("090-1234"));
        assert!(!looks_like_phone("090 1234 5678"));
    }
}
