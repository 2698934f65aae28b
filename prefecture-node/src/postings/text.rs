//! A posting as people type it — the staff form, a row of the CSV import — read into a
//! `PostingBody`. What cannot be read is named per field in Japanese; what can is then checked by
//! `PostingBody::validate`, the one check every way in (pages, API, CSV, national server) uses.

use chrono::NaiveDate;
use ncf_shared::posting::{
    EmploymentType, PostingBody, PostingKind, PostingPlace, TrainingDetails, WagePer, WageRange,
};
use ncf_shared::validation::FieldError;
use serde::Deserialize;

/// Field errors, the first message per field, in the form's order.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn insert(&mut self, field: &'static str, message: impl Into<String>) {
        if !self.0.iter().any(|e| e.field == field) {
            self.0.push(FieldError::new(field, message));
        }
    }

    fn ordered(mut self) -> Vec<FieldError> {
        self.0.sort_by_key(|e| FIELDS.iter().position(|f| *f == e.field).unwrap_or(FIELDS.len()));
        self.0
    }
}

/// 求人/研修 or `job`/`training`.
pub fn kind_of(text: &str) -> Option<PostingKind> {
    let text = text.trim();
    PostingKind::parse(text).or_else(|| PostingKind::ALL.into_iter().find(|k| k.label_ja() == text))
}

/// 時給/日給/月給/年収 or `hour`/`day`/`month`/`year`.
pub fn wage_per_of(text: &str) -> Option<WagePer> {
    let text = text.trim();
    WAGE_PERS.into_iter().find(|w| wage_slug(*w) == text || w.label_ja() == text)
}

pub const WAGE_PERS: [WagePer; 4] = [WagePer::Hour, WagePer::Day, WagePer::Month, WagePer::Year];

pub fn wage_slug(w: WagePer) -> &'static str {
    match w {
        WagePer::Hour => "hour",
        WagePer::Day => "day",
        WagePer::Month => "month",
        WagePer::Year => "year",
    }
}

/// A posting as typed, every field as text: nothing typed is lost when it is refused.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct PostingText {
    pub kind: String,
    pub title: String,
    pub description: String,
    pub facility_name: String,
    pub facility_contact: String,
    pub lgcode: String,
    pub lat: String,
    pub lng: String,
    pub q01: Option<String>,
    pub q02: Option<String>,
    pub q03: Option<String>,
    pub q04: Option<String>,
    pub full_time: Option<String>,
    pub part_time: Option<String>,
    pub short_hours: Option<String>,
    pub days_only: Option<String>,
    pub night_shifts: Option<String>,
    pub hours: String,
    pub wage_per: String,
    pub wage_min: String,
    pub wage_max: String,
    pub training_starts_on: String,
    pub training_ends_on: String,
    pub training_hours: String,
    pub capacity: String,
    pub fee: String,
    pub valid_from: String,
    pub valid_until: String,
}

/// Field order on the page, for the error summary.
pub const FIELDS: [&str; 13] = [
    "kind",
    "title",
    "description",
    "facility_name",
    "facility_contact",
    "place",
    "qualifications",
    "employment_types",
    "hours",
    "wage",
    "training",
    "valid_from",
    "valid_until",
];

fn yen(text: &str) -> Option<i64> {
    let t: String = ncf_shared::normalize::digits(text.trim()).chars().filter(|c| *c != ',').collect();
    let t = t.trim();
    if let Some(rest) = t.strip_prefix('-').or_else(|| t.strip_prefix('－')) {
        return rest.parse::<i64>().ok().map(|v| -v);
    }
    t.parse().ok()
}

/// A whole number as people type it: any width, and its unit if they add one (「１２時間」, 「20名」).
fn count(text: &str, units: &[&str]) -> Option<u32> {
    let t = ncf_shared::normalize::digits(text.trim());
    let t = units
        .iter()
        .fold(t.trim().to_string(), |t, u| t.strip_suffix(u).map_or(t.clone(), |s| s.trim().to_string()));
    t.parse().ok()
}

fn day(text: &str) -> Option<NaiveDate> {
    ncf_shared::wareki::parse_written(text)
}

impl PostingText {
    pub fn checked(&self, field: &str) -> bool {
        match field {
            "01" => self.q01.is_some(),
            "02" => self.q02.is_some(),
            "03" => self.q03.is_some(),
            "04" => self.q04.is_some(),
            "full_time" => self.full_time.is_some(),
            "part_time" => self.part_time.is_some(),
            "short_hours" => self.short_hours.is_some(),
            "days_only" => self.days_only.is_some(),
            "night_shifts" => self.night_shifts.is_some(),
            _ => false,
        }
    }

    /// The body, or every field that cannot be read or does not pass `PostingBody::validate`.
    pub fn body(&self) -> Result<PostingBody, Vec<FieldError>> {
        let mut errors = Errors::default();
        let kind = kind_of(&self.kind);
        if kind.is_none() {
            errors.insert("kind", "求人か研修かを選んでください。");
        }
        let place = if !self.lgcode.trim().is_empty() {
            Some(PostingPlace::Municipality { lgcode: ncf_shared::normalize::digits(self.lgcode.trim()) })
        } else {
            let num = |t: &str| ncf_shared::normalize::digits(t.trim()).parse::<f64>().ok();
            match (num(&self.lat), num(&self.lng)) {
                (Some(lat), Some(lng)) => Some(PostingPlace::Point { lat, lng }),
                _ => {
                    errors.insert("place", "場所を市区町村コード（6桁）か、緯度と経度で入力してください。");
                    None
                }
            }
        };
        let qualifications: Vec<ncf_shared::Qualification> = ["01", "02", "03", "04"]
            .into_iter()
            .filter(|c| self.checked(c))
            .filter_map(ncf_shared::Qualification::from_code)
            .collect();
        let employment_types: Vec<EmploymentType> =
            EmploymentType::ALL.into_iter().filter(|t| self.checked(t.as_str())).collect();
        let wage = if self.wage_min.trim().is_empty() && self.wage_max.trim().is_empty() {
            None
        } else {
            let per = wage_per_of(&self.wage_per);
            match (per, yen(&self.wage_min), yen(&self.wage_max)) {
                (Some(per), Some(min_yen), Some(max_yen)) => Some(WageRange { per, min_yen, max_yen }),
                (None, _, _) => {
                    errors.insert("wage", "給与の単位（時給・日給・月給・年収）を選んでください。");
                    None
                }
                _ => {
                    errors.insert("wage", "給与の下限と上限を円単位の数字で入力してください（例: 1800）。");
                    None
                }
            }
        };
        let training = if kind == Some(PostingKind::Training) {
            let starts_on = day(&self.training_starts_on);
            let ends_on = day(&self.training_ends_on);
            let hours = count(&self.training_hours, &["時間", "h"]).and_then(|n| u16::try_from(n).ok());
            let capacity = count(&self.capacity, &["人", "名"]);
            let fee_yen = yen(if self.fee.trim().is_empty() { "0" } else { &self.fee });
            match (starts_on, ends_on, hours, capacity, fee_yen) {
                (Some(starts_on), Some(ends_on), Some(hours), Some(capacity), Some(fee_yen)) => {
                    Some(TrainingDetails { starts_on, ends_on, hours, capacity, fee_yen })
                }
                _ => {
                    let missing: Vec<&str> = [
                        ("開始日", starts_on.is_some()),
                        ("終了日", ends_on.is_some()),
                        ("時間数", hours.is_some()),
                        ("定員", capacity.is_some()),
                        ("受講料", fee_yen.is_some()),
                    ]
                    .into_iter()
                    .filter(|(_, ok)| !ok)
                    .map(|(name, _)| name)
                    .collect();
                    errors.insert(
                        "training",
                        format!(
                            "研修の{}を入力してください（日付は 2027年1月15日 などの形、時間数と定員は数字、受講料は円で無料は0）。",
                            missing.join("・")
                        ),
                    );
                    None
                }
            }
        } else {
            None
        };
        let valid_from = day(&self.valid_from);
        if valid_from.is_none() {
            errors.insert("valid_from", "掲載開始日を入力してください（例: 2026年12月1日）。");
        }
        let valid_until = day(&self.valid_until);
        if valid_until.is_none() {
            errors.insert("valid_until", "掲載終了日を入力してください（例: 2027年3月31日）。");
        }
        let (Some(kind), Some(place), Some(valid_from), Some(valid_until)) =
            (kind, place, valid_from, valid_until)
        else {
            return Err(errors.ordered());
        };
        let body = PostingBody {
            kind,
            title: self.title.trim().to_string(),
            description: self.description.trim().to_string(),
            facility_name: self.facility_name.trim().to_string(),
            facility_contact: self.facility_contact.trim().to_string(),
            place,
            qualifications,
            employment_types,
            hours: self.hours.trim().to_string(),
            wage,
            training,
            valid_from,
            valid_until,
        };
        if let Err(found) = body.validate() {
            for e in found {
                errors.insert(e.field, e.message);
            }
        }
        if errors.0.is_empty() { Ok(body) } else { Err(errors.ordered()) }
    }

    /// The form filled from a stored posting (to change it).
    pub fn from_body(b: &PostingBody) -> Self {
        let mut f = Self {
            kind: b.kind.as_str().into(),
            title: b.title.clone(),
            description: b.description.clone(),
            facility_name: b.facility_name.clone(),
            facility_contact: b.facility_contact.clone(),
            hours: b.hours.clone(),
            valid_from: ncf_shared::time::date_ja(b.valid_from),
            valid_until: ncf_shared::time::date_ja(b.valid_until),
            ..Self::default()
        };
        match &b.place {
            PostingPlace::Municipality { lgcode } => f.lgcode = lgcode.clone(),
            PostingPlace::Point { lat, lng } => {
                f.lat = lat.to_string();
                f.lng = lng.to_string();
            }
        }
        let on = || Some("on".to_string());
        for q in &b.qualifications {
            match q.code() {
                "01" => f.q01 = on(),
                "02" => f.q02 = on(),
                "03" => f.q03 = on(),
                "04" => f.q04 = on(),
                _ => {}
            }
        }
        for t in &b.employment_types {
            match t {
                EmploymentType::FullTime => f.full_time = on(),
                EmploymentType::PartTime => f.part_time = on(),
                EmploymentType::ShortHours => f.short_hours = on(),
                EmploymentType::DaysOnly => f.days_only = on(),
                EmploymentType::NightShifts => f.night_shifts = on(),
            }
        }
        if let Some(w) = &b.wage {
            f.wage_per = wage_slug(w.per).into();
            f.wage_min = w.min_yen.to_string();
            f.wage_max = w.max_yen.to_string();
        }
        if let Some(t) = &b.training {
            f.training_starts_on = ncf_shared::time::date_ja(t.starts_on);
            f.training_ends_on = ncf_shared::time::date_ja(t.ends_on);
            f.training_hours = t.hours.to_string();
            f.capacity = t.capacity.to_string();
            f.fee = t.fee_yen.to_string();
        }
        f
    }
}
