use clap::Parser;
use viralglobe_server::{settings::Cli, startup::Application, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Cli::parse().into_settings();
    telemetry::init_logging();
    Application::build(settings)?.run_until_stopped().await?;
    Ok(())
}
