//! Fan-out of arcs to live subscribers.
//!
//! Ingest appends arcs to a pending list and returns; a ticker drains the list every tick,
//! serializes each arc once, builds one frame per distinct subscriber filter and offers the same
//! bytes to every subscriber's bounded queue. A full queue drops the frame for that subscriber
//! and counts the arcs it missed; ingest never waits for a subscriber.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bytestring::ByteString;
use tokio::sync::mpsc;
use viralglobe_protocol::{ArcEvent, ArcKind, LiveFilter, ServerMessage};

struct Subscriber {
    filter: LiveFilter,
    tx: mpsc::Sender<ByteString>,
    dropped_arcs: u64,
}

impl Subscriber {
    /// Tells the subscriber how many arcs it lost, if any; false if its queue is still full.
    fn try_send_lagged(&mut self) -> bool {
        if self.dropped_arcs == 0 {
            return true;
        }
        let lagged = ServerMessage::Lagged {
            dropped_arcs: self.dropped_arcs,
        };
        let text = serde_json::to_string(&lagged).expect("lagged serializes");
        let sent = self.tx.try_send(text.into()).is_ok();
        if sent {
            self.dropped_arcs = 0;
        }
        sent
    }
}

pub struct Hub {
    pending: Mutex<Vec<ArcEvent>>,
    subscribers: Mutex<Vec<Subscriber>>,
    queue_capacity: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Encoded<'a> {
    kind: ArcKind,
    campaign: &'a str,
    json: Vec<u8>,
}

impl Hub {
    pub fn new(queue_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            queue_capacity: queue_capacity.max(1),
        })
    }

    /// Queues arcs for the next tick.
    pub fn publish(&self, mut arcs: Vec<ArcEvent>) {
        if !arcs.is_empty() {
            lock(&self.pending).append(&mut arcs);
        }
    }

    /// Registers a subscriber; frames for it arrive on the returned queue.
    pub fn subscribe(&self, filter: LiveFilter) -> mpsc::Receiver<ByteString> {
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let mut subscribers = lock(&self.subscribers);
        subscribers.push(Subscriber {
            filter,
            tx,
            dropped_arcs: 0,
        });
        metrics::gauge!("viralglobe_live_subscribers").set(subscribers.len() as f64);
        rx
    }

    /// Sends out every arc published since the last tick, and overdue lag notices.
    pub fn tick(&self) {
        let arcs = std::mem::take(&mut *lock(&self.pending));
        let mut subscribers = lock(&self.subscribers);
        if arcs.is_empty() {
            // A subscriber that lost arcs hears about it as soon as its queue has room.
            for sub in subscribers.iter_mut().filter(|s| s.dropped_arcs > 0) {
                sub.try_send_lagged();
            }
            return;
        }
        let before = subscribers.len();
        subscribers.retain(|s| !s.tx.is_closed());
        if subscribers.len() != before {
            metrics::gauge!("viralglobe_live_subscribers").set(subscribers.len() as f64);
        }
        if subscribers.is_empty() {
            return;
        }
        let encoded: Vec<Encoded<'_>> = arcs
            .iter()
            .map(|arc| Encoded {
                kind: arc.kind,
                campaign: &arc.campaign,
                json: serde_json::to_vec(arc).expect("arcs serialize"),
            })
            .collect();
        // Subscribers mostly share a handful of filters: one frame per distinct filter.
        let mut frames: Vec<(LiveFilter, Option<(ByteString, u64)>)> = Vec::new();
        let mut dropped = 0;
        for sub in subscribers.iter_mut() {
            let i = match frames.iter().position(|(f, _)| *f == sub.filter) {
                Some(i) => i,
                None => {
                    frames.push((sub.filter.clone(), build_frame(&encoded, &sub.filter)));
                    frames.len() - 1
                }
            };
            let Some((frame, count)) = &frames[i].1 else {
                continue;
            };
            let sent = sub.try_send_lagged() && sub.tx.try_send(frame.clone()).is_ok();
            if !sent && !sub.tx.is_closed() {
                sub.dropped_arcs += count;
                dropped += count;
            }
        }
        if dropped > 0 {
            metrics::counter!("viralglobe_live_dropped_arcs_total").increment(dropped);
        }
    }

    /// Ticks until the process ends.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.tick();
        }
    }
}

/// `{"type":"arc",…}` for one arc, `{"type":"arcs","arcs":[…]}` for several, nothing for none.
fn build_frame(encoded: &[Encoded<'_>], filter: &LiveFilter) -> Option<(ByteString, u64)> {
    let wanted = || {
        encoded
            .iter()
            .filter(|e| filter.wants_kind(e.kind) && filter.wants_campaign(e.campaign))
    };
    let count = wanted().count() as u64;
    let mut out = Vec::new();
    match count {
        0 => return None,
        1 => {
            let json = &wanted().next()?.json;
            out.extend_from_slice(br#"{"type":"arc","#);
            out.extend_from_slice(&json[1..]);
        }
        _ => {
            out.extend_from_slice(br#"{"type":"arcs","arcs":["#);
            for (i, e) in wanted().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&e.json);
            }
            out.extend_from_slice(b"]}");
        }
    }
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    Some((ByteString::from(text), count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use viralglobe_protocol::{Place, Timestamp};

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
            ts: Timestamp(0),
            from: Some(place.clone()),
            to: place,
        }
    }

    fn decode(frame: &ByteString) -> ServerMessage {
        serde_json::from_str(frame).expect("a server message")
    }

    #[test]
    fn frames_follow_each_subscribers_filter() {
        let hub = Hub::new(8);
        let mut all = hub.subscribe(LiveFilter::default());
        let mut clicks_b = hub.subscribe(LiveFilter {
            campaign: Some("b".into()),
            kinds: vec![ArcKind::Click],
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
        let mut slow = hub.subscribe(LiveFilter::default());
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
}
