//! The share tree: every resolved share, by id, with what its arcs and stats need.

use std::sync::Arc;

use viralglobe_protocol::{Place, Timestamp, rule::ShareFacts};

/// A resolved share. Strings that repeat across shares (campaign, channel, kind, root) are
/// shared `Arc<str>`s and places are shared with the geo cache, to keep a node small.
#[derive(Debug, Clone)]
pub struct ShareNode {
    pub campaign: Arc<str>,
    pub generation: u32,
    pub root: Arc<str>,
    pub place: Option<Arc<Place>>,
    pub channel: Arc<str>,
    pub sharer_kind: Option<Arc<str>>,
    pub reach: Option<u64>,
    /// When it was shared: delays to its clicks and conversions count from here.
    pub ts: Timestamp,
}

/// Share ids are global: clicks and conversions name only the share, not its campaign.
pub type ShareTree = crate::fast_hash::FastDashMap<Box<str>, ShareNode>;

impl ShareFacts for ShareNode {
    fn place(&self) -> Option<&Place> {
        self.place.as_deref()
    }
    fn channel(&self) -> &str {
        &self.channel
    }
    fn sharer_kind(&self) -> Option<&str> {
        self.sharer_kind.as_deref()
    }
}
