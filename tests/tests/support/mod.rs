//! Fixture shared by the sync tests: a national server with a small registry, and two nodes
//! (27 Osaka, 26 Kyoto) with registered keys and their own databases.
#![allow(dead_code)]

use std::path::PathBuf;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_shared::AgencyCode;
use ncf_shared::db::DbConn;
use ncf_shared::federation::NodeSigningKey;
use ncf_tests::{Backend, Person, TestDb, TestServer, block_on, http_client, node_command, run};
use prefecture_node::notices::{NoticeBody, SeparationReason};
use prefecture_node::nurses::{self, NewNurse, Nurse};
use serde_json::{Value, json};

pub struct Node {
    pub db: TestDb,
    pub key: NodeSigningKey,
    pub key_file: PathBuf,
}

pub struct Federation {
    pub national_db: TestDb,
    pub server: TestServer,
    pub osaka: Node,
    pub kyoto: Node,
    pub cast: Vec<Person>,
}

pub fn node(backend: Backend, national_db: &TestDb, prefecture: &'static str) -> Node {
    let (db, key, key_file) = ncf_tests::many::new_node(backend, national_db, prefecture);
    Node { db, key, key_file }
}

pub fn federation(backend: Backend) -> Federation {
    let cast: Vec<Person> = (0..4).map(Person::sample).collect();
    let national_db = ncf_tests::many::national_with(backend, &cast);
    let osaka = node(backend, &national_db, "27");
    let kyoto = node(backend, &national_db, "26");
    let server = TestServer::national(&national_db);
    Federation { national_db, server, osaka, kyoto, cast }
}

pub async fn signed_post(f: &Federation, key: &NodeSigningKey, path: &str, body: &[u8]) -> (u16, Value) {
    signed_post_to(&f.server, key, path, body).await
}

pub async fn signed_post_to(
    server: &TestServer,
    key: &NodeSigningKey,
    path: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut req =
        http_client().post(server.url(path)).header("content-type", "application/json").body(body.to_vec());
    for (name, value) in key.sign_now("POST", path, body).pairs() {
        req = req.header(name, value);
    }
    let res = req.send().await.expect("request");
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Opt-in as the node does it: link the identity at the national server, then register her.
pub fn opt_in(f: &Federation, node: &Node, p: &Person) -> (DbConn, Nurse) {
    opt_in_at(&f.server, node, p)
}

/// [`opt_in`] against any national server.
pub fn opt_in_at(server: &TestServer, node: &Node, p: &Person) -> (DbConn, Nurse) {
    let claims = json!({
        "qualification": p.qualification, "registration_number": p.registration_number,
        "family_name": p.family_name, "given_name": p.given_name,
        "family_name_kana": p.family_name_kana, "given_name_kana": p.given_name_kana,
        "birth_date": p.birth_date,
    });
    let (status, answer) = block_on(signed_post_to(
        server,
        &node.key,
        "/federation/v1/identity-link",
        &serde_json::to_vec(&claims).unwrap(),
    ));
    assert_eq!(status, 200, "{answer}");
    let code = AgencyCode::parse(answer["agency_code"].as_str().unwrap()).unwrap();
    let mut conn = node.db.connect();
    let nurse = nurses::register(
        &mut conn,
        NewNurse {
            agency_code: code,
            qualification: p.qualification.into(),
            registration_number: p.registration_number.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            family_name_kana: p.family_name_kana.clone(),
            given_name_kana: p.given_name_kana.clone(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1985, 4, 1).unwrap(),
            email: "nurse@example.jp".into(),
            phone: None,
            max_distance_km: 20,
        },
    )
    .unwrap();
    // Proofed at the counter, so that what the tests file may leave the node.
    let proof = prefecture_node::proofing::Proof::at_counter("test-staff", "運転免許証").unwrap();
    prefecture_node::proofing::complete(&mut conn, &nurse.id, &proof).unwrap();
    let nurse = nurses::get(&mut conn, &nurse.id).unwrap().unwrap();
    (conn, nurse)
}

pub fn separation() -> NoticeBody {
    NoticeBody::Separation {
        left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        reason: SeparationReason::Childcare,
        wish_to_return: true,
        return_when: Some("来年4月ごろ".into()),
    }
}

pub fn push(f: &Federation, node: &Node) -> String {
    sync_at(&f.server, node)
}

/// `prefecture-node sync` against any national server: pushes postings and events, then pulls.
pub fn sync_at(server: &TestServer, node: &Node) -> String {
    let mut cmd = node_command(&node.db, &node.key_file, &server.base_url);
    cmd.arg("sync");
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}\nnational server log:\n{}", server.log());
    stdout
}

#[derive(QueryableByName, Debug, PartialEq)]
pub struct NoticeRow {
    #[diesel(sql_type = Text)]
    pub agency_code: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub body: String,
}

pub fn national_notices(f: &Federation) -> Vec<NoticeRow> {
    diesel::sql_query("SELECT agency_code, kind, body FROM nurse_notices ORDER BY filed_at")
        .load(&mut f.national_db.connect())
        .unwrap()
}

#[derive(QueryableByName, Debug, PartialEq)]
pub struct ConsentRow {
    #[diesel(sql_type = Text)]
    pub prefecture: String,
    #[diesel(sql_type = Text)]
    pub scope: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub granted: bool,
}

pub fn national_consents(f: &Federation, code: &str) -> Vec<ConsentRow> {
    diesel::sql_query(
        "SELECT prefecture, scope, granted FROM nurse_consents WHERE agency_code = $1 ORDER BY scope",
    )
    .bind::<Text, _>(code)
    .load(&mut f.national_db.connect())
    .unwrap()
}

#[derive(QueryableByName)]
pub struct Count {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

pub fn count(db: &TestDb, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(&mut db.connect()).unwrap().n
}

/// The opt-in form as a nurse fills it in on the page, with these licence details and address;
/// returns the page that answers it (「確認メールを送りました」 whatever was typed).
pub async fn apply_on_page(
    browser: &ncf_tests::Browser,
    p: &Person,
    birth_date: &str,
    email: &str,
) -> ncf_tests::Page {
    let form = browser.get("/opt-in").await;
    assert_eq!(form.status, 200);
    let csrf = form.hidden("csrf");
    browser
        .post(
            "/opt-in",
            &[
                ("csrf", csrf.as_str()),
                ("qualification", p.qualification),
                ("registration_number", &p.registration_number),
                ("family_name", &p.family_name),
                ("given_name", &p.given_name),
                ("family_name_kana", &p.family_name_kana),
                ("given_name_kana", &p.given_name_kana),
                ("birth_date", birth_date),
                ("email", email),
                ("max_distance_km", "20"),
                ("address_linkage", "on"),
                ("job_support", "on"),
                ("share_with_residence_prefecture", "on"),
            ],
        )
        .await
}

/// Opens the newest confirmation link mailed to `email` and presses 「照合して登録する」 as the
/// page shows the details; returns the answer (a redirect to her page when registered).
pub async fn confirm_by_mail(
    browser: &ncf_tests::Browser,
    smtp: &ncf_tests::SmtpReceiver,
    node: &TestServer,
    email: &str,
) -> ncf_tests::Page {
    let mut link = None;
    // The mail queue sends in the background: allow for a busy machine.
    for _ in 0..400 {
        link = smtp
            .mails()
            .iter()
            .rev()
            .filter(|m| m.to == [email])
            .map(|m| m.text())
            .find(|t| t.contains("/opt-in/confirm?token="))
            .map(|t| {
                let start = t.find("http").expect("a link");
                t[start..].split_whitespace().next().unwrap().to_string()
            });
        if link.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let link = link.expect("a confirmation mail");
    let path = link.strip_prefix(&node.base_url).expect("a link to this node").to_string();
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let fields: Vec<(String, String)> = [
        "csrf",
        "token",
        "registration_number",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "birth_year",
        "birth_month",
        "birth_day",
    ]
    .iter()
    .map(|name| (name.to_string(), page.input_value(name)))
    .chain(std::iter::once(("qualification".to_string(), page.selected("qualification"))))
    .chain(std::iter::once(("birth_era".to_string(), page.selected("birth_era"))))
    .collect();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post("/opt-in/confirm", &fields).await
}

#[derive(QueryableByName)]
struct TextColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

/// Every `table.column` of the national database that holds `needle` anywhere in a text value:
/// how a test shows that something (an e-mail address) is not kept, in any table.
pub fn national_text_containing(f: &Federation, needle: &str) -> Vec<String> {
    national_db_text_containing(&f.national_db, needle)
}

pub fn national_db_text_containing(db: &TestDb, needle: &str) -> Vec<String> {
    let mut conn = db.connect();
    let columns: Vec<TextColumn> = match &mut conn {
        DbConn::Postgresql(_) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND data_type IN ('text', 'character varying')",
        )
        .load(&mut conn)
        .unwrap(),
        DbConn::Sqlite(_) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND upper(p.type) = 'TEXT'",
        )
        .load(&mut conn)
        .unwrap(),
    };
    assert!(columns.len() > 20, "the national schema's text columns were found");
    let mut found = Vec::new();
    for c in columns {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {} LIKE $1", c.table_name, c.column_name);
        let n = diesel::sql_query(sql)
            .bind::<Text, _>(format!("%{needle}%"))
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n;
        if n > 0 {
            found.push(format!("{}.{}", c.table_name, c.column_name));
        }
    }
    found
}

/// The first link in a mail body (sign-in, hand-over invitation).
pub fn link_in(text: &str) -> String {
    let start = text.find("http://").expect("a link in the mail");
    text[start..].split_whitespace().next().unwrap().to_string()
}

/// A job posting near 千代田区 open from yesterday for 60 days.
pub fn sample_posting() -> ncf_shared::posting::PostingBody {
    use ncf_shared::posting::*;
    let today = ncf_shared::time::today_jst();
    PostingBody {
        kind: PostingKind::Job,
        title: "病棟看護師（日勤のみ可）".into(),
        description: "ブランクのある方も歓迎します。".into(),
        facility_name: "テスト病院".into(),
        facility_contact: "03-0000-0000（看護部）".into(),
        place: PostingPlace::Municipality { lgcode: "131016".into() },
        qualifications: vec![ncf_shared::Qualification::NURSE],
        employment_types: vec![EmploymentType::DaysOnly],
        hours: "8:30〜17:15".into(),
        wage: None,
        training: None,
        valid_from: today - chrono::Duration::days(1),
        valid_until: today + chrono::Duration::days(60),
    }
}
