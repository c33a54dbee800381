//! The index of one campaign recording, built on first open and extended as the file grows: the
//! shares (so an arc anywhere in the file can be drawn without replaying what came before), a
//! checkpoint every [`CHECKPOINT_EVERY`] records (so a seek reads at most that many lines), and
//! activity per minute (for timelines).

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{self, BufRead, BufReader, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Arc,
};

use viralglobe_protocol::{ArcEvent, ArcKind, InputEvent, Place, RecordedEvent, TimelineBucket};

/// Records between two checkpoints: a seek parses at most this many lines.
pub const CHECKPOINT_EVERY: u64 = 1_024;
const MINUTE_MS: i64 = 60_000;

/// What an arc needs to know about a share.
#[derive(Debug, Clone)]
pub struct ShareInfo {
    pub place: Option<Place>,
    pub parent: Option<Arc<str>>,
    /// As recorded; absent for a share recorded before its parent (worked out from `parent`).
    pub generation: Option<u32>,
    pub root: Option<Arc<str>>,
    pub channel: Arc<str>,
    pub sharer_kind: Option<Arc<str>>,
}

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
    pub shares: HashMap<Arc<str>, ShareInfo>,
    checkpoints: Vec<Checkpoint>,
    minutes: BTreeMap<i64, TimelineBucket>,
    /// Bytes of whole lines indexed so far; a reader never goes past them.
    pub indexed_bytes: u64,
    records: u64,
    arcs: u64,
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
            shares: HashMap::new(),
            checkpoints: Vec::new(),
            minutes: BTreeMap::new(),
            indexed_bytes: 0,
            records: 0,
            arcs: 0,
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
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (mut line, before) = (Vec::new(), self.records);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break; // the end, or a line still being written
            }
            let offset = self.indexed_bytes;
            self.indexed_bytes += n as u64;
            let Ok(record) = serde_json::from_slice::<RecordedEvent>(&line) else {
                continue; // the server logged it when it rebuilt its state
            };
            if self.records.is_multiple_of(CHECKPOINT_EVERY) {
                self.checkpoints.push(Checkpoint {
                    offset,
                    clock_before: self.clock.unwrap_or(i64::MIN),
                    arcs_before: self.arcs,
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
        if let InputEvent::Share(share) = &record.event {
            self.shares.insert(
                share.id.as_str().into(),
                ShareInfo {
                    place: record.at.clone(),
                    parent: share.parent.as_deref().map(Arc::from),
                    generation: record.generation,
                    root: record.root.as_deref().map(Arc::from),
                    channel: share.channel.as_str().into(),
                    sharer_kind: share.sharer_kind.as_deref().map(Arc::from),
                },
            );
        }
        let bucket = self.minutes.entry(ts.div_euclid(MINUTE_MS)).or_default();
        match &record.event {
            InputEvent::Share(_) => bucket.count(ArcKind::Share, None, 0),
            InputEvent::Click(_) => bucket.count(ArcKind::Click, None, 0),
            InputEvent::Conversion(c) => {
                bucket.count(ArcKind::Conversion, Some(&c.goal), c.value_cents);
            }
        }
        if self.arc_of(record, 0).is_some() {
            self.arcs += 1;
        }
    }

    /// The last checkpoint from which reading reaches campaign time `ts` without missing an event
    /// at or after it.
    pub fn checkpoint_for(&self, ts: i64) -> Checkpoint {
        let after = self.checkpoints.partition_point(|c| c.clock_before < ts);
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

    /// The arc a record draws, by the live feed's rules: clicks and child shares run out from
    /// their share, conversions run back to it, a root share is a point. `None` when the arc's
    /// end has no known place.
    pub fn arc_of(&self, record: &RecordedEvent, seq: u64) -> Option<ArcEvent> {
        let (kind, share_id, goal, value_cents) = match &record.event {
            InputEvent::Share(s) => (ArcKind::Share, s.id.as_str(), None, None),
            InputEvent::Click(c) => (ArcKind::Click, c.share.as_str(), None, None),
            InputEvent::Conversion(c) => (
                ArcKind::Conversion,
                c.share.as_str(),
                Some(c.goal.clone()),
                Some(c.value_cents),
            ),
        };
        let share = self.shares.get(share_id)?;
        let (from, to) = match kind {
            ArcKind::Share => {
                let parent = share.parent.as_deref().and_then(|p| self.shares.get(p));
                (parent.and_then(|p| p.place.clone()), record.at.clone()?)
            }
            ArcKind::Click => (share.place.clone(), record.at.clone()?),
            ArcKind::Conversion => (record.at.clone(), share.place.clone()?),
        };
        let (generation, root) = self.lineage(share_id, share);
        Some(ArcEvent {
            seq,
            kind,
            goal,
            campaign: self.campaign.clone(),
            share: share_id.to_owned(),
            root,
            generation,
            channel: share.channel.to_string(),
            sharer_kind: share.sharer_kind.as_deref().map(str::to_owned),
            value_cents,
            ts: record.event.ts(),
            from,
            to,
        })
    }

    /// Generation and root of a share: as recorded, or by walking up its parents when it was
    /// recorded before them.
    fn lineage(&self, id: &str, share: &ShareInfo) -> (u32, String) {
        if let (Some(generation), Some(root)) = (share.generation, share.root.as_deref()) {
            return (generation, root.to_owned());
        }
        let (mut id, mut share, mut depth) = (id, share, 0u32);
        while let Some(parent_id) = share.parent.as_deref() {
            let Some(parent) = self.shares.get(parent_id) else {
                break;
            };
            depth += 1;
            if let (Some(generation), Some(root)) = (parent.generation, parent.root.as_deref()) {
                return (generation + depth, root.to_owned());
            }
            (id, share) = (parent_id, parent);
            if depth > 10_000 {
                break; // a cycle the server would have refused; do not loop on a hand-edited file
            }
        }
        (depth, id.to_owned())
    }
}
