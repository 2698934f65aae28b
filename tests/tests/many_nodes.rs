//! Ten nodes push at once to one national server over TLS: every event applied exactly once,
//! compared row by row with each node's outbox (the CI-sized version of the 47-node benchmark,
//! `cargo run --release -p ncf-tests --example federation_bench`).

use ncf_tests::{Backend, both_backends};

fn ten_nodes_push_at_once_and_every_event_lands_once(backend: Backend) {
    let report = ncf_tests::many::run_many(backend, 10, 500);
    // run_many compares every row; here, what a reader of the figures checks too.
    assert_eq!((report.nodes, report.events_per_node), (10, 500));
    assert_eq!(report.failed_requests, 0, "the national server refused no request");
}
both_backends!(ten_nodes_push_at_once_and_every_event_lands_once);
