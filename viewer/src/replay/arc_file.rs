//! What `--replay FILE` plays: the server's NDJSON export of a campaign (one arc per line), or a
//! campaign recording itself (the server's `data/campaigns/<id>.ndjson`, or the demo's), whose
//! lines become arcs by the one rule, as the server's own replays draw them. Either may be
//! zstd-compressed; `-` reads standard input. The file is read as a stream, line by line; only the
//! arcs are kept, packed (`packed.rs`). The viewer never geolocates: places come resolved in the
//! file.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use viralglobe_protocol::{ArcEvent, RecordedEvent, rule::LogReader};

use super::packed::PackedArcs;

/// How a zstd frame begins.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, thiserror::Error)]
pub enum ArcFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no arcs{}", first_problem.as_ref().map(|p| format!(" (first problem: {p})")).unwrap_or_default())]
    Empty {
        path: PathBuf,
        first_problem: Option<String>,
    },
}

/// An export's arcs in campaign-time order, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct ArcFile {
    pub arcs: PackedArcs,
    /// `line N: problem` for each line skipped.
    pub skipped: Vec<String>,
}

impl ArcFile {
    /// Reads every arc of the file (`-`: standard input); a bad line is skipped and reported,
    /// the rest still play.
    pub fn load(path: &Path) -> Result<Self, ArcFileError> {
        let io = |source| ArcFileError::Io {
            path: path.to_owned(),
            source,
        };
        let input: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(path).map_err(io)?)
        };
        Self::read(input, path)
    }

    /// Reads the arcs of `input`, plain or zstd-compressed, named `path` in errors.
    pub fn read(input: impl Read, path: &Path) -> Result<Self, ArcFileError> {
        let io = |source| ArcFileError::Io {
            path: path.to_owned(),
            source,
        };
        let mut input = BufReader::with_capacity(1 << 20, input);
        let compressed = input.fill_buf().map_err(io)?.starts_with(&ZSTD_MAGIC);
        let lines: Box<dyn BufRead> = if compressed {
            let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(io)?;
            Box::new(BufReader::with_capacity(1 << 20, decoder))
        } else {
            Box::new(input)
        };
        let mut file = Self::default();
        let mut log = LogReader::default();
        for (index, line) in lines.lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            // A recording's line holds the event; an export's is the arc itself.
            let parsed = if line.starts_with(r#"{"event":"#) {
                serde_json::from_str::<RecordedEvent>(&line).map(|r| log.next_arc(&r))
            } else {
                serde_json::from_str::<ArcEvent>(&line).map(Some)
            };
            match parsed {
                Ok(Some(arc)) => file.arcs.push(&arc),
                Ok(None) => {}
                Err(e) => file.skipped.push(format!("line {}: {e}", index + 1)),
            }
        }
        if file.arcs.is_empty() {
            return Err(ArcFileError::Empty {
                path: path.to_owned(),
                first_problem: file.skipped.first().cloned(),
            });
        }
        // Exports are in acceptance order; late events play at their own time.
        file.arcs.sort_by_time();
        Ok(file)
    }

    /// Campaign time of the first and last arc, in epoch milliseconds.
    pub fn span(&self) -> (i64, i64) {
        match self.arcs.len() {
            0 => (0, 0),
            n => (self.arcs.ts(0), self.arcs.ts(n - 1)),
        }
    }

    /// Index of the first arc at or after `ts_ms`.
    pub fn position(&self, ts_ms: i64) -> usize {
        self.arcs.partition_point_from(0, |ts| ts < ts_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::arc;
    use viralglobe_protocol::ArcKind;

    #[test]
    fn bad_lines_are_named_and_the_rest_plays_in_time_order() {
        let dir = std::env::temp_dir().join(format!("vg-viewer-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("campaign.ndjson");
        let late = serde_json::to_string(&arc(9, ArcKind::Click, 0)).expect("json");
        let early = serde_json::to_string(&arc(2, ArcKind::Share, 1)).expect("json");
        std::fs::write(&path, format!("{late}\n{{\"seq\":1}}\n\n{early}\n")).expect("write");

        let file = ArcFile::load(&path).expect("loads");
        let arcs = file.arcs.slice(0..file.arcs.len());
        assert_eq!(arcs.iter().map(|a| a.seq).collect::<Vec<_>>(), [2, 9]);
        assert_eq!(file.skipped.len(), 1);
        assert!(
            file.skipped[0].starts_with("line 2: missing field"),
            "{:?}",
            file.skipped
        );
        assert_eq!(file.position(arcs[1].ts.0), 1);

        std::fs::write(&path, "not json\n").expect("write");
        let error = ArcFile::load(&path).expect_err("no arcs").to_string();
        assert!(
            error.contains("no arcs") && error.contains("line 1"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The demo's recording, zstd-compressed as committed: its lines become the arcs the server's
    /// replay draws, starting with Tony Hawk's post in Los Angeles; the same bytes uncompressed
    /// give the same arcs.
    #[test]
    fn a_compressed_recording_plays_as_its_arcs() {
        let compressed = crate::replay::DEMO_RECORDING;
        let file = ArcFile::read(compressed, Path::new("demo")).expect("the demo plays");
        assert!(
            file.skipped.is_empty(),
            "{:?}",
            &file.skipped[..3.min(file.skipped.len())]
        );
        assert!(file.arcs.len() > 500_000, "{} arcs", file.arcs.len());
        let first = file.arcs.get(0);
        assert_eq!(
            (first.kind, first.to.city.as_deref(), first.seq),
            (ArcKind::Share, Some("Los Angeles"), 1)
        );
        let kinds: std::collections::BTreeSet<_> = file
            .arcs
            .counted(0..file.arcs.len())
            .map(|a| a.kind)
            .collect();
        assert_eq!(kinds.len(), 3);

        let plain = zstd::decode_all(compressed).expect("zstd");
        let head: Vec<u8> = plain
            .split_inclusive(|&b| b == b'\n')
            .take(5_000)
            .flatten()
            .copied()
            .collect();
        let from_plain = ArcFile::read(head.as_slice(), Path::new("head")).expect("plays");
        let seqs = |f: &ArcFile| {
            let mut seqs: Vec<u64> = (0..f.arcs.len()).map(|i| f.arcs.get(i).seq).collect();
            seqs.sort_unstable();
            seqs
        };
        let mut first_arcs = seqs(&file);
        first_arcs.truncate(from_plain.arcs.len());
        assert_eq!(seqs(&from_plain), first_arcs);
    }
}
