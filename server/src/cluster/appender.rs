//! Appends batches to the log on a thread of its own. Batches that queue up while one round trip
//! is out go together in the next (one pipeline of `XADD`s: group commit), so many small requests
//! cost one round trip. A batch Redis did not take is answered at once (503, nothing
//! acknowledged); one it took is answered by the follower when this node has applied it (202
//! when fewer replicas than `--redis-wait` asks confirmed it).

use std::{
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};

use super::{Health, LOG_KEY, Waiters, connection::Redis};
use crate::engine::EngineError;

/// Batches sent in one round trip at most.
const MAX_GROUP: usize = 64;
/// A connection unused this long is checked with a `PING` before a batch goes on it.
const IDLE_CHECK: Duration = Duration::from_secs(1);

pub(super) struct Append {
    pub token: u64,
    pub events: Vec<u8>,
}

pub(super) struct Appender {
    pub redis: Redis,
    pub node: String,
    pub wait_replicas: u32,
    pub waiters: Arc<Waiters>,
    pub health: Arc<Health>,
}

pub(super) fn spawn(appender: Appender, queue: usize) -> mpsc::SyncSender<Append> {
    let (tx, rx) = mpsc::sync_channel(queue);
    let spawned = thread::Builder::new()
        .name("log-appender".into())
        .spawn(move || appender.run(&rx));
    if let Err(e) = spawned {
        // No thread: every append is refused (the queue's receiver is gone), with a 503.
        tracing::error!(error = %e, "cannot start appending to the log");
    }
    tx
}

impl Appender {
    fn run(self, rx: &mpsc::Receiver<Append>) {
        let mut con: Option<redis::Connection> = None;
        // While Redis is away, appends are refused at once until the next try.
        let mut retry_at = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut used = Instant::now();
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP
                && let Ok(next) = rx.try_recv()
            {
                group.push(next);
            }
            // An idle connection may have died with its primary (a failover, a restart): a
            // `PING` finds out before a batch is sent on it, so the batch goes on a new one
            // rather than being refused. (Once a batch is sent, whether Redis took it is
            // unknown when the answer is lost: it is refused, never sent twice.)
            if used.elapsed() >= IDLE_CHECK
                && let Some(c) = con.as_mut()
                && redis::cmd("PING").exec(c).is_err()
            {
                con = None;
                retry_at = Instant::now();
            }
            used = Instant::now();
            let c = match con.as_mut() {
                Some(c) => c,
                None if Instant::now() < retry_at => {
                    self.refuse(group, "Redis is unreachable; retrying");
                    continue;
                }
                None => match self.redis.connect() {
                    Ok(c) => {
                        backoff = Duration::from_millis(100);
                        self.health.set_appender_up(true);
                        con.insert(c)
                    }
                    Err(e) => {
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        self.health.set_appender_up(false);
                        self.refuse(group, &e.to_string());
                        continue;
                    }
                },
            };
            let started = Instant::now();
            let mut pipe = redis::pipe();
            for append in &group {
                pipe.cmd("XADD")
                    .arg(LOG_KEY)
                    .arg("*")
                    .arg("node")
                    .arg(&self.node)
                    .arg("token")
                    .arg(append.token)
                    .arg("events")
                    .arg(&append.events);
            }
            if self.wait_replicas > 0 {
                pipe.cmd("WAIT").arg(self.wait_replicas).arg(1_000);
            }
            match pipe.query::<Vec<redis::Value>>(c) {
                Ok(replies) => {
                    metrics::histogram!("viralglobe_log_append_seconds").record(started.elapsed());
                    // The batch is in the log whatever `WAIT` says: short of replicas, it is
                    // acknowledged as such, never refused (every node applies it).
                    let replicas = match replies.last() {
                        Some(redis::Value::Int(n)) => *n,
                        _ => 0,
                    };
                    let short = (self.wait_replicas > 0
                        && replicas < i64::from(self.wait_replicas))
                    .then(|| {
                        metrics::counter!("viralglobe_log_unreplicated_batches_total")
                            .increment(group.len() as u64);
                        format!(
                            "only {replicas} of {} replicas (--redis-wait) had it within 1 s",
                            self.wait_replicas
                        )
                    });
                    for append in &group {
                        self.waiters.confirm(append.token, short.clone());
                    }
                }
                Err(e) => {
                    tracing::warn!(redis = %self.redis.address(), error = %e, "cannot append to the log: ingest answers 503 until Redis is back");
                    con = None;
                    retry_at = Instant::now() + backoff;
                    self.health.set_appender_up(false);
                    self.refuse(group, &e.to_string());
                }
            }
        }
    }

    /// Answers the group's requests with a 503 (if the follower has not answered them already).
    fn refuse(&self, group: Vec<Append>, reason: &str) {
        for append in group {
            let error = EngineError::Log(format!("{reason} (Redis at {})", self.redis.address()));
            self.waiters.refuse(append.token, error);
        }
    }
}
