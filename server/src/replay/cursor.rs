//! A reading position in a campaign recording, turning records into arcs in order.

use std::{
    fs::File,
    io::{self, BufReader, Seek, SeekFrom},
};

use viralglobe_protocol::{ArcEvent, LiveFilter, RecordedEvent};

use crate::recording::{
    Lines,
    index::{Checkpoint, RecordingIndex},
};

pub(crate) struct Cursor {
    lines: Lines<BufReader<File>>,
    /// Latest timestamp read so far (the replay clock of the reading position).
    clock: i64,
    /// Arcs made so far from the campaign's start (filtered out or not).
    arcs: u64,
    /// A record read but not yet due.
    pending: Option<RecordedEvent>,
}

/// How far one [`Cursor::advance`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Every record up to the asked time was read.
    Reached,
    /// The arc limit was hit first.
    Limited,
    /// Every indexed record was read.
    End,
}

impl Cursor {
    /// A cursor on the first record whose running clock is at or after `ts`.
    pub(crate) fn seek(index: &RecordingIndex, ts: i64) -> io::Result<Self> {
        let mut cursor = Self::at(index, index.checkpoint_for(ts))?;
        // Skip what comes before `ts`, counting its arcs so `seq` stays the campaign's.
        while let Some(record) = cursor.read(index)? {
            let ts_of = record.event.ts().0;
            if cursor.clock.max(ts_of) >= ts {
                cursor.pending = Some(record);
                break;
            }
            cursor.clock = cursor.clock.max(ts_of);
            if index.draws(&record) {
                cursor.arcs += 1;
            }
        }
        Ok(cursor)
    }

    /// A cursor on the record that draws arc `since + 1` (or the end, if there is none yet).
    pub(crate) fn seek_seq(index: &RecordingIndex, since: u64) -> io::Result<Self> {
        let checkpoint = index.checkpoint_for_seq(since);
        let mut cursor = Self::at(index, checkpoint)?;
        while let Some(record) = cursor.read(index)? {
            let draws = index.draws(&record);
            if draws && cursor.arcs >= since {
                cursor.pending = Some(record);
                break;
            }
            cursor.clock = cursor.clock.max(record.event.ts().0);
            cursor.arcs += u64::from(draws);
        }
        Ok(cursor)
    }

    fn at(index: &RecordingIndex, checkpoint: Checkpoint) -> io::Result<Self> {
        let mut file = File::open(&index.path)?;
        file.seek(SeekFrom::Start(checkpoint.offset))?;
        let reader = BufReader::with_capacity(256 * 1024, file);
        Ok(Self {
            lines: Lines::new(reader, checkpoint.offset),
            clock: checkpoint.clock_before,
            arcs: checkpoint.arcs_before,
            pending: None,
        })
    }

    /// The `seq` of the last arc passed.
    pub(crate) fn arcs(&self) -> u64 {
        self.arcs
    }

    /// The replay clock at the reading position.
    pub(crate) fn clock(&self) -> i64 {
        self.clock
    }

    /// Appends the arcs of records due by `until` (running clock at or before it) and numbered
    /// at most `last_seq` that `filter` wants, at most `limit` of them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn advance(
        &mut self,
        index: &RecordingIndex,
        until: i64,
        last_seq: u64,
        filter: &LiveFilter,
        limit: usize,
        out: &mut Vec<ArcEvent>,
    ) -> io::Result<Progress> {
        let mut taken = 0;
        loop {
            let record = match self.pending.take() {
                Some(record) => record,
                None => match self.read(index)? {
                    Some(record) => record,
                    None => return Ok(Progress::End),
                },
            };
            let clock = self.clock.max(record.event.ts().0);
            if clock > until {
                self.pending = Some(record);
                return Ok(Progress::Reached);
            }
            if taken >= limit {
                self.pending = Some(record);
                return Ok(Progress::Limited);
            }
            let arc = index.arc_of(&record, self.arcs + 1);
            if arc.is_some() && self.arcs >= last_seq {
                self.pending = Some(record);
                return Ok(Progress::Reached);
            }
            self.clock = clock;
            if let Some(arc) = arc {
                self.arcs += 1;
                if filter.wants_arc(&arc) {
                    out.push(arc);
                    taken += 1;
                }
            }
        }
    }

    /// [`Cursor::advance`] in a recording that may be growing: at the end of what was indexed,
    /// an index read from the file takes in what has been appended since, and reading goes on
    /// (one the engine keeps has it already).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn advance_growing(
        &mut self,
        index: &RecordingIndex,
        until: i64,
        last_seq: u64,
        filter: &LiveFilter,
        limit: usize,
        out: &mut Vec<ArcEvent>,
    ) -> io::Result<Progress> {
        let progress = self.advance(index, until, last_seq, filter, limit, out)?;
        if progress == Progress::End && index.extend()? > 0 {
            return self.advance(index, until, last_seq, filter, limit, out);
        }
        Ok(progress)
    }

    /// The next record within the indexed part of the file.
    fn read(&mut self, index: &RecordingIndex) -> io::Result<Option<RecordedEvent>> {
        self.lines.stop_at(index.indexed_bytes());
        self.lines.next_record()
    }
}
