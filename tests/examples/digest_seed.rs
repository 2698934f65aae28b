//! Prepares a node database for the digest benchmark (`prefecture-node/bench/digests.sh`): the
//! node's migrations, a signing key, and N proofed nurses with `job_support` and three Tokyo job
//! postings each on their lists (`ncf_tests::digest_seed`).
//!
//!   cargo run --release -p ncf-tests --example digest_seed -- DATABASE_URL KEY_FILE [NURSES]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(key_file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: digest_seed DATABASE_URL KEY_FILE [NURSES]");
        std::process::exit(2);
    };
    let nurses: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let url = ncf_shared::db::DatabaseUrl::parse(url).expect("a database URL");
    let mut conn = ncf_shared::db::connect_one(&url).expect("database");
    prefecture_node::migrate(&mut conn).expect("migrations");
    let key = ncf_shared::federation::NodeSigningKey::generate();
    std::fs::write(key_file, key.to_base64()).expect("key file");
    let started = std::time::Instant::now();
    let ids = ncf_tests::digest_seed::seed(&mut conn, nurses, 3);
    eprintln!("seeded {} nurses in {:.1} s", ids.len(), started.elapsed().as_secs_f64());
}
