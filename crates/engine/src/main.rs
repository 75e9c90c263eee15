//! berth: a daemonless, Docker-compatible container engine (see ../shared/design.md).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless, Docker-compatible container engine"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
