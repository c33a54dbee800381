//! Resident memory of the server per idle websocket subscriber and per tracked share.

use std::time::Duration;

use anyhow::ensure;

use crate::{
    cli::Cli,
    http::Connection,
    report::Row,
    server::Process,
    subscribers::Crowd,
    workload::{CampaignTraffic, launch_time},
};

const IDLE_SUBSCRIBERS: usize = 10_000;
const SHARES: usize = 200_000;

pub async fn rss(cli: &Cli) -> anyhow::Result<Vec<Row>> {
    let server = Process::server(cli)?;
    let settle = || tokio::time::sleep(Duration::from_secs(1));
    settle().await;

    let before = server.rss_kib()?;
    let url = format!("{}/v1/live?campaign=quiet", server.ws_base());
    let crowd = Crowd::connect(&url, IDLE_SUBSCRIBERS, 0).await?;
    settle().await;
    let per_subscriber =
        (server.rss_kib()?.saturating_sub(before)) as f64 / IDLE_SUBSCRIBERS as f64;
    crowd.disconnect().await?;

    // The same addresses first, in another campaign, so the geo cache and the recording's
    // buffers are already warm: what grows after is the shares.
    let mut connection = Connection::open(&server.address).await?;
    let mut warm = CampaignTraffic::new("warm", 9);
    for _ in 0..100 {
        connection
            .post("/v1/events", &warm.batch(1_000, launch_time))
            .await?;
    }
    settle().await;
    let before = server.rss_kib()?;
    let mut shares = CampaignTraffic::new("shares", 9);
    let mut accepted = 0;
    for _ in 0..SHARES / 1_000 {
        let mut body = Vec::with_capacity(200_000);
        for n in 0..1_000 {
            shares.write_share(launch_time(n), &mut body);
        }
        accepted += connection.post("/v1/events", &body).await?.accepted()?;
    }
    ensure!(
        accepted == SHARES as u64,
        "{accepted} of {SHARES} shares acknowledged"
    );
    settle().await;
    let per_share = (server.rss_kib()?.saturating_sub(before) * 1024) as f64 / SHARES as f64;

    Ok(vec![
        Row::new(
            "RSS per idle websocket subscriber (10,000 connected)",
            format!("{per_subscriber:.1} KiB"),
        )
        .target("≤ 16 KiB", per_subscriber <= 16.0),
        Row::new(
            "RSS per tracked share (200,000 re-shares)",
            format!("{per_share:.0} B"),
        )
        .target("≤ 200 B", per_share <= 200.0),
    ])
}
