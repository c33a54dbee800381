//! One tick's fan-out: each arc serialized once, one frame per distinct subscriber filter, the
//! same bytes offered to every subscriber that wants them.

use std::{sync::Arc, time::Instant};

use bytestring::ByteString;
use viralglobe_protocol::{ArcEvent, ArcKind, Encoding, LiveFilter, ServerMessage, compact};

use super::queue::{Frame, Subscriber};
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
            reset: true,
            published: Instant::now(),
            arcs: 0,
        };
        // A subscriber too slow to take it is told it lagged; its next arcs show the new line.
        if !sub.try_send(Arc::new(frame)) && !sub.tx.is_closed() {
            sub.dropped_arcs += 1;
        }
    }
}

pub(super) fn send_arcs(subscribers: &mut [Subscriber], arcs: &[ArcEvent], published: Instant) {
    if arcs.is_empty() {
        return;
    }
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
    // share a handful of filters: one frame per distinct filter, found by hashing.
    let all: Vec<&Encoded<'_>> = encoded.iter().collect();
    let mut by_campaign: FastMap<&str, Vec<&Encoded<'_>>> = FastMap::default();
    for e in &encoded {
        by_campaign.entry(e.campaign).or_default().push(e);
    }
    // Frames by filter, one map per encoding (looked up by reference: no clone per subscriber).
    let mut json: FastMap<LiveFilter, Option<(Arc<Frame>, u64)>> = FastMap::default();
    let mut compact: FastMap<LiveFilter, Option<(Arc<Frame>, u64)>> = FastMap::default();
    let mut dropped = 0;
    for sub in subscribers.iter_mut() {
        let frames = match sub.encoding {
            Encoding::Json => &mut json,
            Encoding::Compact => &mut compact,
        };
        // One lookup for every subscriber whose filter's frame is built (all but the first).
        let built = match frames.get(&sub.filter) {
            Some(built) => built.clone(),
            None => {
                let arcs = match sub.filter.campaign.as_deref() {
                    Some(campaign) => by_campaign.get(campaign).map_or(&[][..], Vec::as_slice),
                    None => &all,
                };
                let frame = build_frame(arcs, &sub.filter, sub.encoding, published)
                    .map(|(f, n)| (Arc::new(f), n));
                frames.insert(sub.filter.clone(), frame.clone());
                frame
            }
        };
        let Some((frame, count)) = built else {
            continue;
        };
        let sent = sub.try_send_lagged() && sub.try_send(frame);
        if !sent && !sub.tx.is_closed() {
            sub.dropped_arcs += count;
            dropped += count;
        }
    }
    if dropped > 0 {
        metrics::counter!("viralglobe_live_dropped_arcs_total").increment(dropped);
    }
}

/// `{"type":"arc",…}` for one arc, `{"type":"arcs","arcs":[…]}` for several (or their compact
/// binary message), nothing for none.
fn build_frame(
    encoded: &[&Encoded<'_>],
    filter: &LiveFilter,
    encoding: Encoding,
    published: Instant,
) -> Option<(Frame, u64)> {
    let wanted = || {
        encoded
            .iter()
            .filter(|e| filter.wants(e.kind, e.campaign, e.channel, e.generation))
    };
    let count = wanted().count() as u64;
    let first = wanted().next()?.seq;
    let last = wanted().next_back()?.seq;
    if encoding == Encoding::Compact {
        let arcs: Vec<&ArcEvent> = wanted().map(|e| e.arc).collect();
        let frame = Frame {
            text: ByteString::new(),
            binary: Some(compact::encode(&arcs).into()),
            seqs: Some((first, last)),
            reset: false,
            published,
            arcs: count,
        };
        return Some((frame, count));
    }
    let mut out = Vec::new();
    if count == 1 {
        let json = &wanted().next()?.json;
        out.extend_from_slice(br#"{"type":"arc","#);
        out.extend_from_slice(&json[1..]);
    } else {
        out.extend_from_slice(br#"{"type":"arcs","arcs":["#);
        for (i, e) in wanted().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&e.json);
        }
        out.extend_from_slice(b"]}");
    }
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    let frame = Frame {
        text: text.into(),
        binary: None,
        seqs: Some((first, last)),
        reset: false,
        published,
        arcs: count,
    };
    Some((frame, count))
}
