use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use viralglobe_server::{
    demo, replay,
    settings::{Cli, Command, ExportFormat, LogFormat},
    startup::Application,
    telemetry,
};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format == LogFormat::Json);
    match cli.command() {
        Command::Serve(settings) => Application::build(settings)?.run_until_stopped().await?,
        Command::Ingest {
            source,
            mut settings,
        } => {
            settings.follow = Some(source);
            Application::build(settings)?.run_until_stopped().await?;
        }
        Command::Demo {
            speed,
            max_rate,
            settings,
        } => {
            let pace = demo::player::Pace { speed, max_rate };
            Application::build_with(settings, Some(pace))?
                .run_until_stopped()
                .await?;
        }
        Command::Simulate {
            server,
            rate,
            duration,
            campaign,
            token,
        } => {
            let options = demo::simulate::Options {
                server,
                rate,
                duration: duration
                    .map(Duration::try_from_secs_f64)
                    .transpose()
                    .context("--duration must be a number of seconds, 0 or more")?,
                campaign,
                token,
            };
            let totals = demo::simulate::run(&options)?;
            println!("{}", serde_json::to_string(&totals)?);
        }
        Command::Export {
            campaign,
            demo,
            format,
            data_dir,
            out,
        } => export(campaign, demo, format, data_dir, out)?,
    }
    Ok(())
}

/// The `export` subcommand: the same export the HTTP API streams, to a file or stdout.
fn export(
    campaign: Option<String>,
    demo: bool,
    format: ExportFormat,
    data_dir: PathBuf,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    // No engine writes here: recordings are indexed by reading them.
    let library = replay::Library::new(data_dir.clone(), Default::default());
    let campaign = match campaign {
        Some(campaign) => campaign,
        None => demo::embedded::CAMPAIGN.to_owned(),
    };
    if demo {
        anyhow::ensure!(
            campaign == demo::embedded::CAMPAIGN,
            "the demo campaign is {}, not {campaign}",
            demo::embedded::CAMPAIGN
        );
        let path = demo::player::unpack(&data_dir).context("cannot unpack the demo")?;
        library.register(&campaign, path, demo::player::recording_epoch());
    }
    let index = library.open(&campaign)?;
    let mut writer: Box<dyn Write> = match &out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut result = Ok(());
    let filter = viralglobe_protocol::LiveFilter::default();
    let format = match format {
        ExportFormat::Ndjson => replay::export::Format::Ndjson,
        ExportFormat::Csv => replay::export::Format::Csv,
        ExportFormat::Geojson => replay::export::Format::Geojson,
    };
    // On a terminal, a bar on stderr; hidden when stderr is not one.
    let bar = indicatif::ProgressBar::new(index.arcs()).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} exporting {msg} {wide_bar} {human_pos}/{human_len} arcs, {eta} left",
        )?,
    );
    bar.set_message(campaign.clone());
    replay::export::export(&index, format, &filter, |chunk, reached| {
        bar.set_position(reached);
        result = writer.write_all(chunk.as_bytes());
        result.is_ok()
    })?;
    result?;
    writer.flush()?;
    bar.finish_and_clear();
    Ok(())
}
