//! `POST /federation/v1/identity-link` over real HTTP against a `national-server serve` process.

use diesel::prelude::*;
use ncf_shared::federation::{self, NodeSigningKey};
use ncf_tests::{
    Backend, Person, REGISTRY_HEADER, RESIDENTS_HEADER, TestDb, TestServer, block_on, both_backends,
    http_client, national, run, write_csv,
};
use serde_json::{Value, json};

struct Fixture {
    db: TestDb,
    server: TestServer,
    osaka: NodeSigningKey,
    kyoto: NodeSigningKey,
    cast: Vec<Person>,
}

/// Five people: 0 and 1 plain, 2 lapsed, 3 deceased (resident feed), 4 married since registration.
fn fixture(backend: Backend) -> Fixture {
    let db = TestDb::new(backend);
    let mut cast: Vec<Person> = (0..5).map(Person::sample).collect();
    cast[2].status = "lapsed";
    write_csv(
        &db.path("registry.csv"),
        REGISTRY_HEADER,
        &cast.iter().map(Person::registry_row).collect::<Vec<_>>(),
    );
    let mut residents: Vec<String> = cast.iter().map(Person::moved_in_row).collect();
    residents.push(format!("{},deceased,2025-02-01,,,,", cast[3].my_number));
    residents.push(format!("{},name_changed,2024-10-10,,,中村,{}", cast[4].my_number, cast[4].given_name));
    write_csv(&db.path("residents.csv"), RESIDENTS_HEADER, &residents);
    for (kind, file) in [("import-registry", "registry.csv"), ("import-residents", "residents.csv")] {
        let mut cmd = national(&db);
        cmd.arg(kind).arg(db.path(file));
        let (out, _, stderr) = run(cmd);
        assert!(out.status.success(), "{stderr}");
    }
    let osaka = NodeSigningKey::generate();
    let kyoto = NodeSigningKey::generate();
    for (pref, key) in [("27", &osaka), ("26", &kyoto)] {
        let mut cmd = national(&db);
        cmd.args(["nodes", "add", "--prefecture", pref, "--public-key", &key.public_key().to_base64()]);
        let (out, stdout, stderr) = run(cmd);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains(&key.public_key().key_id()), "{stdout}");
    }
    let server = TestServer::national(&db);
    Fixture { db, server, osaka, kyoto, cast }
}

fn claims(p: &Person) -> Value {
    json!({
        "qualification": p.qualification,
        "registration_number": p.registration_number,
        "family_name": p.family_name,
        "given_name": p.given_name,
        "family_name_kana": p.family_name_kana,
        "given_name_kana": p.given_name_kana,
        "birth_date": p.birth_date,
    })
}

const PATH: &str = "/federation/v1/identity-link";

/// Sends `body` signed by `key` (headers may be replaced to forge requests).
async fn post(server: &TestServer, headers: &federation::SignedHeaders, body: &[u8]) -> (u16, Value) {
    post_to(server.url(PATH), headers, body).await
}

async fn post_to(url: String, headers: &federation::SignedHeaders, body: &[u8]) -> (u16, Value) {
    let mut req = http_client().post(url).header("content-type", "application/json").body(body.to_vec());
    for (name, value) in headers.pairs() {
        req = req.header(name, value);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let json = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, json)
}

async fn link(server: &TestServer, key: &NodeSigningKey, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    post(server, &key.sign_now("POST", PATH, &bytes), &bytes).await
}

fn matching_claims_give_a_per_node_agency_code(backend: Backend) {
    let f = fixture(backend);
    block_on(async {
        let (status, osaka) = link(&f.server, &f.osaka, &claims(&f.cast[0])).await;
        assert_eq!(status, 200, "{osaka}");
        let code = osaka["agency_code"].as_str().unwrap().to_string();
        assert_eq!(code.len(), 52);

        // Same person, same node: same code. Same person at Kyoto: a different code.
        let (_, again) = link(&f.server, &f.osaka, &claims(&f.cast[0])).await;
        assert_eq!(again["agency_code"], osaka["agency_code"]);
        let (status, kyoto) = link(&f.server, &f.kyoto, &claims(&f.cast[0])).await;
        assert_eq!(status, 200);
        assert_ne!(kyoto["agency_code"], osaka["agency_code"]);
        // Another person at Osaka: another code.
        let (_, other) = link(&f.server, &f.osaka, &claims(&f.cast[1])).await;
        assert_ne!(other["agency_code"], osaka["agency_code"]);

        // Typing variations still match: registration number without leading zero, spaces in names.
        let mut typed = claims(&f.cast[0]);
        typed["registration_number"] = json!(f.cast[0].registration_number.trim_start_matches('0'));
        typed["family_name"] = json!(format!(" {} ", f.cast[0].family_name));
        let (status, body) = link(&f.server, &f.osaka, &typed).await;
        assert_eq!((status, &body["agency_code"]), (200, &osaka["agency_code"]), "{body}");

        // A married nurse may give her current (resident) name or her registered one.
        let mut married = claims(&f.cast[4]);
        married["family_name"] = json!("中村");
        assert_eq!(link(&f.server, &f.osaka, &married).await.0, 200);
        assert_eq!(link(&f.server, &f.osaka, &claims(&f.cast[4])).await.0, 200);
    });
    // The link is recorded for this node only.
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        prefecture: String,
    }
    let rows: Vec<Row> = diesel::sql_query("SELECT prefecture FROM identity_links ORDER BY prefecture")
        .load(&mut f.db.connect())
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.prefecture.as_str()).collect::<Vec<_>>(), ["26", "27", "27", "27"]);
}
both_backends!(matching_claims_give_a_per_node_agency_code);

/// Twenty links of one person from one node at once (a nurse double-submitting, a retrying node):
/// all answered with the same code, one link row, and one provision entry each on an intact chain.
fn concurrent_links_of_one_person_give_one_row_and_an_intact_chain(backend: Backend) {
    const N: usize = 20;
    let f = fixture(backend);
    let answers = block_on(async {
        let body = serde_json::to_vec(&claims(&f.cast[0])).unwrap();
        // Signed before any is sent, so that all twenty are in flight together.
        let signed: Vec<_> = (0..N).map(|_| f.osaka.sign_now("POST", PATH, &body)).collect();
        let mut sends = tokio::task::JoinSet::new();
        for headers in signed {
            let (url, body) = (f.server.url(PATH), body.clone());
            sends.spawn(async move { post_to(url, &headers, &body).await });
        }
        sends.join_all().await
    });
    let code = answers[0].1["agency_code"].clone();
    assert!(code.as_str().is_some_and(|c| c.len() == 52), "{answers:?}");
    for (status, answer) in &answers {
        assert_eq!((*status, &answer["agency_code"]), (200, &code), "{answers:?}");
    }

    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count =
        |sql: &str| -> i64 { diesel::sql_query(sql).get_result::<Count>(&mut f.db.connect()).unwrap().n };
    assert_eq!(count("SELECT COUNT(*) AS n FROM identity_links"), 1);
    assert_eq!(count("SELECT COUNT(*) AS n FROM provisions WHERE purpose = 'identity_link'"), N as i64);

    let mut cmd = national(&f.db);
    cmd.args(["audit", "verify"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("intact: {N} entries verified")), "{stdout}");
    assert!(!f.server.log().contains("ERROR"), "{}", f.server.log());
}
both_backends!(concurrent_links_of_one_person_give_one_row_and_an_intact_chain);

fn public_answers_say_no_match_and_staff_lookups_name_the_fields(backend: Backend) {
    let f = fixture(backend);
    block_on(async {
        let base = claims(&f.cast[0]);
        // A public request learns match or no match, whatever differed.
        let cases: Vec<(&str, Value)> = vec![
            ("family_name", json!("田中")),
            ("given_name", json!("一郎")),
            ("family_name_kana", json!("タナカ")),
            ("given_name_kana", json!("イチロウ")),
            ("birth_date", json!("1985-04-02")),
            ("registration_number", json!("7654321")),
            ("qualification", json!("04")),
        ];
        let mut answers = Vec::new();
        for (field, value) in cases {
            let mut body = base.clone();
            body[field] = value;
            let (status, answer) = link(&f.server, &f.osaka, &body).await;
            assert_eq!((status, answer["error"].as_str()), (422, Some("no_match")), "{field}: {answer}");
            assert!(answer.get("mismatched").is_none(), "{field}: {answer}");
            answers.push(answer);
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "one answer for every mismatch: {answers:?}");
        // Lapsed and deceased answer the same as a mismatch.
        for person in [&f.cast[2], &f.cast[3]] {
            let (status, answer) = link(&f.server, &f.osaka, &claims(person)).await;
            assert_eq!((status, &answer), (422, &answers[0]), "{answer}");
        }
        // Five failures for her licence: now even the right claims are refused for 24 hours.
        let (status, answer) = link(&f.server, &f.osaka, &base).await;
        assert_eq!((status, answer["error"].as_str()), (429, Some("attempts_exhausted")), "{answer}");
        // ...but not for staff at the counter with her certificate: strangers' failures must not
        // shut her out of the counter too.
        let mut at_counter = base.clone();
        at_counter["staff_lookup"] = json!("staff-0001");
        let (status, answer) = link(&f.server, &f.osaka, &at_counter).await;
        assert_eq!(status, 200, "{answer}");

        // Staff at the counter, her certificate in hand, see which fields differ; each lookup is
        // recorded with the staff id.
        let mut staff = claims(&f.cast[1]);
        staff["staff_lookup"] = json!("staff-0001");
        let mut body = staff.clone();
        body["given_name"] = json!("一郎");
        let (status, answer) = link(&f.server, &f.osaka, &body).await;
        assert_eq!((status, answer["error"].as_str()), (422, Some("claims_mismatch")), "{answer}");
        assert_eq!(answer["mismatched"], json!(["given_name"]));
        let registered = staff["given_name"].as_str().unwrap();
        assert!(!answer.to_string().contains(registered), "the registry's value is never revealed: {answer}");
        body["birth_date"] = json!("1990-01-01");
        let (status, answer) = link(&f.server, &f.osaka, &body).await;
        assert_eq!((status, answer["mismatched"].clone()), (422, json!(["given_name", "birth_date"])));
        for person in [&f.cast[2], &f.cast[3]] {
            let mut body = claims(person);
            body["staff_lookup"] = json!("staff-0001");
            let (status, answer) = link(&f.server, &f.osaka, &body).await;
            assert_eq!((status, answer["error"].as_str()), (422, Some("licence_not_active")), "{answer}");
        }
    });
    let mut conn = f.db.connect();
    #[derive(QueryableByName)]
    struct Lookup {
        #[diesel(sql_type = diesel::sql_types::Text)]
        staff_id: String,
    }
    let lookups: Vec<Lookup> =
        diesel::sql_query("SELECT staff_id FROM staff_lookups").load(&mut conn).unwrap();
    assert_eq!(lookups.len(), 5);
    assert!(lookups.iter().all(|l| l.staff_id == "staff-0001"));
}
both_backends!(public_answers_say_no_match_and_staff_lookups_name_the_fields);

fn unsigned_forged_stale_and_replayed_requests_are_refused(backend: Backend) {
    let f = fixture(backend);
    block_on(async {
        let body = serde_json::to_vec(&claims(&f.cast[0])).unwrap();
        let now = chrono::Utc::now().timestamp();

        // Unknown key.
        let stranger = NodeSigningKey::generate();
        let (status, answer) = post(&f.server, &stranger.sign_now("POST", PATH, &body), &body).await;
        assert_eq!(status, 401, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("unknown key"), "{answer}");

        // Bad signature: signed by another key but claiming Osaka's key id; or body changed after signing.
        let mut forged = stranger.sign_now("POST", PATH, &body);
        forged.key_id = f.osaka.public_key().key_id();
        let (status, answer) = post(&f.server, &forged, &body).await;
        assert_eq!(status, 401);
        assert!(answer["message"].as_str().unwrap().contains("signature does not verify"), "{answer}");
        let signed = f.osaka.sign_now("POST", PATH, &body);
        let mut tampered = body.clone();
        tampered[5] ^= 1;
        assert_eq!(post(&f.server, &signed, &tampered).await.0, 401);

        // Stale and future timestamps.
        for skew in [-301, 400] {
            let headers =
                f.osaka.sign("POST", PATH, &body, now + skew, &format!("stale-nonce-{skew}-abcdef"));
            let (status, answer) = post(&f.server, &headers, &body).await;
            assert_eq!(status, 401, "{answer}");
            assert!(answer["message"].as_str().unwrap().contains("timestamp"), "{answer}");
        }

        // Replay: the same signed request twice.
        let headers = f.osaka.sign_now("POST", PATH, &body);
        assert_eq!(post(&f.server, &headers, &body).await.0, 200);
        let (status, answer) = post(&f.server, &headers, &body).await;
        assert_eq!(status, 409, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("replayed"), "{answer}");

        // Missing headers.
        let res = http_client().post(f.server.url(PATH)).body(body.clone()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let answer: Value = res.json().await.unwrap();
        assert!(answer["message"].as_str().unwrap().contains("missing header x-ncf-key"), "{answer}");
    });
    let log = f.server.log();
    assert!(log.contains("federation request refused"), "refusals are logged");
    assert!(!log.contains(&f.cast[0].my_number));
}
both_backends!(unsigned_forged_stale_and_replayed_requests_are_refused);

fn bad_bodies_get_a_4xx_that_names_the_problem(backend: Backend) {
    let f = fixture(backend);
    block_on(async {
        let good = claims(&f.cast[0]);
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("birth_date");
        let mut extra = good.clone();
        extra["my_number"] = json!("123456789018");
        let mut wrong_type = good.clone();
        wrong_type["registration_number"] = json!(1000000);
        let mut unknown_qualification = good.clone();
        unknown_qualification["qualification"] = json!("99");
        let mut not_nursing = good.clone();
        not_nursing["qualification"] = json!("05");
        let mut bad_date = good.clone();
        bad_date["birth_date"] = json!("1985/04/01");
        let mut hiragana = good.clone();
        hiragana["family_name_kana"] = json!("やまだ");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{not json".to_vec(), "invalid JSON body"),
            (b"[]".to_vec(), "invalid JSON body"),
            (serde_json::to_vec(&missing).unwrap(), "missing field `birth_date`"),
            (serde_json::to_vec(&extra).unwrap(), "unknown field `my_number`"),
            (serde_json::to_vec(&wrong_type).unwrap(), "at registration_number"),
            (serde_json::to_vec(&unknown_qualification).unwrap(), "qualification: unknown code \"99\""),
            (serde_json::to_vec(&not_nursing).unwrap(), "is not a nursing licence"),
            (serde_json::to_vec(&bad_date).unwrap(), "birth_date: not a date"),
            (serde_json::to_vec(&hiragana).unwrap(), "family_name_kana: must be written in katakana"),
        ];
        for (body, message) in cases {
            let (status, answer) = post(&f.server, &f.osaka.sign_now("POST", PATH, &body), &body).await;
            assert_eq!(status, 400, "{message}: {answer}");
            assert_eq!(answer["error"], "bad_request");
            assert!(answer["message"].as_str().unwrap().contains(message), "{message}: {answer}");
        }
        // Oversized body.
        let big = vec![b' '; federation::MAX_BODY_BYTES + 1];
        let (status, answer) = post(&f.server, &f.osaka.sign_now("POST", PATH, &big), &big).await;
        assert_eq!(status, 413, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("larger than"));

        // Wrong method, unknown path: JSON errors too.
        let res = http_client().get(f.server.url(PATH)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 405);
        assert!(
            res.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("GET is not allowed")
        );
        let res = http_client().get(f.server.url("/nope")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "not_found");
    });
    assert!(!f.server.log().contains("panicked"), "no panics");
}
both_backends!(bad_bodies_get_a_4xx_that_names_the_problem);

fn health_and_openapi_are_served(backend: Backend) {
    let f = fixture(backend);
    block_on(async {
        let res = http_client().get(f.server.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let health: Value = res.json().await.unwrap();
        let expected = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(health, json!({"status": "ok", "database": expected}));
        let doc: Value = http_client()
            .get(f.server.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["paths"]["/federation/v1/identity-link"]["post"].is_object(), "{doc}");
        assert!(doc["components"]["schemas"]["IdentityLinkRequest"].is_object());
    });
}
both_backends!(health_and_openapi_are_served);

#[test]
fn nodes_cli_validates_keys_and_lists_them() {
    let db = TestDb::new(Backend::Sqlite);
    let key = NodeSigningKey::generate().public_key().to_base64();
    let add = |pref: &str, key: &str| {
        let mut cmd = national(&db);
        cmd.args(["nodes", "add", "--prefecture", pref, "--public-key", key]);
        run(cmd)
    };
    let (out, stdout, _) = add("13", &key);
    assert!(out.status.success() && stdout.contains("prefecture 13 (東京都)"), "{stdout}");
    let (out, _, stderr) = add("13", &key);
    assert!(!out.status.success() && stderr.contains("already registered"), "{stderr}");
    let (out, _, stderr) = add("48", &key);
    assert!(!out.status.success() && stderr.contains("unknown prefecture code"), "{stderr}");
    let (out, _, stderr) = add("27", "not-a-key");
    assert!(!out.status.success() && stderr.contains("invalid public key"), "{stderr}");
    let mut cmd = national(&db);
    cmd.args(["nodes", "list"]);
    let (out, stdout, _) = run(cmd);
    assert!(out.status.success());
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains(&key));
}
