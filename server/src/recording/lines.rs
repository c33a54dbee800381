//! Reading recordings: whole lines, parsed, by the one reader every part of the server uses.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader},
    ops::Range,
    path::Path,
};

use viralglobe_protocol::RecordedEvent;

use super::*;

/// One whole line of a recording.
#[derive(Debug)]
pub(crate) struct Line {
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
pub(crate) struct Lines<R> {
    reader: R,
    buffer: Vec<u8>,
    offset: u64,
    number: u64,
    stop: u64,
    torn: u64,
}

impl<R: BufRead> Lines<R> {
    /// Lines from `reader`, which is positioned at byte `offset` of the file.
    pub(crate) fn new(reader: R, offset: u64) -> Self {
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
    pub(crate) fn stop_at(&mut self, stop: u64) {
        self.stop = stop;
    }

    /// Where the next line starts.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of an unterminated last line, once reading has reached it.
    pub(crate) fn torn(&self) -> u64 {
        self.torn
    }

    /// The next record, skipping lines that are not records.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<RecordedEvent>> {
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
pub(crate) struct ReadReport {
    pub records: u64,
    /// Lines that did not parse and were skipped (corruption inside the file).
    pub skipped: u64,
    /// Bytes of an unterminated last line (a write torn by a crash) cut from the file.
    pub torn_bytes: u64,
}

/// Calls `each` for every record of the file at `path`, in order, and logs every line that is not
/// one. A torn last line (no newline, as a crash mid-write leaves it) is cut from the file so that
/// appends continue cleanly.
pub(crate) fn read_records(
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
