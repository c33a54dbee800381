//! Plays the embedded demo campaign into the live feed, in a loop.

use std::{
    io::BufReader,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use viralglobe_protocol::{RecordedEvent, rule::LogReader};

use super::embedded;
use crate::{
    hub::Hub,
    recording::{self, Lines},
};

/// How fast the demo plays.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Campaign seconds per second of playback.
    pub speed: f64,
    /// Most events per second: busy hours slow the clock down so they stay watchable.
    pub max_rate: f64,
}

/// The embedded recording's events, decompressed as they are read.
pub fn records() -> impl Iterator<Item = RecordedEvent> {
    located_records().map(|(record, _)| record)
}

/// The embedded recording's events with where their lines are in it (and in the file
/// [`unpack`] writes).
pub(crate) fn located_records() -> impl Iterator<Item = (RecordedEvent, Range<u64>)> {
    let decoder = zstd::stream::read::Decoder::new(embedded::RECORDING)
        .expect("the embedded demo recording is zstd");
    let mut lines = Lines::new(BufReader::new(decoder), 0);
    std::iter::from_fn(move || {
        lines.find_map(|line| {
            let line = line.ok()?;
            Some((line.record.ok()?, line.offset..line.end))
        })
    })
}

/// The epoch of the embedded recording's arc line: a hash of its bytes, the same in every run
/// of the same build.
pub(crate) fn recording_epoch() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    embedded::RECORDING.hash(&mut hasher);
    format!("demo-{:016x}", hasher.finish())
}

/// Writes the embedded recording out as a plain recording under `data_dir/demo/`, where replays,
/// timelines and exports read it like any other. The file is named by its epoch, so a later start
/// reuses it and a new build writes its own.
pub(crate) fn unpack(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("demo");
    std::fs::create_dir_all(&dir)?;
    let name = format!("{}-{}.ndjson", embedded::CAMPAIGN, recording_epoch());
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    let partial = path.with_extension("ndjson.partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    zstd::stream::copy_decode(embedded::RECORDING, &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// Plays the campaign again and again on a thread of its own. Each loop is a new epoch of the
/// campaign's live arc line (the run's own, then the loop's number), announced with a `reset`.
pub(crate) fn spawn(hub: Arc<Hub>, pace: Pace) -> std::io::Result<std::thread::JoinHandle<()>> {
    let run = recording::new_epoch();
    std::thread::Builder::new()
        .name("demo-player".into())
        .spawn(move || {
            for round in 1.. {
                // The loop's counters are its own arcs', not the recording's statistics.
                hub.reset_counted(embedded::CAMPAIGN, format!("{run}.{round}"));
                play_once(&hub, pace);
                tracing::info!("demo campaign finished; starting again");
                std::thread::sleep(Duration::from_secs(3));
            }
        })
}

fn play_once(hub: &Hub, pace: Pace) {
    let (speed, min_gap) = (pace.speed.max(1.0), 1.0 / pace.max_rate.max(1.0));
    let mut log = LogReader::default();
    let mut arcs = Vec::new();
    let started = Instant::now();
    let (mut playhead, mut last_ts) = (0.0f64, None);
    for record in records() {
        let ts = record.event.ts().0;
        let gap = last_ts.map_or(0.0, |last| (ts - last) as f64 / 1_000.0 / speed);
        playhead += gap.max(min_gap);
        last_ts = Some(ts);
        arcs.extend(log.next_arc(&record));
        let due = Duration::from_secs_f64(playhead);
        let now = started.elapsed();
        if due > now + Duration::from_millis(5) || arcs.len() >= 1_000 {
            hub.publish(std::mem::take(&mut arcs));
            std::thread::sleep(due.saturating_sub(now));
        }
    }
    hub.publish(arcs);
}
