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

use std::{collections::VecDeque, sync::Arc};

use viralglobe_protocol::{
    ArcEvent, InputError, InputEvent, Place, RecordedEvent, ShareEvent, rule,
};

use super::{
    attribution::AttributionAccumulator,
    indexer::Indexer,
    links::Links,
    seen::SeenIds,
    stats::CampaignStatsAccumulator,
    tree::{Name, Reach, ShareNode, ShareTree, Via},
};
use crate::{
    fast_hash::{FastMap, FastSet},
    recording::{Recorder, RecordingError},
};

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
    /// Indexes what is written to campaign recordings.
    pub indexer: &'a mut Indexer,
    /// `None` while the state is rebuilt: nobody is subscribed yet.
    pub arcs: Option<&'a mut Vec<ArcEvent>>,
}

/// A share recorded before its parent arrived.
struct PendingShare {
    event: ShareEvent,
    place: Option<Arc<Place>>,
    campaign: Arc<str>,
    /// Tells this wait from an earlier one of a share with the same id that expired.
    ticket: u64,
}

/// A click or conversion in the held-event journal, waiting for its share.
struct HeldAction {
    hold: u64,
    /// The log's time it began waiting (cluster mode), kept for the journal's rewrite.
    held_at: Option<u64>,
    event: InputEvent,
    place: Option<Arc<Place>>,
    /// Whether holding it put its id among those seen: giving it up takes the id out again, so
    /// that it can be sent again once its share is there.
    counted_id: bool,
}

/// Something that waits, in the queue of waits by age.
enum Waiting {
    Share { id: Box<str>, ticket: u64 },
    Action { share: Box<str>, hold: u64 },
}

/// How many events may wait, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct HeldLimits {
    /// All waiting events together.
    pub max: usize,
    /// Shares of one campaign waiting for their parent (a waiting click or conversion names no
    /// campaign: only `max` bounds those).
    pub max_per_campaign: usize,
}

/// What a restart found in the journal besides what still waits: the entries given up since the
/// last restart, which move to the file of expired events.
#[derive(Default)]
pub(super) struct Rebuilt {
    pub still_held: Vec<RecordedEvent>,
    pub expired: Vec<RecordedEvent>,
}

/// The events given up by one [`Ledger::expire`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub shares: u64,
    pub actions: u64,
}

#[derive(Default)]
pub(super) struct CampaignLedger {
    /// The last arc's `seq`.
    pub seq: u64,
    pub stats: CampaignStatsAccumulator,
    pub attribution: AttributionAccumulator,
}

pub(super) struct Ledger {
    pub shares: Arc<ShareTree>,
    pub campaigns: FastMap<Arc<str>, CampaignLedger>,
    interned: FastSet<Name>,
    vias: FastSet<Arc<Via>>,
    seen_clicks: SeenIds,
    seen_conversions: SeenIds,
    /// Shares whose parent has not arrived, by id.
    pending_shares: FastMap<Box<str>, PendingShare>,
    /// How many of them each campaign has.
    pending_by_campaign: FastMap<Arc<str>, usize>,
    /// Parent id → ids of pending shares waiting for it.
    waiting_children: FastMap<Box<str>, Vec<Box<str>>>,
    /// Waiting share → a waiting ancestor in its chain (a union-find forest of the chains).
    chain_links: FastMap<Box<str>, Box<str>>,
    /// Share id → clicks and conversions waiting for it.
    held_actions: FastMap<Box<str>, Vec<HeldAction>>,
    held_action_count: usize,
    limits: HeldLimits,
    next_hold: u64,
    /// Every wait, oldest first, for [`Ledger::expire`]; entries whose wait ended are skipped
    /// there and dropped when they outnumber the waits.
    waiting_since: VecDeque<(u64, Waiting)>,
    /// The clock waits are stamped with, in milliseconds: set by the engine before each batch
    /// (its own monotonic clock, or in cluster mode the log entry's time, the same on every node).
    pub now_ms: u64,
    /// Cluster mode: lines that start a wait carry `held_at`, the log's time.
    pub stamp_waits: bool,
    next_ticket: u64,
    /// Only while a restart follows the recordings.
    rebuild: Option<Rebuild>,
    /// The tracked links of the shares followed so far.
    pub links: Arc<Links>,
}

/// What a restart keeps while it follows the recorded lines, then drops, so live operation keeps
/// nothing per resolved or expired hold.
#[derive(Default)]
struct Rebuild {
    /// Journal entries already resolved into a campaign recording: filled from the campaign
    /// lines, read when following the journal.
    resolved_holds: FastSet<u64>,
    /// Journal entries given up since the last restart.
    expired: Vec<RecordedEvent>,
}

fn rejected(field: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        field: Some(field),
        message: message.into(),
    }
}

impl Ledger {
    pub fn new(shares: Arc<ShareTree>, limits: HeldLimits) -> Self {
        Self {
            shares,
            campaigns: FastMap::default(),
            interned: FastSet::default(),
            vias: FastSet::default(),
            seen_clicks: SeenIds::default(),
            seen_conversions: SeenIds::default(),
            pending_shares: FastMap::default(),
            pending_by_campaign: FastMap::default(),
            waiting_children: FastMap::default(),
            chain_links: FastMap::default(),
            held_actions: FastMap::default(),
            held_action_count: 0,
            limits,
            next_hold: 1,
            waiting_since: VecDeque::new(),
            now_ms: 0,
            stamp_waits: false,
            next_ticket: 0,
            rebuild: Some(Rebuild::default()),
            links: Arc::default(),
        }
    }

    /// Events waiting for their share or parent share.
    pub fn held(&self) -> usize {
        self.pending_shares.len() + self.held_action_count
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        self.name(s).arc()
    }

    /// The one [`Via`] of a channel and a sharer's kind.
    fn via(&mut self, channel: &str, sharer_kind: Option<&str>) -> Arc<Via> {
        let via = Via {
            channel: self.intern(channel),
            sharer_kind: sharer_kind.map(|k| self.intern(k)),
        };
        if let Some(found) = self.vias.get(&via) {
            return found.clone();
        }
        let new = Arc::new(via);
        self.vias.insert(new.clone());
        new
    }

    /// The one [`Name`] of `s`.
    fn name(&mut self, s: &str) -> Name {
        if let Some(found) = self.interned.get(s) {
            return found.clone();
        }
        let new = Name::new(s.into());
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
        let waiting_here = self.pending_by_campaign.get(&campaign).copied();
        if waiting_here.unwrap_or(0) >= self.limits.max_per_campaign {
            return Ok(Outcome::Rejected(rejected(
                "parent",
                format!(
                    "share `{parent_id}` has not arrived and {} shares of campaign `{campaign}` \
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
            let Some(node) = self.shares.get(&*id).map(|n| n.clone()) else {
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
        if self.held() >= self.limits.max {
            return Ok(Outcome::Rejected(held_limit(
                "share",
                share_of(&event),
                self.limits.max,
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

    fn seen(&mut self, event: &InputEvent) -> &mut SeenIds {
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
        let bytes = sink.recorder.append(campaign.as_ref(), &line)?;
        match campaign {
            Some(campaign) => {
                let arc = self.follow(&line, place);
                sink.indexer.written(&campaign, bytes, &line, arc.is_some());
                if let Some(arc) = arc
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
                if !line.given_up {
                    self.links.follow(share, &campaign);
                }
                let Some((generation, root)) = line.generation.zip(line.root.as_deref()) else {
                    // A share id waits in one campaign at a time, but once given up it may wait
                    // again in another. A restart follows campaign after campaign, so a wait of
                    // an earlier campaign that is still on after all its lines is the current
                    // one; a later campaign's wait for the same id ends further down its lines.
                    let elsewhere = self
                        .pending_shares
                        .get(share.id.as_str())
                        .map(|p| p.campaign != campaign);
                    match (line.given_up, elsewhere) {
                        (true, Some(false)) => self.stop_waiting(&share.id),
                        (false, None | Some(false)) => {
                            self.start_waiting(share, place, campaign, line.held_at);
                        }
                        _ => {}
                    }
                    return None;
                };
                self.stop_waiting(&share.id);
                let node = ShareNode {
                    campaign: self.name(&campaign),
                    generation,
                    root: self.name(root),
                    place,
                    via: self.via(&share.channel, share.sharer_kind.as_deref()),
                    reach: Reach::new(share.reach),
                    ts: share.ts,
                };
                let parent = share
                    .parent
                    .as_deref()
                    .and_then(|p| self.shares.get(p).map(|n| n.clone()));
                let ledger = self.campaigns.entry(campaign).or_default();
                ledger.stats.saw(share.ts, node.place.is_some());
                ledger.stats.share(&node);
                ledger.attribution.share(&node);
                let arc = rule::arc_of(line, parent.as_ref(), ledger.seq + 1);
                ledger.seq += u64::from(arc.is_some());
                self.shares.insert(share.id.as_str().into(), node);
                arc
            }
            action => {
                if let Some(id) = action.id() {
                    self.seen(action).insert(id);
                }
                if let Some(hold) = line.hold {
                    if let Some(rebuild) = &mut self.rebuild {
                        rebuild.resolved_holds.insert(hold);
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
                        ledger
                            .stats
                            .conversion(&node, goal, c.value_cents, c.unverified);
                        let at = place.as_deref();
                        ledger
                            .attribution
                            .conversion(&node, at, c.ts, c.value_cents);
                    }
                    _ => {
                        ledger.stats.click(&node);
                        ledger
                            .attribution
                            .click(&node, place.as_deref(), action.ts());
                    }
                }
                let arc = rule::arc_of(line, Some(&node), ledger.seq + 1);
                ledger.seq += u64::from(arc.is_some());
                arc
            }
        }
    }

    /// Applies one line of the held-event journal: a click or conversion waiting for its share.
    /// Returns false for an entry already resolved into a campaign recording.
    /// Returns false for an entry already resolved into a campaign recording, or given up.
    pub fn follow_journal(&mut self, line: RecordedEvent, place: Option<Arc<Place>>) -> bool {
        let Some(hold) = line.hold else { return false };
        let resolved = self
            .rebuild
            .as_ref()
            .is_some_and(|r| r.resolved_holds.contains(&hold));
        if resolved || matches!(line.event, InputEvent::Share(_)) {
            return false;
        }
        self.next_hold = self.next_hold.max(hold + 1);
        let share: Box<str> = share_of(&line.event).into();
        if line.given_up {
            self.give_up_action(&share, hold);
            if let Some(rebuild) = &mut self.rebuild {
                rebuild.expired.push(RecordedEvent {
                    given_up: false,
                    ..line
                });
            }
            return false;
        }
        let counted_id = match line.event.id() {
            Some(id) => self.seen(&line.event).insert(id),
            None => false,
        };
        self.held_actions
            .entry(share.clone())
            .or_default()
            .push(HeldAction {
                hold,
                held_at: line.held_at,
                event: line.event,
                place,
                counted_id,
            });
        self.held_action_count += 1;
        self.queue_wait(Waiting::Action { share, hold }, line.held_at);
        true
    }

    /// A share starts waiting for its parent.
    fn start_waiting(
        &mut self,
        share: &ShareEvent,
        place: Option<Arc<Place>>,
        campaign: Arc<str>,
        held_at: Option<u64>,
    ) {
        self.next_ticket += 1;
        let (id, ticket): (Box<str>, u64) = (share.id.as_str().into(), self.next_ticket);
        *self
            .pending_by_campaign
            .entry(campaign.clone())
            .or_default() += 1;
        let pending = PendingShare {
            event: share.clone(),
            place,
            campaign,
            ticket,
        };
        if let Some(replaced) = self.pending_shares.insert(id.clone(), pending) {
            self.uncount_pending(&replaced.campaign);
        }
        self.queue_wait(Waiting::Share { id, ticket }, held_at);
    }

    /// A share stops waiting: resolved, never resolvable, or given up.
    fn stop_waiting(&mut self, id: &str) {
        self.chain_links.remove(id);
        if let Some(pending) = self.pending_shares.remove(id) {
            self.uncount_pending(&pending.campaign);
        }
    }

    fn uncount_pending(&mut self, campaign: &str) {
        if let Some(count) = self.pending_by_campaign.get_mut(campaign) {
            *count -= 1;
            if *count == 0 {
                self.pending_by_campaign.remove(campaign);
            }
        }
    }

    /// Drops the held click or conversion `hold`, waiting for `share`; its id may come again.
    fn give_up_action(&mut self, share: &str, hold: u64) {
        let Some(list) = self.held_actions.get_mut(share) else {
            return;
        };
        let Some(at) = list.iter().position(|a| a.hold == hold) else {
            return;
        };
        let action = list.remove(at);
        if list.is_empty() {
            self.held_actions.remove(share);
        }
        self.held_action_count -= 1;
        if action.counted_id
            && let Some(id) = action.event.id()
        {
            self.seen(&action.event).remove(id);
        }
    }

    // ---- Expiry ----

    /// Gives up everything that started waiting at or before `cutoff`: writes the line that says
    /// so (a waiting share's in its campaign, a held click's or conversion's in the journal), then
    /// follows it. The events stay on disk; a restart follows the same lines.
    pub fn expire(
        &mut self,
        cutoff_ms: u64,
        sink: &mut Sink<'_>,
    ) -> Result<Expired, RecordingError> {
        let mut expired = Expired::default();
        while let Some((since, _)) = self.waiting_since.front()
            && *since <= cutoff_ms
        {
            let Some((since, waiting)) = self.waiting_since.pop_front() else {
                break;
            };
            let Some((line, place)) = self.expiry_line(&waiting) else {
                continue;
            };
            if let Err(e) = self.write(line, place, sink) {
                self.waiting_since.push_front((since, waiting));
                return Err(e);
            }
            match waiting {
                Waiting::Share { .. } => expired.shares += 1,
                Waiting::Action { .. } => expired.actions += 1,
            }
        }
        Ok(expired)
    }

    /// Queues a wait for [`Ledger::expire`], begun at `held_at` (a line's, in cluster mode) or
    /// now. Waits that ended stay queued until they reach the front; once they outnumber the
    /// live ones, they are dropped, so the queue stays within twice the held events (whether or
    /// not anything expires).
    fn queue_wait(&mut self, waiting: Waiting, held_at: Option<u64>) {
        self.waiting_since
            .push_back((held_at.unwrap_or(self.now_ms), waiting));
        if self.waiting_since.len() > 2 * self.held() + 1024 {
            let mut queue = std::mem::take(&mut self.waiting_since);
            queue.retain(|(_, w)| self.expiry_line(w).is_some());
            self.waiting_since = queue;
        }
    }

    /// The line that gives up `waiting`, if it still waits.
    fn expiry_line(&self, waiting: &Waiting) -> Option<(RecordedEvent, Option<Arc<Place>>)> {
        match waiting {
            Waiting::Share { id, ticket } => {
                let pending = self
                    .pending_shares
                    .get(id)
                    .filter(|p| p.ticket == *ticket)?;
                Some((give_up_share(pending), pending.place.clone()))
            }
            Waiting::Action { share, hold } => {
                let action = self
                    .held_actions
                    .get(share)?
                    .iter()
                    .find(|a| a.hold == *hold)?;
                let line = RecordedEvent {
                    event: action.event.clone(),
                    campaign: None,
                    at: action.place.as_deref().cloned(),
                    generation: None,
                    root: None,
                    hold: Some(*hold),
                    held_at: None,
                    given_up: true,
                };
                Some((line, action.place.clone()))
            }
        }
    }

    /// After a restart has followed every recorded line: links the shares still waiting to their
    /// parents, and resolves what a crash left unresolved though its share had arrived (the
    /// resolution lines are written now). Returns the journal entries still waiting.
    pub fn finish_rebuild(&mut self, sink: &mut Sink<'_>) -> Result<Rebuilt, RecordingError> {
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
        held_at: None,
        given_up: false,
    }
}

/// The line that gives up a waiting share.
fn give_up_share(pending: &PendingShare) -> RecordedEvent {
    RecordedEvent {
        event: InputEvent::Share(pending.event.clone()),
        campaign: Some(pending.campaign.to_string()),
        at: pending.place.as_deref().cloned(),
        generation: None,
        root: None,
        hold: None,
        held_at: None,
        given_up: true,
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
        held_at: None,
        given_up: false,
    }
}

fn held_limit(field: &'static str, missing: &str, max: usize) -> InputError {
    rejected(
        field,
        format!("share `{missing}` has not arrived and {max} events already wait (--max-held)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share_line(id: usize, resolved: bool) -> RecordedEvent {
        let json = format!(
            r#"{{"type":"share","id":"s{id}","campaign":"c","channel":"x","sharer":"a","parent":"p{id}","ts":1350406800000}}"#
        );
        RecordedEvent {
            event: InputEvent::parse(json.as_bytes()).expect("a share"),
            campaign: Some("c".into()),
            at: None,
            generation: resolved.then_some(1),
            root: resolved.then(|| "r".into()),
            hold: None,
            held_at: None,
            given_up: false,
        }
    }

    /// Waits that end (here every share resolves right after it waited) do not pile up in the
    /// expiry queue, whether or not anything ever expires.
    #[test]
    fn the_expiry_queue_stays_within_twice_the_waits() {
        let limits = HeldLimits {
            max: usize::MAX,
            max_per_campaign: usize::MAX,
        };
        let mut ledger = Ledger::new(Arc::new(ShareTree::default()), limits);
        for id in 0..50_000 {
            ledger.follow(&share_line(id, false), None);
            ledger.follow(&share_line(id, true), None);
        }
        assert_eq!(ledger.held(), 0);
        assert!(
            ledger.waiting_since.len() <= 1_025,
            "{} queued",
            ledger.waiting_since.len()
        );
        for id in 50_000..52_000 {
            ledger.follow(&share_line(id, false), None);
        }
        assert_eq!(ledger.held(), 2_000);
        assert!(ledger.waiting_since.len() <= 2 * 2_000 + 1_025);
    }
}
