//! Seeking a replay of a 1,000,000-event recording, and resuming a live feed that missed all of it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    cli::Cli,
    http::Connection,
    report::Row,
    server::Process,
    workload::{CampaignTraffic, Rng, launch_time},
};

const EVENTS: u64 = 1_000_000;
const SEEKS: usize = 50;

pub async fn replay_seek(cli: &Cli) -> anyhow::Result<Vec<Row>> {
    let server = Process::server(cli)?;
    let mut connection = Connection::open(&server.address).await?;
    let mut traffic = CampaignTraffic::new("seek", 77);
    let mut accepted = 0;
    for _ in 0..EVENTS / 10_000 {
        accepted += connection
            .post("/v1/events", &traffic.batch(10_000, launch_time))
            .await?
            .accepted()?;
    }
    ensure!(
        accepted == EVENTS,
        "{accepted} of {EVENTS} events acknowledged"
    );

    let (mut ws, open_ms) = open_replay(&server.ws_base()).await?;

    let mut rng = Rng(5);
    let mut took = Vec::with_capacity(SEEKS);
    for _ in 0..SEEKS {
        let ts = launch_time(rng.below(EVENTS));
        let asked = Instant::now();
        ws.send(Message::text(format!(r#"{{"type":"seek","ts":{ts}}}"#)))
            .await?;
        // The replay also sends its clock once a second: the answer is the clock at `ts`.
        let answer = format!(r#""ts":{ts},"#);
        while !next_text(&mut ws, br#"{"type":"clock""#)
            .await?
            .contains(&answer)
        {}
        took.push(asked.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(f64::total_cmp);
    let (p50, max) = (took[SEEKS / 2], took[SEEKS - 1]);
    let seek = Row::new(
        "replay seek, random times in a 1,000,000-event recording (50 seeks)",
        format!("p50 {p50:.2} ms, max {max:.2} ms"),
    )
    .target("≤ 50 ms", max <= 50.0);
    let open = Row::new(
        "replay open, a 1,000,000-event recording just written (to its hello)",
        format!("{open_ms:.0} ms"),
    )
    .target("≤ 200 ms", open_ms <= 200.0);
    let resume = resume(&server.ws_base()).await?;
    drop(ws);

    // After a crash the server rebuilds its state from the recording, and the index with it.
    let stopped = Instant::now();
    let server = server.restart(cli, &[])?;
    let restart_s = stopped.elapsed().as_secs_f64();
    let (_, open_ms) = open_replay(&server.ws_base()).await?;
    let reopen = Row::new(
        "replay open after a restart on that recording (to its hello)",
        format!("{open_ms:.0} ms; the restart took {restart_s:.2} s"),
    )
    .target("≤ 200 ms", open_ms <= 200.0);
    Ok(vec![open, reopen, seek, resume])
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a paused replay of the campaign; returns it once its hello came, and the milliseconds
/// that took.
async fn open_replay(ws_base: &str) -> anyhow::Result<(Socket, f64)> {
    let url = format!("{ws_base}/v1/campaigns/seek/replay?paused=true");
    let opened = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    next_text(&mut ws, br#"{"type":"hello""#).await?;
    Ok((ws, opened.elapsed().as_secs_f64() * 1e3))
}

/// A live subscriber that missed the whole campaign resumes with `since=0`: every arc comes from
/// the recording, then the feed goes live.
async fn resume(ws_base: &str) -> anyhow::Result<Row> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}/v1/live?campaign=seek")).await?;
    let hello: serde_json::Value =
        serde_json::from_str(&next_text(&mut ws, br#"{"type":"hello""#).await?)?;
    let campaign = &hello["campaigns"][0];
    let (epoch, last) = (
        campaign["epoch"].as_str().context("an epoch")?.to_owned(),
        campaign["seq"].as_u64().context("a seq")?,
    );
    drop(ws);

    let asked = Instant::now();
    let url = format!("{ws_base}/v1/live?campaign=seek&since=0&epoch={epoch}");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    next_text(&mut ws, br#"{"type":"hello""#).await?;
    let (mut first, mut seen) = (None, 0u64);
    while seen < last {
        let frame = next_text(&mut ws, br#"{"type":"arc"#).await?;
        first.get_or_insert_with(|| asked.elapsed());
        let at = frame.rfind(r#"{"seq":"#).context("an arc")? + r#"{"seq":"#.len();
        let digits = frame[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or_default();
        seen = digits.parse()?;
    }
    let all = asked.elapsed();
    let first = first.unwrap_or(all);
    Ok(Row::new(
        format!(
            "live resume with since=0 after {} missed arcs",
            crate::report::count(last as f64)
        ),
        format!(
            "first arc after {:.0} ms; all in {:.2} s ({} arcs/s)",
            first.as_secs_f64() * 1e3,
            all.as_secs_f64(),
            crate::report::count(last as f64 / all.as_secs_f64())
        ),
    ))
}

/// The next text message that starts with `prefix`, within 30 s.
async fn next_text<S>(ws: &mut S, prefix: &[u8]) -> anyhow::Result<String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .context("no answer from the replay within 30 s")?;
        match message {
            Some(Ok(Message::Text(text))) if text.as_bytes().starts_with(prefix) => {
                return Ok(text.to_string());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the replay closed"),
        }
    }
}
