//! `ferrocket bench store`: append to a fresh store and compare with this machine's limits.
//! (Placeholder until the store lands; owned by the store-log work.)

#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Store directory (created; must be empty or absent).
    #[arg(long)]
    pub dir: std::path::PathBuf,
}

pub fn run(_args: StoreBenchArgs) -> Result<(), String> {
    Err("bench store is not built yet".to_string())
}
