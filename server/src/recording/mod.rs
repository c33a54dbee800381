//! Durable recordings: one append-only NDJSON file per campaign under `<data-dir>/campaigns/`,
//! plus `<data-dir>/held.ndjson`, the journal of clicks and conversions whose share has not
//! arrived yet (they have no campaign until it does), and `<data-dir>/held-expired.ndjson`, those
//! of them that waited too long and were given up (moved there from the journal at a restart).
//!
//! Lines are buffered while a batch is applied and written out by [`Recorder::commit`] before the
//! batch is acknowledged; the fsync policy decides when they reach the disk.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use viralglobe_protocol::RecordedEvent;

pub(crate) mod index;
mod lines;
mod recorder;

pub(crate) use lines::{Lines, ReadReport, read_records};
pub(crate) use recorder::{Recorder, SyncFiles, sync_all};

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A recording (or its epoch) could not be opened, so nothing was written for the line: the
    /// event can be tried again later (the process may be out of descriptors for a moment).
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

impl RecordingError {
    fn open(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Open {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether nothing was written, so that the event may simply be tried again.
    pub fn nothing_written(&self) -> bool {
        matches!(self, Self::Open { .. })
    }

    /// The same failure, once something may already have been written before it.
    pub fn after_writing(self) -> Self {
        match self {
            Self::Open { path, source } => Self::Io {
                action: "open",
                path,
                source,
            },
            other => other,
        }
    }

    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The recording of campaign `campaign` under `data_dir`.
pub fn campaign_path(data_dir: &Path, campaign: &str) -> PathBuf {
    data_dir
        .join("campaigns")
        .join(format!("{campaign}.ndjson"))
}

/// The file holding the epoch of campaign `campaign`'s arc line: made with its recording, so a
/// recreated data directory starts a new epoch.
fn epoch_path(data_dir: &Path, campaign: &str) -> PathBuf {
    data_dir.join("campaigns").join(format!("{campaign}.epoch"))
}

/// The epoch of a campaign recording under `data_dir`, if it has one yet.
pub(crate) fn read_epoch(data_dir: &Path, campaign: &str) -> Option<String> {
    let text = fs::read_to_string(epoch_path(data_dir, campaign)).ok()?;
    let epoch = text.trim();
    (!epoch.is_empty()).then(|| epoch.to_owned())
}

/// A new epoch: the time it was made and 32 random bits, in hex.
pub(crate) fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u128(millis);
    format!("{millis:x}-{:08x}", random.finish() as u32)
}

/// fsyncs a directory, so that a file created or renamed in it survives a power cut.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Writes a new epoch for `campaign`, durably (the file, then its directory).
fn create_epoch(
    data_dir: &Path,
    campaign: &str,
    given: Option<&str>,
) -> Result<String, RecordingError> {
    let path = epoch_path(data_dir, campaign);
    let tmp = path.with_extension("epoch.tmp");
    let epoch = given.map_or_else(new_epoch, str::to_owned);
    let mut file = File::create(&tmp).map_err(RecordingError::io("create", &tmp))?;
    file.write_all(format!("{epoch}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(RecordingError::io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(RecordingError::io("rename", &path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(RecordingError::io("fsync", dir))?;
    }
    Ok(epoch)
}

fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("held.ndjson")
}

fn expired_path(data_dir: &Path) -> PathBuf {
    data_dir.join("held-expired.ndjson")
}

/// Writes `records` to `file` (at `path`), one line each, and to disk.
fn write_synced(file: File, records: &[RecordedEvent], path: &Path) -> Result<(), RecordingError> {
    let mut out = BufWriter::new(file);
    for record in records {
        serde_json::to_writer(&mut out, record)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(RecordingError::io("write", path))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| RecordingError::io("write", path)(e.into_error()))?;
    file.sync_all().map_err(RecordingError::io("fsync", path))
}

/// The campaigns that have a recording under `data_dir`, sorted.
pub(crate) fn recorded_campaigns(data_dir: &Path) -> Result<Vec<String>, RecordingError> {
    let dir = data_dir.join("campaigns");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RecordingError::io("list", &dir)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let id = name.strip_suffix(".ndjson")?;
            viralglobe_protocol::input::check_campaign_id(id).ok()?;
            // Something else in a recording's place (a directory, say) is not one: the server
            // starts without it, and that campaign's events are refused until it is moved away.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                tracing::warn!(path = %entry.path().display(),
                    "not a file where a campaign recording would be: skipped");
                return None;
            }
            Some(id.to_owned())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Every file a data directory's state lives in, relative to it (`/`-separated), with its
/// length: each campaign's recording and epoch, the held-event journal and the expired one.
pub(crate) fn state_files(data_dir: &Path) -> Result<Vec<(String, u64)>, RecordingError> {
    let mut files = Vec::new();
    for campaign in recorded_campaigns(data_dir)? {
        for path in [
            campaign_path(data_dir, &campaign),
            epoch_path(data_dir, &campaign),
        ] {
            files.push(path);
        }
    }
    files.push(journal_path(data_dir));
    files.push(expired_path(data_dir));
    let mut listed = Vec::with_capacity(files.len());
    for path in files {
        let len = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RecordingError::io("stat", &path)(e)),
        };
        let relative = path
            .strip_prefix(data_dir)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        listed.push((relative, len));
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{fs::OpenOptions, sync::Arc};
    use viralglobe_protocol::InputEvent;

    fn record(id: &str) -> RecordedEvent {
        let line = format!(r#"{{"type":"click","id":"{id}","share":"s1","ts":1350406800000}}"#);
        RecordedEvent {
            event: InputEvent::parse(line.as_bytes()).expect("click"),
            campaign: Some("c".into()),
            at: None,
            generation: Some(0),
            root: Some("s1".into()),
            hold: None,
            held_at: None,
            given_up: false,
        }
    }

    #[test]
    fn a_torn_last_line_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = Recorder::new(dir.path(), false, 8).expect("recorder");
        let campaign: Arc<str> = "c".into();
        rec.append(Some(&campaign), &record("a")).expect("append");
        rec.append(Some(&campaign), &record("b")).expect("append");
        rec.commit().expect("commit");
        drop(rec);
        let path = campaign_path(dir.path(), "c");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(br#"{"event":{"type":"cli"#).expect("tear");
        drop(file);

        let mut ids = Vec::new();
        let report =
            read_records(&path, |r, _| ids.push(r.event.id().map(str::to_owned))).expect("read");
        assert_eq!(report.records, 2);
        assert!(report.torn_bytes > 0);
        assert_eq!(ids, [Some("a".to_owned()), Some("b".to_owned())]);

        let mut rec = Recorder::new(dir.path(), false, 8).expect("recorder");
        rec.append(Some(&campaign), &record("c")).expect("append");
        rec.commit().expect("commit");
        let report = read_records(&path, |_, _| {}).expect("read");
        assert_eq!(
            (report.records, report.skipped, report.torn_bytes),
            (3, 0, 0)
        );
    }
}
