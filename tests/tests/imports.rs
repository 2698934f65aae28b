//! `national-server import-registry` / `import-residents` as an operator runs them: real process,
//! real database (SQLite and PostgreSQL).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_tests::{
    Backend, Person, REGISTRY_HEADER, RESIDENTS_HEADER, TestDb, both_backends, national, run, write_csv,
};

#[derive(QueryableByName, Debug, PartialEq)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(db: &TestDb, table: &str) -> i64 {
    let mut conn = db.connect();
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .expect("count")
        .n
}

#[derive(QueryableByName, Debug, PartialEq, Clone)]
struct LicenceRow {
    #[diesel(sql_type = Text)]
    qualification: String,
    #[diesel(sql_type = Text)]
    registration_number: String,
    #[diesel(sql_type = Text)]
    family_name: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    import_id: String,
}

fn licences(db: &TestDb) -> Vec<LicenceRow> {
    let mut conn = db.connect();
    diesel::sql_query(
        "SELECT qualification, registration_number, family_name, status, import_id FROM licences \
         ORDER BY qualification, registration_number",
    )
    .load(&mut conn)
    .expect("licences")
}

fn import(db: &TestDb, kind: &str, file: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let mut cmd = national(db);
    cmd.arg(kind).arg(file).args(extra);
    let (out, stdout, stderr) = run(cmd);
    (out.status.success(), stdout, stderr)
}

fn people(n: u64) -> Vec<Person> {
    (0..n).map(Person::sample).collect()
}

fn good_registry_is_imported_and_reimport_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let cast = people(40);
    let file = db.path("registry.csv");
    write_csv(&file, REGISTRY_HEADER, &cast.iter().map(Person::registry_row).collect::<Vec<_>>());

    let (ok, stdout, stderr) = import(&db, "import-registry", &file, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("40 rows (40 new, 0 changed, 0 unchanged, 0 rejected)"), "{stdout}");
    assert_eq!(count(&db, "licences"), 40);
    let first = licences(&db);
    assert_eq!(first[0].registration_number, "1000000");
    assert_eq!(first[0].family_name, "山田");

    // No clear My Number is stored or logged (rule 1).
    let mut conn = db.connect();
    #[derive(QueryableByName)]
    struct Dump {
        #[diesel(sql_type = Text)]
        t: String,
    }
    let dumped: Vec<Dump> = diesel::sql_query(match backend {
        Backend::Sqlite => "SELECT qualification || registration_number || family_name || given_name || hex(person_key) AS t FROM licences",
        Backend::Postgres => "SELECT qualification || registration_number || family_name || given_name || encode(person_key, 'hex') AS t FROM licences",
    })
    .load(&mut conn)
    .unwrap();
    for p in &cast {
        assert!(dumped.iter().all(|d| !d.t.contains(&p.my_number)), "My Number stored in clear");
        assert!(!stderr.contains(&p.my_number) && !stdout.contains(&p.my_number), "My Number logged");
    }
    if backend == Backend::Sqlite {
        for file in ["test.db", "test.db-wal"] {
            let bytes = std::fs::read(db.path(file)).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(cast.iter().all(|p| !text.contains(&p.my_number)), "My Number in {file}");
        }
    }

    // Same file again: nothing changes, not even the import stamps.
    let (ok, stdout, stderr) = import(&db, "import-registry", &file, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("40 rows (0 new, 0 changed, 40 unchanged, 0 rejected)"), "{stdout}");
    assert_eq!(licences(&db), first);

    // One row changed upstream: exactly that row changes and names the new import (rule 7).
    let mut changed = cast.clone();
    changed[5].status = "lapsed";
    write_csv(&file, REGISTRY_HEADER, &changed.iter().map(Person::registry_row).collect::<Vec<_>>());
    let (ok, stdout, stderr) = import(&db, "import-registry", &file, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("40 rows (0 new, 1 changed, 39 unchanged, 0 rejected)"), "{stdout}");
    let after = licences(&db);
    let differing: Vec<_> = after.iter().zip(&first).filter(|(a, b)| a != b).collect();
    assert_eq!(differing.len(), 1);
    assert_eq!(differing[0].0.status, "lapsed");
    let import_id = stdout.rsplit("import id ").next().unwrap().trim();
    assert_eq!(differing[0].0.import_id, import_id);
    assert_eq!(count(&db, "imports"), 3);
}
both_backends!(good_registry_is_imported_and_reimport_changes_nothing);

/// A file with several bad rows, and the (line, column) each must be reported at.
fn bad_registry(db: &TestDb) -> (std::path::PathBuf, Vec<(u64, &'static str)>) {
    let cast = people(12);
    let mut rows: Vec<String> = cast.iter().map(Person::registry_row).collect();
    let mut wrong_digit = cast[1].clone();
    let last = wrong_digit.my_number.pop().unwrap();
    wrong_digit.my_number.push(if last == '9' { '0' } else { char::from(last as u8 + 1) });
    rows[1] = wrong_digit.registry_row();
    rows[3] = rows[3].replacen("03,", "99,", 1);
    rows[4] = rows[4].replace("1985-04-01", "1985-02-30");
    rows[6] = rows[6].rsplit_once(',').unwrap().0.to_string();
    rows[7] = rows[7].replace(",2,active", ",5,active");
    rows[9] = rows[8].clone();
    let mut kana = cast[10].clone();
    kana.family_name_kana = "やまだ".into();
    rows[10] = kana.registry_row();
    let file = db.path("registry-bad.csv");
    write_csv(&file, REGISTRY_HEADER, &rows);
    // Line numbers count the header as line 1.
    let expected = vec![
        (3, "my_number"),
        (5, "qualification"),
        (6, "birth_date"),
        (8, ""),
        (9, "sex"),
        (11, "registration_number"),
        (12, "family_name_kana"),
    ];
    (file, expected)
}

fn bad_rows_reject_the_whole_file_and_name_every_row(backend: Backend) {
    let db = TestDb::new(backend);
    let (file, expected) = bad_registry(&db);
    let (ok, stdout, stderr) = import(&db, "import-registry", &file, &[]);
    assert!(!ok, "a file with bad rows must fail: {stdout}");
    for (line, column) in &expected {
        let needle = if column.is_empty() {
            format!("line {line}: expected 11 columns, found 10")
        } else {
            format!("line {line}, column {column}:")
        };
        assert!(stderr.contains(&needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(stderr.contains("7 bad row(s) out of 12; nothing was imported"), "{stderr}");
    assert!(stderr.contains("check digit is wrong"), "{stderr}");
    assert!(stderr.contains("duplicate of line 10"), "{stderr}");
    assert_eq!(count(&db, "licences"), 0, "nothing written");
    assert_eq!(count(&db, "imports"), 0, "no import recorded");
}
both_backends!(bad_rows_reject_the_whole_file_and_name_every_row);

fn accept_valid_applies_good_rows_and_writes_rejects(backend: Backend) {
    let db = TestDb::new(backend);
    let (file, expected) = bad_registry(&db);
    let rejects = db.path("rejects.csv");
    let (ok, stdout, stderr) =
        import(&db, "import-registry", &file, &["--accept-valid", "--rejects", rejects.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("12 rows (5 new, 0 changed, 0 unchanged, 7 rejected)"), "{stdout}");
    assert_eq!(count(&db, "licences"), 5);
    let text = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("line,errors,qualification,registration_number"));
    assert_eq!(lines.len(), 1 + expected.len());
    for ((line, _), row) in expected.iter().zip(&lines[1..]) {
        assert!(row.starts_with(&format!("{line},")), "{row}");
        assert!(row.contains("************"), "My Number masked: {row}");
    }
    assert!(
        people(12).iter().all(|p| !text.contains(&p.my_number)),
        "no clear My Number in the rejects file"
    );
}
both_backends!(accept_valid_applies_good_rows_and_writes_rejects);

fn malformed_files_are_refused_with_a_clear_message(backend: Backend) {
    let db = TestDb::new(backend);
    let row = Person::sample(1).registry_row();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.csv", Vec::new(), "is empty"),
        (
            "header.csv",
            format!("qualification,registration_no\n{row}\n").into_bytes(),
            "has the wrong header",
        ),
        (
            "sjis.csv",
            // "山田" in Shift_JIS is 0x8E 0x52 0x93 0x63: not UTF-8.
            [
                REGISTRY_HEADER.as_bytes(),
                b"\n03,1000001,2008-04-01,",
                Person::sample(1).my_number.as_bytes(),
                b",\x8e\x52\x93\x63,x,\x83\x84,\x83\x84,1985-04-01,2,active\n",
            ]
            .concat(),
            "is not UTF-8",
        ),
    ];
    for (name, bytes, message) in cases {
        let file = db.path(name);
        std::fs::write(&file, bytes).unwrap();
        let (ok, _, stderr) = import(&db, "import-registry", &file, &[]);
        assert!(!ok, "{name} must be refused");
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
    let (ok, _, stderr) = import(&db, "import-registry", &db.path("missing.csv"), &[]);
    assert!(!ok && stderr.contains("cannot read"), "{stderr}");
    assert_eq!(count(&db, "licences"), 0);
    assert_eq!(count(&db, "imports"), 0);
}
both_backends!(malformed_files_are_refused_with_a_clear_message);

#[derive(QueryableByName, Debug, PartialEq)]
struct ResidentRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    lgcode: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    family_name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Date>)]
    deceased_on: Option<chrono::NaiveDate>,
}

fn residents_fold_into_current_state_and_reimport_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let cast = people(3);
    // The feed is about licence holders: their licences first.
    let registry = db.path("registry.csv");
    write_csv(&registry, REGISTRY_HEADER, &cast.iter().map(Person::registry_row).collect::<Vec<_>>());
    let (ok, _, stderr) = import(&db, "import-registry", &registry, &[]);
    assert!(ok, "{stderr}");
    let file = db.path("residents.csv");
    let mut rows: Vec<String> = cast.iter().map(Person::moved_in_row).collect();
    rows.push(format!(
        "{},address_changed,2025-06-01,261017,京都府京都市北区1丁目2番3号,,",
        cast[0].my_number
    ));
    rows.push(format!("{},name_changed,2024-05-05,,,中村,美咲", cast[1].my_number));
    rows.push(format!("{},deceased,2025-01-31,,,,", cast[2].my_number));
    write_csv(&file, RESIDENTS_HEADER, &rows);
    let (ok, stdout, stderr) = import(&db, "import-residents", &file, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("6 rows (6 new, 0 changed, 0 unchanged, 0 rejected)"), "{stdout}");
    let mut conn = db.connect();
    let state: Vec<ResidentRow> = diesel::sql_query(
        "SELECT lgcode, family_name, deceased_on FROM residents ORDER BY lgcode, family_name",
    )
    .load(&mut conn)
    .unwrap();
    let expected = vec![
        ResidentRow { lgcode: Some("261017".into()), family_name: Some("山田".into()), deceased_on: None },
        ResidentRow { lgcode: Some("271021".into()), family_name: Some("中村".into()), deceased_on: None },
        ResidentRow {
            lgcode: Some("271021".into()),
            family_name: Some("鈴木".into()),
            deceased_on: chrono::NaiveDate::from_ymd_opt(2025, 1, 31),
        },
    ];
    assert_eq!(state, expected);

    let (ok, stdout, _) = import(&db, "import-residents", &file, &[]);
    assert!(ok && stdout.contains("6 rows (0 new, 0 changed, 6 unchanged, 0 rejected)"), "{stdout}");
    assert_eq!(count(&db, "resident_events"), 6);
    assert_eq!(count(&db, "residents"), 3);

    // Bad rows: unknown municipality, a designated city instead of its ward, missing name.
    let bad = vec![
        format!("{},address_changed,2025-07-01,999999,どこか,,", cast[0].my_number),
        format!("{},address_changed,2025-07-01,271004,大阪市,,", cast[1].my_number),
        format!("{},name_changed,2025-07-01,,,,", cast[0].my_number),
        format!("{},moved,2025-07-01,,,,", cast[0].my_number),
    ];
    let bad_file = db.path("residents-bad.csv");
    write_csv(&bad_file, RESIDENTS_HEADER, &bad);
    let (ok, _, stderr) = import(&db, "import-residents", &bad_file, &[]);
    assert!(!ok);
    assert!(stderr.contains("line 2, column lgcode: unknown municipality code \"999999\""), "{stderr}");
    assert!(
        stderr.contains("line 3, column lgcode: 271004 (大阪市) is a designated city with wards"),
        "{stderr}"
    );
    assert!(stderr.contains("line 4, column family_name: must not be empty"), "{stderr}");
    assert!(stderr.contains("line 5, column event: unknown event \"moved\""), "{stderr}");
    assert_eq!(count(&db, "resident_events"), 6, "nothing written");
}
both_backends!(residents_fold_into_current_state_and_reimport_changes_nothing);

fn synthetic_files_import_cleanly(backend: Backend) {
    let db = TestDb::new(backend);
    let out = db.path("synthetic");
    let mut cmd = national(&db);
    cmd.args(["generate-synthetic", "--nurses", "3000", "--out"]).arg(&out);
    let (status, stdout, stderr) = run(cmd);
    assert!(status.status.success(), "{stderr}");
    assert!(stdout.contains("3000 people"), "{stdout}");
    let (ok, stdout, stderr) = import(&db, "import-registry", &out.join("registry.csv"), &[]);
    assert!(ok && stdout.contains("3000 rows (3000 new"), "{stdout}{stderr}");
    let (ok, stdout, stderr) = import(&db, "import-residents", &out.join("residents.csv"), &[]);
    assert!(ok && stdout.contains("0 rejected"), "{stdout}{stderr}");
    assert_eq!(count(&db, "residents"), 3000, "everyone has a resident record");
    // Every licence joins a resident record through the keyed hash.
    let mut conn = db.connect();
    let joined: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM licences l JOIN residents r ON r.person_key = l.person_key",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(joined.n, 3000);
}
both_backends!(synthetic_files_import_cleanly);

#[derive(QueryableByName, Debug, PartialEq)]
struct IndexDef {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

fn indexes(db: &TestDb) -> Vec<IndexDef> {
    let sql = match db.backend {
        Backend::Sqlite => {
            "SELECT name, sql AS definition FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('licences', 'resident_events') AND sql IS NOT NULL ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT indexname AS name, indexdef AS definition FROM pg_indexes \
             WHERE tablename IN ('licences', 'resident_events') ORDER BY indexname"
        }
    };
    diesel::sql_query(sql).load(&mut db.connect()).expect("indexes")
}

/// The tables' foreign keys as the database describes them.
fn foreign_keys(db: &TestDb) -> Vec<IndexDef> {
    let sql = match db.backend {
        Backend::Sqlite => {
            "SELECT m.name || '.' || f.\"from\" AS name, f.\"table\" || '.' || f.\"to\" AS definition \
             FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
             WHERE m.name IN ('licences', 'resident_events') ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT conname::text AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint \
             WHERE contype = 'f' AND conrelid::regclass::text IN ('licences', 'resident_events') \
             ORDER BY conname"
        }
    };
    diesel::sql_query(sql).load(&mut db.connect()).expect("foreign keys")
}

/// The initial load drops and rebuilds the tables' indexes (and, on PostgreSQL, their
/// `import_id` foreign keys): they must come back exactly as the migrations define them, and
/// still enforce uniqueness and the reference to the import.
fn initial_bulk_load_restores_the_migration_indexes(backend: Backend) {
    let db = TestDb::new(backend);
    let mut cmd = national(&db);
    cmd.arg("migrate");
    assert!(run(cmd).0.status.success());
    let migrated = indexes(&db);
    assert_eq!(migrated.len(), 3, "{migrated:?}");
    let migrated_fks = foreign_keys(&db);
    assert_eq!(migrated_fks.len(), 2, "{migrated_fks:?}");

    let cast = people(5);
    let registry = db.path("registry.csv");
    write_csv(&registry, REGISTRY_HEADER, &cast.iter().map(Person::registry_row).collect::<Vec<_>>());
    let residents = db.path("residents.csv");
    write_csv(&residents, RESIDENTS_HEADER, &cast.iter().map(Person::moved_in_row).collect::<Vec<_>>());
    let (ok, _, stderr) = import(&db, "import-registry", &registry, &[]);
    assert!(ok, "{stderr}");
    // On SQLite, a load nobody else is reading runs with a rollback journal (one write per page
    // instead of two), then the database is back in WAL mode; a load while another connection is
    // open stays in WAL mode and succeeds all the same.
    let reader = db.connect();
    let (ok, _, residents_stderr) = import(&db, "import-residents", &residents, &[]);
    assert!(ok, "{residents_stderr}");
    drop(reader);
    if backend == Backend::Sqlite {
        assert!(stderr.contains("initial load with a rollback journal"), "{stderr}");
        assert!(residents_stderr.contains("stays in WAL mode"), "{residents_stderr}");
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = Text)]
            journal_mode: String,
        }
        let mode: Mode =
            diesel::sql_query("PRAGMA journal_mode").get_result(&mut db.connect()).expect("mode");
        assert_eq!(mode.journal_mode, "wal");
    }
    assert_eq!(indexes(&db), migrated);
    assert_eq!(foreign_keys(&db), migrated_fks);

    let mut conn = db.connect();
    let duplicate = diesel::sql_query(
        "INSERT INTO licences SELECT * FROM licences WHERE registration_number = '1000000'",
    )
    .execute(&mut conn);
    assert!(duplicate.is_err(), "the key index enforces uniqueness after a bulk load");
    let orphan = diesel::sql_query(
        "UPDATE licences SET import_id = 'no-such-import' WHERE registration_number = '1000000'",
    )
    .execute(&mut conn);
    assert!(orphan.is_err(), "a licence must still name a recorded import after a bulk load");
}
both_backends!(initial_bulk_load_restores_the_migration_indexes);

/// Writes `rows` after the registry header with the given line ending, a UTF-8 BOM first if asked
/// (as Excel saves "CSV UTF-8").
fn write_registry_raw(path: &std::path::Path, rows: &[String], eol: &str, bom: bool) {
    let mut text = String::from(if bom { "\u{feff}" } else { "" });
    for line in std::iter::once(REGISTRY_HEADER).chain(rows.iter().map(String::as_str)) {
        text.push_str(line);
        text.push_str(eol);
    }
    std::fs::write(path, text).expect("write csv");
}

/// Reported lines are the file's physical lines (header = line 1) where each bad row starts, in LF
/// and in CRLF files with a BOM: a quoted field over three lines and blank lines count, both on
/// stderr and in the rejects file.
fn reported_lines_are_the_lines_an_editor_shows(backend: Backend) {
    let db = TestDb::new(backend);
    for (n, (eol, bom)) in [("\n", false), ("\r\n", true)].into_iter().enumerate() {
        let cast: Vec<Person> = (0..4).map(|i| Person::sample(10 * n as u64 + i)).collect();
        let mut multi_line = cast[0].clone();
        multi_line.family_name = format!("\"山{eol}田{eol}様\"");
        let mut bad_sex = cast[2].registry_row();
        bad_sex = bad_sex.replace(",2,active", ",7,active");
        let rows = vec![
            multi_line.registry_row(), // lines 2-4: a name with line breaks (control characters)
            cast[1].registry_row(),    // line 5
            String::new(),             // line 6, blank: skipped by the reader, still a line
            bad_sex,                   // line 7
            cast[3].registry_row(),    // line 8
        ];
        let file = db.path(&format!("lines-{n}.csv"));
        write_registry_raw(&file, &rows, eol, bom);

        let (ok, _, stderr) = import(&db, "import-registry", &file, &[]);
        assert!(!ok);
        assert!(stderr.contains("line 2, column family_name: contains a control character"), "{stderr}");
        assert!(stderr.contains("line 7, column sex: unknown sex code \"7\""), "{stderr}");
        assert!(stderr.contains("2 bad row(s) out of 4"), "{stderr}");

        let rejects = db.path(&format!("lines-{n}.rejects.csv"));
        let (ok, stdout, stderr) = import(
            &db,
            "import-registry",
            &file,
            &["--accept-valid", "--rejects", rejects.to_str().unwrap()],
        );
        assert!(ok, "{stderr}");
        assert!(stdout.contains("4 rows (2 new"), "{stdout}");
        assert!(
            stderr.contains("line 2, column family_name:") && stderr.contains("line 7, column sex:"),
            "{stderr}"
        );
        let text = std::fs::read_to_string(&rejects).unwrap();
        assert!(text.contains("\n2,family_name: contains a control character,"), "{text}");
        assert!(text.contains("\n7,\"sex: unknown sex code \"\"7\"\""), "{text}");
    }
}
both_backends!(reported_lines_are_the_lines_an_editor_shows);

/// A My Number outside its column (a missing, an extra or a swapped field) never appears in clear:
/// not on stderr, not in the rejects file; it appears masked instead.
fn shifted_my_numbers_are_masked_everywhere(backend: Backend) {
    let db = TestDb::new(backend);
    let cast = people(5);
    let p = |i: usize| &cast[i];
    let tail = |q: &Person| {
        format!(
            "{},{},{},{},{},2,{}",
            q.family_name, q.given_name, q.family_name_kana, q.given_name_kana, q.birth_date, q.status
        )
    };
    let rows = vec![
        p(0).registry_row(),
        // Extra field before the My Number: 12 columns.
        format!("03,{},2008-04-01,x,{},{}", p(1).registration_number, p(1).my_number, tail(p(1))),
        // registered_on missing: the My Number stands in its place, 10 columns.
        format!("03,{},{},{}", p(2).registration_number, p(2).my_number, tail(p(2))),
        // registered_on and my_number swapped: 11 columns, and the date's reason quotes the value.
        format!("03,{},{},2008-04-01,{}", p(3).registration_number, p(3).my_number, tail(p(3))),
        p(4).registry_row(),
    ];
    let file = db.path("shifted.csv");
    write_csv(&file, REGISTRY_HEADER, &rows);
    let clear = |text: &str| cast.iter().filter(|q| text.contains(&q.my_number)).count();

    let (ok, stdout, stderr) = import(&db, "import-registry", &file, &[]);
    assert!(!ok);
    assert!(stderr.contains("line 3: expected 11 columns, found 12"), "{stderr}");
    assert!(stderr.contains("line 4: expected 11 columns, found 10"), "{stderr}");
    assert!(
        stderr.contains("line 5, column registered_on:") && stderr.contains("\"************\""),
        "{stderr}"
    );
    assert_eq!(clear(&stderr) + clear(&stdout), 0, "My Number in clear:\n{stderr}");

    let rejects = db.path("shifted.rejects.csv");
    let (ok, stdout, stderr) =
        import(&db, "import-registry", &file, &["--accept-valid", "--rejects", rejects.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("5 rows (2 new, 0 changed, 0 unchanged, 3 rejected)"), "{stdout}");
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(clear(&text) + clear(&stderr) + clear(&stdout), 0, "My Number in clear:\n{text}\n{stderr}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // Each row keeps its shape, the My Number masked where it stands (and the my_number column
    // masked whatever it holds).
    assert!(lines[1].starts_with("3,") && lines[1].contains(",2008-04-01,*,************,"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("4,")
            && lines[2].contains(&format!(",{},************,", p(2).registration_number))
    );
    assert!(lines[3].starts_with("5,") && lines[3].contains("\"************\""), "{}", lines[3]);

    // A file without its header starts with a data row: the refusal quotes it, masked.
    let headless = db.path("headless.csv");
    std::fs::write(&headless, format!("{}\n", p(0).registry_row())).unwrap();
    let (ok, _, stderr) = import(&db, "import-registry", &headless, &[]);
    assert!(!ok && stderr.contains("has the wrong header"), "{stderr}");
    assert!(stderr.contains(",************,") && clear(&stderr) == 0, "{stderr}");

    // The resident feed too: a My Number in the event column is quoted by the reason, masked.
    let residents = db.path("residents-shifted.csv");
    write_csv(&residents, RESIDENTS_HEADER, &[format!("x,{},2025-07-01,,,,", p(0).my_number)]);
    let (ok, _, stderr) = import(&db, "import-residents", &residents, &[]);
    assert!(!ok && stderr.contains("line 2, column event: unknown event \"************\""), "{stderr}");
    assert_eq!(clear(&stderr), 0, "{stderr}");
}
both_backends!(shifted_my_numbers_are_masked_everywhere);

/// Cells a spreadsheet would run as a formula are written with a leading `'` to the rejects file.
fn formula_cells_are_neutralised_in_the_rejects_file(backend: Backend) {
    let db = TestDb::new(backend);
    let mut evil = Person::sample(1);
    evil.family_name = "=cmd|' /C calc'!A0".into();
    evil.given_name = "@SUM(A1)".into();
    evil.status = "-active";
    let rows =
        vec![Person::sample(0).registry_row(), evil.registry_row().replace(",2,-active", ",+2,-active")];
    let file = db.path("formula.csv");
    write_csv(&file, REGISTRY_HEADER, &rows);
    let rejects = db.path("formula.rejects.csv");
    let (ok, stdout, stderr) =
        import(&db, "import-registry", &file, &["--accept-valid", "--rejects", rejects.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 rows (1 new, 0 changed, 0 unchanged, 1 rejected)"), "{stdout}");
    let text = std::fs::read_to_string(&rejects).unwrap();
    let row = text.lines().nth(1).expect("the rejected row");
    assert!(row.contains(",'=cmd|' /C calc'!A0,"), "{row}");
    assert!(row.contains(",'@SUM(A1),"), "{row}");
    assert!(row.contains(",'+2,'-active"), "{row}");
    for cell in ["=cmd", "@SUM", "+2", "-active"] {
        assert!(
            !row.contains(&format!(",{cell}")) && !row.contains(&format!(",\"{cell}")),
            "{cell} in {row}"
        );
    }
}
both_backends!(formula_cells_are_neutralised_in_the_rejects_file);

#[derive(QueryableByName, Debug)]
struct KeyNumber {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    person_key: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    person_no: i64,
}

fn key_numbers(db: &TestDb) -> Vec<KeyNumber> {
    diesel::sql_query("SELECT person_key, person_no FROM licences ORDER BY registration_number")
        .load(&mut db.connect())
        .expect("key numbers")
}

/// The migration that added `licences.person_no`, by its version.
const PERSON_NO: &str = "20261205000003";

/// Reverts the national migrations down to and including `version`.
fn revert_through(db: &TestDb, version: &str) {
    use diesel_migrations::MigrationHarness;
    use ncf_shared::db::DbConn;
    let mut conn = db.connect();
    loop {
        let reverted = match &mut conn {
            DbConn::Sqlite(c) => {
                c.revert_last_migration(national_server::SQLITE_MIGRATIONS).map(|v| v.to_string())
            }
            DbConn::Postgresql(c) => {
                c.revert_last_migration(national_server::POSTGRES_MIGRATIONS).map(|v| v.to_string())
            }
        }
        .expect("revert a migration");
        if reverted.as_str() <= version {
            return;
        }
    }
}

/// Licences are found by person through `person_no`, the person key's first eight bytes as a
/// big-endian signed integer (`PersonKey::number`). The importer writes it; the migration that
/// added it computed it in SQL for the rows already there. Both must give the same number, for
/// keys of either sign, or a person's licence would not be found; the migration's way back
/// restores the index on the key.
fn person_numbers_agree_between_the_importer_and_the_migration(backend: Backend) {
    let db = TestDb::new(backend);
    national_server::migrate(&mut db.connect()).expect("migrate");
    revert_through(&db, PERSON_NO);
    assert!(
        indexes(&db).iter().any(|i| i.name == "licences_person_key"),
        "the way back restores the key index: {:?}",
        indexes(&db)
    );

    // Rows as they were before the column: keys whose first byte has the sign bit set or not.
    let keys: [[u8; 32]; 5] = [
        [0u8; 32],
        [0xff; 32],
        std::array::from_fn(|i| if i == 0 { 0x80 } else { i as u8 }),
        std::array::from_fn(|i| if i == 0 { 0x7f } else { 0xff - i as u8 }),
        std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11)),
    ];
    let blob = |k: &[u8; 32]| {
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        match backend {
            Backend::Sqlite => format!("X'{hex}'"),
            Backend::Postgres => format!("decode('{hex}', 'hex')"),
        }
    };
    let mut conn = db.connect();
    diesel::sql_query(
        "INSERT INTO imports (id, kind, file_name, file_sha256, mode, started_at) \
         VALUES ('before', 'registry', 'old.csv', '', 'all_or_nothing', CURRENT_TIMESTAMP)",
    )
    .execute(&mut conn)
    .expect("an import");
    for (i, k) in keys.iter().enumerate() {
        diesel::sql_query(format!(
            "INSERT INTO licences (qualification, registration_number, person_key, registered_on, \
             family_name, given_name, family_name_kana, given_name_kana, birth_date, sex, status, import_id) \
             VALUES ('03', '900000{i}', {}, '2001-04-01', '看護', '花子', 'カンゴ', 'ハナコ', '1979-01-02', 2, \
             'active', 'before')",
            blob(k)
        ))
        .execute(&mut conn)
        .expect("a licence before the column");
    }
    drop(conn);
    national_server::migrate(&mut db.connect()).expect("migrate forward");
    let migrated = key_numbers(&db);
    assert_eq!(migrated.len(), keys.len());
    for row in &migrated {
        assert_eq!(row.person_no, ncf_shared::PersonKey::number_of(&row.person_key), "{row:?}");
    }
    assert!(migrated.iter().any(|r| r.person_no < 0) && migrated.iter().any(|r| r.person_no > 0));

    // The importer, on the same database.
    let registry = db.path("registry.csv");
    write_csv(&registry, REGISTRY_HEADER, &people(6).iter().map(Person::registry_row).collect::<Vec<_>>());
    let (ok, _, stderr) = import(&db, "import-registry", &registry, &[]);
    assert!(ok, "{stderr}");
    let all = key_numbers(&db);
    assert_eq!(all.len(), keys.len() + 6);
    for row in &all {
        assert_eq!(row.person_no, ncf_shared::PersonKey::number_of(&row.person_key), "{row:?}");
    }
    assert_eq!(
        indexes(&db)
            .iter()
            .filter(|i| i.name.starts_with("licences_person"))
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["licences_person_no"]
    );
}
both_backends!(person_numbers_agree_between_the_importer_and_the_migration);

/// One connection that imports again and again (the library's callers, a test's seeding): SQLite
/// keeps one prepared statement per table and mode on it, so an initial load, a merge into the
/// same table and both into another table each run their own statement, with the counts an
/// operator reads. The values land with the types their readers expect.
fn one_connection_runs_each_import_with_its_own_statement(backend: Backend) {
    use national_server::imports::{registry, residents};
    let db = TestDb::new(backend);
    let mut conn = db.connect();
    national_server::migrate(&mut conn).unwrap();
    let hasher = || ncf_shared::MyNumberHasher::new(&[7; 32]);
    let counts = |s: &national_server::imports::ImportSummary| (s.inserted, s.updated, s.unchanged);
    let cast = people(6);
    let file = db.path("registry.csv");
    write_csv(&file, REGISTRY_HEADER, &cast.iter().map(Person::registry_row).collect::<Vec<_>>());
    let first = registry::import(&mut conn, &file, hasher(), &Default::default()).unwrap();
    assert_eq!(counts(&first), (6, 0, 0));

    let moves = db.path("residents.csv");
    write_csv(&moves, RESIDENTS_HEADER, &cast.iter().map(Person::moved_in_row).collect::<Vec<_>>());
    let events = residents::import(&mut conn, &moves, hasher(), &Default::default()).unwrap();
    assert_eq!(counts(&events), (6, 0, 0));

    let mut changed = cast.clone();
    changed[2].status = "lapsed";
    changed.push(Person::sample(6));
    write_csv(&file, REGISTRY_HEADER, &changed.iter().map(Person::registry_row).collect::<Vec<_>>());
    let second = registry::import(&mut conn, &file, hasher(), &Default::default()).unwrap();
    assert_eq!(counts(&second), (1, 1, 5));
    let again = residents::import(&mut conn, &moves, hasher(), &Default::default()).unwrap();
    assert_eq!(counts(&again), (0, 0, 6));

    let rows = licences(&db);
    assert_eq!(rows.len(), 7);
    let lapsed: Vec<_> = rows.iter().filter(|r| r.import_id == second.import_id.as_str()).collect();
    assert_eq!(lapsed.len(), 2, "the changed licence and the new one name the second import");
    assert!(
        lapsed
            .iter()
            .any(|r| r.registration_number == changed[2].registration_number && r.status == "lapsed")
    );

    if backend == Backend::Sqlite {
        #[derive(QueryableByName, Debug, PartialEq)]
        struct Types {
            #[diesel(sql_type = Text)]
            types: String,
        }
        let mut types = |sql: &str| -> Vec<String> {
            diesel::sql_query(sql).load::<Types>(&mut conn).unwrap().into_iter().map(|t| t.types).collect()
        };
        assert_eq!(
            types(
                "SELECT DISTINCT typeof(qualification) || ' ' || typeof(person_key) || ' ' || typeof(person_no) \
                 || ' ' || typeof(registered_on) || ' ' || typeof(sex) || ' ' || typeof(import_id) AS types \
                 FROM licences"
            ),
            ["text blob integer text integer text"]
        );
        assert_eq!(
            types(
                "SELECT DISTINCT typeof(person_key) || ' ' || typeof(effective_on) || ' ' || typeof(lgcode) \
                 AS types FROM resident_events"
            ),
            ["blob text text"]
        );
    }
}
both_backends!(one_connection_runs_each_import_with_its_own_statement);
