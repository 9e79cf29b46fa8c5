//! `ferrocket`: one binary with subcommands (standalone, namesrv, broker, bench).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ferrocket_server::cli::Cli::parse();
    match ferrocket_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrocket: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
