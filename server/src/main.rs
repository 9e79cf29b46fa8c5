//! `ferrocket`: one binary with subcommands (standalone, namesrv, broker, bench).

use clap::Parser;

/// mimalloc instead of glibc malloc: every request decodes a header into a map of owned strings
/// (~30 allocations and frees per message on each side), and glibc's malloc/free paths were
/// 25–30 % of the broker's and the load tool's instructions (callgrind, 2026-11-21).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
