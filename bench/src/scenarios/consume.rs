//! Consuming a broker against HTTP batches, in the same sitting: events/s the server takes from a
//! Redis stream, a NATS JetStream stream and a Kafka topic (each filled first with messages of 1,000 NDJSON
//! lines, then consumed by a server started on it: start-up included), against NDJSON batches of
//! 1,000 over HTTP. The brokers run on the clients' CPUs.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::broker::{Broker, installed};
use crate::{
    cli::Cli,
    http::Connection,
    report::{Row, count},
    server::Process,
    workload::{CampaignTraffic, launch_time},
};

/// Messages filled in, each of 1,000 events.
const MESSAGES: usize = 300;
const EVENTS_PER_MESSAGE: usize = 1_000;

fn messages() -> Vec<Vec<u8>> {
    let mut traffic = CampaignTraffic::new("consumed", 700);
    (0..MESSAGES)
        .map(|_| traffic.batch(EVENTS_PER_MESSAGE, launch_time))
        .collect()
}

/// Starts the server consuming `source` and waits until it has taken every event: events/s.
async fn consumed(cli: &Cli, source: &str) -> anyhow::Result<f64> {
    let events = (MESSAGES * EVENTS_PER_MESSAGE) as u64;
    let started = Instant::now();
    let server = Process::server_with(cli, &["--consume", source])?;
    let mut connection = Connection::open(&server.address).await?;
    loop {
        let answer = connection.get("/healthz", &[]).await?;
        let health: serde_json::Value = serde_json::from_slice(&answer.body)?;
        if health["sources"][0]["consumed"].as_u64() >= Some(events) {
            return Ok(events as f64 / started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "consumed {} of {events} in 2 minutes: {health}",
                health["sources"][0]["consumed"]
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// For a Kafka consumer group, whose first member waits out the group's initial rebalance delay
/// (3 s on the mock, as on Kafka) before it is given partitions: events/s from the moment
/// `/healthz` shows partitions given to it, and the seconds to that moment.
async fn consumed_once_assigned(cli: &Cli, source: &str) -> anyhow::Result<(f64, f64)> {
    let events = (MESSAGES * EVENTS_PER_MESSAGE) as u64;
    let started = Instant::now();
    let server = Process::server_with(cli, &["--consume", source])?;
    let mut connection = Connection::open(&server.address).await?;
    let mut assigned: Option<(Instant, u64)> = None;
    loop {
        let answer = connection.get("/healthz", &[]).await?;
        let health: serde_json::Value = serde_json::from_slice(&answer.body)?;
        let consumed = health["sources"][0]["consumed"].as_u64().unwrap_or(0);
        if assigned.is_none() && health["sources"][0]["partitions"].as_u64() > Some(0) {
            assigned = Some((Instant::now(), consumed));
        }
        if let Some((at, before)) = assigned
            && consumed >= events
        {
            let rate = (events - before) as f64 / at.elapsed().as_secs_f64();
            return Ok((rate, (at - started).as_secs_f64()));
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("consumed {consumed} of {events} in 2 minutes: {health}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn consume(cli: &Cli) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let server = Process::server(cli)?;
    let (http, _) = super::ingest::post_batches(&server.address, "http", 710, 150).await?;
    drop(server);
    let batch = |rate: f64| {
        format!(
            "{}/s, start-up included ({:.0}% of HTTP batches of 1,000: {}/s)",
            count(rate),
            rate / http * 100.0,
            count(http)
        )
    };
    let messages = messages();

    match installed("redis-server") {
        None => rows.push(Row::new(
            "consume: Redis stream",
            "not measured: no redis-server here",
        )),
        Some(_) => {
            let redis = Broker::redis(cli, None)?;
            let url = redis.redis_url();
            let mut con = redis::Client::open(url.as_str())?.get_connection()?;
            let mut pipe = redis::pipe();
            for message in &messages {
                pipe.cmd("XADD")
                    .arg("events")
                    .arg("*")
                    .arg("event")
                    .arg(message)
                    .ignore();
            }
            pipe.query::<()>(&mut con)?;
            let rate = consumed(cli, &format!("{url}/events?group=bench")).await?;
            rows.push(
                Row::new(
                    format!("consume events/s from a Redis stream, messages of {EVENTS_PER_MESSAGE} lines, the server on its CPUs"),
                    batch(rate),
                )
                .target("≥ 70% of HTTP batches", rate >= 0.7 * http),
            );
        }
    }

    match installed("nats-server") {
        None => rows.push(Row::new(
            "consume: NATS JetStream",
            "not measured: no nats-server here",
        )),
        Some(nats_server) => {
            let nats = Broker::start(cli, &nats_server, |port, dir| {
                [
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-sd",
                    dir,
                ]
                .map(str::to_owned)
                .to_vec()
            })?;
            let url = format!("nats://127.0.0.1:{}", nats.port);
            let client = async_nats::connect(url.as_str()).await?;
            let context = async_nats::jetstream::new(client);
            context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: "EVENTS".into(),
                    subjects: vec!["events".into()],
                    max_message_size: 4 * 1024 * 1024,
                    ..Default::default()
                })
                .await?;
            let mut acks = Vec::new();
            for message in &messages {
                acks.push(context.publish("events", message.clone().into()).await?);
            }
            for ack in acks {
                ack.await?;
            }
            let rate = consumed(cli, &format!("{url}/EVENTS?durable=bench")).await?;
            rows.push(Row::new(
                format!("consume events/s from NATS JetStream, messages of {EVENTS_PER_MESSAGE} lines, the server on its CPUs"),
                batch(rate),
            ));
        }
    }
    let (rate, joined) = kafka(cli).await?;
    rows.push(
        Row::new(
            format!("consume events/s from Kafka (librdkafka's mock broker, 15 partitions), messages of {EVENTS_PER_MESSAGE} lines, the server on its CPUs"),
            format!(
                "{}/s once given its partitions, {joined:.1} s after start ({:.0}% of HTTP batches of 1,000: {}/s)",
                count(rate),
                rate / http * 100.0,
                count(http)
            ),
        )
        .target("≥ 70% of HTTP batches", rate >= 0.7 * http),
    );
    Ok(rows)
}

/// Kafka: librdkafka's mock cluster, held by this process (on the clients' CPUs), the only Kafka
/// broker this project can install (docs/consuming.md). The mock keeps at most 5 MB a partition,
/// so the 300 messages go to 15 partitions of 20, each partition one campaign's traffic (a
/// campaign's order holds within a partition only, as a producer keying by campaign would have
/// it); the partitions' low watermarks are checked to be 0 before the server starts.
async fn kafka(cli: &Cli) -> anyhow::Result<(f64, f64)> {
    use rdkafka::{
        ClientConfig,
        consumer::{BaseConsumer, Consumer},
        mocking::MockCluster,
        producer::{BaseProducer, BaseRecord, Producer},
    };
    const PARTITIONS: usize = 15;
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("events", PARTITIONS as i32, 1)?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("message.max.bytes", "4000000")
        .create()?;
    for partition in 0..PARTITIONS {
        let mut traffic =
            CampaignTraffic::new(&format!("consumed-{partition}"), 700 + partition as u64);
        for _ in 0..MESSAGES / PARTITIONS {
            let message = traffic.batch(EVENTS_PER_MESSAGE, launch_time);
            producer
                .send(
                    BaseRecord::<(), [u8]>::to("events")
                        .partition(partition as i32)
                        .payload(&message),
                )
                .map_err(|(e, _)| e)?;
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()?;
    let mut stored = 0;
    for partition in 0..PARTITIONS as i32 {
        let (low, high) = reader.fetch_watermarks("events", partition, Duration::from_secs(5))?;
        if low != 0 {
            bail!("the mock broker dropped the first {low} messages of partition {partition}");
        }
        stored += high;
    }
    if stored != MESSAGES as i64 {
        bail!("{stored} of {MESSAGES} messages stored");
    }
    let source = format!("kafka://{}/events?group=bench", cluster.bootstrap_servers());
    consumed_once_assigned(cli, &source).await
}
