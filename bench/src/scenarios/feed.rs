//! The live feed under load: fan-out to many subscribers, ingest-to-receipt latency, and what
//! subscribers that never read do to everyone else.

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use tokio::time::Instant;

use crate::{
    cli::Cli,
    publisher::publish,
    report::{Row, count},
    server::Process,
    subscribers::Crowd,
    workload::CampaignTraffic,
};

const WARM_UP: Duration = Duration::from_secs(1);

pub(super) struct Load {
    /// `encoding=` of the feed: `json` or `compact`.
    pub encoding: &'static str,
    pub subscribers: usize,
    /// Of the subscribers, how many never read.
    pub stalled: usize,
    pub events_per_s: f64,
    /// `max_rate=` of the feed, if any.
    pub max_rate: Option<u32>,
    pub transport: Transport,
}

impl Load {
    pub(super) fn new(encoding: &'static str, subscribers: usize, events_per_s: f64) -> Self {
        Self {
            encoding,
            subscribers,
            stalled: 0,
            events_per_s,
            max_rate: None,
            transport: Transport::Socket,
        }
    }
}

/// How the subscribers read the live feed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Socket,
    /// Server-sent events (`/v1/live/events`; JSON).
    Events,
    /// A websocket to a server that sends no `hello` (the Node peer).
    PeerSocket,
}

pub(super) struct Outcome {
    pub delivered_per_s: f64,
    /// Bytes on the wire an arc, JSON frames as sent.
    pub bytes_per_arc: f64,
    pub dropped_share: f64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    /// Cores busy over the measured span: the server's process, and the load generator's.
    pub server_cpu: f64,
    pub client_cpu: f64,
}

impl Outcome {
    pub(super) fn latency(&self) -> String {
        let ms = |v: Option<u64>| v.map_or("—".into(), |v| format!("{v} ms"));
        format!("p50 {}, p99 {}", ms(self.p50_ms), ms(self.p99_ms))
    }

    /// Which side was busy: `server 98% of a core, clients 60%`.
    pub(super) fn cpu(&self) -> String {
        format!(
            "server {:.0}% of a core, clients {:.0}%",
            self.server_cpu * 100.0,
            self.client_cpu * 100.0
        )
    }

    pub(super) fn losses(&self) -> String {
        format!(
            "{:.1}% dropped for slow reading",
            self.dropped_share * 100.0
        )
    }
}

/// Runs `load` against a fresh server: subscribers connect, events flow for a warm-up and then
/// for `span`, which is what is measured.
pub(super) async fn run(cli: &Cli, load: &Load, span: Duration) -> anyhow::Result<Outcome> {
    let server = Process::server(cli)?;
    run_against(&server, load, span).await
}

/// [`run`] against a server already started (ours, or the peer).
pub(super) async fn run_against(
    server: &Process,
    load: &Load,
    span: Duration,
) -> anyhow::Result<Outcome> {
    let campaign = "feed";
    let rate = load
        .max_rate
        .map_or(String::new(), |r| format!("&max_rate={r}"));
    let query = format!("?campaign={campaign}&encoding={}{rate}", load.encoding);
    let readers = load.subscribers - load.stalled;
    let crowd = match load.transport {
        Transport::Events => {
            crate::events::connect(&server.address, &format!("/v1/live/events{query}"), readers)
                .await?
        }
        Transport::Socket | Transport::PeerSocket => {
            let url = format!("{}/v1/live{query}", server.ws_base());
            let greeted = load.transport == Transport::Socket;
            Crowd::connect_greeted(&url, readers, load.stalled, greeted).await?
        }
    };
    let address = server.address.clone();
    let rate = load.events_per_s;
    let traffic = CampaignTraffic::new(campaign, 42);
    let publisher =
        tokio::spawn(async move { publish(&address, traffic, rate, WARM_UP + span).await });
    tokio::time::sleep(WARM_UP).await;

    let tally = crowd.tally.clone();
    let rss_start_kib = server.rss_kib()?;
    let cpu_start = (server.cpu_seconds()?, crate::server::own_cpu_seconds()?);
    tally.measure_latency();
    let (arcs, dropped) = (tally.arcs.load(Relaxed), tally.dropped.load(Relaxed));
    let bytes = tally.arc_bytes.load(Relaxed);
    let started = Instant::now();
    tokio::time::sleep(span).await;
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = (server.cpu_seconds()? - cpu_start.0) / elapsed;
    let client_cpu = (crate::server::own_cpu_seconds()? - cpu_start.1) / elapsed;
    let arcs = tally.arcs.load(Relaxed) - arcs;
    let dropped = tally.dropped.load(Relaxed) - dropped;
    let bytes = tally.arc_bytes.load(Relaxed) - bytes;
    let rss_end_kib = server.rss_kib()?;
    publisher.await??;
    let outcome = Outcome {
        delivered_per_s: arcs as f64 / elapsed,
        bytes_per_arc: bytes as f64 / arcs.max(1) as f64,
        dropped_share: dropped as f64 / (arcs + dropped).max(1) as f64,
        p50_ms: tally.latency_quantile(0.50),
        p99_ms: tally.latency_quantile(0.99),
        rss_start_kib,
        rss_end_kib,
        server_cpu,
        client_cpu,
    };
    crowd.disconnect().await?;
    Ok(outcome)
}

/// Arc deliveries a second to 1,000 and 10,000 subscribers of one campaign, offered about
/// 2.9 million a second (3,000 and 300 events a second; the 3% of events from private addresses
/// draw no arc), in JSON and in the compact encoding. Arcs neither delivered nor dropped are
/// queued: the latency shows the backlog.
pub async fn fan_out(cli: &Cli, span: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut bytes_per_arc = Vec::new();
    for encoding in ["json", "compact"] {
        for (subscribers, events_per_s) in [(1_000, 3_000.0), (10_000, 300.0)] {
            let load = Load::new(encoding, subscribers, events_per_s);
            let outcome = run(cli, &load, span).await?;
            if subscribers == 1_000 {
                bytes_per_arc.push(outcome.bytes_per_arc);
            }
            let (target, met) = match subscribers {
                1_000 => ("≥ 2 M/s", outcome.delivered_per_s >= 2e6),
                _ => (
                    "≥ 2 M/s, p99 ≤ 250 ms",
                    outcome.delivered_per_s >= 2e6 && outcome.p99_ms.is_some_and(|p99| p99 <= 250),
                ),
            };
            rows.push(
                Row::new(
                    format!(
                        "fan-out arc deliveries/s, {} subscribers, {encoding}",
                        count(subscribers as f64)
                    ),
                    format!(
                        "{}/s, offered ≈ {}/s ({} events/s × {} subscribers); {}; {}",
                        count(outcome.delivered_per_s),
                        count(events_per_s * 0.97 * subscribers as f64),
                        count(events_per_s),
                        count(subscribers as f64),
                        outcome.losses(),
                        outcome.latency()
                    ),
                )
                .target(target, met),
            );
        }
    }
    let (json, compact) = (bytes_per_arc[0], bytes_per_arc[1]);
    rows.push(
        Row::new(
            "live bytes on the wire an arc, `encoding=compact` (JSON), 30 arcs a frame",
            format!("{compact:.1} B ({json:.0} B)"),
        )
        .target("≤ 60 B", compact <= 60.0),
    );
    Ok(rows)
}

/// Ingest-to-receipt latency with 1,000 subscribers: overload at 20,000 events a second (more
/// than one core delivers in JSON: a backlog must become `lagged`, not delay) and the target at
/// 5,000, in both encodings; 2,000 (JSON) as the calm baseline; then 2,000 again with 1% of the
/// subscribers never reading.
pub async fn latency(cli: &Cli, span: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let runs = [
        ("json", 20_000_u32),
        ("compact", 20_000),
        ("json", 5_000),
        ("compact", 5_000),
        ("json", 2_000),
    ];
    let mut calm_p99 = None;
    for (encoding, per_s) in runs {
        let events_per_s = f64::from(per_s);
        let load = Load::new(encoding, 1_000, events_per_s);
        let outcome = run(cli, &load, span).await?;
        let measured = format!(
            "{}; {} deliveries/s; {}",
            outcome.latency(),
            count(outcome.delivered_per_s),
            outcome.losses()
        );
        let name = format!(
            "end-to-end latency, {} events/s, 1,000 subscribers, {encoding}",
            count(events_per_s)
        );
        let row = Row::new(name, measured);
        rows.push(match per_s {
            20_000 => row.target(
                "none more than 1 s behind (p99 ≤ 1 s); the backlog told `lagged`",
                outcome.p99_ms.is_some_and(|p99| p99 <= 1_000),
            ),
            5_000 => row.target(
                "p99 ≤ 50 ms, nothing dropped",
                outcome.p99_ms.is_some_and(|p99| p99 <= 50) && outcome.dropped_share == 0.0,
            ),
            _ => {
                calm_p99 = outcome.p99_ms;
                row
            }
        });
    }

    let load = Load {
        stalled: 10,
        ..Load::new("json", 1_000, 2_000.0)
    };
    let outcome = run(cli, &load, span).await?;
    let (with, without) = (outcome.p99_ms.unwrap_or(u64::MAX), calm_p99.unwrap_or(0));
    // Latencies are whole milliseconds: a 1 ms step is within the resolution.
    let moved = with.saturating_sub(without) as f64 / without.max(1) as f64;
    let flat = outcome.rss_end_kib <= outcome.rss_start_kib + outcome.rss_start_kib / 10;
    rows.push(
        Row::new(
            "slow consumers: 10 of 1,000 subscribers never read, 2,000 events/s",
            format!(
                "readers' p99 {with} ms (without: {without} ms); server RSS {:.1} → {:.1} MiB over the run; {}",
                outcome.rss_start_kib as f64 / 1024.0,
                outcome.rss_end_kib as f64 / 1024.0,
                outcome.losses()
            ),
        )
        .target(
            "p99 moves ≤ 10%, RSS flat",
            (moved <= 0.1 || with <= without + 1) && flat,
        ),
    );
    Ok(rows)
}
