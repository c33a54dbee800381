use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use viralglobe_server::{
    Application, Cli, Command, ExportFormat, LogFormat, TokenScope,
    auth::{Scope, mint},
    demo,
    export::{self, Format},
    init_logging, reseed,
};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format == LogFormat::Json);
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
            let pace = demo::Pace { speed, max_rate };
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
        Command::Token {
            campaigns,
            scopes,
            ttl,
            origins,
            subject,
            jwt_secret,
        } => {
            let scopes: Vec<_> = scopes
                .into_iter()
                .map(|scope| match scope {
                    TokenScope::Read => Scope::Read,
                    TokenScope::Ingest => Scope::Ingest,
                    TokenScope::Links => Scope::Links,
                })
                .collect();
            let origins = (!origins.is_empty()).then_some(origins);
            println!(
                "{}",
                mint(&jwt_secret, &campaigns, &scopes, ttl, origins, subject)?
            );
        }
        Command::Export {
            campaign,
            demo,
            format,
            data_dir,
            out,
        } => {
            let format = match format {
                ExportFormat::Ndjson => Format::Ndjson,
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Geojson => Format::Geojson,
            };
            let campaign = campaign.unwrap_or_else(|| demo::CAMPAIGN.to_owned());
            export::to_file(&data_dir, &campaign, demo, format, out.as_deref())?;
        }
        Command::Reseed { redis, data_dir } => {
            let done = reseed(&redis, &data_dir)?;
            println!("{}", serde_json::to_string(&done)?);
        }
    }
    Ok(())
}
