//! Cluster mode's cost and gain, measured against local files in the same sitting: ingest with
//! one node on Redis (append-only file fsynced every second, then on every write), the latency of
//! one event per request, how fast a node applies the log (a node starting on a log it has not
//! seen), and fan-out from two nodes against one. Redis runs on the clients' CPUs.

use std::{
    process::Command,
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};

use super::broker::Broker;
use crate::{
    cli::Cli,
    http::Connection,
    publisher::publish,
    report::{Row, count},
    server::Process,
    subscribers::Crowd,
    workload::{CampaignTraffic, now_ms},
};

const BATCHES_PER_CONNECTION: usize = 150;
/// Events the batches phase sends: 2 connections × 150 batches × 1,000.
const BATCH_EVENTS: usize = 2 * BATCHES_PER_CONNECTION * 1_000;
const SINGLE_CONNECTIONS: usize = 32;

/// Events/s and the p50/p99 of one batch's round trip, batches of 1,000 over two connections.
async fn batches(server: &Process, seed: u64) -> anyhow::Result<(f64, Duration, Duration)> {
    let (rate, times) =
        super::ingest::post_batches(&server.address, "cluster", seed, BATCHES_PER_CONNECTION)
            .await?;
    Ok((rate, quantile(&times, 0.5), quantile(&times, 0.99)))
}

/// One event per request on 32 connections: events/s and each request's p50/p99.
async fn singles(server: &Process, span: Duration) -> anyhow::Result<(f64, Duration, Duration)> {
    let started = Instant::now();
    let clients: Vec<_> = (0..SINGLE_CONNECTIONS)
        .map(|c| {
            let address = server.address.clone();
            tokio::spawn(async move {
                let mut connection = Connection::open(&address).await?;
                let mut traffic = CampaignTraffic::new(&format!("one{c}"), 900 + c as u64);
                let (mut body, mut times) = (Vec::with_capacity(256), Vec::new());
                while started.elapsed() < span {
                    body.clear();
                    traffic.write_event(now_ms(), &mut body);
                    let sent = Instant::now();
                    let answer = connection.post("/v1/events", &body).await?;
                    times.push(sent.elapsed());
                    ensure!(answer.accepted()? == 1, "answered {}", answer.status);
                }
                Ok(times)
            })
        })
        .collect();
    let mut times = Vec::new();
    for client in clients {
        times.extend(client.await??);
    }
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    times.sort();
    Ok((rate, quantile(&times, 0.5), quantile(&times, 0.99)))
}

fn quantile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * fraction) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub async fn cluster(cli: &Cli, span: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        rows.push(Row::new(
            "cluster figures",
            "not measured: no redis-server here (apt install redis-server)",
        ));
        return Ok(rows);
    }

    // Ingest: local files, then one node on Redis, fsync every second and on every write.
    let local = Process::server(cli)?;
    let (local_rate, local_p50, local_p99) = batches(&local, 300).await?;
    let (local_one, local_one_p50, local_one_p99) = singles(&local, span).await?;
    drop(local);
    for appendfsync in ["everysec", "always"] {
        let redis = Broker::redis(cli, Some(appendfsync))?;
        let node = Process::server_with(cli, &["--redis", &redis.redis_url()])?;
        let (rate, p50, p99) = batches(&node, 300).await?;
        let per_event_us = (1.0 / rate - 1.0 / local_rate) * 1e6;
        rows.push(
            Row::new(
                format!("cluster ingest events/s, 1 node on Redis (appendfsync {appendfsync}), batches of 1,000 over 2 connections"),
                format!(
                    "{}/s, batch p50 {} p99 {} (local files: {}/s, p50 {} p99 {}): {per_event_us:+.2} µs an event",
                    count(rate), ms(p50), ms(p99), count(local_rate), ms(local_p50), ms(local_p99)
                ),
            )
        );
        if appendfsync == "everysec" {
            // A node that starts on this log applies all of it before it listens.
            let entries = count_entries(&redis)?;
            let events = BATCH_EVENTS as f64;
            let started = Instant::now();
            let late = Process::server_with(
                cli,
                &[
                    "--redis",
                    &redis.redis_url(),
                    "--redis-snapshot-events",
                    "0",
                ],
            )?;
            let elapsed = started.elapsed().as_secs_f64();
            drop(late);
            rows.push(Row::new(
                "cluster: a node starting on the log applies it (every node applies every event)",
                format!(
                    "{} events ({entries} entries) in {elapsed:.2} s, start-up included: {}/s, {:.2} µs an event",
                    count(events),
                    count(events / elapsed),
                    elapsed / events * 1e6
                ),
            ));
            let (one, one_p50, one_p99) = singles(&node, span).await?;
            rows.push(Row::new(
                "cluster ingest, one event per request, 32 connections, 1 node on Redis",
                format!(
                    "{}/s, request p50 {} p99 {} (local files: {}/s, p50 {} p99 {})",
                    count(one),
                    ms(one_p50),
                    ms(one_p99),
                    count(local_one),
                    ms(local_one_p50),
                    ms(local_one_p99)
                ),
            ));
        }
    }

    // Fan-out: 1,000 subscribers at 3,000 events/s, on one node, then split over two.
    let redis = Broker::redis(cli, Some("everysec"))?;
    let one = fan_out(cli, &redis, 1, span).await?;
    let two = fan_out(cli, &redis, 2, span).await?;
    rows.push(
        Row::new(
            "cluster fan-out, 1,000 subscribers, 3,000 events/s: 2 nodes against 1",
            format!(
                "2 nodes: {}/s, p99 {} ms; 1 node: {}/s, p99 {} ms (both nodes on the server CPUs here)",
                count(two.0),
                two.1,
                count(one.0),
                one.1
            ),
        ),
    );
    Ok(rows)
}

fn count_entries(redis: &Broker) -> anyhow::Result<u64> {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "XLEN", "viralglobe:log"])
        .output()
        .context("redis-cli")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Deliveries/s and p99 (ms) with the subscribers spread over `nodes` nodes on `redis`.
async fn fan_out(
    cli: &Cli,
    redis: &Broker,
    nodes: usize,
    span: Duration,
) -> anyhow::Result<(f64, u64)> {
    let servers = (0..nodes)
        .map(|_| Process::server_with(cli, &["--redis", &redis.redis_url()]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let campaign = format!("fan{nodes}");
    let mut crowds = Vec::new();
    for server in &servers {
        let url = format!("{}/v1/live?campaign={campaign}", server.ws_base());
        crowds.push(Crowd::connect(&url, 1_000 / nodes, 0).await?);
    }
    let address = servers[0].address.clone();
    let traffic = CampaignTraffic::new(&campaign, 77 + nodes as u64);
    let warm_up = Duration::from_secs(1);
    let publisher =
        tokio::spawn(async move { publish(&address, traffic, 3_000.0, warm_up + span).await });
    tokio::time::sleep(warm_up).await;
    for crowd in &crowds {
        crowd.tally.measure_latency();
    }
    let before: u64 = crowds.iter().map(|c| c.tally.arcs.load(Relaxed)).sum();
    let started = Instant::now();
    tokio::time::sleep(span).await;
    let arcs: u64 = crowds
        .iter()
        .map(|c| c.tally.arcs.load(Relaxed))
        .sum::<u64>()
        - before;
    let rate = arcs as f64 / started.elapsed().as_secs_f64();
    let p99 = crowds
        .iter()
        .filter_map(|c| c.tally.latency_quantile(0.99))
        .max()
        .unwrap_or(0);
    publisher.await??;
    for crowd in crowds {
        crowd.disconnect().await?;
    }
    Ok((rate, p99))
}
