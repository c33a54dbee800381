//! Following a file of NDJSON lines (or stdin) like `tail -F`: read what is there, then what is
//! appended; start again from the top when the file is truncated or replaced (log rotation).

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use super::{IngestReport, Pipeline};

const POLL: Duration = Duration::from_millis(200);
const BATCH_LINES: usize = 1_000;

/// Starts following `source` (`-` is stdin) on a thread of its own.
pub fn follow(source: PathBuf, pipeline: Pipeline) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("follow".into()).spawn(move || {
        if source.as_os_str() == "-" {
            let mut reader = Lines::new(io::stdin().lock());
            while reader.pump(&pipeline, "stdin").unwrap_or(false) {}
            tracing::info!("stdin ended; still serving");
        } else {
            tail(&source, &pipeline);
        }
    })
}

/// Reads complete lines in batches; a line still being written waits for its newline.
struct Lines<R> {
    reader: R,
    partial: Vec<u8>,
    next_line: u64,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            partial: Vec::new(),
            next_line: 1,
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

fn tail(path: &Path, pipeline: &Pipeline) {
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
        let inode = file.metadata().map(|m| m.ino()).unwrap_or_default();
        tracing::info!(source = %name, "following");
        let mut lines = Lines::new(BufReader::with_capacity(1 << 20, file));
        let mut position = 0u64;
        loop {
            match lines.pump(pipeline, &name) {
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
