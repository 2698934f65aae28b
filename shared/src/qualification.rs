//! The 31 qualifications of the MHLW plan (社会保障に係る資格), with stable two-digit codes.
//! Codes 01-04 are the nursing licences this product is about; the order of the rest follows the plan.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Qualification(u8);

struct Entry {
    slug: &'static str,
    name_ja: &'static str,
}

const TABLE: [Entry; 31] = [
    Entry { slug: "public_health_nurse", name_ja: "保健師" },
    Entry { slug: "midwife", name_ja: "助産師" },
    Entry { slug: "nurse", name_ja: "看護師" },
    Entry { slug: "assistant_nurse", name_ja: "准看護師" },
    Entry { slug: "physician", name_ja: "医師" },
    Entry { slug: "dentist", name_ja: "歯科医師" },
    Entry { slug: "pharmacist", name_ja: "薬剤師" },
    Entry { slug: "physical_therapist", name_ja: "理学療法士" },
    Entry { slug: "occupational_therapist", name_ja: "作業療法士" },
    Entry { slug: "orthoptist", name_ja: "視能訓練士" },
    Entry { slug: "prosthetist", name_ja: "義肢装具士" },
    Entry { slug: "speech_therapist", name_ja: "言語聴覚士" },
    Entry { slug: "clinical_laboratory_technologist", name_ja: "臨床検査技師" },
    Entry { slug: "clinical_engineer", name_ja: "臨床工学技士" },
    Entry { slug: "radiological_technologist", name_ja: "診療放射線技師" },
    Entry { slug: "dental_hygienist", name_ja: "歯科衛生士" },
    Entry { slug: "dental_technician", name_ja: "歯科技工士" },
    Entry { slug: "massage_therapist", name_ja: "あん摩マッサージ指圧師" },
    Entry { slug: "acupuncturist", name_ja: "はり師" },
    Entry { slug: "moxibustion_therapist", name_ja: "きゅう師" },
    Entry { slug: "judo_therapist", name_ja: "柔道整復師" },
    Entry { slug: "paramedic", name_ja: "救急救命士" },
    Entry { slug: "certified_care_worker", name_ja: "介護福祉士" },
    Entry { slug: "social_worker", name_ja: "社会福祉士" },
    Entry { slug: "psychiatric_social_worker", name_ja: "精神保健福祉士" },
    Entry { slug: "certified_public_psychologist", name_ja: "公認心理師" },
    Entry { slug: "registered_dietitian", name_ja: "管理栄養士" },
    Entry { slug: "dietitian", name_ja: "栄養士" },
    Entry { slug: "nursery_teacher", name_ja: "保育士" },
    Entry { slug: "care_manager", name_ja: "介護支援専門員" },
    Entry { slug: "labour_and_social_security_attorney", name_ja: "社会保険労務士" },
];

const CODES: [&str; 31] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16", "17",
    "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
];

impl Qualification {
    pub const PUBLIC_HEALTH_NURSE: Self = Self(1);
    pub const MIDWIFE: Self = Self(2);
    pub const NURSE: Self = Self(3);
    pub const ASSISTANT_NURSE: Self = Self(4);

    pub fn all() -> impl Iterator<Item = Self> {
        (1..=31).map(Self)
    }

    /// Parses the two-digit code ("01".."31").
    pub fn from_code(code: &str) -> Option<Self> {
        CODES.iter().position(|c| *c == code).map(|i| Self(i as u8 + 1))
    }

    pub fn code(self) -> &'static str {
        CODES[usize::from(self.0 - 1)]
    }
    pub fn number(self) -> u8 {
        self.0
    }
    pub fn slug(self) -> &'static str {
        TABLE[usize::from(self.0 - 1)].slug
    }
    pub fn name_ja(self) -> &'static str {
        TABLE[usize::from(self.0 - 1)].name_ja
    }
    /// 保健師・助産師・看護師・准看護師: the licences nurse centers serve.
    pub fn is_nursing(self) -> bool {
        self.0 <= 4
    }
}

impl std::fmt::Debug for Qualification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.code(), self.slug())
    }
}

impl std::fmt::Display for Qualification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Qualification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Qualification {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::from_code(&code).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown qualification code {code:?} (expected \"01\"..\"31\")"))
        })
    }
}

/// On the wire a qualification is its two-digit code.
impl utoipa::PartialSchema for Qualification {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(CODES))
            .description(Some(
                "Qualification code, \"01\"..\"31\": 01 保健師, 02 助産師, 03 看護師, 04 准看護師",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Qualification {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_31_distinct_qualifications_and_four_are_nursing() {
        let all: Vec<_> = Qualification::all().collect();
        assert_eq!(all.len(), 31);
        let names: std::collections::HashSet<_> = all.iter().map(|q| q.name_ja()).collect();
        assert_eq!(names.len(), 31);
        let nursing: Vec<_> = all.iter().filter(|q| q.is_nursing()).map(|q| q.name_ja()).collect();
        assert_eq!(nursing, ["保健師", "助産師", "看護師", "准看護師"]);
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for q in Qualification::all() {
            assert_eq!(Qualification::from_code(q.code()), Some(q));
        }
        assert_eq!(Qualification::from_code("00"), None);
        assert_eq!(Qualification::from_code("32"), None);
        assert_eq!(Qualification::from_code("3"), None);
        assert_eq!(Qualification::NURSE.name_ja(), "看護師");
    }

    #[test]
    fn serde_uses_the_code_and_names_a_bad_one() {
        assert_eq!(serde_json::to_string(&Qualification::MIDWIFE).unwrap(), "\"02\"");
        let err = serde_json::from_str::<Qualification>("\"99\"").unwrap_err().to_string();
        assert!(err.contains("unknown qualification code \"99\""), "{err}");
    }
}
