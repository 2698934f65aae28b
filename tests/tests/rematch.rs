//! Rematch (issue #7) reads everyone linked once and decides from that read only while nobody
//! else changed anything: the library's two steps (`Rematch::read`, `Rematch::decide`) with a
//! writer in between, on both backends.

use chrono::NaiveDate;
use diesel::prelude::*;
use national_server::provisions::ChainWriter;
use national_server::routing::{CHUNK, Rematch, refresh, refresh_all};
use national_server::schema::{
    identity_links, latest_notices, licences, nurse_consents, person_status, residents, told_status,
};
use ncf_shared::db::DbConn;
use ncf_shared::{AgencyCodeKey, MyNumberHasher, PersonKey, Prefecture};
use ncf_tests::{Backend, TestDb, both_backends};

/// A national database with `n` people (of a synthetic registry twice that size)
/// linked and proofed at Osaka, each wanting job information and separated on 2026-03-31.
fn linked(backend: Backend, n: i64) -> (TestDb, DbConn, Vec<(Vec<u8>, String)>) {
    linked_with(backend, n, false)
}

/// As [`linked`]; `mixed` varies the consents and notices from person to person and links the
/// dead too.
fn linked_with(backend: Backend, n: i64, mixed: bool) -> (TestDb, DbConn, Vec<(Vec<u8>, String)>) {
    let db = TestDb::new(backend);
    let mut conn = db.connect();
    national_server::migrate(&mut conn).unwrap();
    let files = national_server::synthetic::generate(2 * n as u64, 11, db.dir.path()).unwrap();
    let hasher = || MyNumberHasher::new(&[7; 32]);
    national_server::imports::registry::import(&mut conn, &files.registry, hasher(), &Default::default())
        .unwrap();
    national_server::imports::residents::import(&mut conn, &files.residents, hasher(), &Default::default())
        .unwrap();
    let osaka = Prefecture::from_code("27").unwrap();
    let agency = AgencyCodeKey::new(&[9; 32]);
    let mut query = licences::table
        .inner_join(residents::table.on(residents::person_key.eq(licences::person_key)))
        .select((licences::person_key, licences::qualification, licences::registration_number))
        .limit(n)
        .into_boxed();
    if !mixed {
        query = query.filter(residents::deceased_on.is_null()).filter(licences::status.eq("active"));
    }
    let people: Vec<(Vec<u8>, String, String)> = query.load(&mut conn).unwrap();
    let now = ncf_shared::time::now_utc();
    let mut linked = Vec::new();
    for (i, (key, qualification, number)) in people.into_iter().enumerate() {
        let code = agency.code_for(osaka, &PersonKey::from_slice(&key).unwrap()).as_str().to_string();
        diesel::insert_into(identity_links::table)
            .values((
                identity_links::prefecture.eq("27"),
                identity_links::agency_code.eq(&code),
                identity_links::person_key.eq(&key),
                identity_links::qualification.eq(&qualification),
                identity_links::registration_number.eq(&number),
                identity_links::linked_at.eq(now),
                identity_links::proofing_method.eq("post"),
                identity_links::proofed_at.eq(now),
            ))
            .execute(&mut conn)
            .unwrap();
        let scopes: &[(&str, bool)] = match (mixed, i % 4) {
            (false, _) | (true, 0) => &[("job_support", true)],
            (true, 1) => &[("address_linkage", true), ("training_info", true)],
            (true, 2) => &[("address_linkage", true), ("job_support", false)],
            (true, _) => &[],
        };
        for (scope, granted) in scopes {
            diesel::insert_into(nurse_consents::table)
                .values((
                    nurse_consents::prefecture.eq("27"),
                    nurse_consents::agency_code.eq(&code),
                    nurse_consents::scope.eq(scope),
                    nurse_consents::granted.eq(granted),
                    nurse_consents::version.eq(1),
                    nurse_consents::text_sha256.eq("0"),
                    nurse_consents::recorded_at.eq(now),
                ))
                .execute(&mut conn)
                .unwrap();
        }
        match (mixed, i % 3) {
            (true, 0) => set_notice(&mut conn, &code, "2026-05-01", true),
            (true, 1) => {}
            _ => set_notice(&mut conn, &code, "2026-03-31", false),
        }
        linked.push((key, code));
    }
    (db, conn, linked)
}

fn set_notice(conn: &mut DbConn, code: &str, effective_on: &str, working: bool) {
    diesel::delete(latest_notices::table.find(("27", code))).execute(conn).unwrap();
    diesel::insert_into(latest_notices::table)
        .values((
            latest_notices::prefecture.eq("27"),
            latest_notices::agency_code.eq(code),
            latest_notices::effective_on.eq(NaiveDate::parse_from_str(effective_on, "%Y-%m-%d").unwrap()),
            latest_notices::filed_at.eq(ncf_shared::time::now_utc()),
            latest_notices::working.eq(working),
        ))
        .execute(conn)
        .unwrap();
}

fn latent(conn: &mut DbConn, key: &[u8]) -> bool {
    person_status::table.find(key).select(person_status::latent).first(conn).unwrap()
}

fn rematch_reads_once_and_decides_what_a_refresh_would(backend: Backend) {
    let (_db, mut conn, people) = linked(backend, 30);
    let first = refresh_all(&mut conn).unwrap();
    assert_eq!(first.persons, people.len());
    let latent_count: i64 =
        person_status::table.filter(person_status::latent.eq(true)).count().get_result(&mut conn).unwrap();
    assert!(latent_count > 0, "someone is latent");
    assert_eq!(first.latent as i64, latent_count);
    // Every link was told once, and a second run over unchanged data tells nobody again.
    assert_eq!(first.events, people.len());
    let again = refresh_all(&mut conn).unwrap();
    assert_eq!((again.events, again.latent), (0, first.latent));

    // What one read decides is what a refresh of each person decides: a refresh afterwards
    // changes nothing either.
    let keys: Vec<Vec<u8>> = people.iter().map(|(k, _)| k.clone()).collect();
    let refreshed = ncf_shared::db::write_transaction(&mut conn, |c| refresh(c, keys.clone())).unwrap();
    assert_eq!((refreshed.events, refreshed.latent), (0, first.latent));
}

fn a_change_committed_after_rematch_read_is_not_overwritten(backend: Backend) {
    let (_db, mut conn, people) = linked(backend, 30);
    refresh_all(&mut conn).unwrap();
    let (key, code) = people.iter().find(|(k, _)| latent(&mut conn, k)).cloned().expect("someone latent");

    // What is derived about her is out of date (what rematch is run to repair): an employment
    // notice is stored and nothing refreshed her.
    set_notice(&mut conn, &code, "2026-06-01", true);
    // Rematch reads everyone; then a push files her separation of 2026-09-01 and refreshes
    // her, as pushes do, before rematch writes.
    let read = Rematch::read(&mut conn).unwrap();
    ncf_shared::db::write_transaction(&mut conn, |c| {
        drop(ChainWriter::begin(c)?);
        set_notice(c, &code, "2026-09-01", false);
        refresh(c, [key.clone()])
    })
    .unwrap();
    assert!(latent(&mut conn, &key), "the push's refresh decided she does not work");

    let report = read.decide(&mut conn).unwrap();
    assert!(latent(&mut conn, &key), "rematch wrote back what it read before the push");
    assert_eq!(report.events, 0, "nothing differs from what the push's refresh told");

    // Read with nobody writing in between, the same rematch repairs what is out of date.
    set_notice(&mut conn, &code, "2026-10-01", true);
    let read = Rematch::read(&mut conn).unwrap();
    let report = read.decide(&mut conn).unwrap();
    assert!(!latent(&mut conn, &key));
    assert_eq!(report.events, 1, "her node is told once");
}

fn rematch_decides_from_its_one_read_while_nobody_takes_the_lock(backend: Backend) {
    let (_db, mut conn, people) = linked(backend, 30);
    refresh_all(&mut conn).unwrap();
    let (key, code) = people.iter().find(|(k, _)| latent(&mut conn, k)).cloned().expect("someone latent");
    let read = Rematch::read(&mut conn).unwrap();
    // A change behind the lock's back (no real writer does this) shows which read decides.
    set_notice(&mut conn, &code, "2026-06-01", true);
    read.decide(&mut conn).unwrap();
    assert!(latent(&mut conn, &key), "decided from the one read, not read again");
}

fn over_several_chunks_of_mixed_people_rematch_agrees_with_refreshing_each(backend: Backend) {
    let n = CHUNK as i64 + 600;
    let (_db, mut conn, people) = linked_with(backend, n, true);
    assert_eq!(people.len() as i64, n);
    let first = refresh_all(&mut conn).unwrap();
    assert!(first.latent > 0 && first.erased > 0, "{first:?}");
    let with_residence: i64 = person_status::table
        .filter(person_status::residence_prefecture.is_not_null())
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert!(with_residence > 0, "some gave address_linkage");
    let stored = |conn: &mut DbConn| -> Vec<(Vec<u8>, String, bool, Option<String>)> {
        person_status::table
            .order(person_status::person_key)
            .select((
                person_status::person_key,
                person_status::employment,
                person_status::latent,
                person_status::residence_prefecture,
            ))
            .load(conn)
            .unwrap()
    };
    let after_rematch = stored(&mut conn);

    // Refreshing every one of them, chunk by chunk, finds nothing to change or tell.
    let keys: Vec<Vec<u8>> = people.iter().map(|(k, _)| k.clone()).collect();
    let refreshed = ncf_shared::db::write_transaction(&mut conn, |c| refresh(c, keys.clone())).unwrap();
    assert_eq!((refreshed.events, refreshed.latent), (0, first.latent));
    assert_eq!(stored(&mut conn), after_rematch);

    // And from nothing stored, refreshing decides what rematch decided.
    diesel::delete(person_status::table).execute(&mut conn).unwrap();
    diesel::delete(told_status::table).execute(&mut conn).unwrap();
    ncf_shared::db::write_transaction(&mut conn, |c| refresh(c, keys.clone())).unwrap();
    assert_eq!(stored(&mut conn), after_rematch);
}

both_backends!(rematch_reads_once_and_decides_what_a_refresh_would);
both_backends!(a_change_committed_after_rematch_read_is_not_overwritten);
both_backends!(rematch_decides_from_its_one_read_while_nobody_takes_the_lock);
both_backends!(over_several_chunks_of_mixed_people_rematch_agrees_with_refreshing_each);
