//! What the binary's commands other than serving run, on the same parts the server uses.

use std::{io::Write, path::Path};

use anyhow::Context as _;
use viralglobe_protocol::LiveFilter;

use crate::replay::{
    Library,
    export::{self, Format},
};

/// The `export` command: `campaign`'s recording under `data_dir` (or, with `demo`, the embedded
/// demo's) exported as the HTTP API streams it, to `out` or stdout, with a progress bar on stderr
/// when it is a terminal.
pub fn export_to_file(
    data_dir: &Path,
    campaign: &str,
    demo: bool,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    // No engine writes here: recordings are indexed by reading them.
    let library = Library::new(data_dir.to_owned(), Default::default());
    if demo {
        anyhow::ensure!(
            campaign == crate::demo::embedded::CAMPAIGN,
            "the demo campaign is {}, not {campaign}",
            crate::demo::embedded::CAMPAIGN
        );
        let path = crate::demo::player::unpack(data_dir).context("cannot unpack the demo")?;
        library.register(campaign, path, crate::demo::player::recording_epoch());
    }
    let index = library.open(campaign)?;
    let mut writer: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut result = Ok(());
    let bar = indicatif::ProgressBar::new(index.arcs()).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} exporting {msg} {wide_bar} {human_pos}/{human_len} arcs, {eta} left",
        )?,
    );
    bar.set_message(campaign.to_owned());
    export::export(&index, format, &LiveFilter::default(), |chunk, reached| {
        bar.set_position(reached);
        result = writer.write_all(chunk.as_bytes());
        result.is_ok()
    })?;
    result?;
    writer.flush()?;
    bar.finish_and_clear();
    Ok(())
}
