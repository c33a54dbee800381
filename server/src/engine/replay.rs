//! Recorded events back into the arcs they made, by the same rules as live ingest.

use std::sync::Arc;

use viralglobe_protocol::{ArcEvent, RecordedEvent};

use super::{
    ledger::{Ledger, Sink},
    tree::ShareTree,
};

/// Replays one campaign recording from its start, with a share tree of its own.
pub struct Replayer {
    ledger: Ledger,
}

impl Default for Replayer {
    fn default() -> Self {
        Self {
            ledger: Ledger::new(Arc::new(ShareTree::new()), usize::MAX),
        }
    }
}

impl Replayer {
    /// Applies one recorded event; appends the arcs it resolves (none, one, or more when it was
    /// the share that others waited for).
    pub fn apply(&mut self, record: RecordedEvent, arcs: &mut Vec<ArcEvent>) {
        let place = record.at.map(Arc::new);
        let mut sink = Sink {
            recorder: None,
            arcs: Some(arcs),
        };
        // Nothing is written while replaying, so this cannot fail.
        let _ = self.ledger.apply(record.event, place, &mut sink);
    }
}
