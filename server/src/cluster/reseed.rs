//! `viralglobe-server reseed`: the way back from a log that lost history (emptied, rolled back by
//! a failover, restored from an older copy). A node's mirror is a full copy of everything it
//! applied; reseeding makes it the new log's snapshot, keeps after it the entries the log took
//! after the mirror's last one (ingested on nodes that went on), and gives the log a new epoch.
//! Every campaign's arc line is under the new epoch, so no (epoch, seq) ever names two arcs;
//! nodes that followed the old log stop, and rebuild their mirrors from the new one when
//! restarted, unless they applied more than the mirror held.

use std::{path::Path, thread, time::Duration};

use redis::streams::{StreamId, StreamRangeReply};
use serde::Serialize;

use super::{
    ClusterError, EPOCH_KEY, LOG_KEY,
    connection::Redis,
    identity::{self, Followed, RESEEDED_KEY, Reseeded},
    mirror_dir, snapshot,
};
use crate::recording;

/// What a reseed did.
#[derive(Debug, Serialize)]
pub struct Reseed {
    /// The log's new epoch.
    pub epoch: String,
    /// The epoch of the log the mirror followed, and the last entry it applied: the snapshot.
    pub from_epoch: String,
    pub from_entry: String,
    /// Files in the snapshot.
    pub files: usize,
    /// Entries after the mirror's last that the log had and keeps.
    pub kept_entries: usize,
}

/// Rebuilds the log at `url` from the mirror in `data_dir` (a stopped node's).
pub fn reseed(url: &str, data_dir: &Path) -> Result<Reseed, ClusterError> {
    let mirror = mirror_dir(data_dir);
    let refuse = |why: String| Err(ClusterError::Reseed(why));
    let Some(followed) = identity::read(&mirror) else {
        return refuse(format!(
            "{} holds no mirror of a log ({}.followed.json is missing): reseed from the data \
             directory of a node started with --redis",
            data_dir.display(),
            mirror.display()
        ));
    };
    if followed.applied == "0-0" {
        return refuse("this node's mirror holds nothing: it never applied an entry".into());
    }
    let redis = Redis::open(url)?;
    let mut con = redis.connect()?;
    let address = redis.address();
    let redis_error = |e: redis::RedisError| ClusterError::Redis {
        address: address.clone(),
        error: e.to_string(),
    };
    let epoch: Option<String> = redis::cmd("GET")
        .arg(EPOCH_KEY)
        .query(&mut con)
        .map_err(redis_error)?;
    let reseeded = identity::reseeded(&mut con).map_err(redis_error)?;
    let same_log = epoch.as_ref() == Some(&followed.epoch)
        || reseeded
            .as_ref()
            .is_some_and(|r| epoch.as_ref() == Some(&r.epoch) && r.from_epoch == followed.epoch);
    if let Some(epoch) = &epoch
        && !same_log
    {
        return refuse(format!(
            "the log at {address} is another deployment's (epoch {epoch}; this mirror followed \
             {}): reseeding would replace it",
            followed.epoch
        ));
    }
    lock(&mut con, &address)?;
    let done = rebuild(&mut con, &address, &mirror, &followed, epoch.is_some());
    let _ = redis::cmd("DEL")
        .arg(snapshot::LOCK_KEY)
        .query::<()>(&mut con);
    let done = done?;
    // This node follows the new log from its snapshot.
    let noted = Followed {
        epoch: done.epoch.clone(),
        applied: followed.applied,
    };
    identity::write(&mirror, &noted, true).map_err(|e| ClusterError::Mirror {
        path: mirror.display().to_string(),
        error: e.to_string(),
    })?;
    tracing::warn!(
        epoch = done.epoch,
        from_epoch = done.from_epoch,
        from_entry = done.from_entry,
        kept = done.kept_entries,
        "reseeded the log from this node's mirror: restart every node"
    );
    Ok(done)
}

/// Takes the snapshot lock, so that no running node writes a snapshot meanwhile (a minute at
/// most of waiting for one that does).
fn lock(con: &mut redis::Connection, address: &str) -> Result<(), ClusterError> {
    for _ in 0..60 {
        let locked: Option<String> = redis::cmd("SET")
            .arg(snapshot::LOCK_KEY)
            .arg("reseed")
            .arg("NX")
            .arg("EX")
            .arg(600)
            .query(con)
            .map_err(|e| ClusterError::Redis {
                address: address.to_owned(),
                error: e.to_string(),
            })?;
        if locked.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_secs(1));
    }
    Err(ClusterError::Reseed(
        "a node has been writing a snapshot for a minute: try again".into(),
    ))
}

fn rebuild(
    con: &mut redis::Connection,
    address: &str,
    mirror: &Path,
    followed: &Followed,
    has_log: bool,
) -> Result<Reseed, ClusterError> {
    let redis_error = |e: redis::RedisError| ClusterError::Redis {
        address: address.to_owned(),
        error: e.to_string(),
    };
    // The entries after the mirror's last, with their ids (times): ingested elsewhere after
    // this node stopped, or after a failover took back what this node had.
    let kept: Vec<StreamId> = if has_log {
        redis::cmd("XRANGE")
            .arg(LOG_KEY)
            .arg(format!("({}", followed.applied))
            .arg("+")
            .query::<StreamRangeReply>(con)
            .map_err(redis_error)?
            .ids
    } else {
        Vec::new()
    };
    let epoch = recording::new_epoch();
    let files = recording::state_files(mirror).map_err(|e| ClusterError::Mirror {
        path: mirror.display().to_string(),
        error: e.to_string(),
    })?;
    // The snapshot: the mirror's files, each campaign's arc line under the new epoch.
    let key = snapshot::key(&followed.applied);
    redis::cmd("DEL")
        .arg(&key)
        .query::<()>(con)
        .map_err(redis_error)?;
    let mut listed = Vec::with_capacity(files.len());
    for (relative, len) in &files {
        let path = mirror.join(relative);
        let unreadable = |e: std::io::Error| ClusterError::Mirror {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        let put = if relative.ends_with(".epoch") {
            let line = format!("{epoch}\n");
            listed.push((relative.clone(), line.len() as u64));
            snapshot::put_file(con, address, &key, relative, line.as_bytes())
        } else {
            listed.push((relative.clone(), *len));
            let file = std::fs::File::open(&path).map_err(unreadable)?;
            snapshot::put_file(
                con,
                address,
                &key,
                relative,
                std::io::Read::take(file, *len),
            )
        };
        put.map_err(|e| match e {
            snapshot::PutError::Read(e) => unreadable(e),
            snapshot::PutError::Redis(e) => e,
        })?;
    }
    let mut older: Vec<String> = redis::cmd("KEYS")
        .arg(snapshot::key("*"))
        .query(con)
        .map_err(redis_error)?;
    older.retain(|k| *k != key && k != snapshot::LOCK_KEY);
    let noted = Reseeded {
        epoch: epoch.clone(),
        from_epoch: followed.epoch.clone(),
        from_entry: followed.applied.clone(),
    };
    // One transaction: the log, its snapshot and its epoch change together. A marker entry at
    // the snapshot's entry, deleted again, leaves the log saying it was trimmed there.
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("DEL").arg(LOG_KEY).ignore();
    pipe.cmd("XADD")
        .arg(LOG_KEY)
        .arg(&followed.applied)
        .arg("reseed")
        .arg(&epoch)
        .ignore();
    for entry in &kept {
        let cmd = pipe.cmd("XADD").arg(LOG_KEY).arg(&entry.id);
        for (field, value) in &entry.map {
            if let redis::Value::BulkString(value) = value {
                cmd.arg(field).arg(value);
            }
        }
        cmd.ignore();
    }
    pipe.cmd("XDEL")
        .arg(LOG_KEY)
        .arg(&followed.applied)
        .ignore();
    pipe.cmd("HSET")
        .arg(&key)
        .arg(snapshot::META_FIELD)
        .arg(snapshot::meta(&followed.applied, &listed))
        .ignore();
    pipe.cmd("SET")
        .arg(snapshot::LATEST_KEY)
        .arg(&followed.applied)
        .ignore();
    for old in &older {
        pipe.cmd("DEL").arg(old).ignore();
    }
    pipe.cmd("SET").arg(EPOCH_KEY).arg(&epoch).ignore();
    pipe.cmd("SET")
        .arg(RESEEDED_KEY)
        .arg(serde_json::to_vec(&noted).expect("serializes"))
        .ignore();
    pipe.query::<()>(con).map_err(redis_error)?;
    Ok(Reseed {
        epoch,
        from_epoch: noted.from_epoch,
        from_entry: noted.from_entry,
        files: listed.len(),
        kept_entries: kept.len(),
    })
}
