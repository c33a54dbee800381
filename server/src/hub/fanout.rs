//! One tick's fan-out: each arc serialized once, one frame per distinct subscriber filter and
//! rate, the same bytes offered to every subscriber that wants them.

use std::{sync::Arc, time::Instant};

use bytestring::ByteString;
use viralglobe_protocol::{
    ArcEvent, ArcKind, Encoding, LiveFilter, ServerMessage, SkippedArcs, compact,
};

use super::{
    queue::{Frame, FrameKind, Subscriber},
    sample::Sampler,
};
use crate::fast_hash::FastMap;

struct Encoded<'a> {
    arc: &'a ArcEvent,
    kind: ArcKind,
    campaign: &'a str,
    channel: &'a str,
    generation: u32,
    seq: u64,
    json: Vec<u8>,
}

pub(super) fn send_reset(subscribers: &mut [Subscriber], campaign: String, epoch: &str) {
    let wanted = |s: &&mut Subscriber| s.filter.wants_campaign(&campaign);
    let reset = ServerMessage::Reset {
        campaign: campaign.clone(),
        epoch: epoch.to_owned(),
    };
    let text: ByteString = serde_json::to_string(&reset)
        .expect("reset serializes")
        .into();
    for sub in subscribers.iter_mut().filter(wanted) {
        let frame = Frame {
            text: text.clone(),
            binary: None,
            seqs: None,
            kind: FrameKind::Reset,
            published: Instant::now(),
            arcs: 0,
        };
        // A subscriber too slow to take it is told it lagged; its next arcs show the new line.
        if !sub.try_send(Arc::new(frame)) && !sub.tx.is_closed() {
            sub.dropped_arcs += 1;
        }
    }
}

/// The rate-bounded groups' samplers: by filter, then by rate (a filter has few rates).
pub(super) type Samplers = FastMap<LiveFilter, Vec<(u32, Sampler)>>;

/// The arcs one group (a filter and a rate) gets this tick, and its frames, built on first use.
struct Group<'a> {
    chosen: Vec<&'a Encoded<'a>>,
    skipped: SkippedArcs,
    json: Option<Option<Arc<Frame>>>,
    compact: Option<Option<Arc<Frame>>>,
}

impl Group<'_> {
    fn frame(&mut self, encoding: Encoding, published: Instant) -> Option<Arc<Frame>> {
        let slot = match encoding {
            Encoding::Json => &mut self.json,
            Encoding::Compact => &mut self.compact,
        };
        slot.get_or_insert_with(|| build_frame(&self.chosen, encoding, published).map(Arc::new))
            .clone()
    }
}

pub(super) fn send_arcs(
    subscribers: &mut [Subscriber],
    samplers: &mut Samplers,
    arcs: &[ArcEvent],
    published: Instant,
) {
    if arcs.is_empty() {
        return;
    }
    let now = Instant::now();
    // Each arc is serialized to JSON once, and only if a subscriber reads JSON.
    let any_json = subscribers.iter().any(|s| s.encoding == Encoding::Json);
    let encoded: Vec<Encoded<'_>> = arcs
        .iter()
        .map(|arc| Encoded {
            arc,
            kind: arc.kind,
            campaign: &arc.campaign,
            channel: &arc.channel,
            generation: arc.generation,
            seq: arc.seq,
            json: if any_json {
                serde_json::to_vec(arc).expect("arcs serialize")
            } else {
                Vec::new()
            },
        })
        .collect();
    // A subscriber to one campaign looks only at that campaign's arcs, and subscribers mostly
    // share a handful of filters and rates: each group's arcs chosen and its frames built once,
    // found by hashing the filter (by reference: no clone per subscriber).
    let all: Vec<&Encoded<'_>> = encoded.iter().collect();
    let mut by_campaign: FastMap<&str, Vec<&Encoded<'_>>> = FastMap::default();
    for e in &encoded {
        by_campaign.entry(e.campaign).or_default().push(e);
    }
    // Groups, and where each is: by filter, then by rate (a filter has few rates).
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: FastMap<LiveFilter, Vec<(Option<u32>, usize)>> = FastMap::default();
    let mut dropped = 0;
    for sub in subscribers.iter_mut() {
        let found = index.get(&sub.filter).and_then(|rates| {
            rates
                .iter()
                .find(|(rate, _)| *rate == sub.max_rate)
                .map(|(_, at)| *at)
        });
        let at = match found {
            Some(at) => at,
            None => {
                let arcs = match sub.filter.campaign.as_deref() {
                    Some(campaign) => by_campaign.get(campaign).map_or(&[][..], Vec::as_slice),
                    None => &all,
                };
                let wanted: Vec<&Encoded<'_>> = arcs
                    .iter()
                    .copied()
                    .filter(|e| {
                        sub.filter
                            .wants(e.kind, e.campaign, e.channel, e.generation)
                    })
                    .collect();
                groups.push(choose(wanted, &sub.filter, sub.max_rate, samplers, now));
                let at = groups.len() - 1;
                index
                    .entry(sub.filter.clone())
                    .or_default()
                    .push((sub.max_rate, at));
                at
            }
        };
        let group = &mut groups[at];
        if group.skipped.arcs > 0 {
            sub.skipped.add(&group.skipped);
        }
        // Before the arcs: the first `skipped` tells a client, before any gap in the `seq`s,
        // that its feed is sampled.
        sub.try_send_skipped(now);
        if let Some(frame) = group.frame(sub.encoding, published) {
            let count = frame.arcs;
            let sent = sub.try_send_lagged() && sub.try_send(frame);
            if !sent && !sub.tx.is_closed() {
                sub.dropped_arcs += count;
                dropped += count;
            }
        }
    }
    if dropped > 0 {
        metrics::counter!("viralglobe_live_dropped_arcs_total").increment(dropped);
    }
}

/// A group's arcs this tick: all it wants, or, with a rate, its sampler's choice.
fn choose<'a>(
    wanted: Vec<&'a Encoded<'a>>,
    filter: &LiveFilter,
    max_rate: Option<u32>,
    samplers: &mut Samplers,
    now: Instant,
) -> Group<'a> {
    let mut group = Group {
        chosen: wanted,
        skipped: SkippedArcs::default(),
        json: None,
        compact: None,
    };
    let Some(rate) = max_rate else {
        return group;
    };
    let rates = samplers.entry(filter.clone()).or_default();
    let at = match rates.iter().position(|(r, _)| *r == rate) {
        Some(at) => at,
        None => {
            rates.push((rate, Sampler::new(rate, now)));
            rates.len() - 1
        }
    };
    let kinds: Vec<ArcKind> = group.chosen.iter().map(|e| e.kind).collect();
    let chosen = rates[at].1.choose(&kinds, now);
    if chosen.len() < kinds.len() {
        let mut taken = chosen.into_iter().peekable();
        let mut kept = Vec::with_capacity(taken.len());
        for (i, e) in group.chosen.iter().enumerate() {
            if taken.next_if_eq(&i).is_some() {
                kept.push(*e);
            } else {
                group.skipped.count(e.kind, 1);
            }
        }
        group.chosen = kept;
    }
    group
}

/// `{"type":"arc",…}` for one arc, `{"type":"arcs","arcs":[…]}` for several (or their compact
/// binary message), nothing for none.
fn build_frame(chosen: &[&Encoded<'_>], encoding: Encoding, published: Instant) -> Option<Frame> {
    let first = chosen.first()?.seq;
    let last = chosen.last()?.seq;
    let count = chosen.len() as u64;
    if encoding == Encoding::Compact {
        let arcs: Vec<&ArcEvent> = chosen.iter().map(|e| e.arc).collect();
        return Some(Frame {
            text: ByteString::new(),
            binary: Some(compact::encode(&arcs).into()),
            seqs: Some((first, last)),
            kind: FrameKind::Arcs,
            published,
            arcs: count,
        });
    }
    let mut out = Vec::new();
    if let [only] = chosen {
        out.extend_from_slice(br#"{"type":"arc","#);
        out.extend_from_slice(&only.json[1..]);
    } else {
        out.extend_from_slice(br#"{"type":"arcs","arcs":["#);
        for (i, e) in chosen.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&e.json);
        }
        out.extend_from_slice(b"]}");
    }
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    Some(Frame {
        text: text.into(),
        binary: None,
        seqs: Some((first, last)),
        kind: FrameKind::Arcs,
        published,
        arcs: count,
    })
}
