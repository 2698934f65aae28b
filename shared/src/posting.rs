//! Job and training postings (求人・研修, issue #8): what a node's staff publish and what travels to
//! the national server on the federation's non-personal path. A posting holds no personal data:
//! the facility's public contact, never a nurse's.
//!
//! `PostingBody::validate` is the one check every way in uses (staff page, API, CSV row, the
//! national server receiving a copy), so they accept and refuse the same things and say so in the
//! same Japanese words. Text is refused when it carries markup, and escaped wherever it is shown
//! all the same: refusing keeps a script out of e-mails and other nodes' pages that might one day
//! render it differently.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::Municipality;
use crate::qualification::Qualification;
use crate::validation::FieldError;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    /// 求人
    Job,
    /// 研修 (e.g. 復職支援研修)
    Training,
}

impl PostingKind {
    pub const ALL: [Self; 2] = [Self::Job, Self::Training];

    /// The wire, form and storage name (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Training => "training",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Job => "求人",
            Self::Training => "研修",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentType {
    /// 常勤
    FullTime,
    /// 非常勤
    PartTime,
    /// 短時間
    ShortHours,
    /// 日勤のみ
    DaysOnly,
    /// 夜勤あり
    NightShifts,
}

impl EmploymentType {
    pub const ALL: [Self; 5] =
        [Self::FullTime, Self::PartTime, Self::ShortHours, Self::DaysOnly, Self::NightShifts];

    /// The wire and form name (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullTime => "full_time",
            Self::PartTime => "part_time",
            Self::ShortHours => "short_hours",
            Self::DaysOnly => "days_only",
            Self::NightShifts => "night_shifts",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Self::FullTime => "常勤",
            Self::PartTime => "非常勤",
            Self::ShortHours => "短時間",
            Self::DaysOnly => "日勤のみ",
            Self::NightShifts => "夜勤あり",
        }
    }
}

/// Where the work or the training is: a municipality (its point from the shared data) or
/// coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PostingPlace {
    Municipality { lgcode: String },
    Point { lat: f64, lng: f64 },
}

/// Japan's extent, generously: 南鳥島 (153.98° E) to 与那国島 (122.93° E), 沖ノ鳥島 (20.42° N) to
/// 択捉島 (45.56° N). A box, not the coastline: it catches swapped or mistyped coordinates (a
/// latitude and longitude given the wrong way round land far outside it), not a point at sea.
pub const JAPAN_LAT: (f64, f64) = (20.0, 46.0);
pub const JAPAN_LNG: (f64, f64) = (122.0, 154.5);

impl PostingPlace {
    /// Latitude and longitude, if the place is known and inside Japan.
    pub fn lat_lng(&self) -> Option<(f64, f64)> {
        match self {
            Self::Municipality { lgcode } => Municipality::by_lgcode(lgcode).map(|m| (m.lat, m.lng)),
            Self::Point { lat, lng } => {
                let inside =
                    (JAPAN_LAT.0..=JAPAN_LAT.1).contains(lat) && (JAPAN_LNG.0..=JAPAN_LNG.1).contains(lng);
                inside.then_some((*lat, *lng))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WagePer {
    /// 時給
    Hour,
    /// 日給
    Day,
    /// 月給
    Month,
    /// 年収
    Year,
}

impl WagePer {
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Hour => "時給",
            Self::Day => "日給",
            Self::Month => "月給",
            Self::Year => "年収",
        }
    }
}

/// Pay in yen. Signed, so that a negative amount typed in is refused by name rather than by a
/// parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WageRange {
    pub per: WagePer,
    pub min_yen: i64,
    pub max_yen: i64,
}

/// What only a training session has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingDetails {
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// Hours of instruction in all, as her training history (研修歴) will count them.
    pub hours: u16,
    pub capacity: u32,
    pub fee_yen: i64,
}

/// A posting as its node publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostingBody {
    pub kind: PostingKind,
    pub title: String,
    pub description: String,
    pub facility_name: String,
    /// The facility's public contact (a phone number, a desk, a public web page).
    pub facility_contact: String,
    pub place: PostingPlace,
    pub qualifications: Vec<Qualification>,
    pub employment_types: Vec<EmploymentType>,
    /// Working hours in the facility's words (e.g. 「8:30〜17:15（休憩60分）」).
    pub hours: String,
    pub wage: Option<WageRange>,
    pub training: Option<TrainingDetails>,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
}

/// The distances from home a nurse may choose, in km (issue #8 keeps these five). Her node offers
/// them; the national server matches within the one she chose.
pub const DISTANCE_CHOICES_KM: [u32; 5] = [5, 10, 20, 30, 50];

/// How many postings of each kind her list holds at most: the nearest ones (issue #8).
pub const MATCHES_PER_KIND: usize = 100;

/// The farthest distance she can choose, in metres: no posting farther than this from anyone's
/// home can be in a list.
pub const MAX_DISTANCE_M: f64 = 50_000.0;

/// The nursing qualifications a posting accepts, one bit each (by `Qualification::number`): what
/// the national server stores beside a posting and compares with a nurse's licences.
pub fn qualification_bits(qualifications: &[Qualification]) -> i32 {
    qualifications.iter().filter(|q| q.is_nursing()).fold(0, |bits, q| bits | 1 << q.number())
}

pub const TITLE_MAX_CHARS: usize = 100;
/// Most hours one training session may count (a year-long course of a few hours a day).
pub const MAX_TRAINING_HOURS: u16 = 1000;
pub const DESCRIPTION_MAX_CHARS: usize = 4000;
pub const FACILITY_MAX_CHARS: usize = 100;
pub const CONTACT_MAX_CHARS: usize = 200;
pub const HOURS_MAX_CHARS: usize = 200;

/// Whether text carries markup or a script: an HTML tag or comment (`<` followed by a letter,
/// `/`, `!` or `?`), or a `javascript:` / `data:` / `vbscript:` URL. A lone `<` (「経験<1年可」)
/// is text.
pub fn has_markup(text: &str) -> bool {
    let bytes = text.as_bytes();
    let tag =
        bytes.windows(2).any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"/!?".contains(&w[1])));
    // Full-width letters and spaces inside the scheme would not run, but NFKC-minded browsers are
    // not the only readers; compare on a squeezed, lower-cased copy.
    let squeezed: String =
        text.chars().filter(|c| !c.is_whitespace() && !c.is_control()).flat_map(char::to_lowercase).collect();
    tag || ["javascript:", "vbscript:", "data:"].iter().any(|s| squeezed.contains(s))
}

impl PostingBody {
    /// Every problem, each with the field it concerns and a Japanese message.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let texts: [(&'static str, &str, &str, usize, bool); 5] = [
            ("title", "タイトル", &self.title, TITLE_MAX_CHARS, true),
            ("description", "内容", &self.description, DESCRIPTION_MAX_CHARS, true),
            ("facility_name", "施設名", &self.facility_name, FACILITY_MAX_CHARS, true),
            ("facility_contact", "施設の連絡先", &self.facility_contact, CONTACT_MAX_CHARS, true),
            ("hours", "勤務時間", &self.hours, HOURS_MAX_CHARS, false),
        ];
        for (field, label, value, max, required) in texts {
            if required && value.trim().is_empty() {
                errors.push(FieldError::new(field, format!("{label}を入力してください。")));
            } else if value.chars().count() > max {
                errors.push(FieldError::new(field, format!("{label}は{max}文字以内で入力してください。")));
            } else if has_markup(value) {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "{label}にHTMLタグやスクリプトは使えません（「<」の直後に英字を置かないでください）。"
                    ),
                ));
            } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
                errors.push(FieldError::new(field, format!("{label}に使えない文字が含まれています。")));
            }
        }

        match &self.place {
            PostingPlace::Municipality { lgcode } if Municipality::by_lgcode(lgcode).is_none() => {
                errors
                    .push(FieldError::new("place", format!("市区町村コード「{lgcode}」は見つかりません。")));
            }
            PostingPlace::Point { lat, lng }
                if !(lat.is_finite() && lng.is_finite()) || self.place.lat_lng().is_none() =>
            {
                errors.push(FieldError::new(
                    "place",
                    format!("緯度{lat}・経度{lng}は日本国内ではありません（緯度と経度が逆になっていないか確かめてください）。"),
                ));
            }
            _ => {}
        }

        if self.qualifications.is_empty() {
            errors.push(FieldError::new("qualifications", "応募できる資格を1つ以上選んでください。"));
        }
        for q in &self.qualifications {
            if !q.is_nursing() {
                errors.push(FieldError::new(
                    "qualifications",
                    format!(
                        "{}は看護職の資格ではありません（保健師・助産師・看護師・准看護師のみ）。",
                        q.name_ja()
                    ),
                ));
            }
        }
        if self.kind == PostingKind::Job && self.employment_types.is_empty() {
            errors.push(FieldError::new("employment_types", "雇用形態を1つ以上選んでください。"));
        }

        if let Some(w) = &self.wage {
            if w.min_yen < 0 || w.max_yen < 0 {
                errors.push(FieldError::new("wage", "給与に負の金額は指定できません。"));
            } else if w.min_yen > w.max_yen {
                errors.push(FieldError::new("wage", "給与の下限が上限を超えています。"));
            }
        }

        if self.valid_until < self.valid_from {
            errors.push(FieldError::new("valid_until", "掲載終了日が掲載開始日より前になっています。"));
        }
        match (&self.kind, &self.training) {
            (PostingKind::Training, None) => {
                errors.push(FieldError::new("training", "研修の日程・定員・受講料を入力してください。"));
            }
            (PostingKind::Job, Some(_)) => {
                errors.push(FieldError::new("training", "求人には研修の日程を指定できません。"));
            }
            (PostingKind::Training, Some(t)) => {
                if t.ends_on < t.starts_on {
                    errors.push(FieldError::new("training", "研修の終了日が開始日より前になっています。"));
                }
                if t.capacity == 0 {
                    errors.push(FieldError::new("training", "研修の定員は1人以上にしてください。"));
                }
                if t.fee_yen < 0 {
                    errors.push(FieldError::new("training", "受講料に負の金額は指定できません。"));
                }
                if t.hours == 0 {
                    errors.push(FieldError::new("training", "研修の時間数を入力してください。"));
                } else if t.hours > MAX_TRAINING_HOURS {
                    errors.push(FieldError::new(
                        "training",
                        format!("研修の時間数は{MAX_TRAINING_HOURS}時間以内で入力してください。"),
                    ));
                }
            }
            (PostingKind::Job, None) => {}
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Whether the posting is open on `day` (its validity, both ends included).
    pub fn open_on(&self, day: NaiveDate) -> bool {
        (self.valid_from..=self.valid_until).contains(&day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn job() -> PostingBody {
        PostingBody {
            kind: PostingKind::Job,
            title: "病棟看護師（日勤のみ可）".into(),
            description: "ブランクのある方も歓迎します。経験<1年可。".into(),
            facility_name: "千代田総合病院".into(),
            facility_contact: "看護部 03-0000-0000".into(),
            place: PostingPlace::Municipality { lgcode: "131016".into() },
            qualifications: vec![Qualification::NURSE, Qualification::ASSISTANT_NURSE],
            employment_types: vec![EmploymentType::FullTime, EmploymentType::DaysOnly],
            hours: "8:30〜17:15".into(),
            wage: Some(WageRange { per: WagePer::Month, min_yen: 250_000, max_yen: 320_000 }),
            training: None,
            valid_from: date("2026-12-01"),
            valid_until: date("2027-03-31"),
        }
    }

    fn fields(p: &PostingBody) -> Vec<&'static str> {
        match p.validate() {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_complete_posting_passes() {
        assert_eq!(fields(&job()), Vec::<&str>::new());
        let training = PostingBody {
            kind: PostingKind::Training,
            title: "復職支援研修（採血・点滴）".into(),
            employment_types: vec![],
            wage: None,
            training: Some(TrainingDetails {
                starts_on: date("2027-01-20"),
                ends_on: date("2027-01-21"),
                hours: 12,
                capacity: 20,
                fee_yen: 0,
            }),
            place: PostingPlace::Point { lat: 35.6939, lng: 139.7536 },
            ..job()
        };
        assert_eq!(fields(&training), Vec::<&str>::new());
        assert!(job().open_on(date("2026-12-01")) && job().open_on(date("2027-03-31")));
        assert!(!job().open_on(date("2027-04-01")));
    }

    /// Each kind of bad input the issue names, refused by the field it concerns.
    #[test]
    fn bad_input_is_refused_by_field() {
        let cases: Vec<(PostingBody, &str)> = vec![
            (PostingBody { place: PostingPlace::Point { lat: 139.75, lng: 35.69 }, ..job() }, "place"),
            (PostingBody { place: PostingPlace::Point { lat: 48.85, lng: 2.35 }, ..job() }, "place"),
            (PostingBody { place: PostingPlace::Point { lat: f64::NAN, lng: 139.0 }, ..job() }, "place"),
            (PostingBody { place: PostingPlace::Municipality { lgcode: "999999".into() }, ..job() }, "place"),
            (PostingBody { valid_until: date("2026-11-30"), ..job() }, "valid_until"),
            (
                PostingBody {
                    wage: Some(WageRange { per: WagePer::Hour, min_yen: -1, max_yen: 2000 }),
                    ..job()
                },
                "wage",
            ),
            (
                PostingBody {
                    wage: Some(WageRange { per: WagePer::Hour, min_yen: 2500, max_yen: 2000 }),
                    ..job()
                },
                "wage",
            ),
            (
                PostingBody {
                    qualifications: vec![Qualification::from_code("05").expect("a non-nursing code")],
                    ..job()
                },
                "qualifications",
            ),
            (PostingBody { qualifications: vec![], ..job() }, "qualifications"),
            (PostingBody { title: "<script>alert(1)</script>".into(), ..job() }, "title"),
            (PostingBody { description: "詳しくは<a href=x>こちら</a>".into(), ..job() }, "description"),
            (PostingBody { facility_contact: "JavaScript : alert(1)".into(), ..job() }, "facility_contact"),
            (PostingBody { facility_name: "<!-- x -->".into(), ..job() }, "facility_name"),
            (PostingBody { title: " ".into(), ..job() }, "title"),
            (PostingBody { title: "あ".repeat(TITLE_MAX_CHARS + 1), ..job() }, "title"),
            (PostingBody { employment_types: vec![], ..job() }, "employment_types"),
            (PostingBody { kind: PostingKind::Training, ..job() }, "training"),
        ];
        for (posting, field) in cases {
            assert_eq!(fields(&posting), [field], "{posting:?}");
            let errors = posting.validate().expect_err("refused");
            assert!(errors.iter().all(|e| !e.message.is_ascii()), "Japanese: {errors:?}");
        }
    }

    /// The words staff and nurses read, as the issue names them.
    #[test]
    fn labels_are_the_words_in_use() {
        let kinds: Vec<_> = [PostingKind::Job, PostingKind::Training].map(PostingKind::label_ja).into();
        assert_eq!(kinds, ["求人", "研修"]);
        let types = [
            EmploymentType::FullTime,
            EmploymentType::PartTime,
            EmploymentType::ShortHours,
            EmploymentType::DaysOnly,
            EmploymentType::NightShifts,
        ]
        .map(EmploymentType::label_ja);
        assert_eq!(types, ["常勤", "非常勤", "短時間", "日勤のみ", "夜勤あり"]);
        assert_eq!(
            [WagePer::Hour, WagePer::Day, WagePer::Month, WagePer::Year].map(WagePer::label_ja),
            ["時給", "日給", "月給", "年収"]
        );
    }

    #[test]
    fn markup_is_told_from_text() {
        for text in ["経験<1年可", "a < b", "時給2,000円〜", "<<", "日勤のみ 8:30〜17:15"] {
            assert!(!has_markup(text), "{text}");
        }
        for text in ["<b>", "</p>", "<!doctype", "<?xml", "<img src=x onerror=alert(1)>", "DATA:text/html,x"]
        {
            assert!(has_markup(text), "{text}");
        }
    }

    #[test]
    fn the_contract_shape_round_trips_and_refuses_unknown_fields() {
        let json = serde_json::to_value(job()).expect("json");
        assert_eq!(json["kind"], "job");
        assert_eq!(json["place"]["municipality"]["lgcode"], "131016");
        let back: PostingBody = serde_json::from_value(json.clone()).expect("back");
        assert_eq!(back, job());
        let mut extra = json;
        extra["applicant_email"] = "x@example.jp".into();
        assert!(serde_json::from_value::<PostingBody>(extra).is_err());
    }
}
