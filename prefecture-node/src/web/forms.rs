//! The notice form, shared by the nurse's page and the staff's paper entry: the same fields, the
//! same Japanese messages, the same page.

use std::collections::BTreeMap;

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
    pub family_name: String,
    pub given_name: String,
    pub address: String,
    pub email: String,
    pub phone: String,
    /// Where the person is in 入力 → 確認 → 完了: empty or `edit` shows the form, `confirm` (the
    /// form's own button) shows what will be filed, `submit` (the confirmation's button) files it.
    pub step: String,
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
            ("workplace_type", &self.workplace_type),
            ("workplace_lgcode", &self.workplace_lgcode),
            ("weekly_hours", &self.weekly_hours),
            ("family_name", &self.family_name),
            ("given_name", &self.given_name),
            ("address", &self.address),
            ("email", &self.email),
            ("phone", &self.phone),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect()
    }
}

pub type Errors = BTreeMap<&'static str, String>;

pub fn errors_of(fields: Vec<FieldError>) -> Errors {
    fields.into_iter().map(|e| (e.field, e.message)).collect()
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Full-width digits and dashes as people type them on phones → ASCII.
pub fn half_width(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            'ー' | '－' | '‐' | '―' => '-',
            '／' => '/',
            _ => c,
        })
        .collect()
}

/// A date as typed: 2026-03-31, 2026/3/31 or full-width digits.
pub fn parse_date(text: &str) -> Option<chrono::NaiveDate> {
    let text = half_width(text).replace('/', "-");
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// はい/いいえ as forms and CSV files say it.
pub fn parse_yes_no(text: &str) -> Option<bool> {
    match half_width(text).to_lowercase().as_str() {
        "yes" | "true" | "1" | "はい" | "あり" | "有" => Some(true),
        "no" | "false" | "0" | "いいえ" | "なし" | "無" => Some(false),
        _ => None,
    }
}

/// A separation reason by code (`childcare`) or by its Japanese label (`出産・育児`).
pub fn parse_reason(text: &str) -> Option<SeparationReason> {
    from_code(text).or_else(|| SeparationReason::ALL.into_iter().find(|r| r.label_ja() == text.trim()))
}

impl NoticeForm {
    /// The notice this form describes, checked; or each wrong field with its Japanese message.
    pub fn to_body(&self, kind: NoticeKind, today: chrono::NaiveDate) -> Result<NoticeBody, Errors> {
        let mut errors = Errors::new();
        let body = match kind {
            NoticeKind::Separation => {
                let left_on = parse_date(&self.left_on);
                if left_on.is_none() {
                    errors.insert("left_on", "離職日を入力してください（例: 2026-03-31）。".into());
                }
                let reason = parse_reason(&self.reason);
                if reason.is_none() {
                    errors.insert("reason", "離職の理由を選んでください。".into());
                }
                let wish = parse_yes_no(&self.wish_to_return);
                if wish.is_none() {
                    errors.insert("wish_to_return", "復職の希望を選んでください。".into());
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
                    errors.insert("employed", "現在就業しているかどうかを選んでください。".into());
                }
                let workplace_type = optional(&self.workplace_type).map(|t| from_code::<WorkplaceType>(&t));
                if workplace_type == Some(None) {
                    errors.insert("workplace_type", "勤務先の種類を一覧から選んでください。".into());
                }
                let hours = optional(&half_width(&self.weekly_hours)).map(|h| h.parse::<u8>().ok());
                if hours == Some(None) {
                    errors.insert("weekly_hours", "週の勤務時間は0〜80の数字で入力してください。".into());
                }
                employed.map(|employed| NoticeBody::EmploymentStatus {
                    employed,
                    workplace_type: workplace_type.flatten(),
                    workplace_lgcode: optional(&self.workplace_lgcode),
                    weekly_hours: hours.flatten(),
                })
            }
            NoticeKind::Change => Some(NoticeBody::Change {
                family_name: optional(&self.family_name),
                given_name: optional(&self.given_name),
                address: optional(&self.address),
                email: optional(&self.email),
                phone: optional(&half_width(&self.phone)),
            }),
        };
        // The notice's own rules run on whatever could be read, so every mistake shows at once.
        if let Some(body) = &body
            && let Err(fields) = body.validate(today)
        {
            for e in fields {
                errors.entry(e.field).or_insert(e.message);
            }
        }
        match body {
            Some(body) if errors.is_empty() => Ok(body),
            _ => Err(errors),
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

/// The nursing qualifications (保健師, 助産師, 看護師, 准看護師) as (code, name) for the licence
/// fields' select.
pub(crate) fn nursing_qualifications() -> Vec<(&'static str, &'static str)> {
    ncf_shared::Qualification::all().filter(|q| q.is_nursing()).map(|q| (q.code(), q.name_ja())).collect()
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
        assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["left_on", "reason", "wish_to_return"]);
        let errors = NoticeForm {
            employed: "はい".into(),
            workplace_type: "castle".into(),
            weekly_hours: "many".into(),
            ..NoticeForm::default()
        }
        .to_body(NoticeKind::EmploymentStatus, today())
        .unwrap_err();
        assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["weekly_hours", "workplace_type"]);
        // A number that cannot be read and a missing workplace type are both named at once.
        let errors =
            NoticeForm { employed: "yes".into(), weekly_hours: "abc".into(), ..NoticeForm::default() }
                .to_body(NoticeKind::EmploymentStatus, today())
                .unwrap_err();
        assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["weekly_hours", "workplace_type"]);
        // Content rules come from the notice itself (one place).
        let errors = NoticeForm { employed: "yes".into(), ..NoticeForm::default() }
            .to_body(NoticeKind::EmploymentStatus, today())
            .unwrap_err();
        assert!(errors["workplace_type"].contains("勤務先"));
        let errors = NoticeForm::default().to_body(NoticeKind::Change, today()).unwrap_err();
        assert!(errors.contains_key("change"));
    }
}
