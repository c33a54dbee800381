//! Ingest over HTTP: NDJSON batches, and one event per request against a bare actix handler.

use std::time::{Duration, Instant};

use anyhow::ensure;

use crate::{
    cli::Cli,
    http::Connection,
    report::{Row, count},
    server::Process,
    workload::{CampaignTraffic, launch_time, now_ms},
};

const BATCH: usize = 1_000;
const BATCHES_PER_CONNECTION: usize = 250;
const CONNECTIONS: usize = 2;
/// Concurrent keep-alive connections posting one event each per request.
const SINGLE_CONNECTIONS: usize = 32;

/// Batches of 1,000 events over two keep-alive connections, no subscribers. The target depends on
/// where the server runs: one core (the suite's default placement), or the whole machine.
pub async fn batches(cli: &Cli) -> anyhow::Result<Row> {
    let server = Process::server(cli)?;
    let (rate, _) = post_batches(&server.address, "ingest", 100, BATCHES_PER_CONNECTION).await?;
    let one_core = !cli.server_cpus.is_empty() && crate::cpu_count(&cli.server_cpus) == 1;
    let (placement, target, goal) = match one_core {
        true => ("the server on one core", "≥ 300 k/s", 300_000.0),
        false => (
            "the whole machine, server and clients",
            "≥ 500 k/s",
            500_000.0,
        ),
    };
    Ok(Row::new(
        format!(
            "ingest events/s, NDJSON batches of 1,000 over {CONNECTIONS} connections, 0 subscribers, {placement}"
        ),
        format!("{}/s", count(rate)),
    )
    .target(target, rate >= goal))
}

/// Posts `per_connection` batches of 1,000 events (campaigns `{campaign}0`, `{campaign}1`, …) on
/// each of two keep-alive connections at once, and checks every event was acknowledged; returns
/// the events acknowledged a second and each batch's round trip, sorted.
pub(super) async fn post_batches(
    address: &str,
    campaign: &str,
    seed: u64,
    per_connection: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let work: Vec<Vec<Vec<u8>>> = (0..CONNECTIONS)
        .map(|c| {
            let mut traffic = CampaignTraffic::new(&format!("{campaign}{c}"), seed + c as u64);
            (0..per_connection)
                .map(|_| traffic.batch(BATCH, launch_time))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let posters: Vec<_> = work
        .into_iter()
        .map(|bodies| {
            let address = address.to_owned();
            tokio::spawn(async move {
                let mut connection = Connection::open(&address).await?;
                let (mut accepted, mut times) = (0, Vec::with_capacity(bodies.len()));
                for body in &bodies {
                    let sent = Instant::now();
                    let answer = connection.post("/v1/events", body).await?;
                    times.push(sent.elapsed());
                    ensure!(answer.status == 200, "ingest answered {}", answer.status);
                    accepted += answer.accepted()?;
                }
                Ok((accepted, times))
            })
        })
        .collect();
    let (mut accepted, mut times) = (0, Vec::new());
    for poster in posters {
        let (a, t) = poster.await??;
        accepted += a;
        times.extend(t);
    }
    let rate = accepted as f64 / started.elapsed().as_secs_f64();
    let expected = (CONNECTIONS * per_connection * BATCH) as u64;
    ensure!(
        accepted == expected,
        "the server acknowledged {accepted} of {expected} events"
    );
    times.sort();
    Ok((rate, times))
}

/// One event per POST on 32 keep-alive connections, against the server and against actix-web
/// answering 204 to the same requests.
pub async fn one_per_request(cli: &Cli, span: Duration) -> anyhow::Result<Row> {
    let server = Process::server(cli)?;
    let events = requests_per_second(&server.address, span, true).await?;
    drop(server);
    let bare = Process::bare(cli)?;
    let baseline = requests_per_second(&bare.address, span, false).await?;
    let share = events / baseline;
    Ok(Row::new(
        format!(
            "ingest events/s, one event per request, {SINGLE_CONNECTIONS} keep-alive connections"
        ),
        format!(
            "{}/s = {:.0}% of a bare actix 204 handler ({}/s)",
            count(events),
            share * 100.0,
            count(baseline)
        ),
    )
    .target("≥ 60% of bare actix", share >= 0.6))
}

async fn requests_per_second(address: &str, span: Duration, ingest: bool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let clients: Vec<_> = (0..SINGLE_CONNECTIONS)
        .map(|c| {
            let address = address.to_owned();
            tokio::spawn(async move {
                let mut connection = Connection::open(&address).await?;
                let mut traffic = CampaignTraffic::new(&format!("single{c}"), 500 + c as u64);
                let mut done = 0u64;
                let mut body = Vec::with_capacity(256);
                while started.elapsed() < span {
                    body.clear();
                    traffic.write_event(now_ms(), &mut body);
                    let answer = connection.post("/v1/events", &body).await?;
                    ensure!(answer.status / 100 == 2, "answered {}", answer.status);
                    if ingest {
                        ensure!(answer.accepted()? == 1, "an event was not acknowledged");
                    }
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut done = 0;
    for client in clients {
        done += client.await??;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}
