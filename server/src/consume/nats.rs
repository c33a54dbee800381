//! NATS JetStream: `nats://host:port/STREAM?durable=NAME`, a durable pull consumer of the stream
//! (created if it does not exist; explicit acks, re-delivery after `ack_wait_ms`, default 30,000).
//! With `subject=SUBJECT` a missing stream is created, capturing that subject.
//! Each message's payload is one event or NDJSON lines; a message is acked once its events are
//! acknowledged. `dlq=SUBJECT` publishes dead letters to that subject (a stream must capture it).
//! Every node with the same `durable` shares the consumer, so the server spreads the messages.
//! The client is asynchronous: this thread runs it on a runtime of its own.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;

use super::{Broker, BrokerError, Message};

/// Messages taken at once.
const BATCH: usize = 256;

pub(super) struct Options {
    address: String,
    stream: String,
    durable: String,
    dlq: Option<String>,
    subject: Option<String>,
    ack_wait: Duration,
}

impl Options {
    pub(super) fn parse(url: &str, _node: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("nats://").ok_or("not a nats:// URL")?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (address, stream) = location
            .split_once('/')
            .ok_or("name the stream: nats://host:port/STREAM?durable=NAME")?;
        if stream.is_empty() || stream.contains('/') {
            return Err("name the stream: nats://host:port/STREAM?durable=NAME".into());
        }
        let mut options = Self {
            address: format!("nats://{address}"),
            stream: stream.to_owned(),
            durable: String::new(),
            dlq: None,
            subject: None,
            ack_wait: Duration::from_secs(30),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "durable" => options.durable = value.to_owned(),
                "dlq" => options.dlq = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "subject" => options.subject = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "ack_wait_ms" => {
                    options.ack_wait = Duration::from_millis(value.parse().map_err(|_| {
                        format!("ack_wait_ms: a number of milliseconds, not `{value}`")
                    })?);
                }
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        if options.durable.is_empty() {
            return Err("name the durable consumer: ?durable=NAME".into());
        }
        Ok(options)
    }
}

pub(super) struct JetStream {
    options: Options,
    runtime: tokio::runtime::Runtime,
    connected: Option<(
        jetstream::Context,
        jetstream::consumer::Consumer<pull::Config>,
    )>,
    /// Taken and not yet acknowledged, by stream sequence.
    taken: HashMap<String, jetstream::Message>,
}

fn fail(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::new(error)
}

impl JetStream {
    pub(super) fn new(options: Options) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the NATS client");
        Self {
            options,
            runtime,
            connected: None,
            taken: HashMap::new(),
        }
    }

    fn connected(
        &self,
    ) -> Result<
        &(
            jetstream::Context,
            jetstream::consumer::Consumer<pull::Config>,
        ),
        BrokerError,
    > {
        self.connected
            .as_ref()
            .ok_or_else(|| BrokerError::new("not connected"))
    }
}

impl Broker for JetStream {
    fn connect(&mut self) -> Result<(), BrokerError> {
        self.connected = None;
        self.taken.clear();
        let o = &self.options;
        let connected = self.runtime.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(3))
                .connect(o.address.as_str())
                .await
                .map_err(fail)?;
            let context = jetstream::new(client);
            let stream = match (context.get_stream(&o.stream).await, &o.subject) {
                (Ok(stream), _) => stream,
                (Err(_), Some(subject)) => context
                    .get_or_create_stream(jetstream::stream::Config {
                        name: o.stream.clone(),
                        subjects: vec![subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .map_err(fail)?,
                (Err(e), None) => {
                    return Err(fail(format!(
                        "stream `{}`: {e} (create it, or name its subject: &subject=…)",
                        o.stream
                    )));
                }
            };
            let consumer = stream
                .get_or_create_consumer(
                    &o.durable,
                    pull::Config {
                        durable_name: Some(o.durable.clone()),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: o.ack_wait,
                        ..Default::default()
                    },
                )
                .await
                .map_err(fail)?;
            Ok::<_, BrokerError>((context, consumer))
        })?;
        self.connected = Some(connected);
        Ok(())
    }

    fn fetch(&mut self) -> Result<Vec<Message>, BrokerError> {
        let (_, consumer) = self.connected()?;
        // What is there at once; when nothing is, a wait of up to a second for the next one (a
        // pull request for a whole batch would wait out its expiry for a batch not yet full).
        let taken = self.runtime.block_on(async {
            let mut taken = Vec::new();
            let mut batch = consumer
                .fetch()
                .max_messages(BATCH)
                .messages()
                .await
                .map_err(fail)?;
            while let Some(message) = batch.next().await {
                taken.push(message.map_err(fail)?);
            }
            if taken.is_empty() {
                let mut next = consumer
                    .batch()
                    .max_messages(1)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await
                    .map_err(fail)?;
                while let Some(message) = next.next().await {
                    taken.push(message.map_err(fail)?);
                }
            }
            Ok::<_, BrokerError>(taken)
        })?;
        let mut messages = Vec::with_capacity(taken.len());
        for message in taken {
            let position = message
                .info()
                .map_or_else(|_| String::new(), |i| i.stream_sequence.to_string());
            messages.push(Message {
                position: position.clone(),
                body: message.payload.to_vec(),
                problem: None,
            });
            self.taken.insert(position, message);
        }
        Ok(messages)
    }

    fn acknowledge(&mut self, messages: &[Message]) -> Result<(), BrokerError> {
        let acks: Vec<_> = messages
            .iter()
            .filter_map(|m| self.taken.remove(&m.position))
            .collect();
        let (context, _) = self.connected()?;
        let client = context.client();
        self.runtime.block_on(async {
            for message in &acks {
                message.ack().await.map_err(fail)?;
            }
            client.flush().await.map_err(fail)
        })
    }

    fn dead_letter(&mut self, letter: &[u8]) -> Result<bool, BrokerError> {
        let Some(subject) = self.options.dlq.clone() else {
            return Ok(false);
        };
        let (context, _) = self.connected()?;
        let payload = letter.to_vec().into();
        self.runtime.block_on(async {
            context
                .publish(subject, payload)
                .await
                .map_err(fail)?
                .await
                .map_err(fail)
        })?;
        Ok(true)
    }

    fn lag(&mut self) -> Option<u64> {
        let (_, consumer) = self.connected().ok()?;
        self.runtime
            .block_on(consumer.get_info())
            .ok()
            .map(|info| info.num_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_names_its_stream_and_durable() {
        let o = Options::parse(
            "nats://127.0.0.1:4222/EVENTS?durable=globe&dlq=dead.events",
            "n",
        )
        .expect("parses");
        assert_eq!(
            (
                o.address.as_str(),
                o.stream.as_str(),
                o.durable.as_str(),
                o.dlq.as_deref()
            ),
            (
                "nats://127.0.0.1:4222",
                "EVENTS",
                "globe",
                Some("dead.events")
            )
        );
        for bad in [
            "nats://127.0.0.1:4222/EVENTS",
            "nats://127.0.0.1:4222?durable=g",
            "nats://h/S?durable=g&x=1",
        ] {
            assert!(Options::parse(bad, "n").is_err(), "{bad}");
        }
    }
}
