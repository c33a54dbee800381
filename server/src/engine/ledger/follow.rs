//! Following recorded lines, live and at a restart: share tree, statistics, and the arc the rule
//! draws from each line with the campaign's next `seq`.

use std::sync::Arc;

use viralglobe_protocol::{ArcEvent, InputEvent, Place, RecordedEvent, rule};

use super::{lines::*, *};
use crate::engine::seen::HELD;

impl Ledger {
    /// Applies one line of a campaign recording; returns the arc it draws. `place` is the line's
    /// `at`, shared with the geo cache when the line was just decided.
    pub(crate) fn follow(
        &mut self,
        line: &RecordedEvent,
        place: Option<Arc<Place>>,
    ) -> Option<ArcEvent> {
        self.follow_known(line, place, None)
    }

    /// [`Ledger::follow`], given the node of a click's or conversion's share when the caller
    /// has just looked it up (one lookup in the share tree, not two, for every click decided).
    pub(super) fn follow_known(
        &mut self,
        line: &RecordedEvent,
        place: Option<Arc<Place>>,
        share: Option<ShareNode>,
    ) -> Option<ArcEvent> {
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
                self.changed.insert(campaign.clone());
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
                    self.seen(action).insert(&campaign, id);
                }
                if let Some(hold) = line.hold {
                    if let Some(rebuild) = &mut self.rebuild {
                        rebuild.resolved_holds.insert(hold);
                    }
                    self.next_hold = self.next_hold.max(hold + 1);
                }
                let node = match share {
                    Some(node) => node,
                    None => self.shares.get(share_of(action)).map(|n| n.clone())?,
                };
                let goal = match action {
                    InputEvent::Conversion(c) => Some(self.intern(&c.goal)),
                    _ => None,
                };
                self.changed.insert(campaign.clone());
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
    /// Returns false for an entry already resolved into a campaign recording, or given up.
    pub(crate) fn follow_journal(
        &mut self,
        line: RecordedEvent,
        place: Option<Arc<Place>>,
    ) -> bool {
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
            Some(id) => self.seen(&line.event).insert(HELD, id),
            None => false,
        };
        // On a share that waits itself, it counts in that share's campaign.
        let campaign = self.pending_shares.get(&*share).map(|p| p.campaign.clone());
        if let Some(campaign) = &campaign {
            *self
                .held_actions_by_campaign
                .entry(campaign.clone())
                .or_default() += 1;
        }
        self.held_actions
            .entry(share.clone())
            .or_default()
            .push(HeldAction {
                hold,
                held_at: line.held_at,
                event: line.event,
                place,
                counted_id,
                campaign,
            });
        self.held_action_count += 1;
        self.queue_wait(Waiting::Action { share, hold }, line.held_at);
        true
    }
}
