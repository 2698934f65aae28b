use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = national_server::cli::Cli::parse();
    ncf_shared::tls::install_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        // Logs may quote outside data: no My Number reaches them in clear (rule 1).
        .with_writer(|| ncf_shared::mynumber::MaskingWriter(std::io::stderr()))
        .init();
    national_server::cli::run(cli)
}
