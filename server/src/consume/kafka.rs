//! Kafka: `kafka://host:port[,host:port…]/TOPIC?group=G`, a member of consumer group `G`
//! (librdkafka's, so the broker spreads the topic's partitions over every node in the group and
//! moves them when one dies). Each message's value is one event or NDJSON lines. Offsets are
//! committed by hand, only once the events of the messages before them are acknowledged, so a
//! restarted node — or the one that takes its partitions — resumes at the first message not
//! acknowledged. `start=earliest` (default) or `latest` is where a new group begins;
//! `session_timeout_ms` (default 10,000) is how soon a dead node's partitions move;
//! `dlq=TOPIC` produces dead letters to that topic.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientConfig, ClientContext, Message as _, Offset, TopicPartitionList,
    config::RDKafkaLogLevel,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
    message::DeliveryResult,
    producer::{BaseProducer, BaseRecord, Producer, ProducerContext},
    statistics::Statistics,
};

use super::{Broker, BrokerError, Message};

/// Messages taken at once.
const BATCH: usize = 256;
/// How long a fetch waits for a first message, and a broker for an answer.
const WAIT: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

pub(super) struct Options {
    brokers: String,
    topic: String,
    group: String,
    dlq: Option<String>,
    start: &'static str,
    session_timeout_ms: u32,
    client_id: String,
}

impl Options {
    pub(super) fn parse(url: &str, node: &str) -> Result<Self, String> {
        const SHAPE: &str = "name the topic: kafka://host:port/TOPIC?group=G";
        let rest = url.strip_prefix("kafka://").ok_or("not a kafka:// URL")?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (brokers, topic) = location.split_once('/').ok_or(SHAPE)?;
        if brokers.is_empty() || topic.is_empty() || topic.contains('/') {
            return Err(SHAPE.into());
        }
        let mut options = Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group: String::new(),
            dlq: None,
            start: "earliest",
            session_timeout_ms: 10_000,
            client_id: format!("viralglobe-{node}"),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "group" => options.group = value.to_owned(),
                "dlq" => options.dlq = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "start" if value == "earliest" => options.start = "earliest",
                "start" if value == "latest" => options.start = "latest",
                "start" => return Err(format!("start: `earliest` or `latest`, not `{value}`")),
                "session_timeout_ms" => {
                    options.session_timeout_ms = value.parse().map_err(|_| {
                        format!("session_timeout_ms: a number of milliseconds, not `{value}`")
                    })?;
                }
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        if options.group.is_empty() {
            return Err("name the consumer group: ?group=G".into());
        }
        Ok(options)
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("socket.connection.setup.timeout.ms", "3000")
            .set_log_level(RDKafkaLogLevel::Warning);
        config
    }
}

/// The consumer's context. librdkafka's own log lines (a broker down is retried and logged every
/// few seconds) go to debug: the source's state in `/healthz` and its one log line a change
/// already say it. Partitions taken away by a rebalance are noted, so that a batch being taken
/// drops what it holds of them: their new owner starts at the last commit and reads them again.
///
/// The lag comes from librdkafka's statistics (each second, from what its fetches learnt): asking
/// the broker for watermarks instead queues behind the fetches' long polls on the same
/// connection, half a second a partition.
struct Quiet {
    topic: String,
    revoked: Mutex<Vec<i32>>,
    assigned: AtomicUsize,
    lag: Mutex<Option<u64>>,
}

impl ClientContext for Quiet {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(fac, "librdkafka: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        // Partitions this member fetches have a lag of 0 or more; others (and the unassigned
        // partition -1) report -1. None at all: no partition yet, nothing to tell.
        let lags: Vec<u64> = statistics
            .topics
            .get(&self.topic)
            .into_iter()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0)
            .filter_map(|p| u64::try_from(p.consumer_lag).ok())
            .collect();
        *self.lag.lock().unwrap_or_else(|e| e.into_inner()) =
            (!lags.is_empty()).then(|| lags.iter().sum());
    }
}

impl Quiet {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            revoked: Mutex::default(),
            assigned: AtomicUsize::new(0),
            lag: Mutex::default(),
        }
    }
}

impl ConsumerContext for Quiet {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            revoked.extend(partitions.elements().iter().map(|p| p.partition()));
            self.assigned.store(0, Ordering::Relaxed);
            *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.assigned.store(partitions.count(), Ordering::Relaxed);
        }
    }
}

/// A dead-letter producer's context: the outcome of the one letter in flight.
#[derive(Default)]
struct Delivery(Mutex<Option<Result<(), String>>>);

impl ClientContext for Delivery {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(fac, "librdkafka: {log_message}");
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }
}

pub(super) struct KafkaTopic {
    options: Options,
    consumer: Option<BaseConsumer<Quiet>>,
    producer: Option<BaseProducer<Delivery>>,
    /// Taken and not yet committed: the next offset to commit, by partition.
    taken: HashMap<String, (i32, i64)>,
}

fn fail(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::new(error)
}

impl KafkaTopic {
    pub(super) fn new(options: Options) -> Self {
        Self {
            options,
            consumer: None,
            producer: None,
            taken: HashMap::new(),
        }
    }

    fn consumer(&self) -> Result<&BaseConsumer<Quiet>, BrokerError> {
        self.consumer
            .as_ref()
            .ok_or_else(|| BrokerError::new("not connected"))
    }

    fn producer(&mut self) -> Result<&BaseProducer<Delivery>, BrokerError> {
        if self.producer.is_none() {
            let producer = self
                .options
                .client()
                .set("acks", "all")
                .set("message.timeout.ms", "10000")
                .create_with_context(Delivery::default())
                .map_err(fail)?;
            self.producer = Some(producer);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| BrokerError::new("no producer"))
    }
}

impl Broker for KafkaTopic {
    fn connect(&mut self) -> Result<(), BrokerError> {
        // The consumer outlives broker outages: librdkafka reconnects by itself, and what it
        // delivered and this node applied is committed by the next commit. Only a fatal error
        // (or the first connection) makes a new one, which resumes at the group's commits.
        if self.consumer.is_none() {
            let o = &self.options;
            let consumer: BaseConsumer<Quiet> = o
                .client()
                .set("group.id", &o.group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", o.start)
                .set("session.timeout.ms", o.session_timeout_ms.to_string())
                .set(
                    "heartbeat.interval.ms",
                    (o.session_timeout_ms / 4).to_string(),
                )
                .set("statistics.interval.ms", "1000")
                .create_with_context(Quiet::new(&o.topic))
                .map_err(fail)?;
            consumer.subscribe(&[&o.topic]).map_err(fail)?;
            self.taken.clear();
            self.consumer = Some(consumer);
        }
        let topic = self.options.topic.clone();
        let metadata = self
            .consumer()?
            .fetch_metadata(Some(&topic), ANSWER_WITHIN)
            .map_err(fail)?;
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            _ => Err(fail(format!(
                "topic `{topic}` does not exist (create it on the broker)"
            ))),
        }
    }

    fn fetch(&mut self) -> Result<Vec<Message>, BrokerError> {
        let consumer = self
            .consumer
            .as_ref()
            .ok_or_else(|| BrokerError::new("not connected"))?;
        let mut messages = Vec::new();
        let mut fatal = None;
        let mut error = None;
        while messages.len() < BATCH {
            let wait = if messages.is_empty() {
                WAIT
            } else {
                Duration::ZERO
            };
            let polled = consumer.poll(wait);
            let revoked = std::mem::take(
                &mut *consumer
                    .context()
                    .revoked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            if !revoked.is_empty() {
                let taken = &mut self.taken;
                messages.retain(|m: &Message| match taken.get(&m.position) {
                    Some((partition, _)) if revoked.contains(partition) => {
                        taken.remove(&m.position);
                        false
                    }
                    _ => true,
                });
            }
            match polled {
                None => break,
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    let position = format!("partition {partition} offset {offset}");
                    let problem = message
                        .payload()
                        .is_none()
                        .then(|| "a message without a value".to_owned());
                    messages.push(Message {
                        position: position.clone(),
                        body: message.payload().unwrap_or_default().to_vec(),
                        problem,
                    });
                    self.taken.insert(position, (partition, offset + 1));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    fatal = Some(e);
                    break;
                }
                // What was taken before an error is still handed on: the consumer's position is
                // past it, so dropping it here would let a later commit skip it.
                Some(Err(e)) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = fatal {
            // Whatever this batch took is not committed: the new consumer gets it again.
            self.consumer = None;
            self.taken.clear();
            return Err(fail(e));
        }
        match error {
            Some(e) if messages.is_empty() => Err(fail(e)),
            _ => Ok(messages),
        }
    }

    fn acknowledge(&mut self, messages: &[Message]) -> Result<(), BrokerError> {
        let mut next: HashMap<i32, i64> = HashMap::new();
        for message in messages {
            if let Some((partition, offset)) = self.taken.remove(&message.position) {
                let at = next.entry(partition).or_insert(offset);
                *at = (*at).max(offset);
            }
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            offsets
                .add_partition_offset(&self.options.topic, partition, Offset::Offset(offset))
                .map_err(fail)?;
        }
        self.consumer()?
            .commit(&offsets, CommitMode::Sync)
            .map_err(fail)
    }

    fn dead_letter(&mut self, letter: &[u8]) -> Result<bool, BrokerError> {
        let Some(topic) = self.options.dlq.clone() else {
            return Ok(false);
        };
        let producer = self.producer()?;
        *producer
            .context()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        let sent = producer
            .send(BaseRecord::<(), [u8]>::to(&topic).payload(letter))
            .map_err(|(e, _)| e.to_string())
            .and_then(|()| producer.flush(ANSWER_WITHIN * 4).map_err(|e| e.to_string()))
            .and_then(|()| {
                let delivered = producer
                    .context()
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                delivered.unwrap_or_else(|| Err("not delivered".into()))
            });
        sent.map(|()| true).map_err(|e| {
            // The next letter goes through a new producer: one that waited out an outage can
            // stay stuck on its old connection.
            self.producer = None;
            fail(format!("dead-letter topic `{topic}`: {e}"))
        })
    }

    fn partitions(&self) -> Option<usize> {
        let consumer = self.consumer.as_ref()?;
        Some(consumer.context().assigned.load(Ordering::Relaxed))
    }

    fn lag(&mut self) -> Option<u64> {
        let consumer = self.consumer.as_ref()?;
        *consumer
            .context()
            .lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_names_its_brokers_topic_and_group() {
        let o = Options::parse(
            "kafka://127.0.0.1:9092,127.0.0.1:9093/clicks?group=globe&dlq=dead&start=latest",
            "node-a",
        )
        .expect("parses");
        assert_eq!(
            (
                o.brokers.as_str(),
                o.topic.as_str(),
                o.group.as_str(),
                o.dlq.as_deref(),
                o.start,
                o.client_id.as_str()
            ),
            (
                "127.0.0.1:9092,127.0.0.1:9093",
                "clicks",
                "globe",
                Some("dead"),
                "latest",
                "viralglobe-node-a"
            )
        );
        for bad in [
            "kafka://127.0.0.1:9092/clicks",
            "kafka://127.0.0.1:9092?group=g",
            "kafka:///clicks?group=g",
            "kafka://h:1/clicks?group=g&start=beginning",
            "kafka://h:1/clicks?group=g&colour=red",
        ] {
            assert!(Options::parse(bad, "n").is_err(), "{bad}");
        }
    }
}
