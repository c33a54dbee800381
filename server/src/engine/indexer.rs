//! The indexes of the recordings the engine writes, kept as it writes them: opening a replay then
//! reads nothing. The engine's share tree answers for the shares their lines name.

use std::{ops::Range, path::PathBuf, sync::Arc};

use viralglobe_protocol::RecordedEvent;

use super::tree::ShareTree;
use crate::recording::{
    self,
    index::{IndexedLine, KeptIndexes, RecordingIndex, Shares},
};

pub(super) struct Indexer {
    data_dir: PathBuf,
    shares: Arc<dyn Shares>,
    kept: KeptIndexes,
    /// Lines written since the last commit, by campaign: indexed once they are in the file.
    written: Vec<(Arc<str>, IndexedLine)>,
}

impl Indexer {
    pub(super) fn new(data_dir: PathBuf, tree: Arc<ShareTree>) -> Self {
        Self {
            data_dir,
            // A line only names shares resolved above it in the same recording (the engine
            // resolves a click or a child share once its share is in the tree, and a share's
            // campaign is its lines'), so the tree's later growth changes no arc.
            shares: tree,
            kept: KeptIndexes::default(),
            written: Vec::new(),
        }
    }

    pub(super) fn kept(&self) -> KeptIndexes {
        self.kept.clone()
    }

    /// The share facts every index the engine keeps draws with.
    pub(super) fn shares(&self) -> Arc<dyn Shares> {
        self.shares.clone()
    }

    /// A line of `campaign`'s recording at `bytes`, which draws an arc or not (`draws`).
    pub(super) fn written(
        &mut self,
        campaign: &Arc<str>,
        bytes: Range<u64>,
        record: &RecordedEvent,
        draws: bool,
    ) {
        let line = IndexedLine::new(bytes.start, bytes.end, record, draws);
        self.written.push((campaign.clone(), line));
    }

    /// A line of `campaign`'s recording read at start: in its file already.
    pub(super) fn read(
        &mut self,
        campaign: &Arc<str>,
        bytes: Range<u64>,
        record: &RecordedEvent,
        draws: bool,
    ) {
        self.written(campaign, bytes, record, draws);
        if self.written.len() >= 4_096 {
            self.committed();
        }
    }

    /// The lines written are in their files now: index them.
    pub(super) fn committed(&mut self) {
        let mut written = std::mem::take(&mut self.written);
        let mut lines = Vec::new();
        let mut each = written.drain(..).peekable();
        while let Some((campaign, line)) = each.next() {
            lines.clear();
            lines.push(line);
            while let Some((_, line)) = each.next_if(|(next, _)| *next == campaign) {
                lines.push(line);
            }
            self.index(&campaign).add(&lines);
        }
        drop(each);
        self.written = written;
    }

    /// The lines written did not all reach their files (ingest stops): forget them.
    pub(super) fn failed(&mut self) {
        self.written.clear();
    }

    fn index(&self, campaign: &str) -> Arc<RecordingIndex> {
        if let Some(index) = self.kept.get(campaign) {
            return index.clone();
        }
        let path = recording::campaign_path(&self.data_dir, campaign);
        let index = Arc::new(RecordingIndex::followed(
            campaign,
            &path,
            self.shares.clone(),
        ));
        self.kept.insert(campaign.into(), index.clone());
        index
    }
}
