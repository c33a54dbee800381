//! The tracked links the recordings hold: code → the share it belongs to and where it leads.
//!
//! Filled by [`super::ledger::Ledger::follow`] from every share line that carries a `link`, so a
//! restart, a node following the cluster log and live ingest all know the same links. Readers (the
//! redirect) never take the engine's lock.

use std::sync::Arc;

use viralglobe_protocol::{ShareEvent, Timestamp};

use crate::fast_hash::FastDashMap;

/// What one link leads to (its code is the key it is found by).
#[derive(Debug)]
pub struct Link {
    pub share: Box<str>,
    pub campaign: Arc<str>,
    pub destination: Box<str>,
    pub channel: Box<str>,
    pub sharer: Box<str>,
    pub parent: Option<Box<str>>,
    pub ts: Timestamp,
}

#[derive(Debug, Default)]
pub struct Links {
    by_code: FastDashMap<Box<str>, Arc<Link>>,
}

impl Links {
    pub fn get(&self, code: &str) -> Option<Arc<Link>> {
        self.by_code.get(code).map(|l| l.clone())
    }

    /// Notes `share`'s link, if it has one; the first share to claim a code keeps it (a held
    /// share's line and the line that resolves it carry the same link).
    pub(super) fn follow(&self, share: &ShareEvent, campaign: &Arc<str>) {
        let Some(link) = &share.link else { return };
        self.by_code
            .entry(link.code.as_str().into())
            .or_insert_with(|| {
                Arc::new(Link {
                    share: share.id.as_str().into(),
                    campaign: campaign.clone(),
                    destination: link.destination.as_str().into(),
                    channel: share.channel.as_str().into(),
                    sharer: share.sharer.as_str().into(),
                    parent: share.parent.as_deref().map(Into::into),
                    ts: share.ts,
                })
            });
    }
}
