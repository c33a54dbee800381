//! The soak: ten minutes (or `--soak-minutes`) of mixed load against one server — steady ingest,
//! readers that stay, subscribers that vanish without a goodbye, subscribers that never read,
//! replays opened and dropped, exports read whole — sampling the server's memory and descriptors.
//! It passes when both stay flat and nothing failed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
    time::Instant,
};

use crate::{
    cli::Cli,
    publisher::publish,
    report::{Row, count},
    server::Process,
    subscribers::Crowd,
    workload::CampaignTraffic,
};

const CAMPAIGN: &str = "soak";
const EVENTS_PER_S: f64 = 2_000.0;
const READERS: usize = 200;
const SHARES: u64 = 2_000;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Replays and exports start once the campaign has a recording.
const FIRST_READ: Duration = Duration::from_secs(3);

/// What went wrong during the run, by kind.
#[derive(Default)]
struct Failures {
    churn: AtomicU64,
    replays: AtomicU64,
    exports: AtomicU64,
}

impl Failures {
    fn total(&self) -> u64 {
        self.churn.load(Relaxed) + self.replays.load(Relaxed) + self.exports.load(Relaxed)
    }
}

pub async fn soak(cli: &Cli) -> anyhow::Result<Vec<Row>> {
    let span = Duration::from_secs_f64(cli.soak_minutes * 60.0);
    let server = Process::server(cli)?;
    let live = format!("{}/v1/live?campaign={CAMPAIGN}", server.ws_base());
    let readers = Crowd::connect(&live, READERS, 0).await?;
    let address = server.address.clone();
    // State the server must keep grows with distinct shares and ids; a bounded tree and clicks
    // without ids keep it flat, so what grows is a leak.
    let traffic = CampaignTraffic::bounded(CAMPAIGN, 42, SHARES);
    let publisher =
        tokio::spawn(async move { publish(&address, traffic, EVENTS_PER_S, span).await });
    let failures = Arc::new(Failures::default());
    let mut load = JoinSet::new();
    load.spawn(vanishing_subscribers(live.clone(), failures.clone()));
    load.spawn(stalled_subscribers(live, failures.clone()));
    let replay = format!(
        "{}/v1/campaigns/{CAMPAIGN}/replay?speed=1000",
        server.ws_base()
    );
    load.spawn(replays(replay, failures.clone()));
    load.spawn(exports(server.address.clone(), failures.clone()));

    let started = Instant::now();
    let (mut settled, mut peak, mut last) = (None, (0, 0), (0, 0));
    while started.elapsed() < span {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let sample = (server.rss_kib()?, server.open_fds()?);
        // Memory and descriptors are compared over the second half of the run: the first
        // minutes fill caches, buffers and the allocator's arenas (one to three minutes here),
        // after which a server that does not leak stays at its working set.
        if started.elapsed() >= span / 2 {
            settled.get_or_insert(sample);
            peak = (peak.0.max(sample.0), peak.1.max(sample.1));
        }
        last = sample;
        eprintln!(
            "soak {:>4.0}s: RSS {} MiB, {} descriptors, {} arcs delivered, {} failures",
            started.elapsed().as_secs_f64(),
            sample.0 / 1024,
            sample.1,
            count(readers.tally.arcs.load(Relaxed) as f64),
            failures.total()
        );
    }
    load.abort_all();
    let accepted = publisher.await?.context("ingest during the soak")?;
    let delivered = readers.tally.arcs.load(Relaxed);
    let dropped = readers.tally.dropped.load(Relaxed);
    readers
        .disconnect()
        .await
        .context("a reader that stayed was cut off")?;
    let (settled_rss, settled_fds) = settled.context("the soak is too short to sample")?;
    let rss_growth = last.0 as f64 / settled_rss as f64 - 1.0;
    let flat = rss_growth <= 0.10 && last.1 <= settled_fds + 16;
    let failed = failures.total();
    Ok(vec![
        Row::new(
            format!("soak, {:.0} minutes of mixed load", cli.soak_minutes),
            format!(
                "RSS {} → {} MiB (peak {}), descriptors {settled_fds} → {} (peak {}) over the second half; \
                 {} events acknowledged, {} arcs delivered to {READERS} readers ({} dropped); \
                 {failed} failures (churn {}, replays {}, exports {})",
                settled_rss / 1024,
                last.0 / 1024,
                peak.0 / 1024,
                last.1,
                peak.1,
                count(accepted as f64),
                count(delivered as f64),
                count(dropped as f64),
                failures.churn.load(Relaxed),
                failures.replays.load(Relaxed),
                failures.exports.load(Relaxed),
            ),
        )
        .target(
            "RSS within 10% and descriptors flat over the second half; 0 failures",
            flat && failed == 0,
        ),
    ])
}

/// Twenty subscribers a second that read for a moment and vanish without a close frame.
async fn vanishing_subscribers(url: String, failures: Arc<Failures>) {
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let mut n = 0u64;
    loop {
        every.tick().await;
        n += 1;
        let (url, failures) = (url.clone(), failures.clone());
        tokio::spawn(async move {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((mut ws, _)) => {
                    let stay = Duration::from_millis(500 + (n * 37) % 2_500);
                    let _ =
                        tokio::time::timeout(stay, async { while ws.next().await.is_some() {} })
                            .await;
                    // Dropped: the socket closes with no websocket goodbye.
                }
                Err(_) => {
                    failures.churn.fetch_add(1, Relaxed);
                }
            }
        });
    }
}

/// Ten subscribers a minute that never read a byte and hold their sockets for 45 seconds: the
/// server must drop them rather than hold their frames.
async fn stalled_subscribers(url: String, failures: Arc<Failures>) {
    let mut every = tokio::time::interval(Duration::from_secs(6));
    loop {
        every.tick().await;
        let (url, failures) = (url.clone(), failures.clone());
        tokio::spawn(async move {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((ws, _)) => {
                    tokio::time::sleep(Duration::from_secs(45)).await;
                    drop(ws);
                }
                Err(_) => {
                    failures.churn.fetch_add(1, Relaxed);
                }
            }
        });
    }
}

/// A replay every 2 seconds, read for 3 seconds and dropped.
async fn replays(url: String, failures: Arc<Failures>) {
    let mut every = tokio::time::interval_at(Instant::now() + FIRST_READ, Duration::from_secs(2));
    loop {
        every.tick().await;
        let (url, failures) = (url.clone(), failures.clone());
        tokio::spawn(async move {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((mut ws, _)) => {
                    let read = async {
                        while let Some(msg) = ws.next().await {
                            if msg.is_err() {
                                failures.replays.fetch_add(1, Relaxed);
                                return;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(3), read).await;
                }
                Err(_) => {
                    failures.replays.fetch_add(1, Relaxed);
                }
            }
        });
    }
}

/// An export of the whole campaign every 15 seconds, read to the end.
async fn exports(address: String, failures: Arc<Failures>) {
    let mut every = tokio::time::interval_at(Instant::now() + FIRST_READ, Duration::from_secs(15));
    loop {
        every.tick().await;
        if !export_whole(&address).await.unwrap_or(false) {
            failures.exports.fetch_add(1, Relaxed);
        }
    }
}

/// Reads a whole CSV export (streamed, chunked) on a connection of its own: whether it was a 200
/// with the CSV header and the last chunk.
async fn export_whole(address: &str) -> anyhow::Result<bool> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!(
        "GET /v1/campaigns/{CAMPAIGN}/export?format=csv HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(answer.starts_with(b"HTTP/1.1 200")
        && memchr::memmem::find(&answer, b"\r\n\r\n").is_some_and(|head| {
            memchr::memmem::find(&answer[head..], b"seq,kind,").is_some()
                && answer.ends_with(b"0\r\n\r\n")
        }))
}
