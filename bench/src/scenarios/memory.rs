//! Resident memory of the server per idle subscriber (websocket, server-sent events), per tracked
//! share and per click id kept to tell duplicates.

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
const CLICKS: usize = 1_000_000;

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
    settle().await;

    // The same over server-sent events, on a server of their own: on this one they would reuse
    // what the websockets freed and look cheaper than they are.
    let per_stream = {
        let server = Process::server(cli)?;
        settle().await;
        let before = server.rss_kib()?;
        let path = "/v1/live/events?campaign=quiet";
        let crowd = crate::events::connect(&server.address, path, IDLE_SUBSCRIBERS).await?;
        settle().await;
        let grown = server.rss_kib()?.saturating_sub(before);
        crowd.disconnect().await?;
        grown as f64 / IDLE_SUBSCRIBERS as f64
    };

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

    // Clicks on one share, a million without ids and a million with: what the ids add is what
    // de-duplication keeps.
    let mut grown = Vec::new();
    for with_ids in [false, true] {
        let campaign = if with_ids { "ids" } else { "no-ids" };
        let mut clicks = CampaignTraffic::new(campaign, 11);
        let mut body = Vec::new();
        clicks.write_share(launch_time(0), &mut body);
        connection.post("/v1/events", &body).await?.accepted()?;
        settle().await;
        let before = server.rss_kib()?;
        let mut accepted = 0;
        for batch in 0..CLICKS / 1_000 {
            body.clear();
            for n in 0..1_000 {
                let k = (batch * 1_000 + n) as u64;
                clicks.write_click(launch_time(k), with_ids, &mut body);
            }
            accepted += connection.post("/v1/events", &body).await?.accepted()?;
        }
        ensure!(
            accepted == CLICKS as u64,
            "{accepted} of {CLICKS} clicks acknowledged"
        );
        settle().await;
        grown.push(server.rss_kib()?.saturating_sub(before) as f64 * 1024.0);
    }
    let per_id = (grown[1] - grown[0]).max(0.0) / CLICKS as f64;

    Ok(vec![
        Row::new(
            "RSS per idle websocket subscriber (10,000 connected)",
            format!("{per_subscriber:.1} KiB"),
        )
        .target("≤ 8 KiB", per_subscriber <= 8.0),
        Row::new(
            "RSS per idle server-sent event subscriber (10,000 connected)",
            format!("{per_stream:.1} KiB"),
        )
        .target("≤ 8 KiB", per_stream <= 8.0),
        Row::new(
            "RSS per tracked share (200,000 re-shares)",
            format!("{per_share:.0} B"),
        )
        .target("≤ 150 B", per_share <= 150.0),
        Row::new(
            "RSS per click id kept for de-duplication (1,000,000 clicks with ids against as many without)",
            format!("{per_id:.1} B"),
        )
        .target("≤ 24 B", per_id <= 24.0),
    ])
}
