//! Waiting events: shares waiting for their parent (linked in chains), clicks and conversions
//! waiting for their share, and giving up those that waited too long.

use std::sync::Arc;

use viralglobe_protocol::{Place, RecordedEvent, ShareEvent};

use super::{lines::*, *};
use crate::{engine::seen::HELD, recording::RecordingError};

impl Ledger {
    /// A share starts waiting for its parent.
    pub(super) fn start_waiting(
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
    pub(super) fn stop_waiting(&mut self, id: &str) {
        self.chain_links.remove(id);
        if let Some(pending) = self.pending_shares.remove(id) {
            self.uncount_pending(&pending.campaign);
        }
    }

    pub(super) fn uncount_pending(&mut self, campaign: &str) {
        if let Some(count) = self.pending_by_campaign.get_mut(campaign) {
            *count -= 1;
            if *count == 0 {
                self.pending_by_campaign.remove(campaign);
            }
        }
    }

    /// Drops the held click or conversion `hold`, waiting for `share`; its id may come again.
    pub(super) fn give_up_action(&mut self, share: &str, hold: u64) {
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
        self.forget_held(&action);
    }

    /// A held click or conversion that waits no more (resolved or given up): uncounted, and its
    /// id out of the waiting events' (it goes to its campaign's if it resolved).
    pub(super) fn forget_held(&mut self, action: &HeldAction) {
        self.held_action_count -= 1;
        if let Some(campaign) = &action.campaign
            && let Some(count) = self.held_actions_by_campaign.get_mut(campaign)
        {
            *count -= 1;
            if *count == 0 {
                self.held_actions_by_campaign.remove(campaign);
            }
        }
        if action.counted_id
            && let Some(id) = action.event.id()
        {
            self.seen(&action.event).remove(HELD, id);
        }
    }

    /// Events of `campaign` waiting: shares for their parent, and clicks and conversions on a
    /// share that waits itself.
    pub(super) fn held_in(&self, campaign: &str) -> usize {
        self.pending_by_campaign.get(campaign).copied().unwrap_or(0)
            + self
                .held_actions_by_campaign
                .get(campaign)
                .copied()
                .unwrap_or(0)
    }

    // ---- Expiry ----

    /// Gives up everything that started waiting at or before `cutoff`: writes the line that says
    /// so (a waiting share's in its campaign, a held click's or conversion's in the journal), then
    /// follows it. The events stay on disk; a restart follows the same lines.
    pub(crate) fn expire(
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
    pub(super) fn queue_wait(&mut self, waiting: Waiting, held_at: Option<u64>) {
        self.waiting_since
            .push_back((held_at.unwrap_or(self.now_ms), waiting));
        if self.waiting_since.len() > 2 * self.held() + 1024 {
            let mut queue = std::mem::take(&mut self.waiting_since);
            queue.retain(|(_, w)| self.expiry_line(w).is_some());
            self.waiting_since = queue;
        }
    }

    /// The line that gives up `waiting`, if it still waits.
    pub(super) fn expiry_line(
        &self,
        waiting: &Waiting,
    ) -> Option<(RecordedEvent, Option<Arc<Place>>)> {
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
                Some((held_given_up(action), action.place.clone()))
            }
        }
    }
}
