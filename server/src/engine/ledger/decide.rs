//! Deciding (live ingest): what an incoming event means — duplicate, held, rejected, which
//! generation — and the lines that say so: the event itself, and the resolution of everything
//! that was waiting for it.

use std::sync::Arc;

use viralglobe_protocol::{InputError, InputEvent, Place, RecordedEvent, ShareEvent};

use super::{lines::*, *};
use crate::engine::seen::HELD;
use crate::recording::RecordingError;

impl Ledger {
    /// Decides what `event` means and writes the lines that say so. Errors are recording
    /// failures; a rejected event is an `Outcome`.
    pub(crate) fn apply(
        &mut self,
        event: InputEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, RecordingError> {
        match event {
            InputEvent::Share(share) => self.apply_share(share, place, sink),
            action => self.apply_action(action, place, sink),
        }
    }

    pub(super) fn apply_share(
        &mut self,
        share: ShareEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, RecordingError> {
        if self.shares.contains_key(share.id.as_str())
            || self.pending_shares.contains_key(share.id.as_str())
        {
            return Ok(Outcome::Duplicate);
        }
        let campaign = self.intern(&share.campaign);
        let Some(parent_id) = share.parent.clone() else {
            let root = share.id.clone();
            let id: Box<str> = share.id.as_str().into();
            self.write(
                share_line(share, &campaign, &place, Some((0, root))),
                place,
                sink,
            )?;
            self.release_waiting(id, sink)?;
            return Ok(Outcome::Accepted);
        };
        let parent = self
            .shares
            .get(parent_id.as_str())
            .map(|p| (p.campaign.clone(), p.generation + 1, p.root.to_string()));
        if let Some((parent_campaign, generation, root)) = parent {
            if *parent_campaign != *campaign {
                return Ok(Outcome::Rejected(rejected(
                    "parent",
                    format!("share `{parent_id}` belongs to campaign `{parent_campaign}`"),
                )));
            }
            let id: Box<str> = share.id.as_str().into();
            let line = share_line(share, &campaign, &place, Some((generation, root)));
            self.write(line, place, sink)?;
            self.release_waiting(id, sink)?;
            return Ok(Outcome::Accepted);
        }
        if let Some(error) = self.check_pending_chain(&share, &campaign, &parent_id) {
            return Ok(Outcome::Rejected(error));
        }
        if self.held() >= self.limits.max {
            return Ok(Outcome::Rejected(held_limit(
                "parent",
                &parent_id,
                self.limits.max,
            )));
        }
        if self.held_in(&campaign) >= self.limits.max_per_campaign {
            return Ok(Outcome::Rejected(rejected(
                "parent",
                format!(
                    "share `{parent_id}` has not arrived and {} events of campaign `{campaign}` \
                     already wait (--max-held-per-campaign)",
                    self.limits.max_per_campaign
                ),
            )));
        }
        let id: Box<str> = share.id.as_str().into();
        let mut line = share_line(share, &campaign, &place, None);
        line.held_at = self.stamp_waits.then_some(self.now_ms);
        self.write(line, place, sink)?;
        self.link_waiting(&id, &parent_id, &campaign);
        self.waiting_children
            .entry(parent_id.into())
            .or_default()
            .push(id);
        Ok(Outcome::Held)
    }

    /// Why a share whose parent has not arrived cannot wait for it: a waiting parent in another
    /// campaign, or a chain of waiting ancestors that leads back to the share (a cycle). A chain
    /// is all of one campaign (each link was checked), and it waits for one missing share: the
    /// parent of its top, found through [`Ledger::chain_top`] in near-constant time.
    pub(super) fn check_pending_chain(
        &mut self,
        share: &ShareEvent,
        campaign: &str,
        parent_id: &str,
    ) -> Option<InputError> {
        let parent = self.pending_shares.get(parent_id)?;
        if *parent.campaign != *campaign {
            return Some(rejected(
                "parent",
                format!(
                    "share `{parent_id}` belongs to campaign `{}`",
                    parent.campaign
                ),
            ));
        }
        let top = self.chain_top(parent_id);
        let waits_for = self
            .pending_shares
            .get(&*top)
            .and_then(|t| t.event.parent.as_deref())?;
        if waits_for == share.id {
            return Some(rejected(
                "parent",
                format!(
                    "would make a cycle: {} → {parent_id} → … → {top} → {}",
                    share.id, share.id
                ),
            ));
        }
        // A chain's top is not linked further up only when its parent is missing or waits in
        // another campaign.
        let other = self.pending_shares.get(waits_for)?;
        Some(rejected(
            "parent",
            format!(
                "share `{waits_for}` belongs to campaign `{}`",
                other.campaign
            ),
        ))
    }

    /// The top of the chain of waiting shares that `id` (waiting) belongs to: the waiting ancestor
    /// whose own parent has not arrived. Links are compressed as they are followed.
    pub(super) fn chain_top(&mut self, id: &str) -> Box<str> {
        let mut path = Vec::new();
        let mut at: Box<str> = id.into();
        while let Some(next) = self.chain_links.get(&at) {
            if !self.pending_shares.contains_key(next) {
                break;
            }
            path.push(at);
            at = next.clone();
        }
        for below in path {
            self.chain_links.insert(below, at.clone());
        }
        at
    }

    /// A share starts waiting: it joins its waiting parent's chain, and the chains of its campaign
    /// that waited for it (their tops had it as parent) join its own. A chain stays within one
    /// campaign.
    pub(super) fn link_waiting(&mut self, id: &str, parent_id: &str, campaign: &str) {
        let same = |p: &PendingShare| *p.campaign == *campaign;
        if self.pending_shares.get(parent_id).is_some_and(same) {
            self.chain_links.insert(id.into(), parent_id.into());
        }
        for child in self.waiting_children.get(id).into_iter().flatten() {
            if self.pending_shares.get(child).is_some_and(same) {
                self.chain_links.insert(child.clone(), id.into());
            }
        }
    }

    /// Resolves everything that waited for the share `id`, which has just resolved: its pending
    /// children (and theirs, depth first), and the clicks and conversions held for each.
    pub(super) fn release_waiting(
        &mut self,
        id: Box<str>,
        sink: &mut Sink<'_>,
    ) -> Result<(), RecordingError> {
        let mut resolved = vec![id];
        while let Some(id) = resolved.pop() {
            let Some(node) = self.shares.get(&*id).map(|n| n.clone()) else {
                continue;
            };
            // What waited was taken out of memory above: a failure from here on may leave
            // memory ahead of the recordings, so it is never one to simply try again.
            for action in self.held_actions.remove(&id).unwrap_or_default() {
                self.forget_held(&action);
                let repeated = action
                    .event
                    .id()
                    .is_some_and(|i| self.seen(&action.event).contains(&node.campaign, i));
                let line = if repeated {
                    // Its id is its campaign's already: given up as a duplicate, in the journal.
                    metrics::counter!("viralglobe_held_duplicates_total").increment(1);
                    held_given_up(&action)
                } else {
                    action_line(action.event, &node, &action.place, Some(action.hold))
                };
                self.write(line, action.place, sink)
                    .map_err(RecordingError::after_writing)?;
            }
            for child_id in self.waiting_children.remove(&id).unwrap_or_default() {
                let Some(child) = self.pending_shares.get(&child_id) else {
                    continue;
                };
                if child.event.parent.as_deref() != Some(&*id) {
                    // It expired, and a share with its id waits again, for another parent.
                    continue;
                }
                if *child.campaign != *node.campaign {
                    // Its parent arrived in another campaign: it can never resolve. It stays in
                    // its campaign's recording as an unresolved share, given up.
                    tracing::warn!(share = %child_id, parent = %id, "a waiting share's parent arrived in another campaign; it stays unresolved");
                    metrics::counter!("viralglobe_unresolvable_shares_total").increment(1);
                    let (line, place) = (give_up_share(child), child.place.clone());
                    self.write(line, place, sink)
                        .map_err(RecordingError::after_writing)?;
                    continue;
                }
                let (event, place) = (child.event.clone(), child.place.clone());
                let resolved_as = Some((node.generation + 1, node.root.to_string()));
                let line = share_line(event, &node.campaign, &place, resolved_as);
                self.write(line, place, sink)
                    .map_err(RecordingError::after_writing)?;
                resolved.push(child_id);
            }
        }
        Ok(())
    }

    pub(super) fn apply_action(
        &mut self,
        event: InputEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, RecordingError> {
        let node = self.shares.get(share_of(&event)).map(|n| n.clone());
        // An id is unique in its campaign (its share's); while its share has not arrived, among
        // the events that wait.
        let scope = node.as_ref().map_or(HELD, |n| &*n.campaign);
        if let Some(id) = event.id()
            && self.seen(&event).contains(scope, id)
        {
            return Ok(Outcome::Duplicate);
        }
        if let Some(node) = node {
            let line = action_line(event, &node, &place, None);
            self.write_known(line, place, sink, Some(node))?;
            return Ok(Outcome::Accepted);
        }
        if self.held() >= self.limits.max {
            return Ok(Outcome::Rejected(held_limit(
                "share",
                share_of(&event),
                self.limits.max,
            )));
        }
        // Its share waits for its parent: the campaign is known, and its budget bounds this too.
        let campaign = self
            .pending_shares
            .get(share_of(&event))
            .map(|p| p.campaign.clone());
        if let Some(campaign) = &campaign
            && self.held_in(campaign) >= self.limits.max_per_campaign
        {
            return Ok(Outcome::Rejected(campaign_held_limit(
                campaign,
                self.limits.max_per_campaign,
            )));
        }
        let line = RecordedEvent {
            event,
            campaign: None,
            at: place.as_deref().cloned(),
            generation: None,
            root: None,
            hold: Some(self.next_hold),
            held_at: self.stamp_waits.then_some(self.now_ms),
            given_up: false,
        };
        self.write(line, place, sink)?;
        Ok(Outcome::Held)
    }

    pub(super) fn seen(&mut self, event: &InputEvent) -> &mut SeenIds {
        match event {
            InputEvent::Click(_) => &mut self.seen_clicks,
            _ => &mut self.seen_conversions,
        }
    }

    /// Records a line (in its campaign, or the journal), then follows it.
    pub(super) fn write(
        &mut self,
        line: RecordedEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<(), RecordingError> {
        self.write_known(line, place, sink, None)
    }

    /// [`Ledger::write`] of a click or conversion whose share's node was just looked up.
    fn write_known(
        &mut self,
        line: RecordedEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
        share: Option<ShareNode>,
    ) -> Result<(), RecordingError> {
        let campaign = line.campaign.as_deref().map(|c| self.intern(c));
        let bytes = sink.recorder.append(campaign.as_ref(), &line)?;
        match campaign {
            Some(campaign) => {
                let arc = self.follow_known(&line, place, share);
                sink.indexer.written(&campaign, bytes, &line, arc.is_some());
                if let Some(arc) = arc
                    && let Some(arcs) = sink.arcs.as_deref_mut()
                {
                    arcs.push(arc);
                }
            }
            None => {
                self.follow_journal(line, place);
            }
        }
        Ok(())
    }
}
