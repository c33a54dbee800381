//! The rules that turn accepted events into share-tree changes, statistics, recording lines and
//! arcs. The same code runs live and when a restart replays the recordings, so both reach the
//! same state.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use viralglobe_protocol::{
    ArcEvent, ArcKind, InputError, InputEvent, Place, RecordedEvent, ShareEvent, Timestamp,
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

/// Where the consequences of applying an event go. A restart's replay writes nothing and
/// streams nothing.
pub(super) struct Sink<'a> {
    pub recorder: Option<&'a mut Recorder>,
    pub arcs: Option<&'a mut Vec<ArcEvent>>,
}

impl Sink<'_> {
    fn record(
        &mut self,
        campaign: Option<&Arc<str>>,
        record: impl FnOnce() -> RecordedEvent,
    ) -> Result<(), RecordingError> {
        match self.recorder.as_deref_mut() {
            Some(recorder) => recorder.append(campaign, &record()),
            None => Ok(()),
        }
    }
}

struct PendingShare {
    event: ShareEvent,
    place: Option<Arc<Place>>,
}

struct HeldAction {
    hold: u64,
    event: InputEvent,
    place: Option<Arc<Place>>,
}

#[derive(Default)]
pub(super) struct CampaignLedger {
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
    /// Share id → clicks and conversions waiting for it.
    held_actions: HashMap<Box<str>, Vec<HeldAction>>,
    held: usize,
    max_held: usize,
    next_hold: u64,
    /// Journal entries already resolved into a campaign recording (filled during a restart).
    pub resolved_holds: HashSet<u64>,
}

fn rejected(field: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        field: Some(field),
        message: message.into(),
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
            held_actions: HashMap::new(),
            held: 0,
            max_held,
            next_hold: 1,
            resolved_holds: HashSet::new(),
        }
    }

    pub fn held(&self) -> usize {
        self.held
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.interned.get(s) {
            return found.clone();
        }
        let new: Arc<str> = s.into();
        self.interned.insert(new.clone());
        new
    }

    /// Applies one event. Errors are recording failures; a rejected event is an `Outcome`.
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
        let Some(parent_id) = share.parent.as_deref() else {
            let root = self.intern(&share.id);
            self.record_share(&share, &campaign, &place, Some((0, &root)), sink)?;
            self.resolve_share(share, place, campaign, 0, root, None, sink)?;
            return Ok(Outcome::Accepted);
        };
        let parent = self.shares.get(parent_id).map(|p| {
            (
                p.campaign.clone(),
                p.generation + 1,
                p.root.clone(),
                p.place.clone(),
            )
        });
        if let Some((parent_campaign, generation, root, from)) = parent {
            if parent_campaign != campaign {
                return Ok(Outcome::Rejected(rejected(
                    "parent",
                    format!("share `{parent_id}` belongs to campaign `{parent_campaign}`"),
                )));
            }
            self.record_share(&share, &campaign, &place, Some((generation, &root)), sink)?;
            self.resolve_share(share, place, campaign, generation, root, from, sink)?;
            return Ok(Outcome::Accepted);
        }
        // The parent has not arrived. Following the chain of pending ancestors back to this
        // share would mean a cycle.
        let mut ancestor = parent_id;
        let mut chain = vec![share.id.as_str(), parent_id];
        while let Some(pending) = self.pending_shares.get(ancestor) {
            if *pending.event.campaign != *campaign {
                return Ok(Outcome::Rejected(rejected(
                    "parent",
                    format!(
                        "share `{ancestor}` belongs to campaign `{}`",
                        pending.event.campaign
                    ),
                )));
            }
            let Some(next) = pending.event.parent.as_deref() else {
                break;
            };
            chain.push(next);
            if next == share.id {
                return Ok(Outcome::Rejected(rejected(
                    "parent",
                    format!("would make a cycle: {}", chain.join(" → ")),
                )));
            }
            ancestor = next;
        }
        if self.held >= self.max_held {
            return Ok(Outcome::Rejected(held_limit(
                "parent",
                parent_id,
                self.max_held,
            )));
        }
        self.record_share(&share, &campaign, &place, None, sink)?;
        let id: Box<str> = share.id.as_str().into();
        self.waiting_children
            .entry(parent_id.into())
            .or_default()
            .push(id.clone());
        self.pending_shares.insert(
            id,
            PendingShare {
                event: share,
                place,
            },
        );
        self.held += 1;
        Ok(Outcome::Held)
    }

    fn record_share(
        &mut self,
        share: &ShareEvent,
        campaign: &Arc<str>,
        place: &Option<Arc<Place>>,
        resolved: Option<(u32, &Arc<str>)>,
        sink: &mut Sink<'_>,
    ) -> Result<(), RecordingError> {
        sink.record(Some(campaign), || RecordedEvent {
            event: InputEvent::Share(share.clone()),
            campaign: Some(campaign.to_string()),
            at: place.as_deref().cloned(),
            generation: resolved.map(|(g, _)| g),
            root: resolved.map(|(_, r)| r.to_string()),
            hold: None,
        })
    }

    /// Inserts a share into the tree, then everything that was waiting for it.
    #[allow(clippy::too_many_arguments)]
    fn resolve_share(
        &mut self,
        share: ShareEvent,
        place: Option<Arc<Place>>,
        campaign: Arc<str>,
        generation: u32,
        root: Arc<str>,
        from: Option<Arc<Place>>,
        sink: &mut Sink<'_>,
    ) -> Result<(), RecordingError> {
        let mut work = vec![(share, place, campaign, generation, root, from)];
        while let Some((share, place, campaign, generation, root, from)) = work.pop() {
            let node = ShareNode {
                campaign: campaign.clone(),
                parent: share.parent.as_deref().map(Into::into),
                generation,
                root: root.clone(),
                place: place.clone(),
                channel: self.intern(&share.channel),
                sharer_kind: share.sharer_kind.as_deref().map(|k| self.intern(k)),
                reach: share.reach,
            };
            let ledger = self.campaigns.entry(campaign.clone()).or_default();
            ledger.stats.saw(share.ts, place.is_some());
            ledger.stats.share(&node);
            let arc_from = if generation == 0 { None } else { from.clone() };
            if place.is_some() && (generation == 0 || from.is_some()) {
                emit(
                    ledger,
                    sink,
                    &node,
                    ArcKind::Share,
                    &share.id,
                    share.ts,
                    arc_from,
                    place.clone(),
                    None,
                    None,
                );
            }
            let id: Box<str> = share.id.as_str().into();
            for child_id in self.waiting_children.remove(&id).unwrap_or_default() {
                let Some(child) = self.pending_shares.remove(&child_id) else {
                    continue;
                };
                self.held -= 1;
                work.push((
                    child.event,
                    child.place,
                    campaign.clone(),
                    generation + 1,
                    root.clone(),
                    place.clone(),
                ));
            }
            let held = self.held_actions.remove(&id).unwrap_or_default();
            self.shares.insert(id, node.clone());
            for action in held {
                self.held -= 1;
                self.resolve_action(action.event, action.place, Some(action.hold), &node, sink)?;
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
        let (seen, share_id) = match &event {
            InputEvent::Click(c) => (&mut self.seen_clicks, c.share.as_str()),
            InputEvent::Conversion(c) => (&mut self.seen_conversions, c.share.as_str()),
            InputEvent::Share(_) => unreachable!("shares are applied by apply_share"),
        };
        if let Some(id) = event.id() {
            if seen.contains(id) {
                return Ok(Outcome::Duplicate);
            }
            seen.insert(id.into());
        }
        if let Some(node) = self.shares.get(share_id).map(|n| n.clone()) {
            self.resolve_action(event, place, None, &node, sink)?;
            return Ok(Outcome::Accepted);
        }
        if self.held >= self.max_held {
            let error = held_limit("share", share_id, self.max_held);
            if let Some(id) = event.id() {
                self.forget_id(&event, id);
            }
            return Ok(Outcome::Rejected(error));
        }
        let hold = self.next_hold;
        self.next_hold += 1;
        sink.record(None, || RecordedEvent {
            event: event.clone(),
            campaign: None,
            at: place.as_deref().cloned(),
            generation: None,
            root: None,
            hold: Some(hold),
        })?;
        self.hold_action(hold, event, place);
        Ok(Outcome::Held)
    }

    fn forget_id(&mut self, event: &InputEvent, id: &str) {
        match event {
            InputEvent::Click(_) => self.seen_clicks.remove(id),
            _ => self.seen_conversions.remove(id),
        };
    }

    fn hold_action(&mut self, hold: u64, event: InputEvent, place: Option<Arc<Place>>) {
        let share: Box<str> = match &event {
            InputEvent::Click(c) => c.share.as_str().into(),
            InputEvent::Conversion(c) => c.share.as_str().into(),
            InputEvent::Share(_) => unreachable!("only clicks and conversions are held by share"),
        };
        self.held_actions
            .entry(share)
            .or_default()
            .push(HeldAction { hold, event, place });
        self.held += 1;
    }

    /// Credits a click or conversion to its (resolved) share and records it in the campaign.
    fn resolve_action(
        &mut self,
        event: InputEvent,
        place: Option<Arc<Place>>,
        hold: Option<u64>,
        node: &ShareNode,
        sink: &mut Sink<'_>,
    ) -> Result<(), RecordingError> {
        let goal = match &event {
            InputEvent::Conversion(c) => Some(self.intern(&c.goal)),
            _ => None,
        };
        let ledger = self.campaigns.entry(node.campaign.clone()).or_default();
        ledger.stats.saw(event.ts(), place.is_some());
        let (kind, share_id, value, from, to) = match &event {
            InputEvent::Click(c) => {
                ledger.stats.click(node);
                (
                    ArcKind::Click,
                    &c.share,
                    None,
                    node.place.clone(),
                    place.clone(),
                )
            }
            InputEvent::Conversion(c) => {
                let goal = goal.as_ref().expect("conversions have a goal");
                ledger.stats.conversion(node, goal, c.value_cents);
                (
                    ArcKind::Conversion,
                    &c.share,
                    Some(c.value_cents),
                    place.clone(),
                    node.place.clone(),
                )
            }
            InputEvent::Share(_) => unreachable!("shares resolve in resolve_share"),
        };
        if from.is_some() && to.is_some() {
            emit(
                ledger,
                sink,
                node,
                kind,
                share_id,
                event.ts(),
                from,
                to,
                goal.as_deref(),
                value,
            );
        }
        sink.record(Some(&node.campaign), || RecordedEvent {
            event,
            campaign: Some(node.campaign.to_string()),
            at: place.as_deref().cloned(),
            generation: Some(node.generation),
            root: Some(node.root.to_string()),
            hold,
        })
    }

    /// Applies a line of a campaign recording during a restart.
    pub fn replay(&mut self, record: RecordedEvent) {
        if let Some(hold) = record.hold {
            self.resolved_holds.insert(hold);
            self.next_hold = self.next_hold.max(hold + 1);
        }
        let place = record.at.map(Arc::new);
        let mut quiet = Sink {
            recorder: None,
            arcs: None,
        };
        // Nothing is written while replaying, so this cannot fail.
        let _ = self.apply(record.event, place, &mut quiet);
    }

    /// Re-applies a journal entry (a click or conversion that was waiting for its share) during a
    /// restart. Returns the entry back if it still waits.
    pub fn replay_held(
        &mut self,
        record: RecordedEvent,
        sink: &mut Sink<'_>,
    ) -> Result<Option<RecordedEvent>, RecordingError> {
        let Some(hold) = record.hold else {
            return Ok(None);
        };
        if self.resolved_holds.contains(&hold) {
            return Ok(None);
        }
        self.next_hold = self.next_hold.max(hold + 1);
        if let Some(id) = record.event.id() {
            let seen = match &record.event {
                InputEvent::Click(_) => &mut self.seen_clicks,
                _ => &mut self.seen_conversions,
            };
            seen.insert(id.into());
        }
        let place = record.at.clone().map(Arc::new);
        let share_id = match &record.event {
            InputEvent::Click(c) => c.share.as_str(),
            InputEvent::Conversion(c) => c.share.as_str(),
            InputEvent::Share(_) => return Ok(None),
        };
        if let Some(node) = self.shares.get(share_id).map(|n| n.clone()) {
            // Its share arrived but the process stopped before the resolution was written.
            self.resolve_action(record.event, place, Some(hold), &node, sink)?;
            return Ok(None);
        }
        self.hold_action(hold, record.event.clone(), place);
        Ok(Some(record))
    }
}

fn held_limit(field: &'static str, missing: &str, max: usize) -> InputError {
    rejected(
        field,
        format!("share `{missing}` has not arrived and {max} events already wait (--max-held)"),
    )
}

#[allow(clippy::too_many_arguments)]
fn emit(
    ledger: &mut CampaignLedger,
    sink: &mut Sink<'_>,
    node: &ShareNode,
    kind: ArcKind,
    share: &str,
    ts: Timestamp,
    from: Option<Arc<Place>>,
    to: Option<Arc<Place>>,
    goal: Option<&str>,
    value_cents: Option<u64>,
) {
    ledger.seq += 1;
    let (Some(arcs), Some(to)) = (sink.arcs.as_deref_mut(), to) else {
        return;
    };
    metrics::counter!("viralglobe_arcs_total", "kind" => kind.as_str()).increment(1);
    arcs.push(ArcEvent {
        seq: ledger.seq,
        kind,
        goal: goal.map(str::to_owned),
        campaign: node.campaign.to_string(),
        share: share.to_owned(),
        root: node.root.to_string(),
        generation: node.generation,
        channel: node.channel.to_string(),
        sharer_kind: node.sharer_kind.as_deref().map(str::to_owned),
        value_cents,
        ts,
        from: from.as_deref().cloned(),
        to: (*to).clone(),
    });
}
