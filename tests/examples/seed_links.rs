//! Benchmark seeder (issue #7, `server/bench/rematch.sh`): links COUNT people of an imported
//! `generate-synthetic` data set to the nodes of the prefectures they live in, as opting in,
//! proofing at the counter and pushing would have left them at the national server: a proofed
//! identity link with the real agency code, `address_linkage` (all), `job_support` (4 in 5),
//! `training_info` (1 in 2), a separation notice (all) and, for 3 in 10, a later employment
//! notice. One in three people of the data set is linked, in key order, so the links spread over
//! every prefecture like the data set does.
//!
//! ```sh
//! cargo run --release -p ncf-tests --example seed_links -- DATABASE_URL SECRET_FILE [COUNT]
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use diesel::prelude::*;
use national_server::schema::{
    identity_links, latest_notices, licences, nurse_consents, nurse_notices, residents,
};
use ncf_shared::db::{DatabaseUrl, DbConn};
use ncf_shared::{Municipality, PersonKey};

const CHUNK: i64 = 6_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(secret)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: seed_links DATABASE_URL SECRET_FILE [COUNT]");
        std::process::exit(2);
    };
    let count: usize = args.get(3).map_or(1_000_000, |c| c.parse().expect("COUNT is a number"));
    let url = DatabaseUrl::parse(url).expect("database URL");
    let mut conn = ncf_shared::db::connect_one(&url).expect("connect");
    let (secret, _) =
        ncf_shared::secret::ServerSecret::load_or_create(std::path::Path::new(secret)).expect("secret");
    let key = secret.agency_code_key();
    let started = Instant::now();
    let now = ncf_shared::time::now_utc();
    let mut after: Vec<u8> = Vec::new();
    let (mut linked, mut seen) = (0usize, 0usize);
    while linked < count {
        let page: Vec<(Vec<u8>, Option<String>)> = residents::table
            .filter(residents::person_key.gt(&after))
            .order(residents::person_key)
            .select((residents::person_key, residents::lgcode))
            .limit(CHUNK)
            .load(&mut conn)
            .expect("read people");
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        // Their licences, by the index on the key's number; the first by (qualification,
        // registration number) when she holds several.
        let numbers: Vec<i64> = page.iter().map(|(k, _)| PersonKey::number_of(k)).collect();
        let mut held: HashMap<Vec<u8>, (String, String)> = HashMap::new();
        for (person, q, r) in licences::table
            .filter(licences::person_no.eq_any(&numbers))
            .select((licences::person_key, licences::qualification, licences::registration_number))
            .load::<(Vec<u8>, String, String)>(&mut conn)
            .expect("read licences")
        {
            match held.entry(person) {
                Entry::Vacant(v) => {
                    v.insert((q, r));
                }
                Entry::Occupied(mut o) if (&q, &r) < (&o.get().0, &o.get().1) => {
                    o.insert((q, r));
                }
                Entry::Occupied(_) => {}
            }
        }
        let rows = page.into_iter().filter_map(|(person, lgcode)| {
            let (q, r) = held.remove(&person)?;
            Some((person, lgcode, q, r))
        });
        let mut links = Vec::new();
        let mut consents = Vec::new();
        let mut notices = Vec::new();
        let mut latest = Vec::new();
        for (person, lgcode, qualification, registration_number) in rows {
            seen += 1;
            if seen % 3 != 0 || linked >= count {
                continue;
            }
            let Some(prefecture) = lgcode.as_deref().and_then(Municipality::by_lgcode).map(|m| m.prefecture)
            else {
                continue;
            };
            let p = PersonKey::from_slice(&person).expect("32-byte key");
            let code = key.code_for(prefecture, &p).as_str().to_string();
            let pref = prefecture.code();
            links.push((
                identity_links::prefecture.eq(pref.clone()),
                identity_links::agency_code.eq(code.clone()),
                identity_links::person_key.eq(person.clone()),
                identity_links::qualification.eq(qualification),
                identity_links::registration_number.eq(registration_number),
                identity_links::linked_at.eq(now),
                identity_links::proofing_method.eq(Some("counter")),
                identity_links::proofed_at.eq(Some(now)),
            ));
            let n = linked;
            for (scope, granted) in
                [("address_linkage", true), ("job_support", n % 5 != 0), ("training_info", n % 2 == 0)]
            {
                consents.push((
                    nurse_consents::prefecture.eq(pref.clone()),
                    nurse_consents::agency_code.eq(code.clone()),
                    nurse_consents::scope.eq(scope),
                    nurse_consents::granted.eq(granted),
                    nurse_consents::version.eq(1),
                    nurse_consents::text_sha256.eq("0".repeat(64)),
                    nurse_consents::recorded_at.eq(now),
                ));
            }
            let left_on = format!("2025-{:02}-{:02}", 1 + n % 12, 1 + n % 28);
            notices.push((
                nurse_notices::notice_id.eq(format!("seed-s-{n}")),
                nurse_notices::prefecture.eq(pref.clone()),
                nurse_notices::agency_code.eq(code.clone()),
                nurse_notices::kind.eq("separation"),
                nurse_notices::body.eq(format!(
                    r#"{{"kind":"separation","left_on":"{left_on}","reason":"childcare","wish_to_return":true,"return_when":null}}"#
                )),
                nurse_notices::filed_at.eq(now),
                nurse_notices::effective_on.eq(chrono::NaiveDate::parse_from_str(&left_on, "%Y-%m-%d").ok()),
                nurse_notices::working.eq(Some(false)),
            ));
            // The deciding notice per link, as the national server keeps it when pushes apply.
            let employed_since = chrono::NaiveDate::from_ymd_opt(2026, 4, 1).expect("date");
            let left = chrono::NaiveDate::parse_from_str(&left_on, "%Y-%m-%d").expect("date");
            let (decides_on, working) = if n % 10 < 3 { (employed_since, true) } else { (left, false) };
            latest.push((
                latest_notices::prefecture.eq(pref.clone()),
                latest_notices::agency_code.eq(code.clone()),
                latest_notices::effective_on.eq(decides_on),
                latest_notices::filed_at.eq(now),
                latest_notices::working.eq(working),
            ));
            if n % 10 < 3 {
                notices.push((
                    nurse_notices::notice_id.eq(format!("seed-e-{n}")),
                    nurse_notices::prefecture.eq(pref),
                    nurse_notices::agency_code.eq(code),
                    nurse_notices::kind.eq("employment_status"),
                    nurse_notices::body.eq(
                        r#"{"kind":"employment_status","employed":true,"workplace_type":"hospital","workplace_lgcode":null,"weekly_hours":38,"as_of":"2026-04-01"}"#.to_string(),
                    ),
                    nurse_notices::filed_at.eq(now),
                    nurse_notices::effective_on.eq(chrono::NaiveDate::from_ymd_opt(2026, 4, 1)),
                    nurse_notices::working.eq(Some(true)),
                ));
            }
            linked += 1;
        }
        conn.transaction(|c: &mut DbConn| {
            ncf_shared::insert_many!(&mut *c, links, |cc, values| diesel::insert_into(identity_links::table)
                .values(values)
                .execute(cc));
            ncf_shared::insert_many!(&mut *c, consents, |cc, values| diesel::insert_into(
                nurse_consents::table
            )
            .values(values)
            .execute(cc));
            ncf_shared::insert_many!(&mut *c, notices, |cc, values| diesel::insert_into(
                nurse_notices::table
            )
            .values(values)
            .execute(cc));
            ncf_shared::insert_many!(&mut *c, latest, |cc, values| diesel::insert_into(
                latest_notices::table
            )
            .values(values)
            .execute(cc));
            Ok::<_, diesel::result::Error>(())
        })
        .expect("insert");
    }
    println!(
        "seeded {linked} linked people (of {seen} read) with consents and notices in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
