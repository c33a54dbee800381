use clap::Parser;

fn main() -> anyhow::Result<()> {
    viralglobe_bench::run(viralglobe_bench::cli::Cli::parse())
}
