//! What an operator sees: the cause of a failed database connection on the last line, logs without
//! colour codes when they go to a file or pipe, and the node's /healthz checking its database.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ncf_tests::{Backend, TestDb, TestServer, binary, block_on, both_backends, http_client, national, run};
use serde_json::{Value, json};

/// The PostgreSQL server of the other tests. Without `TEST_DATABASE_URL` the missing-database
/// case assumes a server on 127.0.0.1:5432 (the harness may later start its own cluster instead).
/// A URL on the PostgreSQL server the tests use (TEST_DATABASE_URL's, or the harness's throwaway
/// cluster) naming another database of that server.
fn on_test_server(db: &TestDb, database: &str) -> String {
    ncf_tests::replace_database(&db.url, database)
}

/// Runs `<binary> migrate --database-url URL`; returns the exit status and the last non-empty line
/// of stderr.
fn migrate(bin: &str, url: &str, dir: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(binary(bin));
    cmd.args(["migrate", "--database-url", url]).env("RUST_LOG", "info").current_dir(dir);
    let (out, _, stderr) = run(cmd);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
    (out.status.code(), last)
}

#[test]
fn a_failed_database_connection_names_its_cause_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestDb::new(Backend::Postgres);
    let missing = on_test_server(&server, "does_not_exist_xyz");
    let refused = "postgres://postgres@127.0.0.1:1/x";
    for bin in ["national-server", "prefecture-node"] {
        let (code, last) = migrate(bin, &missing, dir.path());
        assert_ne!(code, Some(0), "{bin}: {last}");
        assert!(last.starts_with("error: cannot connect to "), "{bin}: {last}");
        assert!(last.contains(r#"database "does_not_exist_xyz" does not exist"#), "{bin}: {last}");

        let (code, last) = migrate(bin, refused, dir.path());
        assert_ne!(code, Some(0), "{bin}: {last}");
        assert!(
            last.starts_with("error: cannot connect to postgres://postgres@127.0.0.1:1/x"),
            "{bin}: {last}"
        );
        assert!(last.contains("port 1 failed: Connection refused"), "{bin}: {last}");
    }
}

/// stderr is a pipe here (and a file for servers), never a terminal: no ANSI escape sequences.
#[test]
fn logs_carry_no_colour_codes_off_a_terminal() {
    let db = TestDb::new(Backend::Sqlite);
    // A new secret file: the command warns about it, and the import logs its progress.
    std::fs::write(db.path("registry.csv"), format!("{}\n", ncf_tests::REGISTRY_HEADER)).unwrap();
    let mut cmd = national(&db);
    cmd.arg("import-registry").arg(db.path("registry.csv")).env_remove("NO_COLOR");
    let (_, _, stderr) = run(cmd);
    assert!(stderr.contains("created a new server secret"), "{stderr}");
    assert!(!stderr.contains("\x1b["), "{stderr:?}");

    let node_db = TestDb::new(Backend::Sqlite);
    let node = start_node(&node_db);
    // The node warns about its missing SMTP server and fails to reach its national server.
    assert!(ncf_tests::eventually(Duration::from_secs(10), || node.log().contains("WARN")), "{}", node.log());
    assert!(!node.log().contains("\x1b["), "{:?}", node.log());
}

fn start_node(db: &TestDb) -> TestServer {
    let key_file = db.path("node.key");
    std::fs::write(&key_file, ncf_shared::federation::NodeSigningKey::generate().to_base64()).unwrap();
    // No national server behind this address: the node's own health does not depend on it.
    TestServer::node(db, &key_file, "http://127.0.0.1:1", "27")
}

fn node_health_checks_its_database(backend: Backend) {
    let db = TestDb::new(backend);
    let node = start_node(&db);
    let health = |node: &TestServer| {
        block_on(async {
            let res = http_client().get(node.url("/healthz")).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    };
    let database = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(health(&node), (200, json!({"status": "ok", "database": database})));

    if backend == Backend::Postgres {
        // The database goes away under the running node: 503 with a JSON reason, the cause logged.
        let name = db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
        let mut admin =
            <diesel::PgConnection as diesel::Connection>::establish(&on_test_server(&db, "postgres"))
                .unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut admin,
            &format!("DROP DATABASE {name} WITH (FORCE)"),
        )
        .unwrap();
        let (status, body) = health(&node);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body, json!({"error": "unavailable", "message": "the database is not reachable"}));
        assert!(node.log().contains("health check: the database is not reachable"), "{}", node.log());
        assert!(node.log().contains(&format!(r#"database "{name}" does not exist"#)), "{}", node.log());
    }
}
both_backends!(node_health_checks_its_database);
