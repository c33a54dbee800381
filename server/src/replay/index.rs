//! The index of one campaign recording, built on first open and extended as the file grows: the
//! shares (so the arc of any line can be drawn by the one rule without reading what came before),
//! a checkpoint every [`CHECKPOINT_EVERY`] records (so a seek, by time or by `seq`, reads at most
//! that many lines), and arcs per minute (for timelines).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufReader, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use viralglobe_protocol::{
    ArcEvent, ArcKind, InputEvent, RecordedEvent, TimelineBucket, rule::LogReader,
};

use crate::recording::Lines;

/// Records between two checkpoints: a seek parses at most this many lines.
pub const CHECKPOINT_EVERY: u64 = 1_024;
const MINUTE_MS: i64 = 60_000;

/// Where to start reading to reach a campaign time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Byte offset of a record's line.
    pub offset: u64,
    /// The replay clock (latest timestamp so far) before that record.
    pub clock_before: i64,
    /// Arcs the records before it make: the next arc's `seq` is this + 1.
    pub arcs_before: u64,
}

#[derive(Debug)]
pub struct ReplayIndex {
    pub campaign: String,
    pub path: PathBuf,
    /// The shares of the whole file, and the arcs counted so far.
    log: LogReader,
    checkpoints: Vec<Checkpoint>,
    minutes: BTreeMap<i64, TimelineBucket>,
    /// Bytes of whole lines indexed so far; a reader never goes past them.
    pub indexed_bytes: u64,
    records: u64,
    /// Earliest timestamp so far.
    first_ts: Option<i64>,
    /// Latest timestamp so far: recordings are in accepted order, which late events may put
    /// slightly out of time order, so replays pace by the running maximum.
    clock: Option<i64>,
}

impl ReplayIndex {
    /// Indexes the recording at `path` (which must exist).
    pub fn build(campaign: &str, path: &Path) -> io::Result<Self> {
        let mut index = Self {
            campaign: campaign.to_owned(),
            path: path.to_owned(),
            log: LogReader::default(),
            checkpoints: Vec::new(),
            minutes: BTreeMap::new(),
            indexed_bytes: 0,
            records: 0,
            first_ts: None,
            clock: None,
        };
        index.extend()?;
        Ok(index)
    }

    /// Indexes the whole lines appended since the last call; returns how many records it added.
    pub fn extend(&mut self) -> io::Result<u64> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.indexed_bytes))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        let mut lines = Lines::new(reader, self.indexed_bytes);
        let before = self.records;
        while let Some(line) = lines.next().transpose()? {
            self.indexed_bytes = line.end;
            let Ok(record) = line.record else { continue };
            if self.records.is_multiple_of(CHECKPOINT_EVERY) {
                self.checkpoints.push(Checkpoint {
                    offset: line.offset,
                    clock_before: self.clock.unwrap_or(i64::MIN),
                    arcs_before: self.log.arcs(),
                });
            }
            self.add(&record);
        }
        Ok(self.records - before)
    }

    fn add(&mut self, record: &RecordedEvent) {
        let ts = record.event.ts().0;
        self.records += 1;
        self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
        self.clock = Some(self.clock.map_or(ts, |c| c.max(ts)));
        // The timeline counts arcs, by the one rule: what a replay shows, minute by minute.
        if self.log.next_draws(record) {
            let bucket = self.minutes.entry(ts.div_euclid(MINUTE_MS)).or_default();
            match &record.event {
                InputEvent::Share(_) => bucket.count(ArcKind::Share, None, 0),
                InputEvent::Click(_) => bucket.count(ArcKind::Click, None, 0),
                InputEvent::Conversion(c) => {
                    bucket.count(ArcKind::Conversion, Some(&c.goal), c.value_cents);
                }
            }
        }
    }

    /// Shares in the recording so far.
    pub fn shares(&self) -> usize {
        self.log.shares()
    }

    /// Arcs in the recording so far: the last `seq`.
    pub fn arcs(&self) -> u64 {
        self.log.arcs()
    }

    /// The last checkpoint from which reading reaches the arc after `seq`.
    pub fn checkpoint_for_seq(&self, seq: u64) -> Checkpoint {
        self.last_checkpoint(|c| c.arcs_before <= seq)
    }

    /// The last checkpoint from which reading reaches campaign time `ts` without missing an event
    /// at or after it.
    pub fn checkpoint_for(&self, ts: i64) -> Checkpoint {
        self.last_checkpoint(|c| c.clock_before < ts)
    }

    /// The last of the checkpoints that are `before` (which holds for a prefix of them), or the
    /// start of the file.
    fn last_checkpoint(&self, before: impl Fn(&Checkpoint) -> bool) -> Checkpoint {
        let after = self.checkpoints.partition_point(before);
        self.checkpoints
            .get(after.saturating_sub(1))
            .copied()
            .unwrap_or(Checkpoint {
                offset: 0,
                clock_before: i64::MIN,
                arcs_before: 0,
            })
    }

    /// The earliest and latest timestamps; `None` for an empty recording.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.first_ts?, self.clock?))
    }

    /// Activity per minute from `from` (inclusive) to `to` (exclusive).
    pub fn minutes(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, &TimelineBucket)> {
        self.minutes
            .range(
                from.div_euclid(MINUTE_MS)
                    ..to.div_euclid(MINUTE_MS).max(from.div_euclid(MINUTE_MS)) + 1,
            )
            .map(|(minute, bucket)| (minute * MINUTE_MS, bucket))
    }

    /// Whether a record of this recording draws an arc, by the one rule (nothing built).
    pub fn draws(&self, record: &RecordedEvent) -> bool {
        self.log.draws(record)
    }

    /// The arc a record of this recording draws as arc number `seq`, by the one rule.
    pub fn arc_of(&self, record: &RecordedEvent, seq: u64) -> Option<ArcEvent> {
        self.log.arc_at(record, seq)
    }
}
