//! Radius-matching benchmark (issue #8): reads the comparison benchmarks' `nurses.csv`
//! (id,lat,lng,radius_km) and `postings.csv` (id,lat,lng) (`../shared/bench/gen.py`), runs the
//! national server's matching code ([`national_server::matching`]) over every nurse, and prints
//! the number of (nurse, posting) pairs within each nurse's distance and the seconds it took.
//! Loading the files is timed apart, as the Python anchor (`pyjoin.py`) does.
//!
//! ```sh
//! cargo run --release -p national-server --example match_pairs -- [DATA_DIR] [--repeat N] [--threads N]
//! ```

use std::time::Instant;

use national_server::matching::{Index, Place, Reach, count_pairs};

fn read(path: &str, columns: usize) -> Vec<Vec<f64>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            (1..=columns).map(|i| r[i].parse::<f64>().unwrap_or_else(|e| panic!("{path}: {e}"))).collect()
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut data, mut repeat, mut threads) = ("/tmp/bench-data".to_string(), 3usize, 0usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeat" => repeat = args.next().and_then(|n| n.parse().ok()).expect("--repeat N"),
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).expect("--threads N"),
            _ => data = a,
        }
    }
    if threads == 0 {
        threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    let started = Instant::now();
    let nurses = read(&format!("{data}/nurses.csv"), 3);
    let postings = read(&format!("{data}/postings.csv"), 2);
    println!(
        "load csv: {:.2}s  nurses={} postings={}",
        started.elapsed().as_secs_f64(),
        nurses.len(),
        postings.len()
    );
    let mut best = f64::INFINITY;
    let mut pairs = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let index = Index::new(postings.iter().enumerate().map(|(i, p)| (i as u32, Place::new(p[0], p[1]))));
        let reaches: Vec<Reach> =
            nurses.iter().map(|n| Reach::new(Place::new(n[0], n[1]), n[2] * 1000.0)).collect();
        pairs = count_pairs(&index, &reaches, threads);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "national-server matching (R-tree, {threads} threads): pairs={pairs}  best of {repeat}: {best:.2}s"
    );
}
