//! `generate-synthetic`: deterministic registry and resident files for tests, the demo and
//! benchmarks. People are spread over prefectures by employed-nurse weights and evenly over each
//! prefecture's residential municipalities (wards, not the designated cities that contain them).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Days, NaiveDate};
use ncf_shared::{Municipality, MyNumber, Prefecture, Qualification, RegistrationNumber};

/// SplitMix64: small, fast, and the same on every platform and version (unlike a library RNG whose
/// stream may change between releases).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const FAMILY: [(&str, &str); 40] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
    ("阿部", "アベ"),
    ("石川", "イシカワ"),
    ("山下", "ヤマシタ"),
    ("中島", "ナカジマ"),
    ("石井", "イシイ"),
    ("小川", "オガワ"),
    ("前田", "マエダ"),
    ("岡田", "オカダ"),
    ("長谷川", "ハセガワ"),
    ("藤田", "フジタ"),
    ("後藤", "ゴトウ"),
    ("近藤", "コンドウ"),
    ("村上", "ムラカミ"),
    ("遠藤", "エンドウ"),
    ("青木", "アオキ"),
    ("坂本", "サカモト"),
];
const GIVEN_F: [(&str, &str); 30] = [
    ("陽子", "ヨウコ"),
    ("恵子", "ケイコ"),
    ("京子", "キョウコ"),
    ("幸子", "サチコ"),
    ("和子", "カズコ"),
    ("久美子", "クミコ"),
    ("由美子", "ユミコ"),
    ("真由美", "マユミ"),
    ("明美", "アケミ"),
    ("裕子", "ユウコ"),
    ("直美", "ナオミ"),
    ("智子", "トモコ"),
    ("美穂", "ミホ"),
    ("愛", "アイ"),
    ("彩", "アヤ"),
    ("舞", "マイ"),
    ("麻衣", "マイ"),
    ("沙織", "サオリ"),
    ("香織", "カオリ"),
    ("美咲", "ミサキ"),
    ("葵", "アオイ"),
    ("結衣", "ユイ"),
    ("陽菜", "ヒナ"),
    ("さくら", "サクラ"),
    ("優子", "ユウコ"),
    ("真理", "マリ"),
    ("千尋", "チヒロ"),
    ("里美", "サトミ"),
    ("由紀", "ユキ"),
    ("亜希子", "アキコ"),
];
const GIVEN_M: [(&str, &str); 10] = [
    ("大輔", "ダイスケ"),
    ("翔太", "ショウタ"),
    ("健太", "ケンタ"),
    ("拓也", "タクヤ"),
    ("直樹", "ナオキ"),
    ("和也", "カズヤ"),
    ("誠", "マコト"),
    ("亮", "リョウ"),
    ("剛", "ツヨシ"),
    ("聡", "サトシ"),
];

pub struct SyntheticFiles {
    pub registry: PathBuf,
    pub residents: PathBuf,
    pub people: u64,
    pub resident_events: u64,
}

/// Residential municipalities with the cumulative weights used to pick one.
struct Places {
    municipalities: Vec<&'static Municipality>,
    cumulative: Vec<f64>,
}

impl Places {
    fn new() -> Self {
        let mut municipalities = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0.0;
        for p in Prefecture::all() {
            let homes: Vec<_> = p.municipalities().filter(|m| m.is_residence()).collect();
            let each = f64::from(p.info().employed_nurses) / homes.len() as f64;
            for m in homes {
                total += each;
                municipalities.push(m);
                cumulative.push(total);
            }
        }
        Self { municipalities, cumulative }
    }
    fn pick(&self, rng: &mut Rng) -> &'static Municipality {
        let total = *self.cumulative.last().expect("municipalities are embedded");
        let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self.cumulative.partition_point(|&c| c <= x).min(self.municipalities.len() - 1);
        self.municipalities[i]
    }
    fn pick_in_other_prefecture(&self, rng: &mut Rng, not: Prefecture) -> &'static Municipality {
        loop {
            let m = self.pick(rng);
            if m.prefecture != not {
                return m;
            }
        }
    }
}

fn date_between(rng: &mut Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0) as u64;
    from + Days::new(rng.below(span + 1))
}

fn address(rng: &mut Rng, m: &Municipality) -> String {
    format!(
        "{}{}{}丁目{}番{}号",
        m.prefecture.name_ja(),
        m.name_ja.replace(' ', ""),
        1 + rng.below(9),
        1 + rng.below(30),
        1 + rng.below(20)
    )
}

/// Writes `registry.csv` and `residents.csv` for `people` people into `out`.
pub fn generate(people: u64, seed: u64, out: &Path) -> std::io::Result<SyntheticFiles> {
    assert!(people < 10_000_000, "at most 9,999,999 people (7-digit registration numbers)");
    std::fs::create_dir_all(out)?;
    let registry_path = out.join("registry.csv");
    let residents_path = out.join("residents.csv");
    let mut registry = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&registry_path)?);
    let mut residents = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&residents_path)?);
    writeln!(registry, "{}", crate::imports::registry::HEADER.join(","))?;
    writeln!(residents, "{}", crate::imports::residents::HEADER.join(","))?;

    let places = Places::new();
    let mut rng = Rng::new(seed);
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid constant date");
    let (earliest_birth, latest_birth, last_registration) =
        (day(1958, 1, 1), day(2003, 3, 31), day(2026, 3, 31));
    let (moves_from, moves_to) = (day(2024, 1, 1), day(2026, 10, 31));
    let offset = rng.below(10_000_000);
    let mut events = 0u64;
    for i in 0..people {
        // Bijections of i modulo 10^7 and 10^11 keep numbers unique without a lookup table.
        let reg = ((i + 1) * 7_654_321 + offset) % 10_000_000;
        let regno = RegistrationNumber::new(if reg == 0 { 10_000_000 } else { reg as u32 })
            .expect("non-zero registration number");
        let my_number = MyNumber::from_body(((i + 1) * 3_141_592_653 + seed) % 100_000_000_000);
        let q = match rng.below(100) {
            0..=4 => Qualification::PUBLIC_HEALTH_NURSE,
            5..=7 => Qualification::MIDWIFE,
            8..=79 => Qualification::NURSE,
            _ => Qualification::ASSISTANT_NURSE,
        };
        let female = rng.chance(920);
        let (family, family_kana) = *rng.pick(&FAMILY);
        let (given, given_kana) = if female { *rng.pick(&GIVEN_F) } else { *rng.pick(&GIVEN_M) };
        let birth = date_between(&mut rng, earliest_birth, latest_birth);
        let registered = date_between(
            &mut rng,
            birth.with_year(birth.year() + 21).unwrap_or(birth),
            birth.with_year(birth.year() + 26).unwrap_or(birth).min(last_registration),
        );
        let status = match rng.below(1000) {
            0..=959 => "active",
            960..=989 => "lapsed",
            990..=994 => "suspended",
            _ => "revoked",
        };
        let mn = my_number.expose_digits();
        writeln!(
            registry,
            "{},{},{},{mn},{family},{given},{family_kana},{given_kana},{},{},{status}",
            q.code(),
            regno.canonical(),
            registered,
            birth,
            if female { 2 } else { 1 },
        )?;

        let home = places.pick(&mut rng);
        let moved_in = date_between(&mut rng, registered, day(2023, 12, 31).max(registered));
        writeln!(
            residents,
            "{mn},address_changed,{moved_in},{},{},{family},{given}",
            home.lgcode,
            address(&mut rng, home)
        )?;
        events += 1;
        if rng.chance(40) {
            // A move; about a third of them to another prefecture.
            let to = if rng.chance(333) {
                places.pick_in_other_prefecture(&mut rng, home.prefecture)
            } else {
                places.pick(&mut rng)
            };
            // After she moved in (registered in 2024 or later, she may have moved in on a day
            // of the same window): never the same day, which would be a second address for it.
            let after = moves_from.max(moved_in + chrono::Days::new(1));
            let when = date_between(&mut rng, after, moves_to.max(after));
            writeln!(residents, "{mn},address_changed,{when},{},{},,", to.lgcode, address(&mut rng, to))?;
            events += 1;
        }
        if female && rng.chance(10) {
            let (new_family, _) = *rng.pick(&FAMILY);
            let when = date_between(&mut rng, moves_from, moves_to);
            writeln!(residents, "{mn},name_changed,{when},,,{new_family},{given}")?;
            events += 1;
        }
        if rng.chance(5) {
            let when = date_between(&mut rng, moves_from, moves_to);
            writeln!(residents, "{mn},deceased,{when},,,,")?;
            events += 1;
        }
    }
    registry.flush()?;
    residents.flush()?;
    Ok(SyntheticFiles { registry: registry_path, residents: residents_path, people, resident_events: events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_files_and_valid_content() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = generate(2000, 7, a.path()).unwrap();
        let fb = generate(2000, 7, b.path()).unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&fa.registry), read(&fb.registry));
        assert_eq!(read(&fa.residents), read(&fb.residents));
        let other = generate(2000, 8, b.path()).unwrap();
        assert_ne!(read(&fa.registry), read(&other.registry));

        let registry = read(&fa.registry);
        let rows: Vec<Vec<&str>> = registry.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 2000);
        let mut regnos = std::collections::HashSet::new();
        let mut numbers = std::collections::HashSet::new();
        for r in &rows {
            assert!(MyNumber::parse(r[3]).is_ok(), "valid check digit");
            assert!(regnos.insert(r[1]), "unique registration number");
            assert!(numbers.insert(r[3]), "unique My Number");
        }
        let residents = read(&fa.residents);
        let events: Vec<Vec<&str>> = residents.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert!(events.len() > 2000, "everyone has an address, some have more events");
        for kind in ["address_changed", "name_changed", "deceased"] {
            assert!(events.iter().any(|e| e[1] == kind), "{kind} present");
        }
        for e in events.iter().filter(|e| e[1] == "address_changed") {
            assert!(Municipality::by_lgcode(e[3]).is_some_and(Municipality::is_residence));
        }
    }

    #[test]
    fn people_follow_prefecture_weights() {
        let places = Places::new();
        let mut rng = Rng::new(1);
        let mut tokyo = 0;
        let mut tottori = 0;
        for _ in 0..100_000 {
            match places.pick(&mut rng).prefecture.number() {
                13 => tokyo += 1,
                31 => tottori += 1,
                _ => {}
            }
        }
        // Tokyo has ~15x Tottori's employed nurses.
        assert!(tokyo > 10 * tottori, "tokyo {tokyo} tottori {tottori}");
    }
}
