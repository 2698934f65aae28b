//! The anchor of the dashboard's load benchmark (issue #9): actix-web answering "Hello, world!"
//! with the same number of workers, on the same machine, in the same run.
//!
//!   hello-world [--listen 127.0.0.1:0] [--workers 2]   (prints the address it listens on)

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut workers) = ("127.0.0.1:0".to_string(), 2usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--workers" => workers = args.next().and_then(|v| v.parse().ok()).unwrap_or(workers),
            other => return Err(std::io::Error::other(format!("unexpected argument {other:?}"))),
        }
    }
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new().route("/", actix_web::web::get().to(|| async { "Hello, world!" }))
        })
        .workers(workers)
        .bind(&listen)?;
        for addr in server.addrs() {
            println!("hello-world listening on http://{addr}");
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        server.run().await
    })
}
