//! A viral peak's audience on one node: tens of thousands of subscribers at a bounded rate each,
//! 10,000 at full rate beside the Node peer (`--peer`), and 5,000 over server-sent events.

use std::time::Duration;

use super::feed::{Load, Outcome, Transport, run, run_against};
use crate::{
    cli::Cli,
    report::{Row, count},
    server::Process,
};

const WANTED: usize = 50_000;

/// Descriptors this process may open (the server, started from it, may open as many).
fn descriptor_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1_024)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn audience(cli: &Cli, span: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();

    // Each subscriber is a descriptor on both sides; a few hundred kept for everything else.
    let subscribers = WANTED.min(descriptor_limit().saturating_sub(500));
    let load = Load {
        max_rate: Some(50),
        ..Load::new("compact", subscribers, 2_500.0)
    };
    let outcome = run(cli, &load, span).await?;
    let per_subscriber = outcome.delivered_per_s / subscribers as f64;
    let rss_ok = outcome.rss_end_kib as f64 * WANTED as f64 / subscribers as f64 <= 1024.0 * 1024.0;
    let fits = subscribers == WANTED;
    rows.push(
        Row::new(
            format!(
                "audience: {} subscribers{}, 2,500 events/s, `max_rate=50`, compact",
                count(subscribers as f64),
                if fits {
                    String::new()
                } else {
                    " (all the descriptor limit allows here)".into()
                }
            ),
            format!(
                "{}/s delivered, {per_subscriber:.1} arcs/s each; {}; {}; server RSS {:.0} MiB; {}",
                count(outcome.delivered_per_s),
                outcome.losses(),
                outcome.latency(),
                mib(outcome.rss_end_kib),
                outcome.cpu()
            ),
        )
        .target(
            "50,000 subscribers: p99 ≤ 250 ms, 0% dropped, RSS ≤ 1 GiB",
            fits && outcome.p99_ms.is_some_and(|p| p <= 250)
                && outcome.dropped_share == 0.0
                && rss_ok,
        ),
    );

    rows.extend(beside_the_peer(cli, span).await?);

    let load = Load {
        transport: Transport::Events,
        ..Load::new("json", 5_000, 1_000.0)
    };
    let outcome = run(cli, &load, span).await?;
    rows.push(
        Row::new(
            "server-sent events: 5,000 subscribers, 1,000 events/s",
            format!(
                "{}/s delivered; {}; {}; {}",
                count(outcome.delivered_per_s),
                outcome.losses(),
                outcome.latency(),
                outcome.cpu()
            ),
        )
        .target("p99 ≤ 100 ms", outcome.p99_ms.is_some_and(|p| p <= 100)),
    );
    Ok(rows)
}

/// 10,000 subscribers at 300 events/s, ours in JSON and compact and the Node peer (JSON, its
/// only form), one after the other with the same load generator and events.
async fn beside_the_peer(cli: &Cli, span: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let peer_ready = cli.peer.join("node_modules").is_dir();
    let peer = if peer_ready {
        let process = Process::peer(cli, &cli.peer)?;
        let load = Load {
            transport: Transport::PeerSocket,
            ..Load::new("json", 10_000, 300.0)
        };
        Some(run_against(&process, &load, span).await?)
    } else {
        eprintln!(
            "no Node peer at {} (npm ci there): the side-by-side figure has no peer",
            cli.peer.display()
        );
        None
    };
    for encoding in ["json", "compact"] {
        let ours = run(cli, &Load::new(encoding, 10_000, 300.0), span).await?;
        let ratio = peer
            .as_ref()
            .map(|p| ours.delivered_per_s / p.delivered_per_s);
        rows.push(
            Row::new(
                format!("beside the Node peer: 10,000 subscribers, 300 events/s, {encoding}"),
                format!(
                    "ours {}/s ({}; {}, RSS {:.0} MiB; {}); {}",
                    count(ours.delivered_per_s),
                    ours.latency(),
                    ours.losses(),
                    mib(ours.rss_end_kib),
                    ours.cpu(),
                    peer.as_ref()
                        .map_or("peer not run".into(), |p| peer_figures(p, ratio)),
                ),
            )
            .target(
                "≥ 2.5 M/s, p99 ≤ 250 ms, ≥ 1.5× the peer",
                ours.delivered_per_s >= 2.5e6
                    && ours.p99_ms.is_some_and(|p| p <= 250)
                    && ratio.is_some_and(|r| r >= 1.5),
            ),
        );
    }
    Ok(rows)
}

fn peer_figures(peer: &Outcome, ratio: Option<f64>) -> String {
    format!(
        "the peer {}/s ({}, RSS {:.0} MiB; {}): {:.2}×",
        count(peer.delivered_per_s),
        peer.latency(),
        mib(peer.rss_end_kib),
        peer.cpu(),
        ratio.unwrap_or(0.0)
    )
}
