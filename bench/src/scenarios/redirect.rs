//! Tracked links' redirects: `GET /l/{code}` with a browser's user agent and a new visitor's
//! address each time (the server trusts the load generator's `X-Forwarded-For`), so every
//! redirect records a click; against actix-web answering the same request with a bare 302.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};

use crate::{
    cli::Cli,
    http::Connection,
    report::{Row, count},
    server::Process,
};

const CONNECTIONS: usize = 32;
/// The paced phase's rate, all connections together.
const PACED_RATE: f64 = 10_000.0;
const CAMPAIGN: &str = "bench-links";
const USER_AGENT: &str =
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const ARGS: &[&str] = &["--trusted-proxy", "127.0.0.1"];

pub async fn redirects(cli: &Cli, span: Duration) -> anyhow::Result<Vec<Row>> {
    let server = Process::server_with(cli, ARGS)?;
    let path = format!("/l/{}", mint(&server.address).await?);
    let load = closed_loop(&server.address, &path, span).await?;
    let recorded = clicks_settled(&server.address).await?;
    drop(server);
    let bare = Process::bare(cli)?;
    let baseline = closed_loop(&bare.address, "/l/Ab3dE5gH1jK", span).await?;
    drop(bare);
    let share = load.rate / baseline.rate;
    let mut rows = vec![
        Row::new(
            format!(
                "tracked link redirects/s, a click recorded each, {CONNECTIONS} keep-alive connections"
            ),
            format!(
                "{}/s = {:.0}% of a bare actix 302 handler ({}/s); {} of {} clicks recorded",
                count(load.rate),
                share * 100.0,
                count(baseline.rate),
                recorded,
                load.answered
            ),
        )
        .target("≥ 60% of bare actix", share >= 0.6),
    ];

    // Paced at 10,000/s: the time to answer, counted from when each request was due.
    let server = Process::server_with(cli, ARGS)?;
    let path = format!("/l/{}", mint(&server.address).await?);
    let paced_load = paced(&server.address, &path, span, 2).await?;
    let mut times = paced_load.times;
    times.sort();
    let quantile = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = quantile(0.99);
    rows.push(
        Row::new(
            format!("tracked link redirect latency at {}/s", count(PACED_RATE)),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} redirects)",
                ms(quantile(0.5)),
                ms(p99),
                ms(*times.last().context("no redirect answered")?),
                times.len()
            ),
        )
        .target("p99 ≤ 10 ms", p99 <= Duration::from_millis(10)),
    );

    // A kill -9 in the middle of the paced load: which answered redirects lost their click.
    let before = clicks_settled(&server.address).await?;
    let address = server.address.clone();
    let killed_load = tokio::spawn(async move { paced(&address, &path, span, 3).await });
    tokio::time::sleep(span / 2).await;
    let server = server.restart(cli, ARGS)?;
    let killed_load = killed_load.await??;
    let answered = killed_load.times.len() as u64;
    let recorded = clicks(&server.address).await? - before;
    let lost = answered.saturating_sub(recorded);
    let window_ms = lost as f64 / PACED_RATE * 1e3;
    rows.push(
        Row::new(
            format!("clicks lost to a kill -9 at {}/s", count(PACED_RATE)),
            format!(
                "{lost} of {answered} answered redirects = {window_ms:.1} ms of clicks ({recorded} recorded)"
            ),
        )
        .target("≤ 50 ms of clicks", window_ms <= 50.0),
    );
    Ok(rows)
}

/// A post's link in the benchmark's campaign; its code.
async fn mint(address: &str) -> anyhow::Result<String> {
    let mut connection = Connection::open(address).await?;
    let body = format!(
        r#"{{"campaign":"{CAMPAIGN}","destination":"https://shop.example/film","channel":"facebook","sharer":"studio","lat":34.05,"lon":-118.24}}"#
    );
    let answer = connection.post("/v1/links", body.as_bytes()).await?;
    ensure!(
        answer.status == 201,
        "POST /v1/links answered {}",
        answer.status
    );
    let link: serde_json::Value = serde_json::from_slice(&answer.body)?;
    Ok(link["code"].as_str().context("no code")?.to_owned())
}

/// The address of visitor `n` of connection `c` in phase `seed`: every one different (a
/// bijection of seed, connection and number, so no visit is a reload), spread over the whole
/// address space as a crowd's would be.
fn visitor(seed: u64, c: usize, n: u64) -> Ipv4Addr {
    let unique = ((seed as u32) << 29) | ((c as u32) << 23) | (n as u32 & 0x7f_ffff);
    // An odd multiplier and a xor-shift are both invertible modulo 2^32.
    let mixed = unique.wrapping_mul(0x9e37_79b1);
    Ipv4Addr::from(mixed ^ (mixed >> 16))
}

/// Clicks the campaign counts.
async fn clicks(address: &str) -> anyhow::Result<u64> {
    let mut connection = Connection::open(address).await?;
    let answer = connection
        .get(&format!("/v1/campaigns/{CAMPAIGN}/stats"), &[])
        .await?;
    let stats: serde_json::Value = serde_json::from_slice(&answer.body)?;
    stats["summary"]["clicks"]
        .as_u64()
        .with_context(|| format!("no clicks in {stats}"))
}

/// Clicks once they stop growing (the last ones are recorded after their redirects).
async fn clicks_settled(address: &str) -> anyhow::Result<u64> {
    let mut last = clicks(address).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = clicks(address).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

struct Load {
    rate: f64,
    answered: u64,
    /// Paced: each redirect's time from when it was due to its answer.
    times: Vec<Duration>,
}

/// As fast as the server answers, on every connection.
async fn closed_loop(address: &str, path: &str, span: Duration) -> anyhow::Result<Load> {
    run(address, path, span, None, 1).await
}

/// [`PACED_RATE`] in all, each connection's requests due at even intervals; visitors drawn from
/// `seed` (a phase of its own needs new visitors: the same ones again would be reloads).
async fn paced(address: &str, path: &str, span: Duration, seed: u64) -> anyhow::Result<Load> {
    run(
        address,
        path,
        span,
        Some(PACED_RATE / CONNECTIONS as f64),
        seed,
    )
    .await
}

/// Redirects on [`CONNECTIONS`] connections for `span`, each from a new visitor. A connection the
/// server closes (a kill) ends that connection's part; what it had answered counts.
async fn run(
    address: &str,
    path: &str,
    span: Duration,
    per_connection: Option<f64>,
    seed: u64,
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (address, path) = (address.to_owned(), path.to_owned());
            tokio::spawn(async move {
                let mut connection = Connection::open(&address).await?;

                let mut times = Vec::new();
                let mut answered = 0u64;
                while started.elapsed() < span {
                    let due = per_connection
                        .map(|rate| started + Duration::from_secs_f64(answered as f64 / rate));
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let visitor = visitor(seed, c, answered);
                    let forwarded = format!("X-Forwarded-For: {visitor}");
                    let Ok(answer) = connection.get(&path, &[USER_AGENT, &forwarded]).await else {
                        break;
                    };
                    ensure!(
                        answer.status == 302,
                        "the redirect answered {}",
                        answer.status
                    );
                    if let Some(due) = due {
                        times.push(due.elapsed());
                    }
                    answered += 1;
                }
                Ok::<_, anyhow::Error>((answered, times))
            })
        })
        .collect();
    let (mut answered, mut times) = (0, Vec::new());
    for client in clients {
        let (a, t) = client.await??;
        answered += a;
        times.extend(t);
    }
    Ok(Load {
        rate: answered as f64 / started.elapsed().as_secs_f64(),
        answered,
        times,
    })
}
