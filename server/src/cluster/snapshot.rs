//! Snapshots keep a starting node's catch-up short and let the log be trimmed. A snapshot is a
//! node's mirror (its recordings, epochs and journal: everything the state is rebuilt from) as
//! of one log entry, zstd-compressed into a Redis hash `viralglobe:snapshot:<entry>`;
//! `viralglobe:snapshot` names the latest. A starting node loads it, rebuilds from it like a
//! restart, and applies the log from that entry on.
//!
//! The mirror's files only grow while a node runs, so the follower only notes their lengths
//! between two entries and a thread copies those first bytes afterwards, without holding
//! anyone up. Once a new snapshot is in place, the previous one is deleted and the log trimmed
//! up to the previous one's entry: a node that is up to one snapshot behind still finds every
//! entry it needs. Recordings hold every campaign's whole history, so trimming the log loses no
//! replay, export or timeline.

use std::{
    io::Read,
    path::{Component, Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use super::{ClusterError, LOG_KEY, connection::Redis};

/// Names the latest snapshot's entry.
pub(super) const LATEST_KEY: &str = "viralglobe:snapshot";
/// Held by the node writing a snapshot, so that only one does at a time.
pub(super) const LOCK_KEY: &str = "viralglobe:snapshot:lock";
/// The field of a snapshot's hash that lists its files.
pub(super) const META_FIELD: &str = "_meta";

pub(super) fn key(entry: &str) -> String {
    format!("viralglobe:snapshot:{entry}")
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    /// The last log entry the snapshot's state includes.
    entry: String,
    /// Relative path and length of each file.
    files: Vec<(String, u64)>,
}

/// A snapshot's files noted by the follower, to be copied to Redis.
pub(super) struct Pending {
    pub entry: String,
    pub files: Vec<(String, u64)>,
}

/// A relative path inside the mirror, or nothing (a snapshot is only ever written by a node,
/// but a path that would leave the directory is refused all the same).
fn inside(dir: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(path))
}

fn redis_error(address: &str) -> impl Fn(redis::RedisError) -> ClusterError + '_ {
    move |e| ClusterError::Redis {
        address: address.to_owned(),
        error: e.to_string(),
    }
}

/// Copies the latest snapshot into `dir` (empty); returns the entry it covers, or `None` when
/// there is none yet. A snapshot replaced while it is read is read again from the new one.
pub(super) fn restore(redis: &Redis, dir: &Path) -> Result<Option<String>, ClusterError> {
    let mut con = redis.connect()?;
    let address = &redis.address();
    for _ in 0..5 {
        let started = Instant::now();
        let latest: Option<String> = redis::cmd("GET")
            .arg(LATEST_KEY)
            .query(&mut con)
            .map_err(redis_error(address))?;
        let Some(entry) = latest else {
            return Ok(None);
        };
        let key = key(&entry);
        let meta: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&key)
            .arg(META_FIELD)
            .query(&mut con)
            .map_err(redis_error(address))?;
        let Some(meta) = meta else { continue };
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| ClusterError::Redis {
            address: address.to_owned(),
            error: format!("snapshot {entry} is unreadable: {e}"),
        })?;
        let mut complete = true;
        let mut bytes_total = 0;
        for (relative, len) in &meta.files {
            let compressed: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(&key)
                .arg(relative)
                .query(&mut con)
                .map_err(redis_error(address))?;
            let Some(compressed) = compressed else {
                complete = false;
                break;
            };
            let bad = |what: String| ClusterError::Redis {
                address: address.to_owned(),
                error: format!("snapshot {entry}, {relative}: {what}"),
            };
            let path = inside(dir, relative).ok_or_else(|| bad("not a path inside".into()))?;
            let data = zstd::decode_all(compressed.as_slice()).map_err(|e| bad(e.to_string()))?;
            if data.len() as u64 != *len {
                return Err(bad(format!("{} bytes, {len} expected", data.len())));
            }
            let mirror = |e: std::io::Error| ClusterError::Mirror {
                path: path.display().to_string(),
                error: e.to_string(),
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(mirror)?;
            }
            std::fs::write(&path, &data).map_err(mirror)?;
            bytes_total += data.len();
        }
        if complete {
            tracing::info!(
                entry,
                files = meta.files.len(),
                bytes = bytes_total,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "loaded the log's latest snapshot"
            );
            return Ok(Some(entry));
        }
        // Replaced while read: start over from the new one.
        super::clear_mirror(dir)?;
    }
    Err(ClusterError::Redis {
        address: address.to_owned(),
        error: "snapshots kept being replaced while this node read them".into(),
    })
}

/// Copies the noted files to Redis as the latest snapshot, deletes the one before and trims the
/// log up to it. Only one node at a time does (the others find the lock taken and skip).
pub(super) fn write(
    redis: &Redis,
    node: &str,
    dir: &Path,
    pending: &Pending,
) -> Result<(), ClusterError> {
    let started = Instant::now();
    let mut con = redis.connect()?;
    let address = &redis.address();
    let locked: Option<String> = redis::cmd("SET")
        .arg(LOCK_KEY)
        .arg(node)
        .arg("NX")
        .arg("EX")
        .arg(600)
        .query(&mut con)
        .map_err(redis_error(address))?;
    if locked.is_none() {
        tracing::debug!("another node is writing a snapshot");
        return Ok(());
    }
    let key = key(&pending.entry);
    let mut compressed_total = 0;
    let written = (|| -> Result<(), ClusterError> {
        for (relative, len) in &pending.files {
            let path = dir.join(relative);
            let mirror = |e: std::io::Error| ClusterError::Mirror {
                path: path.display().to_string(),
                error: e.to_string(),
            };
            let file = std::fs::File::open(&path).map_err(mirror)?;
            compressed_total += put_file(&mut con, address, &key, relative, file.take(*len))
                .map_err(|e| match e {
                    PutError::Read(e) => mirror(e),
                    PutError::Redis(e) => e,
                })?;
        }
        let previous: Option<String> = redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg(META_FIELD)
            .arg(meta(&pending.entry, &pending.files))
            .ignore()
            .cmd("SET")
            .arg(LATEST_KEY)
            .arg(&pending.entry)
            .arg("GET")
            .query::<(Option<String>,)>(&mut con)
            .map_err(redis_error(address))?
            .0;
        if let Some(previous) = previous.filter(|p| *p != pending.entry) {
            redis::pipe()
                .cmd("DEL")
                .arg(self::key(&previous))
                .ignore()
                .cmd("XTRIM")
                .arg(LOG_KEY)
                .arg("MINID")
                .arg(&previous)
                .ignore()
                .query::<()>(&mut con)
                .map_err(redis_error(address))?;
        }
        Ok(())
    })();
    let _ = redis::cmd("DEL").arg(LOCK_KEY).query::<()>(&mut con);
    if written.is_err() {
        // A half-written snapshot is never named latest; drop what it has.
        let _ = redis::cmd("DEL").arg(&key).query::<()>(&mut con);
    }
    written?;
    metrics::counter!("viralglobe_log_snapshots_total").increment(1);
    tracing::info!(
        entry = pending.entry,
        files = pending.files.len(),
        bytes = pending.files.iter().map(|(_, l)| l).sum::<u64>(),
        compressed = compressed_total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "wrote a snapshot of the log's state; the log is trimmed to the one before"
    );
    Ok(())
}

pub(super) enum PutError {
    Read(std::io::Error),
    Redis(ClusterError),
}

/// Copies one file of a snapshot (what `data` reads) into its hash `key`, compressed; returns
/// its compressed size.
pub(super) fn put_file(
    con: &mut redis::Connection,
    address: &str,
    key: &str,
    relative: &str,
    data: impl Read,
) -> Result<usize, PutError> {
    let compressed = zstd::encode_all(data, 3).map_err(PutError::Read)?;
    redis::cmd("HSET")
        .arg(key)
        .arg(relative)
        .arg(&compressed)
        .query::<()>(con)
        .map_err(|e| PutError::Redis(redis_error(address)(e)))?;
    Ok(compressed.len())
}

/// The metadata field of a snapshot of `files` as of `entry`; the snapshot is complete once its
/// hash has it.
pub(super) fn meta(entry: &str, files: &[(String, u64)]) -> Vec<u8> {
    let meta = Meta {
        entry: entry.to_owned(),
        files: files.to_vec(),
    };
    serde_json::to_vec(&meta).expect("snapshot metadata serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_path_stays_inside_the_mirror() {
        let dir = Path::new("/data/redis-mirror");
        assert_eq!(
            inside(dir, "campaigns/c.ndjson"),
            Some(dir.join("campaigns/c.ndjson"))
        );
        assert_eq!(inside(dir, "../etc/passwd"), None);
        assert_eq!(inside(dir, "/etc/passwd"), None);
        assert_eq!(inside(dir, "campaigns/./c"), Some(dir.join("campaigns/c")));
    }
}
