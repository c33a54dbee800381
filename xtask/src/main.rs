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
    /// List the module cycles of a crate (`server`, `viewer`…): sibling modules that use each
    /// other, directly or around a loop. Fails when there is one; the tests run the same check.
    Cycles {
        #[arg(default_values = ["server", "viewer"])]
        crates: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    viralglobe_server::init_logging(false);
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
        Command::Cycles { crates } => {
            let mut found = 0;
            for krate in &crates {
                for cycle in xtask::cycles::find(krate)? {
                    println!("{}: {cycle}", krate.display());
                    found += 1;
                }
            }
            anyhow::ensure!(found == 0, "{found} module cycles");
        }
    }
    Ok(())
}
