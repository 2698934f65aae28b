//! The shared throwaway PostgreSQL cluster of the tests (see `ncf_tests::postgres`):
//!
//!   ncf-test-postgres stop          # stop it now (tests using it will fail)
//!   ncf-test-postgres watch <dir>   # the watchdog the tests start; stops it when idle

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["stop"] => ncf_tests::postgres::stop_now(),
        ["watch", dir] => ncf_tests::postgres::watch(std::path::Path::new(dir)),
        _ => Err("usage: ncf-test-postgres stop | watch <state folder>".into()),
    };
    if let Err(e) = result {
        eprintln!("ncf-test-postgres: {e}");
        std::process::exit(1);
    }
}
