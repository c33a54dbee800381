//! Redis Streams: `redis://[:password@]host:port[/db]/STREAM?group=G` (or `rediss://`), read with
//! `XREADGROUP` as consumer `consumer=` (default: this node's name) of group `G`, created at the
//! stream's start (`start=$` for only what is added after) if it does not exist. Each entry's field
//! `event` holds one event or NDJSON lines. An entry is `XACK`ed once its events are acknowledged;
//! on (re)connecting the consumer first takes its own entries still pending, and entries another
//! consumer left pending longer than `claim_after_ms` (default 60,000: a node that died) are
//! claimed with `XAUTOCLAIM`. `dlq=STREAM` sends dead letters there (field `letter`).

use std::time::{Duration, Instant};

use redis::{
    Commands, Value,
    streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply},
};

use super::{Broker, BrokerError, Message};

/// Entries taken at once.
const COUNT: usize = 256;
/// How long one read waits for new entries.
const BLOCK_MS: usize = 1_000;
/// Dead letters kept in a dead-letter stream at most (about: `MAXLEN ~`).
const DEAD_LETTERS_KEPT: usize = 100_000;

pub(super) struct Options {
    /// The connection URL: scheme, credentials, host and database.
    url: String,
    stream: String,
    group: String,
    consumer: String,
    dlq: Option<String>,
    claim_after: Duration,
    start: String,
}

impl Options {
    pub(super) fn parse(url: &str, node: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = location
            .split_once('/')
            .ok_or("name the stream: redis://host:port/STREAM?group=G")?;
        let (db, stream) = match path.split_once('/') {
            Some((db, stream)) if db.parse::<u32>().is_ok() => (db, stream),
            _ => ("0", path),
        };
        if stream.is_empty() {
            return Err("name the stream: redis://host:port/STREAM?group=G".into());
        }
        let mut options = Self {
            url: format!("{scheme}://{authority}/{db}"),
            stream: stream.to_owned(),
            group: String::new(),
            consumer: node.to_owned(),
            dlq: None,
            claim_after: Duration::from_secs(60),
            start: "0".into(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "group" => options.group = value.to_owned(),
                "consumer" => options.consumer = value.to_owned(),
                "dlq" => options.dlq = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "claim_after_ms" => {
                    options.claim_after = Duration::from_millis(value.parse().map_err(|_| {
                        format!("claim_after_ms: a number of milliseconds, not `{value}`")
                    })?);
                }
                "start" if value == "0" || value == "$" => options.start = value.to_owned(),
                "start" => return Err(format!("start: `0` or `$`, not `{value}`")),
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        if options.group.is_empty() {
            return Err("name the consumer group: ?group=G".into());
        }
        Ok(options)
    }
}

pub(super) struct RedisStream {
    options: Options,
    con: Option<redis::Connection>,
    /// Whether this consumer's own pending entries (from before a restart) were taken.
    own_pending_taken: bool,
    last_claim: Instant,
}

impl RedisStream {
    pub(super) fn new(options: Options) -> Self {
        Self {
            options,
            con: None,
            own_pending_taken: false,
            last_claim: Instant::now(),
        }
    }

    fn con(&mut self) -> Result<&mut redis::Connection, BrokerError> {
        self.con
            .as_mut()
            .ok_or_else(|| BrokerError::new("not connected"))
    }

    fn read(&mut self, from: &str, block: bool) -> Result<Vec<StreamId>, BrokerError> {
        let o = &self.options;
        let mut read = StreamReadOptions::default()
            .group(&o.group, &o.consumer)
            .count(COUNT);
        if block {
            read = read.block(BLOCK_MS);
        }
        let stream = o.stream.clone();
        let reply: Option<StreamReadReply> = self
            .con()?
            .xread_options(&[&stream], &[from], &read)
            .map_err(fail)?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }
}

fn fail(error: redis::RedisError) -> BrokerError {
    BrokerError::new(error)
}

fn message(entry: StreamId) -> Message {
    let body = match entry.map.get("event") {
        Some(Value::BulkString(bytes)) => Ok(bytes.clone()),
        Some(Value::SimpleString(text)) => Ok(text.clone().into_bytes()),
        Some(_) => Err("field `event` is not text".to_owned()),
        None => {
            Err("no field `event`: put the event (or NDJSON lines) in field `event`".to_owned())
        }
    };
    match body {
        Ok(body) => Message {
            position: entry.id,
            body,
            problem: None,
        },
        Err(problem) => Message {
            position: entry.id,
            body: Vec::new(),
            problem: Some(problem),
        },
    }
}

impl Broker for RedisStream {
    fn connect(&mut self) -> Result<(), BrokerError> {
        self.con = None;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(self.options.url.as_str()).map_err(fail)?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(3))
            .map_err(fail)?;
        let deadline = Some(Duration::from_millis(BLOCK_MS as u64) + Duration::from_secs(10));
        con.set_read_timeout(deadline).map_err(fail)?;
        con.set_write_timeout(deadline).map_err(fail)?;
        self.con = Some(con);
        let o = &self.options;
        let (stream, group, start) = (o.stream.clone(), o.group.clone(), o.start.clone());
        let created: Result<(), _> = self.con()?.xgroup_create_mkstream(&stream, &group, &start);
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            other => other.map_err(fail)?,
        }
        self.own_pending_taken = false;
        Ok(())
    }

    fn fetch(&mut self) -> Result<Vec<Message>, BrokerError> {
        if !self.own_pending_taken {
            let pending = self.read("0", false)?;
            if !pending.is_empty() {
                return Ok(pending.into_iter().map(message).collect());
            }
            self.own_pending_taken = true;
        }
        if self.last_claim.elapsed() >= self.options.claim_after / 2 {
            self.last_claim = Instant::now();
            let o = &self.options;
            let (stream, group, consumer) = (o.stream.clone(), o.group.clone(), o.consumer.clone());
            let idle = o.claim_after.as_millis() as u64;
            let claimed: redis::streams::StreamAutoClaimReply = self
                .con()?
                .xautoclaim_options(
                    &stream,
                    &group,
                    &consumer,
                    idle,
                    "0-0",
                    StreamAutoClaimOptions::default().count(COUNT),
                )
                .map_err(fail)?;
            if !claimed.claimed.is_empty() {
                tracing::info!(
                    stream,
                    entries = claimed.claimed.len(),
                    "claimed entries another consumer left pending"
                );
                // Claimed entries stay this consumer's until acknowledged: read them as its own.
                self.own_pending_taken = false;
                return Ok(claimed.claimed.into_iter().map(message).collect());
            }
        }
        Ok(self.read(">", true)?.into_iter().map(message).collect())
    }

    fn acknowledge(&mut self, messages: &[Message]) -> Result<(), BrokerError> {
        let ids: Vec<&str> = messages.iter().map(|m| m.position.as_str()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let (stream, group) = (self.options.stream.clone(), self.options.group.clone());
        let _: u64 = self.con()?.xack(&stream, &group, &ids).map_err(fail)?;
        Ok(())
    }

    fn dead_letter(&mut self, letter: &[u8]) -> Result<bool, BrokerError> {
        let Some(dlq) = self.options.dlq.clone() else {
            return Ok(false);
        };
        let _: String = self
            .con()?
            .xadd_maxlen(
                &dlq,
                redis::streams::StreamMaxlen::Approx(DEAD_LETTERS_KEPT),
                "*",
                &[("letter", letter)],
            )
            .map_err(fail)?;
        Ok(true)
    }

    fn lag(&mut self) -> Option<u64> {
        let stream = self.options.stream.clone();
        let groups: redis::streams::StreamInfoGroupsReply =
            self.con().ok()?.xinfo_groups(&stream).ok()?;
        groups
            .groups
            .iter()
            .find(|g| g.name == self.options.group)?
            .lag
            .map(|lag| lag as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_names_its_stream_group_and_database() {
        let o = Options::parse(
            "redis://:pw@127.0.0.1:6390/2/clicks?group=globe&dlq=bad",
            "n1",
        )
        .expect("parses");
        assert_eq!(
            (
                o.url.as_str(),
                o.stream.as_str(),
                o.group.as_str(),
                o.consumer.as_str()
            ),
            ("redis://:pw@127.0.0.1:6390/2", "clicks", "globe", "n1")
        );
        assert_eq!(o.dlq.as_deref(), Some("bad"));
        let o = Options::parse(
            "redis://127.0.0.1:6390/clicks?group=g&consumer=c&start=$",
            "n",
        )
        .expect("parses");
        assert_eq!(
            (o.url.as_str(), o.consumer.as_str(), o.start.as_str()),
            ("redis://127.0.0.1:6390/0", "c", "$")
        );
        for bad in [
            "redis://127.0.0.1:6390/clicks",
            "redis://127.0.0.1:6390?group=g",
            "redis://127.0.0.1:6390/clicks?group=g&colour=red",
        ] {
            assert!(Options::parse(bad, "n").is_err(), "{bad}");
        }
    }
}
