//! Fan-out of arcs to live subscribers, and where each campaign's arc line stands.
//!
//! Ingest appends arcs to a pending list and returns; a ticker drains the list every tick,
//! serializes each arc once, builds one frame per distinct subscriber filter and offers the same
//! bytes to every subscriber's bounded queue ([`QueueBounds`]: frames and bytes here, age where
//! the queue is read). A full queue drops the frame for that subscriber and counts the arcs it
//! missed; ingest never waits for a subscriber.
//!
//! The hub also keeps each campaign's [`Offset`] (epoch and last `seq` published). A subscriber
//! registers under the same lock that publishing takes, so the offset it is handed splits the
//! campaign exactly: every arc after it reaches the subscriber's queue (unless dropped, which it
//! is told), and what came before can be read from the recording.

mod fanout;
mod queue;
mod sample;

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use viralglobe_protocol::{ArcEvent, ArcKind, Encoding, LiveFilter, SkippedArcs};

use crate::fast_hash::FastMap;

use fanout::{Samplers, send_arcs, send_reset};
use queue::Subscriber;
pub(crate) use queue::{Frame, FrameKind, Frames, QueueBounds};

/// Where a campaign's arc line stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    pub epoch: Arc<str>,
    /// The last `seq` published in this epoch (0 before the first arc).
    pub seq: u64,
}

// Nearly every item is an arc: boxing them would cost an allocation each for the rare reset.
#[allow(clippy::large_enum_variant)]
enum Item {
    Arc(ArcEvent),
    Reset { campaign: String, epoch: Arc<str> },
}

#[derive(Default)]
struct Pending {
    items: Vec<Item>,
    /// When the first of `items` was published.
    since: Option<Instant>,
    offsets: FastMap<String, Offset>,
    /// Counters of the lines the engine's statistics do not follow (the demo's loop).
    lines: FastMap<String, LineCounts>,
}

/// A line's counters, counted from its own arcs: for a line that replays a recording (the demo's
/// loop), whose statistics are the whole recording's, not the line's so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LineCounts {
    pub shares: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub goals: std::collections::BTreeMap<String, u64>,
    pub revenue_cents: u64,
    pub max_generation: u32,
}

impl LineCounts {
    fn count(&mut self, arc: &ArcEvent) {
        self.max_generation = self.max_generation.max(arc.generation);
        match arc.kind {
            ArcKind::Share => self.shares += 1,
            ArcKind::Click => self.clicks += 1,
            ArcKind::Conversion => {
                self.conversions += 1;
                self.revenue_cents += arc.value_cents.unwrap_or(0);
                if let Some(goal) = &arc.goal {
                    match self.goals.get_mut(goal) {
                        Some(n) => *n += 1,
                        None => {
                            self.goals.insert(goal.clone(), 1);
                        }
                    }
                }
            }
        }
    }
}

pub struct Hub {
    pending: Mutex<Pending>,
    subscribers: Mutex<Vec<Subscriber>>,
    /// How many there are (read by the ticker without the lock).
    subscriber_count: AtomicUsize,
    /// The rate-bounded groups' token buckets, kept across ticks (taken with `subscribers`).
    samplers: Mutex<Samplers>,
    bounds: QueueBounds,
    /// Frames waiting in each subscriber's queue when a tick offers it more.
    queue_depth: metrics::Histogram,
}

/// Frames a second the hub offers its subscribers, all together, before it ticks less often:
/// about what one core sends here (a frame to a socket costs a few µs, its arcs far less).
const FRAMES_PER_SECOND: f64 = 200_000.0;
/// The longest the hub waits between ticks, however many subscribers.
const LONGEST_TICK: Duration = Duration::from_millis(100);

/// How long a rate-bounded group's sampler outlives its last arc.
const SAMPLER_KEPT: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// A hub whose subscriber queues hold `frames` frames (and the default bytes and lag).
    pub fn new(frames: usize) -> Arc<Self> {
        Self::bounded(QueueBounds::frames(frames))
    }

    pub(crate) fn bounded(bounds: QueueBounds) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            subscribers: Mutex::new(Vec::new()),
            subscriber_count: AtomicUsize::new(0),
            samplers: Mutex::new(Samplers::default()),
            bounds: QueueBounds {
                frames: bounds.frames.max(1),
                ..bounds
            },
            queue_depth: metrics::histogram!("viralglobe_live_queue_depth"),
        })
    }

    /// How long a frame may wait in a queue before it is dropped rather than sent.
    pub(crate) fn max_lag(&self) -> Duration {
        self.bounds.max_lag
    }

    /// Makes `campaign`'s arc line known: its epoch, and the last `seq` already published (by a
    /// previous run of the server, say). Subscribers are not told.
    pub fn open_campaign(&self, campaign: &str, epoch: impl Into<Arc<str>>, seq: u64) {
        let offset = Offset {
            epoch: epoch.into(),
            seq,
        };
        let mut pending = lock(&self.pending);
        pending.offsets.insert(campaign.to_owned(), offset);
        pending.lines.remove(campaign);
    }

    /// Starts `campaign`'s arc line over in a new epoch, and tells its subscribers, in order with
    /// the arcs before and after.
    pub(crate) fn reset(&self, campaign: &str, epoch: impl Into<Arc<str>>) {
        self.reset_line(campaign, epoch.into(), false);
    }

    /// [`Hub::reset`] for a line whose counters the hub keeps from its arcs (the demo's loop):
    /// what a new subscriber is told it has shown so far.
    pub(crate) fn reset_counted(&self, campaign: &str, epoch: impl Into<Arc<str>>) {
        self.reset_line(campaign, epoch.into(), true);
    }

    fn reset_line(&self, campaign: &str, epoch: Arc<str>, counted: bool) {
        let mut pending = lock(&self.pending);
        if counted {
            pending
                .lines
                .insert(campaign.to_owned(), LineCounts::default());
        } else {
            pending.lines.remove(campaign);
        }
        let offset = Offset {
            epoch: epoch.clone(),
            seq: 0,
        };
        pending.offsets.insert(campaign.to_owned(), offset);
        pending.since.get_or_insert_with(Instant::now);
        pending.items.push(Item::Reset {
            campaign: campaign.to_owned(),
            epoch,
        });
    }

    /// Where `campaign`'s arc line stands.
    pub(crate) fn offset(&self, campaign: &str) -> Option<Offset> {
        lock(&self.pending).offsets.get(campaign).cloned()
    }

    /// The counters of `campaign`'s line so far, when the hub keeps them (see
    /// [`Hub::reset_counted`]).
    pub(crate) fn line_counts(&self, campaign: &str) -> Option<LineCounts> {
        lock(&self.pending).lines.get(campaign).cloned()
    }

    /// Queues arcs for the next tick.
    pub fn publish(&self, arcs: Vec<ArcEvent>) {
        if arcs.is_empty() {
            return;
        }
        let mut pending = lock(&self.pending);
        let Pending {
            items,
            since,
            offsets,
            lines,
        } = &mut *pending;
        since.get_or_insert_with(Instant::now);
        if !lines.is_empty() {
            for arc in &arcs {
                if let Some(line) = lines.get_mut(&arc.campaign) {
                    line.count(arc);
                }
            }
        }
        let mut last: Option<(&str, u64)> = None;
        let mut note = |campaign: &str, seq: u64| match offsets.get_mut(campaign) {
            Some(offset) => offset.seq = seq,
            None => tracing::warn!(campaign, "arcs for a campaign with no epoch"),
        };
        for arc in &arcs {
            if let Some((campaign, seq)) = last
                && campaign != arc.campaign
            {
                note(campaign, seq);
            }
            last = Some((&arc.campaign, arc.seq));
        }
        if let Some((campaign, seq)) = last {
            note(campaign, seq);
        }
        items.extend(arcs.into_iter().map(Item::Arc));
    }

    /// Registers a subscriber; frames for it arrive on the returned queue. With a campaign
    /// filter, also returns where that campaign stood: every later arc comes through the queue.
    pub fn subscribe(&self, filter: LiveFilter) -> (Frames, Option<Offset>) {
        let (rx, offset, _) = self.subscribe_counted(filter, Encoding::Json, None);
        (rx, offset)
    }

    /// [`Hub::subscribe`] in an encoding and at most `max_rate` arcs a second, with the counters
    /// of the campaign's line at that offset when the hub keeps them (see
    /// [`Hub::reset_counted`]).
    pub(crate) fn subscribe_counted(
        &self,
        filter: LiveFilter,
        encoding: Encoding,
        max_rate: Option<u32>,
    ) -> (Frames, Option<Offset>, Option<LineCounts>) {
        let (tx, rx) = mpsc::channel(self.bounds.frames);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let pending = lock(&self.pending);
        let offset = filter
            .campaign
            .as_deref()
            .and_then(|c| pending.offsets.get(c).cloned());
        let line = filter
            .campaign
            .as_deref()
            .and_then(|c| pending.lines.get(c).cloned());
        let mut subscribers = lock(&self.subscribers);
        subscribers.push(Subscriber {
            filter,
            encoding,
            tx,
            queued_bytes: queued_bytes.clone(),
            max_bytes: self.bounds.bytes,
            dropped_arcs: 0,
            max_rate,
            skipped: SkippedArcs::default(),
            skipped_told: None,
        });
        drop(pending);
        self.count_subscribers(subscribers.len());
        let frames = Frames {
            rx,
            bytes: queued_bytes,
        };
        (frames, offset, line)
    }

    fn count_subscribers(&self, n: usize) {
        self.subscriber_count.store(n, Relaxed);
        metrics::gauge!("viralglobe_live_subscribers").set(n as f64);
    }

    /// Sends out every arc published since the last tick, and overdue lag notices.
    pub fn tick(&self) {
        let (items, published) = {
            let mut pending = lock(&self.pending);
            let since = pending.since.take().unwrap_or_else(Instant::now);
            (std::mem::take(&mut pending.items), since)
        };
        let mut subscribers = lock(&self.subscribers);
        // Closed sockets leave at the next tick, published to or not, and the gauge says so.
        let before = subscribers.len();
        subscribers.retain(|s| !s.tx.is_closed());
        if subscribers.len() != before {
            self.count_subscribers(subscribers.len());
        }
        let now = Instant::now();
        let mut samplers = lock(&self.samplers);
        // A group gone quiet for a while starts afresh (with a full burst) when it returns.
        samplers.retain(|_, rates| {
            rates.retain(|(_, s)| now.saturating_duration_since(s.last_used()) < SAMPLER_KEPT);
            !rates.is_empty()
        });
        if items.is_empty() {
            // A subscriber that lost arcs hears about it as soon as its queue has room; one
            // whose rate left some out, within a second.
            for sub in subscribers.iter_mut() {
                if sub.dropped_arcs > 0 {
                    sub.try_send_lagged();
                }
                sub.try_send_skipped(now);
            }
            return;
        }
        if subscribers.is_empty() {
            return;
        }
        for sub in subscribers.iter() {
            let queued = self.bounds.frames - sub.tx.capacity();
            self.queue_depth.record(queued as f64);
        }
        let mut arcs = Vec::new();
        for item in items {
            match item {
                Item::Arc(arc) => arcs.push(arc),
                Item::Reset { campaign, epoch } => {
                    let arcs = std::mem::take(&mut arcs);
                    send_arcs(&mut subscribers, &mut samplers, &arcs, published);
                    send_reset(&mut subscribers, campaign, &epoch);
                }
            }
        }
        send_arcs(&mut subscribers, &mut samplers, &arcs, published);
    }

    /// Ticks until the process ends: every `every`, or less often with so many subscribers that
    /// a frame each would exceed [`FRAMES_PER_SECOND`] (fewer, fuller frames: a frame's cost is
    /// mostly its socket's, whatever it carries).
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut next = tokio::time::Instant::now();
        loop {
            let crowd = self.subscriber_count.load(Relaxed) as f64 / FRAMES_PER_SECOND;
            let pace = Duration::from_secs_f64(crowd).clamp(every, LONGEST_TICK.max(every));
            next = (next + pace).max(tokio::time::Instant::now());
            tokio::time::sleep_until(next).await;
            self.tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viralglobe_protocol::{Place, ServerMessage, Timestamp};

    fn arc(seq: u64, kind: ArcKind, campaign: &str) -> ArcEvent {
        let place = Place {
            lat: 1.0,
            lon: 2.0,
            city: None,
            country: None,
        };
        ArcEvent {
            seq,
            kind,
            goal: None,
            campaign: campaign.into(),
            share: "s".into(),
            root: "s".into(),
            generation: 0,
            channel: "facebook".into(),
            sharer_kind: None,
            value_cents: None,
            reach: None,
            ts: Timestamp(0),
            from: Some(place.clone()),
            to: place,
        }
    }

    fn decode(frame: &Frame) -> ServerMessage {
        serde_json::from_str(&frame.text).expect("a server message")
    }

    #[test]
    fn frames_follow_each_subscribers_filter() {
        let hub = Hub::new(8);
        hub.open_campaign("a", "e", 0);
        hub.open_campaign("b", "e", 0);
        let (mut all, _) = hub.subscribe(LiveFilter::default());
        let (mut clicks_b, _) = hub.subscribe(LiveFilter {
            campaign: Some("b".into()),
            kinds: vec![ArcKind::Click],
            ..LiveFilter::default()
        });
        hub.publish(vec![
            arc(1, ArcKind::Click, "a"),
            arc(2, ArcKind::Click, "b"),
        ]);
        hub.publish(vec![arc(3, ArcKind::Conversion, "b")]);
        hub.tick();
        let ServerMessage::Arcs { arcs } = decode(&all.try_recv().expect("frame")) else {
            panic!("expected a batch")
        };
        assert_eq!(arcs.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let ServerMessage::Arc(only) = decode(&clicks_b.try_recv().expect("frame")) else {
            panic!("expected one arc")
        };
        assert_eq!((only.seq, only.campaign.as_str()), (2, "b"));
    }

    #[test]
    fn a_full_queue_drops_and_then_reports_lag() {
        let hub = Hub::new(1);
        hub.open_campaign("a", "e", 0);
        let (mut slow, _) = hub.subscribe(LiveFilter::default());
        for seq in 1..=3 {
            hub.publish(vec![
                arc(seq, ArcKind::Click, "a"),
                arc(seq + 10, ArcKind::Click, "a"),
            ]);
            hub.tick();
        }
        assert!(matches!(
            decode(&slow.try_recv().expect("first")),
            ServerMessage::Arcs { .. }
        ));
        assert!(slow.try_recv().is_err(), "later frames were dropped");
        hub.publish(vec![arc(4, ArcKind::Click, "a")]);
        hub.tick();
        assert_eq!(
            decode(&slow.try_recv().expect("lagged")),
            ServerMessage::Lagged { dropped_arcs: 4 }
        );
    }

    /// A queue with room for many frames but few bytes drops what does not fit, counts it, and
    /// takes frames again once it is read.
    #[test]
    fn a_queue_is_bounded_by_bytes_too() {
        let hub = Hub::bounded(QueueBounds {
            frames: 64,
            bytes: 600,
            max_lag: Duration::from_secs(1),
        });
        hub.open_campaign("a", "e", 0);
        let (mut slow, _) = hub.subscribe(LiveFilter::default());
        for seq in 1..=10 {
            hub.publish(vec![arc(seq, ArcKind::Click, "a")]);
            hub.tick();
        }
        // Three frames of arcs fit; each later tick the lag notice (small) still does.
        // (arc frames, arcs told dropped, bytes) read from the queue.
        let read = |slow: &mut Frames| {
            let (mut arcs, mut told, mut bytes) = (0, 0, 0);
            while let Ok(frame) = slow.try_recv() {
                bytes += frame.wire_len();
                match decode(&frame) {
                    ServerMessage::Arc(_) => arcs += 1,
                    ServerMessage::Lagged { dropped_arcs } => told += dropped_arcs,
                    other => panic!("{other:?}"),
                }
            }
            (arcs, told, bytes)
        };
        let (arcs, told_first, bytes) = read(&mut slow);
        assert_eq!(arcs, 3);
        assert!(bytes <= 600, "{bytes} bytes queued");
        hub.publish(vec![arc(11, ArcKind::Click, "a")]);
        hub.tick();
        let (more, told_then, _) = read(&mut slow);
        let (arcs, told) = (arcs + more, told_first + told_then);
        assert_eq!((arcs, told), (4, 7), "every arc sent or told");
    }

    /// A counted line (the demo's loop) tells a new subscriber its own counters so far; a new
    /// loop starts them at 0; an ordinary line has none (its counters are the statistics').
    #[test]
    fn a_counted_line_hands_its_counters_to_new_subscribers() {
        let hub = Hub::new(8);
        let filter = LiveFilter {
            campaign: Some("demo".into()),
            ..LiveFilter::default()
        };
        hub.reset_counted("demo", "loop.1");
        let mut sale = arc(3, ArcKind::Conversion, "demo");
        sale.goal = Some("purchase".into());
        sale.value_cents = Some(1_999);
        hub.publish(vec![
            arc(1, ArcKind::Share, "demo"),
            arc(2, ArcKind::Click, "demo"),
            sale,
        ]);
        let (_, offset, line) = hub.subscribe_counted(filter.clone(), Encoding::Json, None);
        let line = line.expect("counted");
        assert_eq!(offset.map(|o| o.seq), Some(3));
        assert_eq!(
            (
                line.shares,
                line.clicks,
                line.conversions,
                line.revenue_cents
            ),
            (1, 1, 1, 1_999)
        );
        assert_eq!(line.goals.get("purchase"), Some(&1));
        hub.reset_counted("demo", "loop.2");
        let (_, _, line) = hub.subscribe_counted(filter.clone(), Encoding::Json, None);
        assert_eq!(line, Some(LineCounts::default()));
        hub.reset("demo", "ordinary");
        assert_eq!(hub.subscribe_counted(filter, Encoding::Json, None).2, None);
    }

    #[test]
    fn a_subscriber_is_handed_the_offset_that_splits_the_campaign() {
        let hub = Hub::new(8);
        hub.open_campaign("a", "e1", 7);
        hub.publish(vec![arc(8, ArcKind::Click, "a")]);
        let filter = LiveFilter {
            campaign: Some("a".into()),
            ..LiveFilter::default()
        };
        let (mut rx, offset) = hub.subscribe(filter.clone());
        assert_eq!(offset.map(|o| o.seq), Some(8));
        hub.publish(vec![arc(9, ArcKind::Click, "a")]);
        hub.reset("a", "e2");
        hub.publish(vec![arc(1, ArcKind::Click, "a")]);
        hub.tick();
        // Arc 8 was published before: the new subscriber gets it too, and must trim it.
        assert_eq!(rx.try_recv().expect("arcs").seqs, Some((8, 9)));
        let reset = rx.try_recv().expect("reset");
        assert_eq!(reset.kind, FrameKind::Reset);
        assert_eq!(
            decode(&reset),
            ServerMessage::Reset {
                campaign: "a".into(),
                epoch: "e2".into()
            }
        );
        assert_eq!(rx.try_recv().expect("new line").seqs, Some((1, 1)));
        let (_, offset) = hub.subscribe(filter);
        assert_eq!(
            offset,
            Some(Offset {
                epoch: "e2".into(),
                seq: 1
            })
        );
    }

    /// Subscribers with the same filter and rate get the same arcs (the same frame): shares
    /// before clicks, and what was left out told by kind; one without a rate gets everything.
    #[test]
    fn a_rate_bounded_group_shares_one_sample_and_is_told_what_it_skipped() {
        let hub = Hub::new(8);
        hub.open_campaign("a", "e", 0);
        let filter = LiveFilter::default();
        let (mut first, _, _) = hub.subscribe_counted(filter.clone(), Encoding::Json, Some(100));
        let (mut second, _, _) = hub.subscribe_counted(filter.clone(), Encoding::Json, Some(100));
        let (mut every, _) = hub.subscribe(filter);
        // 50 clicks and 3 shares at once: the burst (100/s × 100 ms = 10 arcs) takes the shares
        // and seven clicks, spread over the fifty.
        let mut arcs: Vec<ArcEvent> = (1..=50).map(|s| arc(s, ArcKind::Click, "a")).collect();
        arcs.extend((51..=53).map(|s| arc(s, ArcKind::Share, "a")));
        hub.publish(arcs);
        hub.tick();
        let (a, b) = (
            first.try_recv().expect("told"),
            second.try_recv().expect("told"),
        );
        // The first notice comes before the first arcs with a gap in their `seq`s.
        assert_eq!(
            decode(&a),
            ServerMessage::Skipped(SkippedArcs {
                arcs: 43,
                shares: 0,
                clicks: 43,
                conversions: 0
            })
        );
        assert_eq!(b.kind, FrameKind::Skipped);
        let (a, b) = (
            first.try_recv().expect("arcs"),
            second.try_recv().expect("arcs"),
        );
        assert!(Arc::ptr_eq(&a, &b), "one frame for the group");
        let ServerMessage::Arcs { arcs } = decode(&a) else {
            panic!("expected a batch")
        };
        let seqs: Vec<u64> = arcs.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [1, 8, 15, 22, 29, 36, 43, 51, 52, 53]);
        assert_eq!(every.try_recv().expect("all").arcs, 53);
        // Told at most once a second: the next tick's left-out arcs wait.
        hub.publish((54..=80).map(|s| arc(s, ArcKind::Click, "a")).collect());
        hub.tick();
        while let Ok(frame) = first.try_recv() {
            assert_eq!(frame.kind, FrameKind::Arcs);
        }
    }
}
