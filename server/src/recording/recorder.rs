//! Writing recordings: appends buffered while a batch is applied, written out (and synced, per
//! the fsync policy) before the batch is acknowledged.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Seek, SeekFrom, Write},
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use viralglobe_protocol::RecordedEvent;

use super::*;
use crate::fast_hash::FastMap;

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
pub(crate) type SyncFiles = Arc<Mutex<HashMap<PathBuf, File>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends records to the campaign recordings and the held-event journal.
pub(crate) struct Recorder {
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
    pub(crate) fn new(
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
    pub(crate) fn epoch(&self, campaign: &str) -> Result<String, RecordingError> {
        match read_epoch(&self.data_dir, campaign) {
            Some(epoch) => Ok(epoch),
            None => create_epoch(&self.data_dir, campaign, self.new_campaign_epoch.as_deref()),
        }
    }

    pub(crate) fn set_new_campaign_epoch(&mut self, epoch: String) {
        self.new_campaign_epoch = Some(epoch);
    }

    /// The campaigns recorded for the first time since the last call, with their new epochs.
    pub(crate) fn take_new_epochs(&mut self) -> Vec<(Arc<str>, String)> {
        std::mem::take(&mut self.new_epochs)
    }

    pub(crate) fn sync_files(&self) -> SyncFiles {
        self.sync_files.clone()
    }

    /// Appends to the recording of `campaign`, or to the held-event journal when `None`, and
    /// returns where the line is in its file (there once committed). A recording that is not
    /// open is opened, closing the least recently used one when `max_open` are; failing to open
    /// it is [`RecordingError::Open`]: nothing was written.
    pub(crate) fn append(
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
    pub(crate) fn commit(&mut self) -> Result<(), RecordingError> {
        let fsync = self.sync_each_commit;
        for log in self.campaigns.values_mut().chain(self.journal.as_mut()) {
            log.commit(fsync)?;
        }
        Ok(())
    }

    /// Reads the held-event journal.
    pub(crate) fn read_journal(
        &self,
        mut each: impl FnMut(RecordedEvent),
    ) -> Result<ReadReport, RecordingError> {
        read_records(&journal_path(&self.data_dir), |record, _| each(record))
    }

    /// Replaces the journal with just `still_held`, so it does not grow across restarts; the
    /// entries given up since the last restart (`expired`) move to the file of expired events
    /// first. (A crash between the two leaves them in both, and the next restart writes them to
    /// the file of expired events again.)
    pub(crate) fn rewrite_journal(
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
pub(crate) fn sync_all(files: &SyncFiles) {
    let files = lock(files);
    for file in files.values() {
        if let Err(e) = file.sync_data() {
            metrics::counter!("viralglobe_recording_errors_total").increment(1);
            tracing::error!(error = %e, "fsync of a recording failed");
        }
    }
}
