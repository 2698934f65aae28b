//! The notice form, shared by the nurse's page and the staff's paper entry: the same fields, the
//! same Japanese messages, the same page.

use askama::Template;
use ncf_shared::{Municipality, NoticeKind, Prefecture};
use serde::Deserialize;

use crate::error::FieldError;
use crate::notices::{NoticeBody, SeparationReason, WorkplaceType, code_of, from_code};

/// Every field of every kind, kept as typed so the page can show it again.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct NoticeForm {
    pub csrf: String,
    pub left_on: String,
    pub reason: String,
    pub wish_to_return: String,
    pub return_when: String,
    pub employed: String,
    pub workplace_type: String,
    pub workplace_lgcode: String,
    pub weekly_hours: String,
    /// The day the employment status holds from (empty: the day it is filed).
    pub as_of: String,
    pub family_name: String,
    pub given_name: String,
    pub address: String,
    pub email: String,
    pub phone: String,
    /// Staff entering a paper form: the day the center received it (受付日).
    pub received_on: String,
    /// The confirmation page's one-time token: its submit files the notice at most once.
    pub submission: String,
    /// Where the person is in 入力 → 確認 → 完了: empty or `edit` shows the form, `confirm` (the
    /// form's own button) shows what will be filed, `submit` (the confirmation's button) files it.
    pub step: String,
}

/// The notice form's fields in page order (for the error summary).
pub const NOTICE_FIELDS: [&str; 15] = [
    "received_on",
    "left_on",
    "reason",
    "wish_to_return",
    "return_when",
    "employed",
    "as_of",
    "workplace_type",
    "workplace_lgcode",
    "weekly_hours",
    "family_name",
    "given_name",
    "address",
    "email",
    "phone",
];

/// A fresh token for a confirmation page (see `NoticeForm::submission`).
pub fn new_submission() -> String {
    ncf_shared::secret::random_token(18)
}

/// Which page a notice form's post leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Edit,
    Confirm,
    Submit,
}

impl NoticeForm {
    pub fn step(&self) -> Step {
        match self.step.as_str() {
            "submit" => Step::Submit,
            "edit" => Step::Edit,
            _ => Step::Confirm,
        }
    }

    /// The fields as typed, carried through the confirmation page in hidden inputs.
    pub fn hidden_fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("left_on", &self.left_on),
            ("reason", &self.reason),
            ("wish_to_return", &self.wish_to_return),
            ("return_when", &self.return_when),
            ("employed", &self.employed),
            ("as_of", &self.as_of),
            ("workplace_type", &self.workplace_type),
            ("workplace_lgcode", &self.workplace_lgcode),
            ("weekly_hours", &self.weekly_hours),
            ("family_name", &self.family_name),
            ("given_name", &self.given_name),
            ("address", &self.address),
            ("email", &self.email),
            ("phone", &self.phone),
            ("received_on", &self.received_on),
            ("submission", &self.submission),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect()
    }
}

/// A form's wrong fields with their Japanese messages, in the order the checks ran (the order of
/// the fields on the page), so the error summary at the top reads like the form. One message per
/// field: the first check that fails it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors(Vec<(&'static str, String)>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a field's message unless the field already has one.
    pub fn insert(&mut self, field: &'static str, message: impl Into<String>) {
        if !self.contains_key(field) {
            self.0.push((field, message.into()));
        }
    }

    pub fn get(&self, field: &str) -> Option<&String> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, m)| m)
    }

    pub fn contains_key(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Puts the messages in the page's field order (fields not listed keep their place at the end),
    /// for forms whose checks run in more than one pass.
    pub fn ordered_as(mut self, fields: &[&str]) -> Self {
        self.0.sort_by_key(|(f, _)| fields.iter().position(|x| x == f).unwrap_or(fields.len()));
        self
    }

    pub fn fields(&self) -> Vec<&'static str> {
        self.0.iter().map(|(f, _)| *f).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(f, m)| (*f, m.as_str()))
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = (&'static str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'static str, &'a str)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.0.iter().map(|(f, m)| (*f, m.as_str())))
    }
}

impl From<Vec<FieldError>> for Errors {
    fn from(fields: Vec<FieldError>) -> Self {
        let mut errors = Errors::new();
        for e in fields {
            errors.insert(e.field, e.message);
        }
        errors
    }
}

pub fn errors_of(fields: Vec<FieldError>) -> Errors {
    fields.into()
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

pub use ncf_shared::normalize::yes_no as parse_yes_no;
pub use ncf_shared::notice::parse_reason;
pub use ncf_shared::wareki::parse_written as parse_date;

impl NoticeForm {
    /// The notice this form describes, checked; or each wrong field with its Japanese message.
    pub fn to_body(&self, kind: NoticeKind, today: chrono::NaiveDate) -> Result<NoticeBody, Errors> {
        let mut errors = Errors::new();
        let body = match kind {
            NoticeKind::Separation => {
                let left_on = parse_date(&self.left_on);
                if left_on.is_none() {
                    errors.insert(
                        "left_on",
                        if self.left_on.trim().is_empty() {
                            "離職日を入力してください（例: 2026年3月31日）。"
                        } else {
                            "離職日は 2026年3月31日 または 2026-03-31 の形で入力してください。"
                        },
                    );
                }
                let reason = parse_reason(&self.reason);
                if reason.is_none() {
                    errors.insert("reason", "離職の理由を選んでください。");
                }
                let wish = parse_yes_no(&self.wish_to_return);
                if wish.is_none() {
                    errors.insert("wish_to_return", "復職の希望を選んでください。");
                }
                match (left_on, reason, wish) {
                    (Some(left_on), Some(reason), Some(wish_to_return)) => Some(NoticeBody::Separation {
                        left_on,
                        reason,
                        wish_to_return,
                        return_when: optional(&self.return_when).filter(|_| wish_to_return),
                    }),
                    _ => None,
                }
            }
            NoticeKind::EmploymentStatus => {
                let employed = parse_yes_no(&self.employed);
                if employed.is_none() {
                    errors.insert("employed", "現在就業しているかどうかを選んでください。");
                }
                let workplace_type = optional(&self.workplace_type).map(|t| from_code::<WorkplaceType>(&t));
                if workplace_type == Some(None) {
                    errors.insert("workplace_type", "勤務先の種類を一覧から選んでください。");
                }
                let hours = optional(&ncf_shared::normalize::width(self.weekly_hours.trim()))
                    .map(|h| h.parse::<u8>().ok());
                if hours == Some(None) {
                    errors.insert("weekly_hours", "週の勤務時間は0〜80の数字で入力してください。");
                }
                let as_of = optional(&self.as_of).map(|d| parse_date(&d));
                if as_of == Some(None) {
                    errors.insert("as_of", "日付は 2026年10月1日 や 2026-10-01 のように入力してください。");
                }
                employed.map(|employed| NoticeBody::EmploymentStatus {
                    employed,
                    workplace_type: workplace_type.flatten(),
                    workplace_lgcode: optional(&self.workplace_lgcode),
                    weekly_hours: hours.flatten(),
                    as_of: as_of.flatten(),
                })
            }
            NoticeKind::Change => Some(NoticeBody::Change {
                family_name: optional(&self.family_name),
                given_name: optional(&self.given_name),
                address: optional(&self.address),
                email: optional(&self.email),
                phone: optional(&ncf_shared::normalize::phone(&self.phone)),
            }),
        };
        // The notice's own rules run on whatever could be read, so every mistake shows at once.
        if let Some(body) = &body
            && let Err(fields) = body.validate(today)
        {
            for e in fields {
                errors.insert(e.field, e.message);
            }
        }
        match body {
            Some(body) if errors.is_empty() => Ok(body),
            _ => Err(errors.ordered_as(&NOTICE_FIELDS)),
        }
    }
}

/// The notice form page, for her or for staff entering a paper form.
#[derive(Template)]
#[template(path = "notice_form.html")]
pub struct NoticePage {
    pub center: crate::web::Center,
    pub heading: String,
    /// Who the notice is for (staff pages), empty on her own page.
    pub for_whom: String,
    pub action: String,
    pub back: String,
    pub kind: &'static str,
    pub form: NoticeForm,
    pub errors: Errors,
    pub reasons: Vec<(String, &'static str)>,
    pub workplace_types: Vec<(String, &'static str)>,
    pub municipalities: Vec<(String, String)>,
    /// What the page tells about where the notice goes (the consent gate, in words).
    pub note: String,
    /// The confirmation step: what will be filed, field by field (empty on the form itself).
    pub details: Vec<(&'static str, String)>,
}

impl NoticePage {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        center: crate::web::Center,
        prefecture: Prefecture,
        kind: NoticeKind,
        for_whom: String,
        action: String,
        back: String,
        form: NoticeForm,
        errors: Errors,
        note: String,
    ) -> Self {
        Self {
            center,
            heading: kind.title_ja().to_string(),
            for_whom,
            action,
            back,
            kind: kind.as_str(),
            form,
            errors,
            reasons: SeparationReason::ALL.into_iter().map(|r| (code_of(r), r.label_ja())).collect(),
            workplace_types: WorkplaceType::ALL.into_iter().map(|t| (code_of(t), t.label_ja())).collect(),
            municipalities: prefecture
                .municipalities()
                .filter(|m: &&Municipality| m.is_residence())
                .map(|m| (m.lgcode.clone(), m.name_ja.clone()))
                .collect(),
            note,
            details: Vec::new(),
        }
    }

    /// Where the page is in 入力 → 確認 → 完了 (1 or 2).
    pub fn step(&self) -> usize {
        if self.details.is_empty() { 1 } else { 2 }
    }

    /// The same page as its confirmation step (入力 → **確認** → 完了).
    pub fn confirming(mut self, body: &NoticeBody) -> Self {
        self.details = body.details_ja();
        self
    }
}

/// A birth date as the licence prints it, typed in four fields (元号 or 西暦, 年, 月, 日); or, when
/// those are empty, one ISO date (`birth_date`, for scripts and older pages). The message names
/// which part is wrong.
pub fn birth_date(
    iso: &str,
    era: &str,
    year: &str,
    month: &str,
    day: &str,
) -> Result<chrono::NaiveDate, String> {
    let parts_empty = [era, year, month, day].iter().all(|p| p.trim().is_empty());
    let date = if parts_empty && !iso.trim().is_empty() {
        ncf_shared::time::parse_date(&ncf_shared::normalize::width(iso.trim()))
            .map_err(|_| "生年月日を正しく入力してください（例: 昭和41年11月14日）。".to_string())?
    } else {
        ncf_shared::wareki::parse_fields(era, year, month, day).map_err(|e| e.message_ja("生年月日"))?
    };
    if date > ncf_shared::time::today_jst() {
        return Err("生年月日に未来の日付は指定できません。".to_string());
    }
    Ok(date)
}

/// A date split into the four fields, in 和暦 (the way the licence prints it).
pub fn date_parts(date: chrono::NaiveDate) -> [String; 4] {
    use chrono::Datelike as _;
    match ncf_shared::wareki::era_of(date) {
        Some((era, year)) => {
            [era.code().to_string(), year.to_string(), date.month().to_string(), date.day().to_string()]
        }
        None => [
            ncf_shared::wareki::SEIREKI.to_string(),
            date.year().to_string(),
            date.month().to_string(),
            date.day().to_string(),
        ],
    }
}

/// The era select's options: (code, name), newest era first, then 西暦.
pub fn era_options() -> Vec<(&'static str, &'static str)> {
    let mut eras: Vec<(&'static str, &'static str)> =
        ncf_shared::wareki::Era::ALL.iter().rev().map(|e| (e.code(), e.name_ja())).collect();
    eras.push((ncf_shared::wareki::SEIREKI, "西暦"));
    eras
}

/// The nursing qualifications (保健師, 助産師, 看護師, 准看護師) as (code, name) for the licence
/// fields' select.
pub(crate) fn nursing_qualifications() -> Vec<(&'static str, &'static str)> {
    ncf_shared::Qualification::all().filter(|q| q.is_nursing()).map(|q| (q.code(), q.name_ja())).collect()
}

/// One consent scope as the opt-in and hand-over pages offer it: a checkbox with its full text.
pub(crate) struct ScopeView {
    pub field: &'static str,
    pub title: &'static str,
    pub text: &'static str,
    pub checked: bool,
}

/// Every scope, in the order pages list them, checked as `chosen` says.
pub(crate) fn scope_views(chosen: impl Fn(ncf_shared::ConsentScope) -> bool) -> Vec<ScopeView> {
    ncf_shared::ConsentScope::ALL
        .into_iter()
        .map(|s| ScopeView {
            field: s.as_str(),
            title: s.title_ja(),
            text: crate::consent::text_ja(s),
            checked: chosen(s),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    #[test]
    fn separation_from_what_people_type() {
        let form = NoticeForm {
            left_on: "２０２６／３／３１".into(),
            reason: "出産・育児".into(),
            wish_to_return: "はい".into(),
            return_when: " 来年4月ごろ ".into(),
            ..NoticeForm::default()
        };
        let body = form.to_body(NoticeKind::Separation, today()).unwrap();
        assert_eq!(
            body,
            NoticeBody::Separation {
                left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
                reason: SeparationReason::Childcare,
                wish_to_return: true,
                return_when: Some("来年4月ごろ".into()),
            }
        );
    }

    #[test]
    fn every_wrong_field_is_named_in_japanese() {
        let errors = NoticeForm { left_on: "2026-13-01".into(), ..NoticeForm::default() }
            .to_body(NoticeKind::Separation, today())
            .unwrap_err();
        assert_eq!(errors.fields(), ["left_on", "reason", "wish_to_return"]);
        let errors = NoticeForm {
            employed: "はい".into(),
            workplace_type: "castle".into(),
            weekly_hours: "many".into(),
            ..NoticeForm::default()
        }
        .to_body(NoticeKind::EmploymentStatus, today())
        .unwrap_err();
        assert_eq!(errors.fields(), ["workplace_type", "weekly_hours"]);
        // A number that cannot be read and a missing workplace type are both named at once.
        let errors =
            NoticeForm { employed: "yes".into(), weekly_hours: "abc".into(), ..NoticeForm::default() }
                .to_body(NoticeKind::EmploymentStatus, today())
                .unwrap_err();
        assert_eq!(errors.fields(), ["workplace_type", "weekly_hours"]);
        // Content rules come from the notice itself (one place).
        let errors = NoticeForm { employed: "yes".into(), ..NoticeForm::default() }
            .to_body(NoticeKind::EmploymentStatus, today())
            .unwrap_err();
        assert!(errors.get("workplace_type").unwrap().contains("勤務先"));
        let errors = NoticeForm::default().to_body(NoticeKind::Change, today()).unwrap_err();
        assert!(errors.contains_key("change"));
    }
}
