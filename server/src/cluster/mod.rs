//! Cluster mode (`--redis URL`): the log of accepted events is a Redis stream shared by every
//! node. A node parses and locates a batch, appends it to the log (`appender.rs`) and answers once
//! its own follower of the log (`follower.rs`) has applied it; every node follows the whole log in
//! order and applies each entry with the engine's one rule, so every node has the same share
//! trees, statistics, `seq` and epochs, and its data directory holds a mirror of the log as
//! ordinary recordings, which replays, exports and resuming subscribers read.

mod appender;
mod connection;
mod entry;
mod follower;
mod identity;
mod reseed;
mod snapshot;

pub use reseed::{Reseed, reseed};

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use serde::Serialize;

use crate::engine::{Engine, EngineError, Located, Outcome};

/// The day's visit salt of tracked links, shared by every node (`viralglobe:visit-salt:<day>`).
const VISIT_SALT_KEY: &str = "viralglobe:visit-salt";
/// How long Redis keeps a day's salt: past it, visit ids of that day cannot be recomputed.
const VISIT_SALT_TTL_SECS: u64 = 2 * 86_400;

/// The stream that holds the log.
const LOG_KEY: &str = "viralglobe:log";
/// The deployment's epoch: made by the first node to start on an empty Redis, read by the rest.
const EPOCH_KEY: &str = "viralglobe:epoch";
/// How long an ingest request waits for this node to apply what it appended.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Batches waiting for the appender; beyond, ingest is answered 503 at once.
const APPEND_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("`{url}` is not a Redis URL: {error}")]
    Url { url: String, error: String },
    #[error("cannot reach Redis at {address}: {error}")]
    Unreachable { address: String, error: String },
    #[error("Redis at {address} answered an error: {error}")]
    Redis { address: String, error: String },
    #[error("cannot clear the log's mirror in {path}: {error}")]
    Mirror { path: String, error: String },
    #[error("applying the log failed: {0}")]
    Engine(#[from] EngineError),
    #[error(
        "{reason}. This node will not rebuild its mirror ({mirror}, a full copy of what it \
         applied) from it, and does not start. To rebuild the log from the mirrors, stop every \
         node and run `viralglobe-server reseed` with this node's --redis and --data-dir on the \
         one that applied the most; to follow this log anyway, dropping what the mirror holds, \
         delete {mirror}.followed.json"
    )]
    LogLost { reason: String, mirror: String },
    #[error("cannot reseed the log: {0}")]
    Reseed(String),
}

/// The visit salt of `day` that every node uses: the first node's `proposal` is kept (for two
/// days, then Redis forgets it), and every node reads it back.
pub(crate) fn shared_visit_salt(
    url: &str,
    day: u64,
    proposal: &str,
) -> Result<String, ClusterError> {
    let redis = connection::Redis::open(url)?;
    let mut con = redis.connect()?;
    let address = redis.address();
    let key = format!("{VISIT_SALT_KEY}:{day}");
    let redis_error = |e: redis::RedisError| ClusterError::Redis {
        address: address.clone(),
        error: e.to_string(),
    };
    redis::cmd("SET")
        .arg(&key)
        .arg(proposal)
        .arg("NX")
        .arg("EX")
        .arg(VISIT_SALT_TTL_SECS)
        .exec(&mut con)
        .map_err(redis_error)?;
    redis::cmd("GET")
        .arg(&key)
        .query(&mut con)
        .map_err(redis_error)
}

/// What the cluster needs to know, as plain values.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub url: String,
    /// Replicas that must have each appended batch before it is acknowledged (Redis `WAIT`).
    pub wait_replicas: u32,
    /// Held events older than this (by the log's clock) are given up.
    pub held_expiry: Option<Duration>,
    /// Events applied between snapshots of the state (0: none, and the log is never trimmed).
    pub snapshot_every: u64,
}

/// Where a node starts: the deployment's epoch, and the log entry its mirror covers.
pub struct Start {
    pub epoch: String,
    from: String,
    redis: connection::Redis,
}

/// The answer to one appended batch, handed from the follower to whoever appended it.
type Answer = Result<Vec<Outcome>, EngineError>;

enum Waiter {
    Async(tokio::sync::oneshot::Sender<Answer>),
    Blocking(mpsc::SyncSender<Answer>),
}

impl Waiter {
    fn send(self, answer: Answer) {
        // The requester may have given up (timeout, client gone): nothing to do then.
        match self {
            Self::Async(tx) => drop(tx.send(answer)),
            Self::Blocking(tx) => drop(tx.try_send(answer)),
        }
    }
}

/// Requests waiting for their batch, by the token their entry carries. A request is answered
/// once both Redis has confirmed its batch (the append's reply, and `WAIT` with `--redis-wait`)
/// and this node has applied it, whichever comes second; at once when the append failed, or when
/// `WAIT` fell short (nodes apply the batch only once the replicas have it).
#[derive(Default)]
struct Waiters(Mutex<HashMap<u64, Pending>>);

struct Pending {
    waiter: Waiter,
    confirmed: bool,
    applied: Option<Answer>,
}

/// The answer to a batch that is in the log and was applied. A batch this node could not apply
/// is in the log all the same (every other node applies it): acknowledged as `Logged`, never
/// refused.
fn logged(applied: Answer) -> Answer {
    applied.map_err(|e| {
        EngineError::Logged(format!(
            "the batch is in the log, but this node could not apply it ({e}); the other nodes do"
        ))
    })
}

impl Waiters {
    fn insert(&self, token: u64, waiter: Waiter) {
        let pending = Pending {
            waiter,
            confirmed: false,
            applied: None,
        };
        self.lock().insert(token, pending);
    }

    /// Redis has the batch (with fewer replicas than asked when `short` says why).
    fn confirm(&self, token: u64, short: Option<String>) {
        let mut map = self.lock();
        if let Some(pending) = map.get_mut(&token) {
            // Applied already: the replicas had it by then (the follower waits for them).
            if pending.applied.is_some() {
                let pending = map.remove(&token).expect("present");
                drop(map);
                let applied = pending.applied.expect("applied");
                pending.waiter.send(logged(applied));
            } else if let Some(reason) = short {
                let pending = map.remove(&token).expect("present");
                drop(map);
                pending.waiter.send(Err(EngineError::Unreplicated(reason)));
            } else {
                pending.confirmed = true;
            }
        }
    }

    /// This node applied the batch.
    fn applied(&self, token: u64, answer: Answer) {
        let mut map = self.lock();
        if let Some(pending) = map.get_mut(&token) {
            if pending.confirmed {
                let pending = map.remove(&token).expect("present");
                drop(map);
                pending.waiter.send(logged(answer));
            } else {
                pending.applied = Some(answer);
            }
        }
    }

    /// The batch is not acknowledged (whether or not it was applied).
    fn refuse(&self, token: u64, error: EngineError) {
        let pending = self.lock().remove(&token);
        if let Some(pending) = pending {
            pending.waiter.send(Err(error));
        }
    }

    /// Stops waiting for the batch: whether Redis had confirmed it.
    fn forget(&self, token: u64) -> bool {
        self.lock().remove(&token).is_some_and(|p| p.confirmed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What `/healthz` says about the log.
#[derive(Default)]
struct Health {
    appender_up: AtomicBool,
    follower_up: AtomicBool,
    /// The last entry this node applied.
    applied: Mutex<String>,
    /// Why this node stopped following the log, if it did.
    stopped: Mutex<Option<String>>,
    /// Waiting for `--redis-wait`'s replicas to have entries before applying them.
    short_of_replicas: AtomicBool,
}

impl Health {
    fn set_appender_up(&self, up: bool) {
        self.appender_up.store(up, Ordering::Relaxed);
        self.publish();
    }
    fn set_follower_up(&self, up: bool) {
        self.follower_up.store(up, Ordering::Relaxed);
        self.publish();
    }
    fn set_short_of_replicas(&self, short: bool) {
        self.short_of_replicas.store(short, Ordering::Relaxed);
        metrics::gauge!("viralglobe_log_short_of_replicas").set(if short { 1.0 } else { 0.0 });
    }
    fn publish(&self) {
        let up =
            self.appender_up.load(Ordering::Relaxed) && self.follower_up.load(Ordering::Relaxed);
        metrics::gauge!("viralglobe_log_up").set(if up { 1.0 } else { 0.0 });
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterHealth {
    /// `ok`; `unreachable` while Redis does not answer (ingest is refused with 503; what this
    /// node has is still served); `short of replicas` while entries wait for `--redis-wait`'s
    /// replicas before this node applies them; `stopped` when this node cannot apply the log
    /// any more.
    pub redis: &'static str,
    pub node: String,
    /// The Redis in use: the primary Sentinel named last, with `redis+sentinel://`.
    pub primary: String,
    /// Times this node found Sentinel naming another primary.
    pub failovers: u64,
    /// The last log entry this node applied.
    pub applied: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

pub struct Cluster {
    node: String,
    redis: connection::Redis,
    appends: mpsc::SyncSender<appender::Append>,
    waiters: Arc<Waiters>,
    health: Arc<Health>,
    next_token: AtomicU64,
}

/// Where a node keeps its mirror of the log: beside, never over, the local mode's recordings.
pub(crate) fn mirror_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("redis-mirror")
}

/// Empties the mirror: a node rebuilds it from the log at every start, so it never holds
/// anything the log does not.
pub(crate) fn clear_mirror(dir: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClusterError::Mirror {
            path: dir.display().to_string(),
            error: e.to_string(),
        }),
    }
}

fn lost_log(reason: String, mirror: &Path) -> ClusterError {
    metrics::gauge!("viralglobe_log_lost").set(1.0);
    ClusterError::LogLost {
        reason,
        mirror: mirror.display().to_string(),
    }
}

/// Readies `mirror` for a node that starts: emptied, then filled with the latest snapshot if
/// there is one; and the deployment's epoch, made now if this is the first node on this Redis.
pub(crate) fn prepare(options: &ClusterOptions, mirror: &Path) -> Result<Start, ClusterError> {
    let redis = connection::Redis::open(&options.url)?;
    let mut con = redis.connect()?;
    let address = redis.address();
    // The log this node followed before must still be there with everything it applied: its
    // mirror is cleared and rebuilt from it next.
    if let Some(followed) = identity::read(mirror) {
        let lost =
            identity::lost(&mut con, &followed, &address).map_err(|e| ClusterError::Redis {
                address: address.clone(),
                error: e.to_string(),
            })?;
        if let Some(reason) = lost {
            let reseeded =
                identity::reseeded_over(&mut con, &followed).map_err(|e| ClusterError::Redis {
                    address: address.clone(),
                    error: e.to_string(),
                })?;
            match reseeded {
                Some(Ok(why)) => tracing::warn!("{why}"),
                Some(Err(why)) => return Err(lost_log(why, mirror)),
                None => return Err(lost_log(reason, mirror)),
            }
        }
    }
    clear_mirror(mirror)?;
    let made = crate::recording::new_epoch();
    let (_, epoch): (redis::Value, String) = redis::pipe()
        .cmd("SET")
        .arg(EPOCH_KEY)
        .arg(&made)
        .arg("NX")
        .cmd("GET")
        .arg(EPOCH_KEY)
        .query(&mut con)
        .map_err(|e| ClusterError::Redis {
            address: address.clone(),
            error: e.to_string(),
        })?;
    let from = snapshot::restore(&redis, mirror)?.unwrap_or_else(|| "0-0".into());
    Ok(Start { epoch, from, redis })
}

impl Cluster {
    /// Catches `engine` up with the whole log (before the node serves anyone), then follows it
    /// and takes appends on threads of their own.
    pub fn start(
        options: &ClusterOptions,
        start: Start,
        engine: Arc<Engine>,
        mirror: &Path,
    ) -> Result<Arc<Self>, ClusterError> {
        let redis = start.redis;
        let node = format!("{}-{}", std::process::id(), crate::recording::new_epoch());
        let waiters = Arc::new(Waiters::default());
        let health = Arc::new(Health::default());
        let mut follower = follower::Follower {
            redis: redis.clone(),
            wait_replicas: options.wait_replicas,
            engine,
            waiters: waiters.clone(),
            health: health.clone(),
            node: node.clone(),
            held_expiry: options.held_expiry,
            last: start.from,
            snapshots: follower::Snapshots::new(mirror, options.snapshot_every),
            epoch: start.epoch.clone(),
            noted: std::time::Instant::now(),
            noted_entry: String::new(),
        };
        follower.catch_up()?;
        health.set_follower_up(true);
        follower.spawn();
        let appends = appender::spawn(
            appender::Appender {
                redis: redis.clone(),
                node: node.clone(),
                wait_replicas: options.wait_replicas,
                waiters: waiters.clone(),
                health: health.clone(),
            },
            APPEND_QUEUE,
        );
        health.set_appender_up(true);
        tracing::info!(redis = %redis.address(), node, "cluster mode: following the log");
        Ok(Arc::new(Self {
            node,
            redis,
            appends,
            waiters,
            health,
            next_token: AtomicU64::new(1),
        }))
    }

    /// Appends `batch` to the log and waits until this node has applied it: the outcome of each
    /// event, as the engine decided it in log order.
    pub async fn append(&self, batch: Vec<Located>) -> Answer {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let token = self.send(batch, Waiter::Async(tx))?;
        match tokio::time::timeout(APPLY_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            _ => Err(self.not_applied(token)),
        }
    }

    /// [`Cluster::append`] for threads outside the runtime (the file follower).
    pub fn append_blocking(&self, batch: Vec<Located>) -> Answer {
        let (tx, rx) = mpsc::sync_channel(1);
        let token = self.send(batch, Waiter::Blocking(tx))?;
        rx.recv_timeout(APPLY_TIMEOUT)
            .unwrap_or_else(|_| Err(self.not_applied(token)))
    }

    fn send(&self, batch: Vec<Located>, waiter: Waiter) -> Result<u64, EngineError> {
        if let Some(reason) = self.stopped() {
            return Err(EngineError::Stopped(reason));
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.waiters.insert(token, waiter);
        let append = appender::Append {
            token,
            events: entry::encode(&batch),
        };
        if self.appends.try_send(append).is_err() {
            self.waiters.forget(token);
            return Err(EngineError::Log(format!(
                "{APPEND_QUEUE} batches are waiting for Redis at {} already",
                self.redis.address()
            )));
        }
        Ok(token)
    }

    /// The batch is in the log, or may be: it will be applied, but its outcome is not known here.
    /// One Redis confirmed is acknowledged all the same (`Logged`).
    fn not_applied(&self, token: u64) -> EngineError {
        if self.waiters.forget(token) {
            return EngineError::Logged(format!(
                "the batch is in the log at {} but this node has not applied it within {} s; \
                 every node will apply it",
                self.redis.address(),
                APPLY_TIMEOUT.as_secs()
            ));
        }
        EngineError::Log(format!(
            "the batch went to Redis at {} but this node has not applied it within {} s; \
             sending it again is safe for events with ids",
            self.redis.address(),
            APPLY_TIMEOUT.as_secs()
        ))
    }

    fn stopped(&self) -> Option<String> {
        self.health
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn health(&self) -> ClusterHealth {
        let stopped = self.stopped();
        let up = self.health.appender_up.load(Ordering::Relaxed)
            && self.health.follower_up.load(Ordering::Relaxed);
        ClusterHealth {
            redis: match (&stopped, up) {
                (Some(_), _) => "stopped",
                (None, false) => "unreachable",
                (None, true) if self.health.short_of_replicas.load(Ordering::Relaxed) => {
                    "short of replicas"
                }
                (None, true) => "ok",
            },
            node: self.node.clone(),
            primary: self.redis.address(),
            failovers: self.redis.failovers(),
            applied: self
                .health
                .applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            stopped,
        }
    }
}
