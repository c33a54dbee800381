//! The figures of the suite, each against a fresh server process.

mod audience;
mod broker;
mod cluster;
mod consume;
mod feed;
mod ingest;
mod memory;
mod redirect;
mod seek;
mod soak;

use std::time::Duration;

use crate::cli::{Cli, Figure};

pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    let wanted = |figure| cli.only.is_empty() || cli.only.contains(&figure);
    let span = Duration::from_secs_f64(cli.seconds);
    if wanted(Figure::Ingest) {
        ingest::batches(cli).await?.print();
    }
    if wanted(Figure::IngestSingle) {
        ingest::one_per_request(cli, span).await?.print();
    }
    if wanted(Figure::Fanout) {
        for row in feed::fan_out(cli, span).await? {
            row.print();
        }
    }
    if wanted(Figure::Latency) {
        for row in feed::latency(cli, span).await? {
            row.print();
        }
    }
    if wanted(Figure::Audience) {
        for row in audience::audience(cli, span).await? {
            row.print();
        }
    }
    if wanted(Figure::Redirect) {
        for row in redirect::redirects(cli, span).await? {
            row.print();
        }
    }
    if wanted(Figure::Memory) {
        for row in memory::rss(cli).await? {
            row.print();
        }
    }
    if wanted(Figure::Seek) {
        for row in seek::replay_seek(cli).await? {
            row.print();
        }
    }
    if wanted(Figure::Cluster) {
        for row in cluster::cluster(cli, span).await? {
            row.print();
        }
    }
    if wanted(Figure::Consume) {
        for row in consume::consume(cli).await? {
            row.print();
        }
    }
    // Minutes long: only when asked for by name.
    if cli.only.contains(&Figure::Soak) {
        for row in soak::soak(cli).await? {
            row.print();
        }
    }
    Ok(())
}
