//! A small HTTP load generator for the benchmarks (issue #9): N keep-alive connections on
//! loopback, each sending GETs one after another for a fixed time, then requests/s and latency
//! percentiles. The same tool measures the dashboard and its anchor (an actix-web hello-world),
//! so the ratio compares the servers, not the tools.
//!
//!   load URL [--connections 64] [--seconds 30] [--header 'cookie: name=value']

use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    // reqwest is built without a TLS provider of its own (plain http is all this tool speaks).
    ncf_shared::tls::install_provider();
    let mut args = std::env::args().skip(1);
    let (mut url, mut connections, mut seconds, mut headers) = (None, 64usize, 30u64, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connections" => connections = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--header" => headers.push(args.next().unwrap_or_default()),
            _ if url.is_none() => url = Some(arg),
            other => {
                eprintln!("error: unexpected argument {other:?}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let Some(url) = url.filter(|u| u.starts_with("http://127.") || u.starts_with("http://localhost")) else {
        eprintln!(
            "usage: load http://127.0.0.1:PORT/PATH [--connections N] [--seconds S] [--header 'name: value'] (loopback only)"
        );
        return std::process::ExitCode::FAILURE;
    };
    if connections == 0 || !(1..=300).contains(&seconds) {
        eprintln!("error: --connections must be at least 1 and --seconds between 1 and 300");
        return std::process::ExitCode::FAILURE;
    }
    let mut header_map = reqwest::header::HeaderMap::new();
    for h in &headers {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("error: a header is 'name: value': {h:?}");
            return std::process::ExitCode::FAILURE;
        };
        match (reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()), value.trim().parse()) {
            (Ok(n), Ok(v)) => {
                header_map.insert(n, v);
            }
            _ => {
                eprintln!("error: not a header: {h:?}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let results: Vec<(Vec<u32>, u64, u64)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let client = reqwest::Client::builder()
                    .http1_only()
                    .pool_max_idle_per_host(1)
                    .default_headers(header_map.clone())
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("client");
                let url = url.clone();
                tokio::spawn(async move {
                    let (mut latencies, mut failed, mut bytes) = (Vec::new(), 0u64, 0u64);
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        match client.get(&url).send().await {
                            Ok(r) if r.status().is_success() => match r.bytes().await {
                                Ok(b) => {
                                    bytes += b.len() as u64;
                                    latencies
                                        .push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                                }
                                Err(_) => failed += 1,
                            },
                            _ => failed += 1,
                        }
                    }
                    (latencies, failed, bytes)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("a connection task"));
        }
        out
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut all: Vec<u32> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let bytes: u64 = results.iter().map(|r| r.2).sum();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    println!(
        "requests {} in {elapsed:.1} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.1} KiB/response, {failed} failed",
        all.len(),
        all.len() as f64 / elapsed,
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        f64::from(all.last().copied().unwrap_or(0)) / 1000.0,
        bytes as f64 / all.len().max(1) as f64 / 1024.0,
    );
    if failed > 0 || all.is_empty() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
