//! Staff accounts at a node: argon2id hashes only, checked passwords, clear refusals.

use ncf_tests::{Backend, TestDb, both_backends, run};
use prefecture_node::error::NodeError;
use prefecture_node::staff;

fn staff_are_stored_as_argon2id_and_verified(backend: Backend) {
    let db = TestDb::new(backend);
    let mut conn = db.connect();
    prefecture_node::migrate(&mut conn).unwrap();
    let member = staff::add(&mut conn, " Sato.Keiko ", "佐藤 恵子", "correct horse battery").unwrap();
    assert_eq!(member.username, "sato.keiko");
    assert!(member.password_hash.starts_with("$argon2id$"), "{}", member.password_hash);
    assert!(!member.password_hash.contains("correct horse battery"));

    assert_eq!(
        staff::verify(&mut conn, "SATO.KEIKO", "correct horse battery").unwrap().map(|m| m.id),
        Some(member.id)
    );
    assert!(staff::verify(&mut conn, "sato.keiko", "wrong password!!").unwrap().is_none());
    assert!(staff::verify(&mut conn, "nobody", "correct horse battery").unwrap().is_none());

    match staff::add(&mut conn, "sato.keiko", "別の人", "another long password") {
        Err(NodeError::Invalid(errors)) => assert!(errors[0].message.contains("すでに使われています")),
        other => panic!("duplicate must be refused: {other:?}"),
    }
    match staff::add(&mut conn, "x", "", "short") {
        Err(NodeError::Invalid(errors)) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
            assert_eq!(fields, ["username", "display_name", "password"]);
        }
        other => panic!("bad input must be refused: {other:?}"),
    }
    assert_eq!(staff::list(&mut conn).unwrap().len(), 1);
}
both_backends!(staff_are_stored_as_argon2id_and_verified);

fn staff_add_command_generates_a_password_once(backend: Backend) {
    let db = TestDb::new(backend);
    let mut cmd = std::process::Command::new(ncf_tests::binary("prefecture-node"));
    cmd.env("NODE_DATABASE_URL", &db.url).env_remove("NODE_STAFF_PASSWORD").args([
        "staff",
        "add",
        "--username",
        "tanaka",
        "--display-name",
        "田中 美穂",
    ]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    let password =
        stdout.split("password (shown once): ").nth(1).expect("generated password").trim().to_string();
    assert_eq!(password.len(), 24);
    let mut conn = db.connect();
    assert!(staff::verify(&mut conn, "tanaka", &password).unwrap().is_some());

    let mut cmd = std::process::Command::new(ncf_tests::binary("prefecture-node"));
    cmd.env("NODE_DATABASE_URL", &db.url).env("NODE_STAFF_PASSWORD", "short").args([
        "staff",
        "add",
        "--username",
        "suzuki",
        "--display-name",
        "鈴木",
    ]);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    assert!(stderr.contains("パスワードは12文字以上"), "{stderr}");
    let mut cmd = std::process::Command::new(ncf_tests::binary("prefecture-node"));
    cmd.env("NODE_DATABASE_URL", &db.url).args(["staff", "list"]);
    let (_, stdout, _) = run(cmd);
    assert!(stdout.contains("tanaka") && !stdout.contains("suzuki"), "{stdout}");
}
both_backends!(staff_add_command_generates_a_password_once);
