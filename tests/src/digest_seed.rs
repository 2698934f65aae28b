//! Nurses with lists of matched postings written straight into a node's database, for the digest
//! crash test (1,000 nurses) and the digest benchmark (20,000): what months of matching would
//! leave behind, in seconds. Everything a digest run reads is real rows of the node's schema —
//! proofed nurses, their `job_support` consent, `matches_changed` applied by the node's own code —
//! so the run under test is the real one.

use chrono::Duration;
use diesel::prelude::*;
use ncf_shared::contract::{MatchedPosting, MatchesChanged, PostingRef};
use ncf_shared::db::DbConn;
use ncf_shared::posting::{EmploymentType, PostingBody, PostingKind, PostingPlace};
use ncf_shared::{AgencyCode, ConsentScope, Prefecture, Qualification};
use prefecture_node::consent::ConsentRecord;
use prefecture_node::nurses::Nurse;

/// A Tokyo job posting, the `i`-th.
pub fn tokyo_job(i: usize) -> PostingBody {
    let today = ncf_shared::time::today_jst();
    PostingBody {
        kind: PostingKind::Job,
        title: format!("病棟看護師（日勤のみ可）その{i}"),
        description: "ブランクのある方も歓迎します。研修制度があります。".into(),
        facility_name: format!("東京テスト病院{i}"),
        facility_contact: "03-0000-0000（看護部）".into(),
        place: PostingPlace::Municipality { lgcode: "131105".into() },
        qualifications: vec![Qualification::NURSE],
        employment_types: vec![EmploymentType::DaysOnly],
        hours: "8:30〜17:15".into(),
        wage: None,
        training: None,
        valid_from: today - Duration::days(1),
        valid_until: today + Duration::days(60),
    }
}

/// `n` proofed nurses of this node with `job_support` given and `postings` Tokyo jobs on their
/// lists; addresses `nurse{i}@example.jp`. Returns their ids in order.
pub fn seed(conn: &mut DbConn, n: usize, postings: usize) -> Vec<String> {
    let now = ncf_shared::time::now_utc();
    let tokyo = Prefecture::from_code("13").expect("Tokyo");
    let added: Vec<MatchedPosting> = (0..postings)
        .map(|i| MatchedPosting {
            posting: PostingRef { prefecture: tokyo, posting_id: format!("seed-posting-{i}") },
            version: 1,
            distance_m: 12_400 + i as u32 * 100,
            body: tokyo_job(i),
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        conn.transaction(|conn| {
            for &i in chunk {
                let id = ncf_shared::ids::RecordId::new().0;
                // Digits as letters: base32 has no 0, 1, 8 or 9.
                let letters: String = i.to_string().bytes().map(|d| char::from(b'C' + (d - b'0'))).collect();
                let code = AgencyCode::parse(&format!("{letters:A>52}")).expect("52 base32 letters");
                let nurse = Nurse {
                    id: id.clone(),
                    agency_code: code.as_str().to_string(),
                    qualification: "03".into(),
                    registration_number: format!("{:07}", 2_000_000 + i),
                    family_name: "山田".into(),
                    given_name: "花子".into(),
                    family_name_kana: "ヤマダ".into(),
                    given_name_kana: "ハナコ".into(),
                    birth_date: chrono::NaiveDate::from_ymd_opt(1985, 4, 1).expect("date"),
                    email: format!("nurse{i}@example.jp"),
                    phone: None,
                    max_distance_km: 20,
                    created_at: now,
                    proofing_method: Some("counter".into()),
                    proofed_at: Some(now),
                    proofed_by: Some("seed".into()),
                    proofing_document: Some("運転免許証".into()),
                };
                diesel::insert_into(prefecture_node::schema::nurses::table).values(&nurse).execute(conn)?;
                diesel::insert_into(prefecture_node::schema::consents::table)
                    .values(&ConsentRecord {
                        id: ncf_shared::ids::RecordId::new().0,
                        nurse_id: id.clone(),
                        scope: ConsentScope::JobSupport.as_str().into(),
                        granted: true,
                        version: 1,
                        text_version: prefecture_node::consent::TEXT_VERSION.into(),
                        text_sha256: prefecture_node::consent::text_sha256(ConsentScope::JobSupport),
                        channel: "web".into(),
                        entered_by: None,
                        recorded_at: now,
                        proofing: "counter".into(),
                        receipt: None,
                    })
                    .execute(conn)?;
                let m = MatchesChanged {
                    agency_code: code,
                    kind: PostingKind::Job,
                    added: added.clone(),
                    removed: Vec::new(),
                    decided_at: chrono::Utc::now(),
                };
                prefecture_node::postings::apply_matches(conn, &id, &m, now)?;
                ids.push(id);
            }
            Ok::<_, diesel::result::Error>(())
        })
        .expect("seed nurses");
    }
    ids
}
