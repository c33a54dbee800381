//! A file of arcs for `--replay FILE`: the server's NDJSON export of a campaign
//! (`viralglobe-server export CAMPAIGN > FILE`), one arc per line. The viewer never geolocates:
//! places come resolved in the file.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use viralglobe_protocol::ArcEvent;

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
    pub arcs: Vec<ArcEvent>,
    /// `line N: problem` for each line skipped.
    pub skipped: Vec<String>,
}

impl ArcFile {
    /// Reads every arc of the file; a bad line is skipped and reported, the rest still play.
    pub fn load(path: &Path) -> Result<Self, ArcFileError> {
        let io = |source| ArcFileError::Io {
            path: path.to_owned(),
            source,
        };
        let opened = std::fs::File::open(path).map_err(io)?;
        let mut file = Self::default();
        for (index, line) in BufReader::new(opened).lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ArcEvent>(&line) {
                Ok(arc) => file.arcs.push(arc),
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
        file.arcs.sort_by_key(|arc| arc.ts);
        Ok(file)
    }

    /// Campaign time of the first and last arc, in epoch milliseconds.
    pub fn span(&self) -> (i64, i64) {
        let first = self.arcs.first().map_or(0, |a| a.ts.0);
        let last = self.arcs.last().map_or(0, |a| a.ts.0);
        (first, last)
    }

    /// Index of the first arc at or after `ts_ms`.
    pub fn position(&self, ts_ms: i64) -> usize {
        self.arcs.partition_point(|arc| arc.ts.0 < ts_ms)
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
        assert_eq!(file.arcs.iter().map(|a| a.seq).collect::<Vec<_>>(), [2, 9]);
        assert_eq!(file.skipped.len(), 1);
        assert!(
            file.skipped[0].starts_with("line 2: missing field"),
            "{:?}",
            file.skipped
        );
        assert_eq!(file.position(file.arcs[1].ts.0), 1);

        std::fs::write(&path, "not json\n").expect("write");
        let error = ArcFile::load(&path).expect_err("no arcs").to_string();
        assert!(
            error.contains("no arcs") && error.contains("line 1"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
