//! The `ringlypro` binary: parse the command line, set up logs, hand over to `cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // sqlx and reqwest both bring rustls; pick the one crypto provider explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    ringlypro::telemetry::init();
    let cli = ringlypro::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ringlypro::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
