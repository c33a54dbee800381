//! The index of one campaign recording: a checkpoint every [`CHECKPOINT_EVERY`] records (so a
//! seek, by time or by `seq`, reads at most that many lines), arcs per minute (for timelines), and
//! where to find the shares its lines name (so the arc of any line can be drawn by the one rule
//! without reading what came before).
//!
//! The engine keeps the index of every recording it writes as it writes it ([`RecordingIndex::followed`],
//! the shares are its own tree), so opening a replay reads nothing. A recording no engine writes
//! (the demo's, or one the command line exports) is indexed by reading it
//! ([`RecordingIndex::read`]), and extended as the file grows.
//!
//! Readers hold the index's lock only to look something up, never while they read the file: the
//! engine adds to an index while holding its own lock, and must never wait behind a replay.

use std::{
    borrow::Borrow,
    collections::BTreeMap,
    fs::File,
    hash::Hash,
    io::{self, BufReader, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use viralglobe_protocol::{
    ArcEvent, ArcKind, InputEvent, RecordedEvent, TimelineBucket,
    rule::{self, LoggedShare, ShareFacts},
};

use super::Lines;
use crate::fast_hash::FastDashMap;

/// Records between two checkpoints: a seek parses at most this many lines.
pub(crate) const CHECKPOINT_EVERY: u64 = 1_024;
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

/// The facts of the shares a recording's lines name, as the one rule needs them.
pub trait Shares: Send + Sync + std::fmt::Debug {
    /// Whether `record` draws an arc.
    fn draws(&self, record: &RecordedEvent) -> bool;
    /// The arc `record` draws, numbered `seq`.
    fn arc_of(&self, record: &RecordedEvent, seq: u64) -> Option<ArcEvent>;
}

/// Any concurrent map of share ids to their facts answers for a recording's shares: the
/// engine's tree, or the shares learnt by reading the recording.
impl<K, V> Shares for FastDashMap<K, V>
where
    K: Borrow<str> + Eq + Hash + Send + Sync + std::fmt::Debug,
    V: ShareFacts + Send + Sync + std::fmt::Debug,
{
    fn draws(&self, record: &RecordedEvent) -> bool {
        let related = rule::related_share(record).and_then(|id| self.get(id));
        rule::draws(record, related.as_deref())
    }

    fn arc_of(&self, record: &RecordedEvent, seq: u64) -> Option<ArcEvent> {
        let related = rule::related_share(record).and_then(|id| self.get(id));
        rule::arc_of(record, related.as_deref(), seq)
    }
}

/// The shares a recording resolves, learnt by reading it.
type LoggedShares = FastDashMap<Box<str>, LoggedShare>;

fn learn(shares: &LoggedShares, record: &RecordedEvent) {
    if let Some((id, share)) = rule::resolved_share(record) {
        shares.insert(id.into(), share);
    }
}

#[derive(Debug)]
enum Source {
    /// Kept by the engine as it writes the recording.
    Followed(Arc<dyn Shares>),
    /// Read from the file; one reader extends it at a time.
    Read {
        shares: LoggedShares,
        reading: Mutex<()>,
    },
}

/// A line as the index counts it: where it is, its time, and the arc it draws, if any.
#[derive(Debug, Clone, Copy)]
pub struct IndexedLine {
    pub offset: u64,
    pub end: u64,
    ts: i64,
    arc: Option<(ArcKind, Option<&'static str>, u64)>,
}

impl IndexedLine {
    /// The line of `record` at bytes `offset..end`, which draws an arc or not (`draws`).
    pub fn new(offset: u64, end: u64, record: &RecordedEvent, draws: bool) -> Self {
        let arc = draws.then(|| match &record.event {
            InputEvent::Share(_) => (ArcKind::Share, None, 0),
            InputEvent::Click(_) => (ArcKind::Click, None, 0),
            InputEvent::Conversion(c) => {
                let goal = match c.goal.as_str() {
                    "signup" => "signup",
                    "purchase" => "purchase",
                    _ => "other",
                };
                (ArcKind::Conversion, Some(goal), c.value_cents)
            }
        });
        Self {
            offset,
            end,
            ts: record.event.ts().0,
            arc,
        }
    }
}

/// What has been indexed so far.
#[derive(Debug, Default)]
struct Progress {
    checkpoints: Vec<Checkpoint>,
    minutes: BTreeMap<i64, TimelineBucket>,
    /// Bytes of whole lines indexed so far; a reader never goes past them.
    indexed_bytes: u64,
    records: u64,
    arcs: u64,
    /// Earliest timestamp so far.
    first_ts: Option<i64>,
    /// Latest timestamp so far: recordings are in accepted order, which late events may put
    /// slightly out of time order, so replays pace by the running maximum.
    clock: Option<i64>,
}

impl Progress {
    fn add(&mut self, line: &IndexedLine) {
        if self.records.is_multiple_of(CHECKPOINT_EVERY) {
            self.checkpoints.push(Checkpoint {
                offset: line.offset,
                clock_before: self.clock.unwrap_or(i64::MIN),
                arcs_before: self.arcs,
            });
        }
        self.records += 1;
        self.indexed_bytes = self.indexed_bytes.max(line.end);
        self.first_ts = Some(self.first_ts.map_or(line.ts, |f| f.min(line.ts)));
        self.clock = Some(self.clock.map_or(line.ts, |c| c.max(line.ts)));
        // The timeline counts arcs, by the one rule: what a replay shows, minute by minute.
        if let Some((kind, goal, value_cents)) = line.arc {
            self.arcs += 1;
            let minute = line.ts.div_euclid(MINUTE_MS);
            // Lines come in about time order: most land in the last minute.
            let bucket = match self.minutes.last_entry() {
                Some(last) if *last.key() == minute => last.into_mut(),
                _ => self.minutes.entry(minute).or_default(),
            };
            bucket.count(kind, goal, value_cents);
        }
    }
}

#[derive(Debug)]
pub struct RecordingIndex {
    pub campaign: String,
    pub path: PathBuf,
    source: Source,
    progress: RwLock<Progress>,
}

/// An index shared by the engine (which may add to it) and every reader of the recording.
pub(crate) type SharedIndex = Arc<RecordingIndex>;

/// The indexes the engine keeps, by campaign: one for every recording it writes.
pub(crate) type KeptIndexes = Arc<FastDashMap<Box<str>, SharedIndex>>;

impl RecordingIndex {
    /// Indexes the recording at `path` (which must exist) by reading it.
    pub fn read(campaign: &str, path: &Path) -> io::Result<Self> {
        let index = Self::new(
            campaign,
            path,
            Source::Read {
                shares: LoggedShares::default(),
                reading: Mutex::new(()),
            },
        );
        index.extend()?;
        Ok(index)
    }

    /// An empty index of a recording the engine writes, which adds every line it writes
    /// ([`RecordingIndex::add`]); `shares` are the engine's.
    pub fn followed(campaign: &str, path: &Path, shares: Arc<dyn Shares>) -> Self {
        Self::new(campaign, path, Source::Followed(shares))
    }

    fn new(campaign: &str, path: &Path, source: Source) -> Self {
        Self {
            campaign: campaign.to_owned(),
            path: path.to_owned(),
            source,
            progress: RwLock::default(),
        }
    }

    fn progress(&self) -> RwLockReadGuard<'_, Progress> {
        self.progress.read().unwrap_or_else(|p| p.into_inner())
    }

    fn progress_mut(&self) -> RwLockWriteGuard<'_, Progress> {
        self.progress.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds lines written to the recording, in order, once they are in the file.
    pub fn add(&self, lines: &[IndexedLine]) {
        let mut progress = self.progress_mut();
        for line in lines {
            progress.add(line);
        }
    }

    /// Indexes the whole lines appended since the last call; returns how many records it added.
    /// An index the engine keeps is always up to date: nothing to read.
    pub fn extend(&self) -> io::Result<u64> {
        let Source::Read { shares, reading } = &self.source else {
            return Ok(0);
        };
        let _one_reader = reading.lock().unwrap_or_else(|p| p.into_inner());
        let start = self.indexed_bytes();
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut lines = Lines::new(BufReader::with_capacity(1 << 20, file), start);
        let mut added = 0;
        let mut chunk = Vec::with_capacity(CHECKPOINT_EVERY as usize);
        loop {
            // Lines are parsed without the lock and published a chunk at a time.
            chunk.clear();
            let mut end = None;
            for line in lines.by_ref().take(CHECKPOINT_EVERY as usize) {
                let line = line?;
                end = Some(line.end);
                if let Ok(record) = line.record {
                    learn(shares, &record);
                    let draws = shares.draws(&record);
                    chunk.push(IndexedLine::new(line.offset, line.end, &record, draws));
                }
            }
            let Some(end) = end else { break };
            let mut progress = self.progress_mut();
            for line in &chunk {
                progress.add(line);
            }
            // Lines that are not records are passed too.
            progress.indexed_bytes = end;
            added += chunk.len() as u64;
        }
        Ok(added)
    }

    fn shares(&self) -> &dyn Shares {
        match &self.source {
            Source::Followed(shares) => shares.as_ref(),
            Source::Read { shares, .. } => shares,
        }
    }

    /// Bytes of whole lines indexed: readers stop there.
    pub fn indexed_bytes(&self) -> u64 {
        self.progress().indexed_bytes
    }

    /// Records indexed so far.
    pub fn records(&self) -> u64 {
        self.progress().records
    }

    /// Arcs in the recording so far: the last `seq`.
    pub fn arcs(&self) -> u64 {
        self.progress().arcs
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
        let progress = self.progress();
        let after = progress.checkpoints.partition_point(before);
        progress
            .checkpoints
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
        let progress = self.progress();
        Some((progress.first_ts?, progress.clock?))
    }

    /// Activity per minute from `from` (inclusive) to `to` (exclusive).
    pub fn minutes(&self, from: i64, to: i64) -> Vec<(i64, TimelineBucket)> {
        let (first, last) = (from.div_euclid(MINUTE_MS), to.div_euclid(MINUTE_MS));
        self.progress()
            .minutes
            .range(first..last.max(first) + 1)
            .map(|(minute, bucket)| (minute * MINUTE_MS, *bucket))
            .collect()
    }

    /// Whether a record of this recording draws an arc, by the one rule (nothing built).
    pub fn draws(&self, record: &RecordedEvent) -> bool {
        self.shares().draws(record)
    }

    /// The arc a record of this recording draws as arc number `seq`, by the one rule.
    pub fn arc_of(&self, record: &RecordedEvent, seq: u64) -> Option<ArcEvent> {
        self.shares().arc_of(record, seq)
    }
}
