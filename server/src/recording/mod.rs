//! Durable recordings: one append-only NDJSON file per campaign under `<data-dir>/campaigns/`,
//! plus `<data-dir>/held.ndjson`, the journal of clicks and conversions whose share has not
//! arrived yet (they have no campaign until it does), and `<data-dir>/held-expired.ndjson`, those
//! of them that waited too long and were given up (moved there from the journal at a restart).
//!
//! Lines are buffered while a batch is applied and written out by [`Recorder::commit`] before the
//! batch is acknowledged; the fsync policy decides when they reach the disk.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write},
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use viralglobe_protocol::RecordedEvent;

use crate::fast_hash::FastMap;

pub mod index;

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
pub fn read_epoch(data_dir: &Path, campaign: &str) -> Option<String> {
    let text = fs::read_to_string(epoch_path(data_dir, campaign)).ok()?;
    let epoch = text.trim();
    (!epoch.is_empty()).then(|| epoch.to_owned())
}

/// A new epoch: the time it was made and 32 random bits, in hex.
pub fn new_epoch() -> String {
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
pub fn recorded_campaigns(data_dir: &Path) -> Result<Vec<String>, RecordingError> {
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
pub fn state_files(data_dir: &Path) -> Result<Vec<(String, u64)>, RecordingError> {
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

/// One whole line of a recording.
#[derive(Debug)]
pub struct Line {
    /// Byte offsets of the line's start and of the next line.
    pub offset: u64,
    pub end: u64,
    /// 1-based, counted from where reading started.
    pub number: u64,
    /// The record, or why the line is not one.
    pub record: Result<RecordedEvent, serde_json::Error>,
}

/// The whole lines of a recording, parsed: the one reader of recording files (the restart, the
/// replay index and cursors, the demo player). It never returns an unterminated last line (one
/// being written, or torn by a crash; [`Lines::torn`] says how long), nor anything at or past
/// [`Lines::stop_at`]. The policy for a line that is not a record is the same everywhere: it is
/// skipped; the restart, which reads every file first, logs it with its number.
pub struct Lines<R> {
    reader: R,
    buffer: Vec<u8>,
    offset: u64,
    number: u64,
    stop: u64,
    torn: u64,
}

impl<R: BufRead> Lines<R> {
    /// Lines from `reader`, which is positioned at byte `offset` of the file.
    pub fn new(reader: R, offset: u64) -> Self {
        Self {
            reader,
            buffer: Vec::new(),
            offset,
            number: 0,
            stop: u64::MAX,
            torn: 0,
        }
    }

    /// Reads no line that starts at or after byte `stop`.
    pub fn stop_at(&mut self, stop: u64) {
        self.stop = stop;
    }

    /// Where the next line starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of an unterminated last line, once reading has reached it.
    pub fn torn(&self) -> u64 {
        self.torn
    }

    /// The next record, skipping lines that are not records.
    pub fn next_record(&mut self) -> io::Result<Option<RecordedEvent>> {
        while let Some(line) = self.next().transpose()? {
            if let Ok(record) = line.record {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.stop {
            return None;
        }
        self.buffer.clear();
        let n = match self.reader.read_until(b'\n', &mut self.buffer) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        if n == 0 {
            return None;
        }
        if self.buffer.last() != Some(&b'\n') {
            self.torn = n as u64;
            return None;
        }
        self.number += 1;
        let offset = self.offset;
        self.offset += n as u64;
        Some(Ok(Line {
            offset,
            end: self.offset,
            number: self.number,
            record: serde_json::from_slice(&self.buffer),
        }))
    }
}

/// What reading one recording found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadReport {
    pub records: u64,
    /// Lines that did not parse and were skipped (corruption inside the file).
    pub skipped: u64,
    /// Bytes of an unterminated last line (a write torn by a crash) cut from the file.
    pub torn_bytes: u64,
}

/// Calls `each` for every record of the file at `path`, in order, and logs every line that is not
/// one. A torn last line (no newline, as a crash mid-write leaves it) is cut from the file so that
/// appends continue cleanly.
pub fn read_records(
    path: &Path,
    mut each: impl FnMut(RecordedEvent, Range<u64>),
) -> Result<ReadReport, RecordingError> {
    let mut report = ReadReport::default();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(RecordingError::io("open", path)(e)),
    };
    let mut lines = Lines::new(BufReader::with_capacity(1 << 20, file), 0);
    for line in lines.by_ref() {
        let line = line.map_err(RecordingError::io("read", path))?;
        match line.record {
            Ok(record) => {
                report.records += 1;
                each(record, line.offset..line.end);
            }
            Err(e) => {
                report.skipped += 1;
                tracing::error!(path = %path.display(), line = line.number, error = %e,
                    "skipping a recording line that does not parse");
            }
        }
    }
    report.torn_bytes = lines.torn();
    if report.torn_bytes > 0 {
        tracing::warn!(path = %path.display(), bytes = report.torn_bytes,
            "cutting a torn last line (an interrupted write) from the recording");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(RecordingError::io("open", path))?;
        file.set_len(lines.offset())
            .map_err(RecordingError::io("truncate", path))?;
    }
    Ok(report)
}

struct Log {
    path: PathBuf,
    writer: BufWriter<File>,
    /// The file's length once what is buffered is written out: where the next line starts.
    len: u64,
    dirty: bool,
    /// When it was last appended to, in appends: the least recently used is closed first.
    last_used: u64,
}

impl Log {
    /// Opens for appending; nothing is written, so every failure is [`RecordingError::Open`].
    fn open(path: PathBuf, sync_files: &SyncFiles) -> Result<Self, RecordingError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(RecordingError::open(dir))?;
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(RecordingError::open(&path))?;
        if created {
            // The new file's directory entry, so that what is acknowledged in it can be found
            // after a power cut.
            sync_dir(dir).map_err(RecordingError::open(dir))?;
        }
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(RecordingError::open(&path))?;
        let sync = file.try_clone().map_err(RecordingError::open(&path))?;
        lock(sync_files).insert(path.clone(), sync);
        Ok(Self {
            path,
            writer: BufWriter::with_capacity(256 * 1024, file),
            len,
            dirty: false,
            last_used: 0,
        })
    }

    /// Writes out what is buffered and to disk, and lets the background fsync forget the file.
    fn close(mut self, sync_files: &SyncFiles) -> Result<(), RecordingError> {
        self.commit(true)?;
        lock(sync_files).remove(&self.path);
        Ok(())
    }

    /// Appends `record`'s line; returns where it is in the file.
    fn append(&mut self, record: &RecordedEvent) -> Result<Range<u64>, RecordingError> {
        let mut counted = Counted {
            writer: &mut self.writer,
            bytes: 0,
        };
        serde_json::to_writer(&mut counted, record)
            .map_err(io::Error::from)
            .and_then(|()| counted.write_all(b"\n"))
            .map_err(RecordingError::io("write", &self.path))?;
        let start = self.len;
        self.len += counted.bytes;
        self.dirty = true;
        Ok(start..self.len)
    }

    fn commit(&mut self, fsync: bool) -> Result<(), RecordingError> {
        if !self.dirty {
            return Ok(());
        }
        self.writer
            .flush()
            .map_err(RecordingError::io("write", &self.path))?;
        if fsync {
            self.writer
                .get_ref()
                .sync_data()
                .map_err(RecordingError::io("fsync", &self.path))?;
        }
        self.dirty = false;
        Ok(())
    }
}

/// A writer that counts what goes through it.
struct Counted<'a, W> {
    writer: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    // What serde_json calls for every piece: the buffered writer's own, which copies at once.
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Handles on every open recording, for a background fsync that never takes the ingest lock.
pub type SyncFiles = Arc<Mutex<HashMap<PathBuf, File>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends records to the campaign recordings and the held-event journal.
pub struct Recorder {
    data_dir: PathBuf,
    /// fsync every commit (before a batch is acknowledged).
    sync_each_commit: bool,
    campaigns: FastMap<Arc<str>, Log>,
    /// Most campaign recordings open at once (each holds two descriptors).
    max_open: usize,
    appends: u64,
    journal: Option<Log>,
    sync_files: SyncFiles,
    /// Campaigns whose recording (and epoch) was created since the last call of
    /// [`Recorder::take_new_epochs`].
    new_epochs: Vec<(Arc<str>, String)>,
    /// The epoch every new campaign gets, instead of one made for it (cluster mode).
    new_campaign_epoch: Option<String>,
}

impl Recorder {
    pub fn new(
        data_dir: &Path,
        sync_each_commit: bool,
        max_open: usize,
    ) -> Result<Self, RecordingError> {
        let campaigns_dir = data_dir.join("campaigns");
        fs::create_dir_all(&campaigns_dir).map_err(RecordingError::io("create", &campaigns_dir))?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            sync_each_commit,
            campaigns: FastMap::default(),
            max_open: max_open.max(1),
            appends: 0,
            journal: None,
            sync_files: SyncFiles::default(),
            new_epochs: Vec::new(),
            new_campaign_epoch: None,
        })
    }

    /// The epoch of a recorded campaign's arc line, made now if the recording has none yet.
    pub fn epoch(&self, campaign: &str) -> Result<String, RecordingError> {
        match read_epoch(&self.data_dir, campaign) {
            Some(epoch) => Ok(epoch),
            None => create_epoch(&self.data_dir, campaign, self.new_campaign_epoch.as_deref()),
        }
    }

    pub fn set_new_campaign_epoch(&mut self, epoch: String) {
        self.new_campaign_epoch = Some(epoch);
    }

    /// The campaigns recorded for the first time since the last call, with their new epochs.
    pub fn take_new_epochs(&mut self) -> Vec<(Arc<str>, String)> {
        std::mem::take(&mut self.new_epochs)
    }

    pub fn sync_files(&self) -> SyncFiles {
        self.sync_files.clone()
    }

    /// Appends to the recording of `campaign`, or to the held-event journal when `None`, and
    /// returns where the line is in its file (there once committed). A recording that is not
    /// open is opened, closing the least recently used one when `max_open` are; failing to open
    /// it is [`RecordingError::Open`]: nothing was written.
    pub fn append(
        &mut self,
        campaign: Option<&Arc<str>>,
        record: &RecordedEvent,
    ) -> Result<Range<u64>, RecordingError> {
        self.appends += 1;
        let log = match campaign {
            Some(id) => {
                if !self.campaigns.contains_key(id) {
                    let log = self.open_campaign(id)?;
                    self.campaigns.insert(id.clone(), log);
                }
                self.campaigns.get_mut(id).expect("opened above")
            }
            None => match &mut self.journal {
                Some(log) => log,
                None => self
                    .journal
                    .insert(Log::open(journal_path(&self.data_dir), &self.sync_files)?),
            },
        };
        log.last_used = self.appends;
        log.append(record)
    }

    fn open_campaign(&mut self, id: &Arc<str>) -> Result<Log, RecordingError> {
        if self.campaigns.len() >= self.max_open {
            let oldest = self
                .campaigns
                .iter()
                .min_by_key(|(_, log)| log.last_used)
                .map(|(id, _)| id.clone());
            if let Some(log) = oldest.and_then(|id| self.campaigns.remove(&id)) {
                log.close(&self.sync_files)?;
            }
        }
        let path = campaign_path(&self.data_dir, id);
        if !path.exists() {
            // The epoch first: a crash in between leaves an epoch that the recording, when it is
            // made, simply takes.
            let epoch = match read_epoch(&self.data_dir, id) {
                Some(epoch) => epoch,
                None => create_epoch(&self.data_dir, id, self.new_campaign_epoch.as_deref())
                    .map_err(|e| match e {
                        RecordingError::Io { path, source, .. } => {
                            RecordingError::Open { path, source }
                        }
                        other => other,
                    })?,
            };
            self.new_epochs.push((id.clone(), epoch));
        }
        Log::open(path, &self.sync_files)
    }

    /// Writes every buffered line out (and to disk under `--fsync always`).
    pub fn commit(&mut self) -> Result<(), RecordingError> {
        let fsync = self.sync_each_commit;
        for log in self.campaigns.values_mut().chain(self.journal.as_mut()) {
            log.commit(fsync)?;
        }
        Ok(())
    }

    /// Reads the held-event journal.
    pub fn read_journal(
        &self,
        mut each: impl FnMut(RecordedEvent),
    ) -> Result<ReadReport, RecordingError> {
        read_records(&journal_path(&self.data_dir), |record, _| each(record))
    }

    /// Replaces the journal with just `still_held`, so it does not grow across restarts; the
    /// entries given up since the last restart (`expired`) move to the file of expired events
    /// first. (A crash between the two leaves them in both, and the next restart writes them to
    /// the file of expired events again.)
    pub fn rewrite_journal(
        &mut self,
        still_held: &[RecordedEvent],
        expired: &[RecordedEvent],
    ) -> Result<(), RecordingError> {
        if !expired.is_empty() {
            let path = expired_path(&self.data_dir);
            let created = !path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(RecordingError::io("open", &path))?;
            write_synced(file, expired, &path)?;
            if created {
                sync_dir(&self.data_dir).map_err(RecordingError::io("fsync", &self.data_dir))?;
            }
        }
        let path = journal_path(&self.data_dir);
        let tmp = path.with_extension("ndjson.tmp");
        let file = File::create(&tmp).map_err(RecordingError::io("create", &tmp))?;
        write_synced(file, still_held, &tmp)?;
        fs::rename(&tmp, &path).map_err(RecordingError::io("rename", &path))?;
        sync_dir(&self.data_dir).map_err(RecordingError::io("fsync", &self.data_dir))?;
        self.journal = None;
        lock(&self.sync_files).remove(&path);
        Ok(())
    }
}

/// fsyncs every open recording; used by the interval policy and at shutdown.
pub fn sync_all(files: &SyncFiles) {
    let files = lock(files);
    for file in files.values() {
        if let Err(e) = file.sync_data() {
            metrics::counter!("viralglobe_recording_errors_total").increment(1);
            tracing::error!(error = %e, "fsync of a recording failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
