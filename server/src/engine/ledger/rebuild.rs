//! The end of a restart: what the recorded lines leave waiting or unresolved.

use viralglobe_protocol::RecordedEvent;

use super::*;
use crate::recording::RecordingError;

impl Ledger {
    /// After a restart has followed every recorded line: links the shares still waiting to their
    /// parents, and resolves what a crash left unresolved though its share had arrived (the
    /// resolution lines are written now). Returns the journal entries still waiting.
    pub(crate) fn finish_rebuild(
        &mut self,
        sink: &mut Sink<'_>,
    ) -> Result<Rebuilt, RecordingError> {
        let expired = self.rebuild.take().map(|r| r.expired).unwrap_or_default();
        // Followed campaign after campaign: the waits go back in the order they began (lines
        // without `held_at` all began now, and keep the order they were followed in).
        self.waiting_since
            .make_contiguous()
            .sort_by_key(|(since, _)| *since);
        let mut parents: Vec<(Box<str>, Box<str>)> = self
            .pending_shares
            .iter()
            .filter_map(|(id, p)| Some((p.event.parent.as_deref()?.into(), id.clone())))
            .collect();
        parents.sort();
        for (parent, child) in parents {
            let campaign = |id: &str| self.pending_shares.get(id).map(|p| p.campaign.clone());
            if campaign(&parent).is_some() && campaign(&parent) == campaign(&child) {
                self.chain_links.insert(child.clone(), parent.clone());
            }
            self.waiting_children.entry(parent).or_default().push(child);
        }
        let mut ready: Vec<Box<str>> = self
            .waiting_children
            .keys()
            .chain(self.held_actions.keys())
            .filter(|id| self.shares.contains_key(&***id))
            .cloned()
            .collect();
        ready.sort();
        ready.dedup();
        for id in ready {
            self.release_waiting(id, sink)?;
        }
        let mut still_held: Vec<RecordedEvent> = self
            .held_actions
            .values()
            .flatten()
            .map(|a| RecordedEvent {
                event: a.event.clone(),
                campaign: None,
                at: a.place.as_deref().cloned(),
                generation: None,
                root: None,
                hold: Some(a.hold),
                held_at: a.held_at,
                given_up: false,
            })
            .collect();
        still_held.sort_by_key(|r| r.hold);
        Ok(Rebuilt {
            still_held,
            expired,
        })
    }
}
