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
//!
//! The ledger's parts: [`decide`](self::decide), [`follow`](self::follow), [`waits`](self::waits)
//! (chains and expiry), [`rebuild`](self::rebuild) (the end of a restart), [`lines`](self::lines).

mod decide;
mod follow;
mod lines;
mod rebuild;
mod waits;

use std::{collections::VecDeque, sync::Arc};

use viralglobe_protocol::{
    ArcEvent, CampaignSummary, InputError, InputEvent, Place, RecordedEvent, ShareEvent,
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
    recording::Recorder,
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
    /// The campaign whose budget it counts in: that of its share, when its share waits too.
    campaign: Option<Arc<str>>,
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
    /// Events of one campaign waiting: shares for their parent, and clicks and conversions on a
    /// share that waits itself (one whose share has not arrived names no campaign: only `max`
    /// bounds those).
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
pub(crate) struct Expired {
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
    /// How many of them wait on a share of each campaign that waits itself.
    held_actions_by_campaign: FastMap<Arc<str>, usize>,
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
    /// Campaigns whose counters changed since [`Ledger::changed_summaries`] last asked.
    changed: FastSet<Arc<str>>,
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
    pub(super) fn new(shares: Arc<ShareTree>, limits: HeldLimits) -> Self {
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
            held_actions_by_campaign: FastMap::default(),
            limits,
            next_hold: 1,
            waiting_since: VecDeque::new(),
            now_ms: 0,
            stamp_waits: false,
            next_ticket: 0,
            rebuild: Some(Rebuild::default()),
            links: Arc::default(),
            changed: FastSet::default(),
        }
    }

    /// The counters of the campaigns that changed since the last call, for the engine to publish.
    pub(super) fn changed_summaries(&mut self) -> Vec<CampaignSummary> {
        self.changed
            .drain()
            .filter_map(|id| Some(self.campaigns.get(&id)?.stats.summary(&id)))
            .collect()
    }

    /// Events waiting for their share or parent share.
    pub(super) fn held(&self) -> usize {
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
