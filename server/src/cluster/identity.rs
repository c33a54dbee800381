//! Which log this node follows and how far, kept beside its mirror (`redis-mirror.followed.json`),
//! so that a log that lost history — emptied (`FLUSHALL`), replaced by another deployment's, or
//! rolled back (an older copy restored, a failover to a replica that missed the tail) — is noticed
//! rather than followed: the node stops, and its mirror, a full copy, is never rebuilt from it.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{EPOCH_KEY, LOG_KEY};

/// Set by `reseed`: which log the current one was rebuilt from (JSON, [`Reseeded`]).
pub(super) const RESEEDED_KEY: &str = "viralglobe:reseeded";

/// A log rebuilt from a node's mirror: its new epoch, and the epoch and last entry of the mirror
/// it was rebuilt from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Reseeded {
    pub epoch: String,
    pub from_epoch: String,
    pub from_entry: String,
}

/// The log a node followed: the deployment's epoch (made once, with the log) and the last entry
/// the node applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Followed {
    pub epoch: String,
    pub applied: String,
}

/// A stream entry's id, `ms-n`, as (ms, n) for ordering; an id Redis made always parses.
pub(super) fn parse_id(id: &str) -> (u64, u64) {
    let (ms, n) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), n.parse().unwrap_or(0))
}

fn path(mirror: &Path) -> PathBuf {
    mirror.with_extension("followed.json")
}

/// What this node noted last, if it ever followed a log.
pub(super) fn read(mirror: &Path) -> Option<Followed> {
    let text = std::fs::read(path(mirror)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Notes `followed` (written whole, then renamed over the last note); `durable`: on disk before
/// this returns, else as soon as the system writes it (a killed process loses nothing of it).
pub(super) fn write(mirror: &Path, followed: &Followed, durable: bool) -> std::io::Result<()> {
    let path = path(mirror);
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(&serde_json::to_vec(followed).expect("serializes"))?;
    if durable {
        file.sync_all()?;
    }
    std::fs::rename(partial, path)
}

/// Why the log at Redis is not the one `followed` describes, if it is not.
pub(super) fn lost(
    con: &mut redis::Connection,
    followed: &Followed,
    address: &str,
) -> redis::RedisResult<Option<String>> {
    let epoch: Option<String> = redis::cmd("GET").arg(EPOCH_KEY).query(con)?;
    match epoch {
        None => {
            return Ok(Some(format!(
                "the log at {address} was emptied: its epoch is gone (FLUSHALL, or a Redis \
                 without its data); this node followed epoch {} to entry {}",
                followed.epoch, followed.applied
            )));
        }
        Some(epoch) if epoch != followed.epoch => {
            return Ok(Some(format!(
                "the log at {address} is another one (epoch {epoch}); this node followed epoch \
                 {} to entry {}",
                followed.epoch, followed.applied
            )));
        }
        Some(_) => {}
    }
    if followed.applied == "0-0" {
        return Ok(None);
    }
    let found: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(LOG_KEY)
        .arg(&followed.applied)
        .arg(&followed.applied)
        .query(con)?;
    if !found.ids.is_empty() {
        return Ok(None);
    }
    // Gone: trimmed after a snapshot (normal), or rolled back.
    let trimmed = max_deleted_entry(con)?
        .is_some_and(|deleted| parse_id(&followed.applied) <= parse_id(&deleted));
    Ok((!trimmed).then(|| {
        format!(
            "the log at {address} no longer has entry {}, the last this node applied: it was \
             rolled back (an older copy restored, or a failover to a replica that missed it)",
            followed.applied
        )
    }))
}

/// Whether a node that followed `followed` may rebuild its mirror from the log although the log
/// is not the one it followed: `None` when the log was not reseeded from that log;
/// `Some(Ok(why))` when it was, from a mirror holding everything this node applied;
/// `Some(Err(why not))` when this node applied more than the mirror held, which rebuilding would
/// drop.
pub(super) fn reseeded_over(
    con: &mut redis::Connection,
    followed: &Followed,
) -> redis::RedisResult<Option<Result<String, String>>> {
    let Some(reseeded) = reseeded(con)? else {
        return Ok(None);
    };
    let epoch: Option<String> = redis::cmd("GET").arg(EPOCH_KEY).query(con)?;
    if epoch.as_ref() != Some(&reseeded.epoch) || reseeded.from_epoch != followed.epoch {
        return Ok(None);
    }
    let within = parse_id(&followed.applied) <= parse_id(&reseeded.from_entry) || {
        // Applied after the mirror's last: taken on by the new log (with the same id) or lost.
        let found: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(LOG_KEY)
            .arg(&followed.applied)
            .arg(&followed.applied)
            .query(con)?;
        !found.ids.is_empty()
    };
    Ok(Some(if within {
        Ok(format!(
            "the log was reseeded (epoch {}) from a node's mirror of epoch {} to entry {}, which              holds everything this node applied (to {}): this node rebuilds its mirror from it",
            reseeded.epoch, reseeded.from_epoch, reseeded.from_entry, followed.applied
        ))
    } else {
        Err(format!(
            "the log was reseeded (epoch {}) from a node's mirror of epoch {} to entry {}, but              this node applied more of that log (to {}), which rebuilding would drop: reseed              again from this node's data directory (viralglobe-server reseed)",
            reseeded.epoch, reseeded.from_epoch, reseeded.from_entry, followed.applied
        ))
    }))
}

/// What `reseed` noted, if the log was ever reseeded.
pub(super) fn reseeded(con: &mut redis::Connection) -> redis::RedisResult<Option<Reseeded>> {
    let noted: Option<Vec<u8>> = redis::cmd("GET").arg(RESEEDED_KEY).query(con)?;
    Ok(noted.and_then(|n| serde_json::from_slice(&n).ok()))
}

/// The newest entry ever trimmed from the log (Redis 7's `max-deleted-entry-id`).
pub(super) fn max_deleted_entry(con: &mut redis::Connection) -> redis::RedisResult<Option<String>> {
    let info: redis::Value = redis::cmd("XINFO").arg("STREAM").arg(LOG_KEY).query(con)?;
    let pairs: Vec<(redis::Value, redis::Value)> = match info {
        redis::Value::Map(pairs) => pairs,
        redis::Value::Array(items) => {
            let mut items = items.into_iter();
            std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
        }
        _ => Vec::new(),
    };
    Ok(pairs.into_iter().find_map(|(k, v)| match (k, v) {
        (redis::Value::BulkString(k), redis::Value::BulkString(v))
            if k == b"max-deleted-entry-id" =>
        {
            String::from_utf8(v).ok()
        }
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_by_time_then_number() {
        assert!(parse_id("0-0") < parse_id("1700000000000-0"));
        assert!(parse_id("1700000000000-2") < parse_id("1700000000000-10"));
        assert_eq!(parse_id("1700000000001-3"), (1_700_000_000_001, 3));
    }

    #[test]
    fn a_note_is_read_back_and_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mirror = dir.path().join("redis-mirror");
        assert_eq!(read(&mirror), None);
        let mut followed = Followed {
            epoch: "e1".into(),
            applied: "10-0".into(),
        };
        write(&mirror, &followed, true).expect("written");
        followed.applied = "11-3".into();
        write(&mirror, &followed, true).expect("written");
        assert_eq!(read(&mirror), Some(followed));
        assert!(dir.path().join("redis-mirror.followed.json").is_file());
    }
}
