use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = national_server::cli::Cli::parse();
    ncf_shared::tls::install_provider();
    ncf_shared::logging::init("info,actix_server=warn");
    national_server::cli::run(cli)
}
