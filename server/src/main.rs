//! `ferrocket`: one binary with subcommands (standalone, namesrv, broker, bench).

fn main() {
    eprintln!("ferrocket: not built yet");
    std::process::exit(2);
}
