//! Prefectures (JIS X 0401) and municipalities (全国地方公共団体コード), embedded from the CSV files
//! under `shared/data/` (copied from the project's shared data; see its SOURCES.md).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PREFECTURES_CSV: &str = include_str!("../data/prefectures.csv");
const MUNICIPALITIES_CSV: &str = include_str!("../data/municipalities.csv");

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefecture(u8);

#[derive(Debug)]
pub struct PrefectureInfo {
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    /// Employed nurses in 2018, used as weights for synthetic data.
    pub employed_nurses: u32,
}

#[derive(Debug, Clone)]
pub struct Municipality {
    pub lgcode: String,
    pub prefecture: Prefecture,
    pub name_ja: String,
    pub kana: String,
    pub lat: f64,
    pub lng: f64,
    /// A designated city listed beside its wards (e.g. 札幌市 with 札幌市 中央区 …). Residents live in
    /// the wards, so addresses use the ward codes.
    pub has_wards: bool,
}

struct Tables {
    prefectures: Vec<PrefectureInfo>,
    municipalities: Vec<Municipality>,
    by_lgcode: HashMap<String, usize>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(load_tables)
}

fn load_tables() -> Tables {
    // The embedded files are part of the build; a malformed one is a build defect, caught by the tests.
    let mut prefectures = Vec::with_capacity(47);
    let mut reader = csv::Reader::from_reader(PREFECTURES_CSV.as_bytes());
    for row in reader.records() {
        let row = row.expect("embedded prefectures.csv is valid");
        prefectures.push(PrefectureInfo {
            code: row[0].to_string(),
            name_ja: row[1].to_string(),
            name_en: row[2].to_string(),
            employed_nurses: row[3].parse().expect("employed_nurses is a number"),
        });
    }
    let mut municipalities = Vec::with_capacity(1916);
    let mut reader = csv::Reader::from_reader(MUNICIPALITIES_CSV.as_bytes());
    for row in reader.records() {
        let row = row.expect("embedded municipalities.csv is valid");
        let pref: u8 = row[1].parse().expect("prefecture code is a number");
        municipalities.push(Municipality {
            lgcode: row[0].to_string(),
            prefecture: Prefecture(pref),
            name_ja: row[3].to_string(),
            kana: row[4].to_string(),
            lat: row[5].parse().expect("lat is a number"),
            lng: row[6].parse().expect("lng is a number"),
            has_wards: false,
        });
    }
    let names: std::collections::HashSet<(Prefecture, String)> =
        municipalities.iter().map(|m| (m.prefecture, m.name_ja.clone())).collect();
    let parents: std::collections::HashSet<(Prefecture, String)> = municipalities
        .iter()
        .filter_map(|m| m.name_ja.split_once(' ').map(|(city, _)| (m.prefecture, city.to_string())))
        .filter(|key| names.contains(key))
        .collect();
    for m in &mut municipalities {
        m.has_wards = parents.contains(&(m.prefecture, m.name_ja.clone()));
    }
    let by_lgcode = municipalities.iter().enumerate().map(|(i, m)| (m.lgcode.clone(), i)).collect();
    Tables { prefectures, municipalities, by_lgcode }
}

impl Prefecture {
    pub fn all() -> impl Iterator<Item = Self> {
        (1..=47).map(Self)
    }

    /// Parses a JIS X 0401 code: "01".."47" (one digit is accepted for 1..9, e.g. on the command line).
    pub fn from_code(code: &str) -> Option<Self> {
        if code.is_empty() || code.len() > 2 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u8 = code.parse().ok()?;
        (1..=47).contains(&n).then_some(Self(n))
    }

    pub fn number(self) -> u8 {
        self.0
    }
    pub fn code(self) -> String {
        format!("{:02}", self.0)
    }
    pub fn info(self) -> &'static PrefectureInfo {
        &tables().prefectures[usize::from(self.0 - 1)]
    }
    pub fn name_ja(self) -> &'static str {
        &self.info().name_ja
    }
    pub fn municipalities(self) -> impl Iterator<Item = &'static Municipality> {
        tables().municipalities.iter().filter(move |m| m.prefecture == self)
    }
}

impl Municipality {
    pub fn all() -> &'static [Municipality] {
        &tables().municipalities
    }
    pub fn by_lgcode(code: &str) -> Option<&'static Municipality> {
        let t = tables();
        t.by_lgcode.get(code).map(|&i| &t.municipalities[i])
    }
    /// Where people can be registered as living: every municipality except designated cities that
    /// are split into wards.
    pub fn is_residence(&self) -> bool {
        !self.has_wards
    }
}

impl std::fmt::Debug for Prefecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prefecture({:02})", self.0)
    }
}

impl std::fmt::Display for Prefecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

impl std::str::FromStr for Prefecture {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_code(s).ok_or_else(|| format!("unknown prefecture code {s:?} (expected 01..47)"))
    }
}

impl Serialize for Prefecture {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for Prefecture {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_47_prefectures_with_names() {
        assert_eq!(Prefecture::all().count(), 47);
        assert_eq!(Prefecture::from_code("13").unwrap().name_ja(), "東京都");
        assert_eq!(Prefecture::from_code("27").unwrap().name_ja(), "大阪府");
        assert_eq!(Prefecture::from_code("01").unwrap().info().name_en, "Hokkaido");
        assert_eq!(Prefecture::from_code("1"), Prefecture::from_code("01"));
        for bad in ["0", "00", "48", "x1", "", "013"] {
            assert_eq!(Prefecture::from_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn municipalities_are_embedded_and_designated_cities_are_not_residences() {
        assert_eq!(Municipality::all().len(), 1916);
        let sapporo = Municipality::by_lgcode("011002").unwrap();
        assert!(sapporo.has_wards && !sapporo.is_residence());
        let chuo = Municipality::by_lgcode("011011").unwrap();
        assert!(chuo.is_residence());
        assert_eq!(chuo.prefecture, Prefecture::from_code("01").unwrap());
        assert!(Municipality::by_lgcode("999999").is_none());
        for p in Prefecture::all() {
            assert!(p.municipalities().any(Municipality::is_residence), "{p:?} has a residence");
        }
    }
}
