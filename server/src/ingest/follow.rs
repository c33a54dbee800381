//! Following a file of NDJSON lines (or stdin) like `tail -F`: read what is there, then what is
//! appended; start again from the top when the file is truncated or replaced (log rotation).
//!
//! Where it got to in a file (the file's device and inode, the byte offset and line number after
//! the last batch applied) is kept in `<data-dir>/follow.json`, so a restart goes on from there
//! instead of ingesting the whole file again. A crash between a batch's recording and that note
//! can apply the batch twice: events with ids are then duplicates, events without are counted
//! again. Lines the server refuses for a moment (no recording could take them) are kept and
//! sent again, backing off, before anything after them; the note never passes them.

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
pub(crate) fn follow(
    source: PathBuf,
    pipeline: Pipeline,
    data_dir: &Path,
) -> io::Result<thread::JoinHandle<()>> {
    let bookmark = Bookmark(data_dir.join("follow.json"));
    thread::Builder::new().name("follow".into()).spawn(move || {
        if source.as_os_str() == "-" {
            let mut reader = Lines::new(io::stdin().lock());
            let mut backoff = Backoff::new();
            loop {
                match reader.pump(&pipeline, "stdin") {
                    Ok(Pumped::More) => backoff = Backoff::new(),
                    Ok(Pumped::Refused) => backoff.wait(),
                    Ok(Pumped::CaughtUp) | Err(_) => break,
                }
            }
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
    read: u64,
    /// Lines read but refused by a 503 (no recording could take them): sent again first.
    refused: Vec<Line>,
    /// Where the lines acknowledged so far end: the offset and the next line's number.
    acknowledged: (u64, u64),
}

/// One line, with its number and the offset just after it.
struct Line {
    number: u64,
    text: Vec<u8>,
    end: u64,
}

/// What one [`Lines::pump`] did.
#[derive(Debug, PartialEq, Eq)]
enum Pumped {
    /// A whole batch went in; more may be there right away.
    More,
    /// Everything there is went in.
    CaughtUp,
    /// The server could not take some lines now; they are kept and sent again.
    Refused,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            partial: Vec::new(),
            next_line: 1,
            read: 0,
            refused: Vec::new(),
            acknowledged: (0, 1),
        }
    }

    /// Goes on from `offset`, where line `next_line` begins.
    fn start_at(&mut self, offset: u64, next_line: u64) {
        (self.read, self.next_line) = (offset, next_line);
        self.acknowledged = (offset, next_line);
    }

    /// Ingests up to one batch: the refused lines first, then new ones.
    fn pump(&mut self, pipeline: &Pipeline, name: &str) -> io::Result<Pumped> {
        let mut lines = std::mem::take(&mut self.refused);
        let mut more = true;
        while lines.len() < BATCH_LINES {
            if self.reader.read_until(b'\n', &mut self.partial)? == 0 {
                more = false;
                break;
            }
            if self.partial.last() == Some(&b'\n') {
                self.read += self.partial.len() as u64;
                let mut text = std::mem::take(&mut self.partial);
                text.pop();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
                lines.push(Line {
                    number: self.next_line,
                    text,
                    end: self.read,
                });
                self.next_line += 1;
            }
        }
        if lines.is_empty() {
            return Ok(Pumped::CaughtUp);
        }
        let mut report = IngestReport::default();
        let numbered = lines.iter().map(|l| (l.number, l.text.as_slice()));
        let result = pipeline.ingest(numbered, &mut report);
        for rejected in &report.rejected {
            tracing::warn!(source = name, line = rejected.line, field = rejected.field,
                error = %rejected.error, "rejected line");
        }
        tracing::debug!(
            source = name,
            accepted = report.accepted,
            "followed lines ingested"
        );
        let refused_from = match result {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(source = name, line = report.not_acknowledged_from, error = %e,
                    "the server cannot take followed lines now; they will be sent again");
                report.not_acknowledged_from
            }
        };
        let split = refused_from.map_or(lines.len(), |from| {
            lines
                .iter()
                .position(|l| l.number >= from)
                .unwrap_or(lines.len())
        });
        if let Some(last) = split.checked_sub(1).map(|i| &lines[i]) {
            self.acknowledged = (last.end, last.number + 1);
        }
        self.refused = lines.split_off(split);
        Ok(match (self.refused.is_empty(), more) {
            (false, _) => Pumped::Refused,
            (true, true) => Pumped::More,
            (true, false) => Pumped::CaughtUp,
        })
    }
}

/// Waits before lines refused by the server are sent again: doubling, up to 30 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(POLL)
    }

    fn wait(&mut self) {
        thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
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
            lines.start_at(noted.offset, noted.next_line);
            tracing::info!(source = %name, line = noted.next_line, "following from where it was left");
        } else {
            tracing::info!(source = %name, "following");
        }
        let mut position = 0u64;
        let mut backoff = Backoff::new();
        loop {
            let noted = lines.acknowledged;
            let pumped = lines.pump(pipeline, &name);
            if lines.acknowledged != noted {
                bookmark.write(Position {
                    device,
                    inode,
                    offset: lines.acknowledged.0,
                    next_line: lines.acknowledged.1,
                });
            }
            match pumped {
                Ok(Pumped::More) => {
                    backoff = Backoff::new();
                    continue;
                }
                Ok(Pumped::Refused) => {
                    backoff.wait();
                    continue;
                }
                Ok(Pumped::CaughtUp) => backoff = Backoff::new(),
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
                    loop {
                        match lines.pump(pipeline, &name) {
                            Ok(Pumped::More) => {}
                            Ok(Pumped::Refused) => backoff.wait(),
                            Ok(Pumped::CaughtUp) | Err(_) => break,
                        }
                    }
                    break;
                }
            }
        }
    }
}
