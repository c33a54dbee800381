//! Following a file of NDJSON lines (or stdin) like `tail -F`: read what is there, then what is
//! appended; start again from the top when the file is truncated or replaced (log rotation).
//!
//! Where it got to in a file (the file's device and inode, the byte offset and line number after
//! the last batch applied) is kept in `<data-dir>/follow.json`, so a restart goes on from there
//! instead of ingesting the whole file again. A crash between a batch's recording and that note
//! can apply the batch twice: events with ids are then duplicates, events without are counted
//! again.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{IngestReport, Pipeline};

const POLL: Duration = Duration::from_millis(200);
const BATCH_LINES: usize = 1_000;

/// Where following a file had got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    device: u64,
    inode: u64,
    /// Bytes of whole lines applied from the start of the file.
    offset: u64,
    next_line: u64,
}

/// The note of where following got to, in the data directory.
struct Bookmark(PathBuf);

impl Bookmark {
    fn read(&self) -> Option<Position> {
        serde_json::from_slice(&std::fs::read(&self.0).ok()?).ok()
    }

    /// Replaces the note at once (write, then rename), so a crash leaves the old one or the new.
    fn write(&self, position: Position) {
        let tmp = self.0.with_extension("json.tmp");
        let written = serde_json::to_vec(&position)
            .map_err(io::Error::from)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.0));
        if let Err(error) = written {
            tracing::warn!(path = %self.0.display(), %error, "cannot note where following got to");
        }
    }
}

/// Starts following `source` (`-` is stdin) on a thread of its own; for a file, where it got to
/// is noted in `data_dir`.
pub fn follow(
    source: PathBuf,
    pipeline: Pipeline,
    data_dir: &Path,
) -> io::Result<thread::JoinHandle<()>> {
    let bookmark = Bookmark(data_dir.join("follow.json"));
    thread::Builder::new().name("follow".into()).spawn(move || {
        if source.as_os_str() == "-" {
            let mut reader = Lines::new(io::stdin().lock());
            while reader.pump(&pipeline, "stdin").unwrap_or(false) {}
            tracing::info!("stdin ended; still serving");
        } else {
            tail(&source, &pipeline, &bookmark);
        }
    })
}

/// Reads complete lines in batches; a line still being written waits for its newline.
struct Lines<R> {
    reader: R,
    partial: Vec<u8>,
    next_line: u64,
    /// Bytes of the whole lines read so far, from the start of the file.
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            partial: Vec::new(),
            next_line: 1,
            offset: 0,
        }
    }

    /// Ingests up to one batch. Returns whether more may be there right away.
    fn pump(&mut self, pipeline: &Pipeline, name: &str) -> io::Result<bool> {
        let mut lines: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut more = true;
        while lines.len() < BATCH_LINES {
            if self.reader.read_until(b'\n', &mut self.partial)? == 0 {
                more = false;
                break;
            }
            if self.partial.last() == Some(&b'\n') {
                self.offset += self.partial.len() as u64;
                let mut line = std::mem::take(&mut self.partial);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                lines.push((self.next_line, line));
                self.next_line += 1;
            }
        }
        if !lines.is_empty() {
            let mut report = IngestReport::default();
            let numbered = lines.iter().map(|(n, l)| (*n, l.as_slice()));
            if let Err(e) = pipeline.ingest(numbered, &mut report) {
                tracing::error!(source = name, error = %e, "ingest from followed file failed");
                return Ok(false);
            }
            for rejected in &report.rejected {
                tracing::warn!(source = name, line = rejected.line, field = rejected.field,
                    error = %rejected.error, "rejected line");
            }
            tracing::debug!(
                source = name,
                accepted = report.accepted,
                "followed lines ingested"
            );
        }
        Ok(more)
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    path.metadata().ok().map(|m| (m.ino(), m.len()))
}

fn tail(path: &Path, pipeline: &Pipeline, bookmark: &Bookmark) {
    let name = path.display().to_string();
    let mut warned = false;
    loop {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                if !warned {
                    tracing::warn!(source = %name, error = %e, "cannot open followed file; retrying");
                    warned = true;
                }
                thread::sleep(POLL);
                continue;
            }
        };
        warned = false;
        let meta = file.metadata().ok();
        let (device, inode) = meta.as_ref().map_or((0, 0), |m| (m.dev(), m.ino()));
        let len = meta.as_ref().map_or(0, |m| m.len());
        let mut lines = Lines::new(BufReader::with_capacity(1 << 20, file));
        // The same file as last time, not truncated since: go on where it was left.
        if let Some(noted) = bookmark.read()
            && (noted.device, noted.inode) == (device, inode)
            && noted.offset <= len
            && lines.reader.seek(SeekFrom::Start(noted.offset)).is_ok()
        {
            (lines.offset, lines.next_line) = (noted.offset, noted.next_line);
            tracing::info!(source = %name, line = noted.next_line, "following from where it was left");
        } else {
            tracing::info!(source = %name, "following");
        }
        let mut position = 0u64;
        loop {
            let noted = lines.offset;
            let pumped = lines.pump(pipeline, &name);
            if lines.offset != noted {
                bookmark.write(Position {
                    device,
                    inode,
                    offset: lines.offset,
                    next_line: lines.next_line,
                });
            }
            match pumped {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(source = %name, error = %e, "reading followed file failed");
                    break;
                }
            }
            position = position.max(
                lines
                    .reader
                    .get_ref()
                    .metadata()
                    .map(|m| m.len())
                    .unwrap_or(0),
            );
            thread::sleep(POLL);
            match identity(path) {
                Some((ino, len)) if ino == inode && len >= position => {}
                _ => {
                    tracing::info!(source = %name, "file was rotated or truncated; reopening");
                    // Drain what the old file still holds before switching.
                    while let Ok(true) = lines.pump(pipeline, &name) {}
                    break;
                }
            }
        }
    }
}
