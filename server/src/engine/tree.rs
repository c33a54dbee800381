//! The share tree: every resolved share, by id, with what its arcs and stats need.
//!
//! It holds one entry per share for ever, so an entry is kept small (see BENCHMARKS.md, "a tracked
//! share"): the id inline when it is short, what a node repeats (its campaign, its root, its
//! channel with its sharer's kind) as one pointer each, reach in one word. A node is 56 bytes;
//! with its key, a table slot is 80.

use std::{borrow::Borrow, fmt, ops::Deref, sync::Arc};

use smol_str::SmolStr;
use viralglobe_protocol::{Place, Timestamp, rule::ShareFacts};

/// A name that many shares repeat (campaign, root), interned by the ledger: a thin pointer to the
/// one `Arc<str>` of its text, half the size of an `Arc<str>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Name(Arc<Arc<str>>);

impl Name {
    pub(super) fn new(text: Arc<str>) -> Self {
        Self(Arc::new(text))
    }

    /// The text as the `Arc<str>` every holder of this name shares.
    pub(super) fn arc(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// A share's reach, if it has one, in one word: `u64::MAX` is none (a reach that large is kept as
/// one less).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Reach(u64);

impl Reach {
    pub(super) fn new(reach: Option<u64>) -> Self {
        Self(reach.map_or(u64::MAX, |r| r.min(u64::MAX - 1)))
    }

    pub(super) fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }
}

impl fmt::Debug for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// Where a share came from: its channel and its sharer's kind. There are few distinct pairs, so
/// the ledger interns each and nodes point to it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Via {
    pub channel: Arc<str>,
    pub sharer_kind: Option<Arc<str>>,
}

/// A resolved share. Places are shared with the geo cache.
#[derive(Debug, Clone)]
pub(super) struct ShareNode {
    pub campaign: Name,
    pub root: Name,
    pub via: Arc<Via>,
    pub place: Option<Arc<Place>>,
    pub reach: Reach,
    /// When it was shared: delays to its clicks and conversions count from here.
    pub ts: Timestamp,
    pub generation: u32,
}

/// Share ids are global: clicks and conversions name only the share, not its campaign. An id of
/// up to 23 bytes is kept inline.
pub(super) type ShareTree = crate::fast_hash::FastDashMap<SmolStr, ShareNode>;

impl ShareFacts for ShareNode {
    fn place(&self) -> Option<&Place> {
        self.place.as_deref()
    }
    fn channel(&self) -> &str {
        &self.via.channel
    }
    fn sharer_kind(&self) -> Option<&str> {
        self.via.sharer_kind.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_and_its_key_stay_small() {
        assert_eq!(std::mem::size_of::<ShareNode>(), 56);
        assert_eq!(std::mem::size_of::<(SmolStr, ShareNode)>(), 80);
    }

    #[test]
    fn reach_keeps_none_apart_from_every_reach() {
        for reach in [None, Some(0), Some(4_200_000), Some(u64::MAX - 1)] {
            assert_eq!(Reach::new(reach).get(), reach);
        }
        assert_eq!(Reach::new(Some(u64::MAX)).get(), Some(u64::MAX - 1));
    }
}
