//! `cargo xtask`: the maintainers' commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Viral Globe's maintainer tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the demo's audience cities as found in a City database (GeoLite2, GeoIP2, DB-IP; their
    /// coordinates and an address block each), as the TSV in demo-data/.
    DemoCities {
        /// The City database to read.
        #[arg(long)]
        geoip: PathBuf,
        /// Where to write the TSV.
        #[arg(long, default_value = "demo-data/cities.tsv")]
        out: PathBuf,
    },
    /// Regenerate the demo campaign (recording, geo database, parameters) in DIR from its
    /// cities.tsv, and print each published figure next to the generated one. The same seed gives
    /// the same bytes.
    DemoGenerate {
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2012)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    viralglobe_server::telemetry::init_logging(false);
    match Cli::parse().command {
        Command::DemoCities { geoip, out } => {
            let cities = xtask::cities::extract(&geoip)?;
            std::fs::write(&out, xtask::cities::to_tsv(&cities))?;
            tracing::info!(cities = cities.len(), out = %out.display(), "demo cities written");
        }
        Command::DemoGenerate { dir, seed } => {
            for figure in xtask::regenerate(&dir, seed)? {
                println!("{figure}");
            }
        }
    }
    Ok(())
}
