//! All 47 at once: 47 node processes (one per prefecture, keys registered), each holding 2,000
//! queued events, push concurrently to one national server over TLS. Prints the time until the
//! last event is applied and how many requests failed or rounds were retried; every event is
//! checked to be applied exactly once, row by row.
//!
//!   cargo run --release -p ncf-tests --example federation_bench                  # SQLite and PostgreSQL
//!   cargo run --release -p ncf-tests --example federation_bench -- 47 2000 sqlite
//!
//! PostgreSQL uses `TEST_DATABASE_URL`, or the tests' throwaway cluster (fsync off) without it.

use ncf_tests::Backend;

fn main() {
    ncf_shared::tls::install_provider();
    let args: Vec<String> = std::env::args().collect();
    let nodes: usize = args.get(1).map_or(47, |a| a.parse().expect("number of nodes"));
    let events: usize = args.get(2).map_or(2000, |a| a.parse().expect("events per node"));
    let backends: Vec<Backend> = match args.get(3).map(String::as_str) {
        Some("sqlite") => vec![Backend::Sqlite],
        Some("postgres") => vec![Backend::Postgres],
        _ => vec![Backend::Sqlite, Backend::Postgres],
    };
    println!(
        "# federation benchmark: {nodes} nodes × {events} events over TLS, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in backends {
        let r = ncf_tests::many::run_many(backend, nodes, events);
        let total = r.nodes * r.events_per_node;
        println!(
            "{backend:?}: {total} events applied exactly once in {:.2} s = {:.0} events/s; {} failed requests, {} retried sync rounds",
            r.elapsed.as_secs_f64(),
            total as f64 / r.elapsed.as_secs_f64(),
            r.failed_requests,
            r.retried_rounds
        );
    }
}
