//! Follows the log: reads entries in order and applies each with the engine, at the entry's time
//! (its id's milliseconds, the same on every node). At start it catches up with the whole log
//! before the node serves anyone; then it follows on a thread of its own, reconnecting with
//! backoff when Redis goes away.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use redis::streams::{StreamId, StreamReadReply};

use super::{
    ClusterError, Health, LOG_KEY, Waiters,
    connection::{self, Redis},
    entry,
    identity::{self, Followed, parse_id},
    snapshot,
};
use crate::engine::{Engine, EngineError, Outcome};

/// Where each node stands, written before `WAIT` (see `Follower::replicated`).
const FENCE_KEY: &str = "viralglobe:fence";

/// Entries read per round trip.
const READ_COUNT: usize = 1_000;

/// Waits before reconnecting: doubling from 100 ms to 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }
    fn wait(&mut self) {
        thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// When to note a snapshot, and whether one is being copied.
pub(super) struct Snapshots {
    mirror: PathBuf,
    every: u64,
    events: u64,
    copying: Arc<AtomicBool>,
}

impl Snapshots {
    pub(super) fn new(mirror: &Path, every: u64) -> Self {
        Self {
            mirror: mirror.to_owned(),
            every,
            events: 0,
            copying: Arc::default(),
        }
    }
}

/// How often a follower that is not reconnecting checks that the log was not trimmed past it.
const TRIM_CHECK: Duration = Duration::from_secs(10);

pub(super) struct Follower {
    pub redis: Redis,
    /// Replicas an entry must be on before this node applies it (`--redis-wait`).
    pub wait_replicas: u32,
    pub engine: Arc<Engine>,
    pub waiters: Arc<Waiters>,
    pub health: Arc<Health>,
    pub node: String,
    pub held_expiry: Option<Duration>,
    /// The last entry applied.
    pub last: String,
    pub snapshots: Snapshots,
    /// The deployment's epoch: the identity of the log followed.
    pub epoch: String,
    /// When where this node stands was last noted beside the mirror, and the entry noted.
    pub noted: Instant,
    pub noted_entry: String,
}

/// How often where a node stands in the log is noted beside its mirror.
const NOTE_EVERY: Duration = Duration::from_secs(1);

impl Follower {
    fn read(
        &self,
        con: &mut redis::Connection,
        block: bool,
    ) -> redis::RedisResult<Option<StreamReadReply>> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(READ_COUNT);
        if block {
            cmd.arg("BLOCK").arg(connection::BLOCK_MS);
        }
        cmd.arg("STREAMS").arg(LOG_KEY).arg(&self.last).query(con)
    }

    /// With `--redis-wait N`, waits until N replicas have what was just read, so that a failover
    /// to one of them cannot take back what this node applies (nor can a primary that lost its
    /// replicas to a failover, and takes writes until Sentinel demotes it, make this node apply
    /// what the new primary never had). Short of replicas, this node applies nothing and says so;
    /// the batches were acknowledged as unreplicated.
    fn replicated(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        if self.wait_replicas == 0 || self.replicas_have(con)? {
            return Ok(());
        }
        tracing::warn!(replicas = self.wait_replicas, applied = %self.last, "waiting for --redis-wait's replicas to have the log's next entries before applying them");
        self.health.set_short_of_replicas(true);
        while !self.replicas_have(con)? {}
        self.health.set_short_of_replicas(false);
        tracing::info!(applied = %self.last, "the replicas have the log's next entries: applying them");
        Ok(())
    }

    /// Whether N replicas have what this connection read so far (asked for one second at most).
    /// `WAIT` covers the writes of the connection that asks: a write after the read (where this
    /// node stands, kept a minute) makes it cover everything the read returned.
    fn replicas_have(&self, con: &mut redis::Connection) -> redis::RedisResult<bool> {
        let (_, replicas): (redis::Value, i64) = redis::pipe()
            .cmd("SET")
            .arg(format!("{FENCE_KEY}:{}", self.node))
            .arg(&self.last)
            .arg("EX")
            .arg(60)
            .cmd("WAIT")
            .arg(self.wait_replicas)
            .arg(1_000)
            .query(con)?;
        Ok(replicas >= i64::from(self.wait_replicas))
    }

    /// Applies every entry the log has now.
    pub(super) fn catch_up(&mut self) -> Result<(), ClusterError> {
        let started = Instant::now();
        // The mirror was just emptied (and given the latest snapshot): the note says so.
        self.note_followed(true);
        let redis_error = |e: redis::RedisError| ClusterError::Redis {
            address: self.redis.address(),
            error: e.to_string(),
        };
        let mut con = self.redis.connect()?;
        let newest: Vec<StreamId> = redis::cmd("XREVRANGE")
            .arg(LOG_KEY)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query::<redis::streams::StreamRangeReply>(&mut con)
            .map_err(redis_error)?
            .ids;
        let Some(target) = newest.first().map(|e| parse_id(&e.id)) else {
            tracing::info!(redis = %self.redis.address(), "the log is empty");
            self.note_followed(true);
            return Ok(());
        };
        let (mut entries, mut noted) = (0u64, Instant::now());
        while parse_id(&self.last) < target {
            let reply = self
                .read(&mut con, false)
                .map_err(|e| ClusterError::Redis {
                    address: self.redis.address(),
                    error: e.to_string(),
                })?;
            // At start what the log has is applied without waiting for replicas, so that a node
            // serves even while one is down (a failover that takes an entry back is noticed, and
            // stops this node).
            let Some(reply) = reply else { break };
            for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                self.apply(entry)?;
                entries += 1;
            }
            self.note_followed(false);
            if noted.elapsed() > Duration::from_secs(5) {
                noted = Instant::now();
                tracing::info!(entries, applied = %self.last, "catching up with the log");
            }
        }
        tracing::info!(
            entries,
            applied = %self.last,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "caught up with the log"
        );
        self.note_followed(true);
        Ok(())
    }

    /// Notes, beside the mirror, which log this node follows and how far: after every read it
    /// applied, so that the note matches the mirror when the process is killed (what `reseed`
    /// relies on), and on disk at least a second after a change.
    fn note_followed(&mut self, durable: bool) {
        if durable {
            self.noted = Instant::now();
            self.noted_entry.clone_from(&self.last);
        }
        let followed = Followed {
            epoch: self.epoch.clone(),
            applied: self.last.clone(),
        };
        if let Err(e) = identity::write(&self.snapshots.mirror, &followed, durable) {
            tracing::warn!(error = %e, "cannot note where this node stands in the log");
        }
    }

    /// Whether the log lost what this node applied (emptied, replaced, rolled back), or was
    /// trimmed past it: why this node must stop following it.
    fn lost(&self, con: &mut redis::Connection) -> redis::RedisResult<Option<String>> {
        let followed = Followed {
            epoch: self.epoch.clone(),
            applied: self.last.clone(),
        };
        if let Some(reason) = identity::lost(con, &followed, &self.redis.address())? {
            metrics::gauge!("viralglobe_log_lost").set(1.0);
            return Ok(Some(format!(
                "{reason}. This node stops applying it and keeps its mirror (a full copy) and \
                 what it serves"
            )));
        }
        if self.trimmed_past_us(con)? {
            return Ok(Some(
                "the log was trimmed past the last entry this node applied; restart it to load \
                 the latest snapshot"
                    .into(),
            ));
        }
        Ok(None)
    }

    pub(super) fn spawn(self) {
        let spawned = thread::Builder::new()
            .name("log-follower".into())
            .spawn(move || self.run());
        if let Err(e) = spawned {
            // No thread: this node cannot follow, and says so.
            tracing::error!(error = %e, "cannot start following the log");
        }
    }

    fn run(mut self) {
        let mut con = self.redis.connect().ok();
        let mut backoff = Backoff::new();
        // When the log's trimming was last checked; `None`: at once.
        let mut trim_checked = Some(Instant::now());
        loop {
            let c = match con.as_mut() {
                Some(c) => c,
                None => match self.redis.connect() {
                    Ok(c) => {
                        tracing::info!(redis = %self.redis.address(), applied = %self.last, "following the log again");
                        self.health.set_follower_up(true);
                        backoff = Backoff::new();
                        // Away long enough, the entries after ours may have been trimmed.
                        trim_checked = None;
                        con.insert(c)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "Redis is still unreachable");
                        backoff.wait();
                        continue;
                    }
                },
            };
            if trim_checked.is_none_or(|t| t.elapsed() >= TRIM_CHECK) {
                trim_checked = Some(Instant::now());
                match self.lost(c) {
                    Ok(None) => {}
                    Ok(Some(reason)) => return self.stop(reason),
                    Err(e) => tracing::debug!(error = %e, "cannot check the log"),
                }
            }
            // Noted a second after the last change at most, busy or quiet.
            if self.noted_entry != self.last && self.noted.elapsed() >= NOTE_EVERY {
                self.note_followed(true);
            }
            // What was read but not applied is read again on the next connection (from a new
            // primary after a failover).
            let read = self
                .read(c, true)
                .and_then(|reply| reply.map(|r| self.replicated(c).map(|()| r)).transpose());
            match read {
                // Quiet: a snapshot that fell due while the one before was being copied is taken
                // now, not when the next entry comes (which may be never).
                Ok(None) => {
                    if let Err(e) = self.note_snapshot() {
                        return self.stop(e.reason());
                    }
                }
                Ok(Some(reply)) => {
                    // A snapshot is due by events applied, whatever the number of entries one
                    // read brings (a node that fell behind reads many at once).
                    for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                        if let Err(e) = self.apply(entry).and_then(|()| self.note_snapshot()) {
                            return self.stop(e.reason());
                        }
                    }
                    self.note_followed(false);
                }
                Err(e) => {
                    tracing::warn!(redis = %self.redis.address(), error = %e, "lost Redis: the live feed serves what it has; reconnecting");
                    con = None;
                    self.health.set_follower_up(false);
                    backoff.wait();
                }
            }
        }
    }

    fn stop(&mut self, reason: String) {
        tracing::error!(error = %reason, "this node stopped following the log: restart it");
        self.set_stopped(reason);
        // The mirror holds everything up to the last entry applied: noted for good.
        self.note_followed(true);
    }

    /// Refuses ingest from now on (before the batch that found the failure is answered, so that
    /// no request sent after that answer is taken).
    fn set_stopped(&self, reason: String) {
        *self
            .health
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    /// Whether entries after the last one applied were trimmed away (Redis 7's
    /// `max-deleted-entry-id`).
    fn trimmed_past_us(&self, con: &mut redis::Connection) -> redis::RedisResult<bool> {
        let deleted = identity::max_deleted_entry(con)?;
        Ok(deleted.is_some_and(|d| parse_id(&self.last) < parse_id(&d)))
    }

    /// Every `every` events, notes the mirror's files for a snapshot (between two entries, so
    /// they hold exactly the state up to the last one) and copies them to Redis on a thread.
    fn note_snapshot(&mut self) -> Result<(), EngineError> {
        let snapshots = &mut self.snapshots;
        if snapshots.every == 0
            || snapshots.events < snapshots.every
            || snapshots.copying.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        snapshots.events = 0;
        let pending = snapshot::Pending {
            entry: self.last.clone(),
            files: self.engine.state_files(&snapshots.mirror)?,
        };
        let (redis, node) = (self.redis.clone(), self.node.clone());
        let (mirror, copying) = (snapshots.mirror.clone(), snapshots.copying.clone());
        let spawned = thread::Builder::new()
            .name("log-snapshot".into())
            .spawn(move || {
                if let Err(e) = snapshot::write(&redis, &node, &mirror, &pending) {
                    tracing::warn!(error = %e, "cannot write a snapshot; the next one will try again");
                }
                copying.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start writing a snapshot");
            self.snapshots.copying.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Applies one entry and answers the request that appended it, if it was this node's.
    /// A recording that cannot be opened now (no descriptor left) is waited for, the rest of the
    /// entry applied when it can be: every node applies every event, in the same order.
    fn apply(&mut self, entry: StreamId) -> Result<(), EngineError> {
        let (now_ms, _) = parse_id(&entry.id);
        let events = match entry.map.get("events") {
            Some(redis::Value::BulkString(bytes)) => bytes.as_slice(),
            _ => &[],
        };
        let (mut rest, bad) = entry::decode(events);
        self.snapshots.events += rest.len() as u64;
        for (line, error) in bad {
            tracing::warn!(entry = %entry.id, line, error, "a log line that is not an event: skipped (on every node)");
        }
        let mut backoff = Backoff::new();
        if let Some(max_age) = self.held_expiry {
            while let Err(e) = self.engine.expire_held_at(now_ms, max_age) {
                if !retryable(&e) {
                    return Err(e);
                }
                backoff.wait();
            }
        }
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(rest.len());
        let answer = loop {
            match self.engine.apply_at(rest, now_ms) {
                Ok(done) => {
                    outcomes.extend(done);
                    break Ok(outcomes);
                }
                Err(EngineError::Unavailable { applied, reason }) => {
                    tracing::warn!(entry = %entry.id, reason, "a recording cannot be opened: the rest of the entry waits");
                    outcomes.extend(applied);
                    backoff.wait();
                    // Decoded again rather than kept: the usual path moves the batch, no copy.
                    rest = entry::decode(events).0;
                    rest.drain(..outcomes.len().min(rest.len()));
                }
                Err(e) => break Err(e),
            }
        };
        let fatal = answer.as_ref().err().map(ToString::to_string);
        let ours = matches!(entry.map.get("node"), Some(redis::Value::BulkString(n)) if n == self.node.as_bytes());
        if let Some(reason) = &fatal {
            self.set_stopped(reason.clone());
        }
        if ours && let Some(token) = entry.map.get("token").and_then(token_of) {
            self.waiters.applied(token, answer);
        }
        metrics::counter!("viralglobe_log_entries_applied_total").increment(1);
        *self
            .health
            .applied
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = entry.id.clone();
        self.last = entry.id;
        match fatal {
            Some(reason) => Err(EngineError::Stopped(reason)),
            None => Ok(()),
        }
    }
}

fn retryable(e: &EngineError) -> bool {
    match e {
        EngineError::Unavailable { .. } => true,
        EngineError::Recording(r) => r.nothing_written(),
        _ => false,
    }
}

fn token_of(value: &redis::Value) -> Option<u64> {
    match value {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        redis::Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}
