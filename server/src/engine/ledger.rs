//! The campaign state and the two ways it changes.
//!
//! - [`Ledger::apply`] *decides* what an incoming event means (duplicate, held, rejected, which
//!   generation) and writes the lines that say so: the event itself, and the resolution of
//!   everything that was waiting for it.
//! - [`Ledger::follow`] *applies* one recorded line: share tree, statistics, and the arc that
//!   [`viralglobe_protocol::rule`] draws from it with the campaign's next `seq`.
//!
//! Live ingest does both; a restart only follows the recorded lines, so it reaches the same state,
//! statistics and `seq` whatever limits were in force, and every other reader of the recording
//! draws the same arcs with the same rule.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use viralglobe_protocol::{
    ArcEvent, InputError, InputEvent, Place, RecordedEvent, ShareEvent,
    rule::{self, ShareFacts},
};

use super::{
    stats::CampaignStatsAccumulator,
    tree::{ShareNode, ShareTree},
};
use crate::recording::{Recorder, RecordingError};

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and recorded.
    Accepted,
    /// Recorded, and waiting for its share (or parent share) to arrive.
    Held,
    /// An event with this id was accepted before; acknowledged and ignored.
    Duplicate,
    Rejected(InputError),
}

/// Where the lines a decision writes go, and the arcs they draw.
pub(super) struct Sink<'a> {
    pub recorder: &'a mut Recorder,
    /// `None` while the state is rebuilt: nobody is subscribed yet.
    pub arcs: Option<&'a mut Vec<ArcEvent>>,
}

/// A share recorded before its parent arrived.
struct PendingShare {
    event: ShareEvent,
    place: Option<Arc<Place>>,
    campaign: Arc<str>,
}

/// A click or conversion in the held-event journal, waiting for its share.
struct HeldAction {
    hold: u64,
    event: InputEvent,
    place: Option<Arc<Place>>,
}

#[derive(Default)]
pub(super) struct CampaignLedger {
    /// The last arc's `seq`.
    pub seq: u64,
    pub stats: CampaignStatsAccumulator,
}

pub(super) struct Ledger {
    pub shares: Arc<ShareTree>,
    pub campaigns: HashMap<Arc<str>, CampaignLedger>,
    interned: HashSet<Arc<str>>,
    seen_clicks: HashSet<Box<str>>,
    seen_conversions: HashSet<Box<str>>,
    /// Shares whose parent has not arrived, by id.
    pending_shares: HashMap<Box<str>, PendingShare>,
    /// Parent id → ids of pending shares waiting for it.
    waiting_children: HashMap<Box<str>, Vec<Box<str>>>,
    /// Waiting share → a waiting ancestor in its chain (a union-find forest of the chains).
    chain_links: HashMap<Box<str>, Box<str>>,
    /// Share id → clicks and conversions waiting for it.
    held_actions: HashMap<Box<str>, Vec<HeldAction>>,
    held_action_count: usize,
    max_held: usize,
    next_hold: u64,
    /// Journal entries already resolved into a campaign recording: filled while a restart
    /// follows the campaign lines, read when it follows the journal, then dropped (`None`), so
    /// live operation keeps nothing per resolved hold.
    resolved_holds: Option<HashSet<u64>>,
}

fn rejected(field: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        field: Some(field),
        message: message.into(),
    }
}

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

impl Ledger {
    pub fn new(shares: Arc<ShareTree>, max_held: usize) -> Self {
        Self {
            shares,
            campaigns: HashMap::new(),
            interned: HashSet::new(),
            seen_clicks: HashSet::new(),
            seen_conversions: HashSet::new(),
            pending_shares: HashMap::new(),
            waiting_children: HashMap::new(),
            chain_links: HashMap::new(),
            held_actions: HashMap::new(),
            held_action_count: 0,
            max_held,
            next_hold: 1,
            resolved_holds: Some(HashSet::new()),
        }
    }

    /// Events waiting for their share or parent share.
    pub fn held(&self) -> usize {
        self.pending_shares.len() + self.held_action_count
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.interned.get(s) {
            return found.clone();
        }
        let new: Arc<str> = s.into();
        self.interned.insert(new.clone());
        new
    }

    // ---- Deciding (live ingest) ----

    /// Decides what `event` means and writes the lines that say so. Errors are recording
    /// failures; a rejected event is an `Outcome`.
    pub fn apply(
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

    fn apply_share(
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
            if parent_campaign != campaign {
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
        if self.held() >= self.max_held {
            return Ok(Outcome::Rejected(held_limit(
                "parent",
                &parent_id,
                self.max_held,
            )));
        }
        let id: Box<str> = share.id.as_str().into();
        self.write(share_line(share, &campaign, &place, None), place, sink)?;
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
    fn check_pending_chain(
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
    fn chain_top(&mut self, id: &str) -> Box<str> {
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
    fn link_waiting(&mut self, id: &str, parent_id: &str, campaign: &str) {
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
    fn release_waiting(&mut self, id: Box<str>, sink: &mut Sink<'_>) -> Result<(), RecordingError> {
        let mut resolved = vec![id];
        while let Some(id) = resolved.pop() {
            let Some(node) = self.shares.get(&id).map(|n| n.clone()) else {
                continue;
            };
            // What waited was taken out of memory above: a failure from here on may leave
            // memory ahead of the recordings, so it is never one to simply try again.
            for action in self.held_actions.remove(&id).unwrap_or_default() {
                self.held_action_count -= 1;
                let line = action_line(action.event, &node, &action.place, Some(action.hold));
                self.write(line, action.place, sink)
                    .map_err(RecordingError::after_writing)?;
            }
            for child_id in self.waiting_children.remove(&id).unwrap_or_default() {
                let Some(child) = self.pending_shares.get(&child_id) else {
                    continue;
                };
                if child.campaign != node.campaign {
                    // Its parent arrived in another campaign: it can never resolve. It stays in
                    // its campaign's recording as an unresolved share.
                    tracing::warn!(share = %child_id, parent = %id, "a waiting share's parent arrived in another campaign; it stays unresolved");
                    metrics::counter!("viralglobe_unresolvable_shares_total").increment(1);
                    self.pending_shares.remove(&child_id);
                    self.chain_links.remove(&child_id);
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

    fn apply_action(
        &mut self,
        event: InputEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, RecordingError> {
        if let Some(id) = event.id()
            && self.seen(&event).contains(id)
        {
            return Ok(Outcome::Duplicate);
        }
        if let Some(node) = self.shares.get(share_of(&event)).map(|n| n.clone()) {
            self.write(action_line(event, &node, &place, None), place, sink)?;
            return Ok(Outcome::Accepted);
        }
        if self.held() >= self.max_held {
            return Ok(Outcome::Rejected(held_limit(
                "share",
                share_of(&event),
                self.max_held,
            )));
        }
        let line = RecordedEvent {
            event,
            campaign: None,
            at: place.as_deref().cloned(),
            generation: None,
            root: None,
            hold: Some(self.next_hold),
        };
        self.write(line, place, sink)?;
        Ok(Outcome::Held)
    }

    fn seen(&mut self, event: &InputEvent) -> &mut HashSet<Box<str>> {
        match event {
            InputEvent::Click(_) => &mut self.seen_clicks,
            _ => &mut self.seen_conversions,
        }
    }

    /// Records a line (in its campaign, or the journal), then follows it.
    fn write(
        &mut self,
        line: RecordedEvent,
        place: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<(), RecordingError> {
        let campaign = line.campaign.as_deref().map(|c| self.intern(c));
        sink.recorder.append(campaign.as_ref(), &line)?;
        match campaign {
            Some(_) => {
                if let Some(arc) = self.follow(&line, place)
                    && let Some(arcs) = sink.arcs.as_deref_mut()
                {
                    metrics::counter!("viralglobe_arcs_total", "kind" => arc.kind.as_str())
                        .increment(1);
                    arcs.push(arc);
                }
            }
            None => {
                self.follow_journal(line, place);
            }
        }
        Ok(())
    }

    // ---- Following recorded lines (live and at restart) ----

    /// Applies one line of a campaign recording; returns the arc it draws. `place` is the line's
    /// `at`, shared with the geo cache when the line was just decided.
    pub fn follow(&mut self, line: &RecordedEvent, place: Option<Arc<Place>>) -> Option<ArcEvent> {
        let campaign = self.intern(line.campaign.as_deref()?);
        match &line.event {
            InputEvent::Share(share) => {
                let Some((generation, root)) = line.generation.zip(line.root.as_deref()) else {
                    self.pending_shares.insert(
                        share.id.as_str().into(),
                        PendingShare {
                            event: share.clone(),
                            place,
                            campaign,
                        },
                    );
                    return None;
                };
                self.pending_shares.remove(share.id.as_str());
                self.chain_links.remove(share.id.as_str());
                let node = ShareNode {
                    campaign: campaign.clone(),
                    generation,
                    root: self.intern(root),
                    place,
                    channel: self.intern(&share.channel),
                    sharer_kind: share.sharer_kind.as_deref().map(|k| self.intern(k)),
                    reach: share.reach,
                };
                let parent = share
                    .parent
                    .as_deref()
                    .and_then(|p| self.shares.get(p).map(|n| n.clone()));
                let ledger = self.campaigns.entry(campaign).or_default();
                ledger.stats.saw(share.ts, node.place.is_some());
                ledger.stats.share(&node);
                let arc = rule::arc_of(line, parent.as_ref(), ledger.seq + 1);
                ledger.seq += u64::from(arc.is_some());
                self.shares.insert(share.id.as_str().into(), node);
                arc
            }
            action => {
                if let Some(id) = action.id() {
                    self.seen(action).insert(id.into());
                }
                if let Some(hold) = line.hold {
                    if let Some(resolved) = &mut self.resolved_holds {
                        resolved.insert(hold);
                    }
                    self.next_hold = self.next_hold.max(hold + 1);
                }
                let node = self.shares.get(share_of(action)).map(|n| n.clone())?;
                let goal = match action {
                    InputEvent::Conversion(c) => Some(self.intern(&c.goal)),
                    _ => None,
                };
                let ledger = self.campaigns.entry(campaign).or_default();
                ledger.stats.saw(action.ts(), place.is_some());
                match (action, &goal) {
                    (InputEvent::Conversion(c), Some(goal)) => {
                        ledger.stats.conversion(&node, goal, c.value_cents);
                    }
                    _ => ledger.stats.click(&node),
                }
                let arc = rule::arc_of(line, Some(&node), ledger.seq + 1);
                ledger.seq += u64::from(arc.is_some());
                arc
            }
        }
    }

    /// Applies one line of the held-event journal: a click or conversion waiting for its share.
    /// Returns false for an entry already resolved into a campaign recording.
    pub fn follow_journal(&mut self, line: RecordedEvent, place: Option<Arc<Place>>) -> bool {
        let Some(hold) = line.hold else { return false };
        let resolved = self
            .resolved_holds
            .as_ref()
            .is_some_and(|r| r.contains(&hold));
        if resolved || matches!(line.event, InputEvent::Share(_)) {
            return false;
        }
        self.next_hold = self.next_hold.max(hold + 1);
        if let Some(id) = line.event.id() {
            let id = id.into();
            self.seen(&line.event).insert(id);
        }
        let share: Box<str> = share_of(&line.event).into();
        self.held_actions
            .entry(share)
            .or_default()
            .push(HeldAction {
                hold,
                event: line.event,
                place,
            });
        self.held_action_count += 1;
        true
    }

    /// After a restart has followed every recorded line: links the shares still waiting to their
    /// parents, and resolves what a crash left unresolved though its share had arrived (the
    /// resolution lines are written now). Returns the journal entries still waiting.
    pub fn finish_rebuild(
        &mut self,
        sink: &mut Sink<'_>,
    ) -> Result<Vec<RecordedEvent>, RecordingError> {
        self.resolved_holds = None;
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
            .filter(|id| self.shares.contains_key(&**id))
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
            })
            .collect();
        still_held.sort_by_key(|r| r.hold);
        Ok(still_held)
    }
}

fn share_of(event: &InputEvent) -> &str {
    match event {
        InputEvent::Share(s) => s.parent.as_deref().unwrap_or(&s.id),
        InputEvent::Click(c) => &c.share,
        InputEvent::Conversion(c) => &c.share,
    }
}

/// A share's line: resolved with its generation and root, or waiting for its parent.
fn share_line(
    share: ShareEvent,
    campaign: &str,
    place: &Option<Arc<Place>>,
    resolved: Option<(u32, String)>,
) -> RecordedEvent {
    let (generation, root) = resolved.unzip();
    RecordedEvent {
        event: InputEvent::Share(share),
        campaign: Some(campaign.to_owned()),
        at: place.as_deref().cloned(),
        generation,
        root,
        hold: None,
    }
}

/// A click's or conversion's line in the campaign of its (resolved) share.
fn action_line(
    event: InputEvent,
    node: &ShareNode,
    place: &Option<Arc<Place>>,
    hold: Option<u64>,
) -> RecordedEvent {
    RecordedEvent {
        event,
        campaign: Some(node.campaign.to_string()),
        at: place.as_deref().cloned(),
        generation: Some(node.generation),
        root: Some(node.root.to_string()),
        hold,
    }
}

fn held_limit(field: &'static str, missing: &str, max: usize) -> InputError {
    rejected(
        field,
        format!("share `{missing}` has not arrived and {max} events already wait (--max-held)"),
    )
}
