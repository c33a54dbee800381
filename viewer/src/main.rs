use clap::Parser;

/// A user's mistake (a missing file, a bad URL) is said in one line with its causes, never as a
/// backtrace, whatever RUST_BACKTRACE says.
fn main() {
    if let Err(error) = viralglobe_viewer::run(viralglobe_viewer::Cli::parse()) {
        eprintln!("viralglobe-viewer: {error:#}");
        std::process::exit(1);
    }
}
