//! Consuming click and conversion streams where they already flow (`--consume URL`): a broker's
//! messages, each one event or NDJSON lines in our input format, go through the same
//! [`Pipeline`] as `POST /v1/events`. A message is acknowledged to its broker only once its
//! events are acknowledged by the pipeline (recorded, or in the cluster's log) — so a kill at any
//! point loses nothing, and re-delivers at most what was not acknowledged (events with ids then
//! count as duplicates). A line that is not an event goes to a dead-letter place with the reason
//! and the message's position, and is acknowledged: no message is retried for ever, none blocks
//! the stream. When the pipeline refuses (no recording can take events, Redis away) the consumer
//! keeps the batch, waits, and tries it again: it never acknowledges past what was refused.
//!
//! One thread per source; each broker is a [`Broker`] (`redis_stream.rs`, `nats.rs`, `kafka.rs`).

mod dead_letter;
mod kafka;
mod nats;
mod redis_stream;

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    thread,
    time::Duration,
};

use crate::{
    ingest::{IngestReport, Pipeline},
    telemetry::sources::{Consumers, SourceStatus},
};
use dead_letter::DeadLetters;

/// Lines applied at once: a batch's rejected lines are all listed in its report.
const BATCH_LINES: usize = 1_000;
/// Longest a message may be; a longer one is dead-lettered.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumeError {
    #[error("--consume {0}: {1}")]
    Url(String, String),
}

/// One message taken from a broker, not yet acknowledged.
pub(crate) struct Message {
    /// Where it is in its stream (an entry id, a stream sequence): named in dead letters.
    position: String,
    body: Vec<u8>,
    /// Why it holds no events at all (no `event` field, say): it is dead-lettered whole.
    problem: Option<String>,
}

/// What went wrong talking to a broker: the consumer reconnects, backing off.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BrokerError(String);

impl BrokerError {
    fn new(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// A broker's side of consuming: take messages, acknowledge them, and (where the source names
/// one) send a dead letter to the broker's own dead-letter destination.
trait Broker: Send {
    /// (Re)connects; called before the first fetch and after any error.
    fn connect(&mut self) -> Result<(), BrokerError>;
    /// The next messages, waiting about a second at most when there are none.
    fn fetch(&mut self) -> Result<Vec<Message>, BrokerError>;
    /// Acknowledges messages the pipeline has acknowledged (or that were dead-lettered).
    fn acknowledge(&mut self, messages: &[Message]) -> Result<(), BrokerError>;
    /// Sends a dead letter to the broker's dead-letter destination; `Ok(false)` when the source
    /// names none (the letter then goes to the data directory).
    fn dead_letter(&mut self, letter: &[u8]) -> Result<bool, BrokerError>;
    /// Messages in the stream not yet delivered to this consumer group, where the broker says.
    fn lag(&mut self) -> Option<u64>;
    /// Partitions the broker has given this consumer, for brokers that have them.
    fn partitions(&self) -> Option<usize> {
        None
    }
}

/// A source, as `--consume` names it.
enum Source {
    RedisStream(redis_stream::Options),
    Nats(nats::Options),
    Kafka(kafka::Options),
}

impl Source {
    fn parse(url: &str, node: &str) -> Result<Self, ConsumeError> {
        let bad = |message: &str| ConsumeError::Url(shown(url), message.to_owned());
        let (scheme, _) = url.split_once("://").ok_or_else(|| {
            bad(
                "not a URL: `redis://…/STREAM?group=G`, `nats://…/STREAM?durable=D` or \
                 `kafka://…/TOPIC?group=G`",
            )
        })?;
        match scheme {
            "redis" | "rediss" => redis_stream::Options::parse(url, node)
                .map(Source::RedisStream)
                .map_err(|m| bad(&m)),
            "nats" => nats::Options::parse(url, node)
                .map(Source::Nats)
                .map_err(|m| bad(&m)),
            "kafka" => kafka::Options::parse(url, node)
                .map(Source::Kafka)
                .map_err(|m| bad(&m)),
            other => Err(bad(&format!(
                "unknown scheme `{other}`: `redis://`, `nats://` or `kafka://`"
            ))),
        }
    }

    fn broker(self) -> Box<dyn Broker> {
        match self {
            Source::RedisStream(options) => Box::new(redis_stream::RedisStream::new(options)),
            Source::Nats(options) => Box::new(nats::JetStream::new(options)),
            Source::Kafka(options) => Box::new(kafka::KafkaTopic::new(options)),
        }
    }
}

/// A URL as logs and `/healthz` show it: without a password.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Starts a thread for each source. `node` names this node among the consumers of a group (the
/// same on every restart, so its unacknowledged messages come back to it).
pub(crate) fn start(
    urls: &[String],
    node: &str,
    pipeline: Pipeline,
    data_dir: &Path,
) -> Result<Consumers, ConsumeError> {
    let sources = urls
        .iter()
        .map(|url| Source::parse(url, node).map(|s| (shown(url), s)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut statuses = Vec::new();
    for (label, source) in sources {
        let status = Arc::new(SourceStatus::new(label.clone()));
        statuses.push(status.clone());
        let letters = DeadLetters::new(data_dir.join("dead-letter"), &label);
        let consumer = Consumer {
            broker: source.broker(),
            pipeline: pipeline.clone(),
            status,
            letters,
        };
        thread::Builder::new()
            .name("consume".into())
            .spawn(move || consumer.run())
            .map_err(|e| ConsumeError::Url(label, format!("cannot start its thread: {e}")))?;
    }
    Ok(Consumers::new(statuses))
}

struct Consumer {
    broker: Box<dyn Broker>,
    pipeline: Pipeline,
    status: Arc<SourceStatus>,
    letters: DeadLetters,
}

/// Doubling waits from 200 ms to 10 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(200))
    }

    fn wait(&mut self) {
        thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
    }
}

impl Consumer {
    fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            self.status.set_state("connecting");
            if let Err(error) = self.broker.connect() {
                self.status
                    .set_state(format!("broker unreachable: {error}"));
                backoff.wait();
                continue;
            }
            self.status.set_state("consuming");
            backoff = Backoff::new();
            if let Err(error) = self.consume() {
                self.status
                    .set_state(format!("broker unreachable: {error}"));
                backoff.wait();
            }
        }
    }

    /// Takes, applies and acknowledges batches until the broker fails.
    fn consume(&mut self) -> Result<(), BrokerError> {
        let mut lag_asked = std::time::Instant::now();
        loop {
            let messages = self.broker.fetch()?;
            *self
                .status
                .partitions
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = self.broker.partitions();
            if lag_asked.elapsed() > Duration::from_secs(2) || !messages.is_empty() {
                lag_asked = std::time::Instant::now();
                let lag = self.broker.lag();
                *self.status.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
                if let Some(lag) = lag {
                    metrics::gauge!("viralglobe_consume_lag", "source" => self.status.source.clone())
                        .set(lag as f64);
                }
            }
            if messages.is_empty() {
                continue;
            }
            self.apply(&messages)?;
            self.broker.acknowledge(&messages)?;
            if let Some(last) = messages.last() {
                *self
                    .status
                    .committed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = last.position.clone();
            }
        }
    }

    /// Applies a batch's lines, BATCH_LINES at a time, until the pipeline has taken them all:
    /// a refusal is waited out, never skipped. Lines that are not events are dead-lettered.
    fn apply(&mut self, messages: &[Message]) -> Result<(), BrokerError> {
        // Each line with its message and its number there.
        let mut lines: Vec<(usize, u64, &[u8])> = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            if let Some(problem) = &message.problem {
                self.dead_letter(message, None, problem, b"")?;
                continue;
            }
            if message.body.len() > MAX_MESSAGE_BYTES {
                let reason = format!("longer than {MAX_MESSAGE_BYTES} bytes");
                self.dead_letter(message, None, &reason, b"")?;
                continue;
            }
            lines.extend(
                (1u64..)
                    .zip(message.body.split(|&b| b == b'\n'))
                    .map(|(n, line)| (n, line.strip_suffix(b"\r").unwrap_or(line)))
                    .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
                    .map(|(n, line)| (index, n, line)),
            );
        }
        for chunk in lines.chunks(BATCH_LINES) {
            let mut backoff = Backoff::new();
            let report = loop {
                let mut report = IngestReport::default();
                let numbered = (1u64..).zip(chunk.iter().map(|(_, _, line)| *line));
                match self.pipeline.ingest(numbered, &mut report) {
                    Ok(()) => break report,
                    Err(error) => {
                        self.status.set_state(format!("paused: {error}"));
                        backoff.wait();
                    }
                }
            };
            self.status.set_state("consuming");
            let label = self.status.source.clone();
            let taken = report.accepted + report.duplicates;
            self.status.consumed.fetch_add(taken, Ordering::Relaxed);
            metrics::counter!("viralglobe_consume_events_total", "source" => label.clone(), "outcome" => "accepted")
                .increment(report.accepted);
            metrics::counter!("viralglobe_consume_events_total", "source" => label.clone(), "outcome" => "duplicate")
                .increment(report.duplicates);
            metrics::counter!("viralglobe_consume_events_total", "source" => label, "outcome" => "rejected")
                .increment(report.rejected_count);
            self.status
                .rejected
                .fetch_add(report.rejected_count, Ordering::Relaxed);
            for rejected in &report.rejected {
                let Some((index, number, line)) = usize::try_from(rejected.line - 1)
                    .ok()
                    .and_then(|i| chunk.get(i))
                else {
                    continue;
                };
                let reason = match rejected.field {
                    Some(field) => format!("field `{field}`: {}", rejected.error),
                    None => rejected.error.clone(),
                };
                self.dead_letter(&messages[*index], Some(*number), &reason, line)?;
            }
        }
        Ok(())
    }

    fn dead_letter(
        &mut self,
        message: &Message,
        line: Option<u64>,
        reason: &str,
        text: &[u8],
    ) -> Result<(), BrokerError> {
        let letter =
            dead_letter::letter(&self.status.source, &message.position, line, reason, text);
        if !self.broker.dead_letter(&letter)? {
            self.letters.write(&letter);
        }
        self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("viralglobe_consume_dead_letters_total", "source" => self.status.source.clone())
            .increment(1);
        Ok(())
    }
}
