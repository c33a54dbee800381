use clap::Parser;

fn main() -> anyhow::Result<()> {
    viralglobe_viewer::run(viralglobe_viewer::Cli::parse())
}
