//! Property: whatever the events (geo misses on every kind, orphans, children before parents,
//! parents in other campaigns, duplicates, cycles, expiry of what waits, restarts in between),
//! a restart reaches the same statistics, cascades and held events, and the arcs a live
//! subscriber receives are the arcs every reader of the recording draws — export, replay from any
//! point, resume from any `seq`, a forward read, the timeline's counts — field for field, `seq`
//! for `seq`.

use std::{collections::BTreeMap, sync::Arc};

use proptest::prelude::*;
use viralglobe_protocol::{
    ArcEvent, InputEvent, LiveFilter, Place, ServerMessage, rule::LogReader,
};

use super::{Engine, HeldLimits, Located};
use crate::{
    hub::Hub,
    recording,
    recording::index::{KeptIndexes, RecordingIndex},
    replay::{cursor::Cursor, export, timeline},
};

const CAMPAIGNS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Op {
    Share {
        id: u8,
        parent: Option<u8>,
        campaign: usize,
        located: bool,
    },
    Click {
        id: Option<u8>,
        share: u8,
        located: bool,
    },
    Purchase {
        id: Option<u8>,
        share: u8,
        located: bool,
    },
    /// The end of a batch (one request).
    Commit,
    /// The process stops after the last batch and starts again from its recordings.
    Restart,
    /// Everything waiting for its share or parent share is given up.
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..10u8, proptest::option::weighted(0.7, 0..10u8), 0..2usize, proptest::bool::weighted(0.8))
            .prop_map(|(id, parent, campaign, located)| {
                // The parser refuses a share that is its own parent; cycles come from longer loops.
                let parent = parent.filter(|p| *p != id);
                Op::Share { id, parent, campaign, located }
            }),
        4 => (proptest::option::of(0..15u8), 0..10u8, proptest::bool::weighted(0.8))
            .prop_map(|(id, share, located)| Op::Click { id, share, located }),
        2 => (proptest::option::of(0..15u8), 0..10u8, proptest::bool::weighted(0.8))
            .prop_map(|(id, share, located)| Op::Purchase { id, share, located }),
        2 => Just(Op::Commit),
        1 => Just(Op::Restart),
        1 => Just(Op::Expire),
    ]
}

fn place(n: u8, located: bool) -> Option<Arc<Place>> {
    located.then(|| {
        Arc::new(Place {
            lat: f64::from(n) - 40.0,
            lon: f64::from(n) * 7.0,
            city: Some(format!("city {n}")),
            country: Some("US".into()),
        })
    })
}

fn event(op: &Op, ts: i64) -> Option<Located> {
    let (json, at) = match op {
        Op::Share {
            id,
            parent,
            campaign,
            located,
        } => {
            let parent = parent.map_or(String::new(), |p| format!(r#","parent":"s{p}""#));
            let json = format!(
                r#"{{"type":"share","id":"s{id}","campaign":"{}","channel":"ch{}","sharer":"x","ts":{ts}{parent}}}"#,
                CAMPAIGNS[*campaign],
                id % 3
            );
            (json, place(*id, *located))
        }
        Op::Click { id, share, located } => {
            let id = id.map_or(String::new(), |i| format!(r#","id":"c{i}""#));
            let json = format!(r#"{{"type":"click","share":"s{share}","ts":{ts}{id}}}"#);
            (json, place(share + 20, *located))
        }
        Op::Purchase { id, share, located } => {
            let id = id.map_or(String::new(), |i| format!(r#","id":"p{i}""#));
            let json = format!(
                r#"{{"type":"conversion","share":"s{share}","goal":"purchase","value_cents":100,"ts":{ts}{id}}}"#
            );
            (json, place(share + 40, *located))
        }
        Op::Commit | Op::Restart | Op::Expire => return None,
    };
    let event = InputEvent::parse(json.as_bytes()).expect("a valid event");
    Some(Located { event, place: at })
}

/// Runs the ops through a real engine and hub; returns each campaign's arcs as a subscriber that
/// stayed connected (resubscribing with the same offset after each restart) received them, and
/// the indexes the last engine keeps.
fn live_arcs(dir: &std::path::Path, ops: &[Op]) -> (BTreeMap<String, Vec<ArcEvent>>, KeptIndexes) {
    let mut received: BTreeMap<String, Vec<ArcEvent>> = BTreeMap::new();
    let open = || {
        let hub = Hub::new(1 << 16);
        let held = HeldLimits {
            max: 4,
            max_per_campaign: 2,
        };
        let engine = Engine::open(dir, false, held, 1, hub.clone()).expect("engine");
        let (rx, _) = hub.subscribe(LiveFilter::default());
        (hub, engine, rx)
    };
    let (mut hub, mut engine, mut rx) = open();
    let mut batch = Vec::new();
    for (ts, op) in (1_350_406_800_000i64..).zip(ops.iter().chain([&Op::Commit])) {
        if let Some(located) = event(op, ts) {
            batch.push(located);
            continue;
        }
        engine.apply(std::mem::take(&mut batch)).expect("applied");
        if matches!(op, Op::Expire) {
            engine
                .expire_held(std::time::Duration::ZERO)
                .expect("expired");
        }
        hub.tick();
        while let Ok(frame) = rx.try_recv() {
            let arcs = match serde_json::from_str(&frame.text).expect("a message") {
                ServerMessage::Arc(arc) => vec![arc],
                ServerMessage::Arcs { arcs } => arcs,
                ServerMessage::Reset { campaign, .. } => {
                    // Only a new campaign's line begins: nothing starts over.
                    assert!(!received.contains_key(&campaign), "{campaign} started over");
                    continue;
                }
                other => panic!("unexpected {other:?}"),
            };
            for arc in arcs {
                received.entry(arc.campaign.clone()).or_default().push(arc);
            }
        }
        if matches!(op, Op::Restart) {
            let before: Vec<_> = CAMPAIGNS.iter().map(|c| hub.offset(c)).collect();
            let figures = |engine: &Engine| {
                let per_campaign: Vec<_> = CAMPAIGNS
                    .iter()
                    .map(|c| (engine.stats(c), engine.cascades(c, 256)))
                    .collect();
                (engine.summaries(|_| true), engine.held(), per_campaign)
            };
            let counted = figures(&engine);
            drop(engine);
            (hub, engine, rx) = open();
            let after: Vec<_> = CAMPAIGNS.iter().map(|c| hub.offset(c)).collect();
            assert_eq!(
                before, after,
                "a restart continues every campaign's arc line"
            );
            assert_eq!(
                counted,
                figures(&engine),
                "a restart reaches the same statistics, cascades and held events"
            );
        }
    }
    (received, engine.kept_indexes())
}

fn recorded(path: &std::path::Path) -> Vec<viralglobe_protocol::RecordedEvent> {
    let mut lines = Vec::new();
    recording::read_records(path, |r, _| lines.push(r)).expect("readable");
    lines
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_reader_of_the_log_agrees_with_the_live_feed(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (live, kept) = live_arcs(dir.path(), &ops);
        for campaign in CAMPAIGNS {
            let live = live.get(campaign).cloned().unwrap_or_default();
            let seqs: Vec<u64> = live.iter().map(|a| a.seq).collect();
            prop_assert_eq!(&seqs, &(1..=live.len() as u64).collect::<Vec<_>>(), "gap-free from 1");
            let path = recording::campaign_path(dir.path(), campaign);
            if !path.exists() {
                prop_assert!(live.is_empty());
                continue;
            }
            // A forward read (the demo player's way).
            let mut log = LogReader::default();
            let forward: Vec<ArcEvent> = recorded(&path).iter().filter_map(|r| log.next_arc(r)).collect();
            prop_assert_eq!(&forward, &live, "forward read of {}", campaign);
            // Every reader below, through the index the engine kept as it wrote (and rebuilt at
            // each restart), and through one read from the file.
            let kept = kept.get(campaign).map(|i| i.clone()).expect("a kept index");
            let read = Arc::new(RecordingIndex::read(campaign, &path).expect("index"));
            for index in [kept, read] {
            // The export.
            let mut text = String::new();
            export::export(&index, export::Format::Ndjson, &LiveFilter::default(), |chunk, _| {
                text.push_str(&chunk);
                true
            }).expect("export");
            let exported: Vec<ArcEvent> = text.lines().map(|l| serde_json::from_str(l).expect("arc")).collect();
            prop_assert_eq!(&exported, &live, "export of {}", campaign);
            prop_assert_eq!(index.arcs(), live.len() as u64);
            // The timeline counts the same arcs.
            let mut counted = viralglobe_protocol::TimelineBucket::default();
            for arc in &live {
                counted.count(arc.kind, arc.goal.as_deref(), arc.value_cents.unwrap_or(0));
            }
            let mut timeline = viralglobe_protocol::TimelineBucket::default();
            for bucket in timeline::build(&index, 7).buckets {
                timeline += bucket;
            }
            prop_assert_eq!(timeline, counted, "timeline of {}", campaign);
            // A replay from a point in time, and a resume after every seq.
            for since in 0..=live.len() as u64 {
                let mut cursor = Cursor::seek_seq(&index, since).expect("seek");
                let mut arcs = Vec::new();
                cursor.advance(&index, i64::MAX, u64::MAX, &LiveFilter::default(), usize::MAX, &mut arcs).expect("read");
                prop_assert_eq!(&arcs[..], &live[since as usize..], "resume after {}", since);
            }
            if let Some(middle) = live.get(live.len() / 2) {
                let mut cursor = Cursor::seek(&index, middle.ts.0).expect("seek");
                let mut arcs = Vec::new();
                cursor.advance(&index, i64::MAX, u64::MAX, &LiveFilter::default(), usize::MAX, &mut arcs).expect("read");
                prop_assert!(!arcs.is_empty() && live.ends_with(&arcs), "replay from {}", middle.ts.0);
            }
            }
        }
    }
}

#[test]
fn the_index_kept_while_writing_is_the_one_read_from_the_file() {
    // Enough lines for several checkpoints, over a restart (whose index comes from reading the
    // recordings at start) and on after it (from the lines written).
    let mut ops = vec![];
    for id in 0..10u8 {
        let parent = id.checked_sub(1).filter(|_| id % 3 != 0);
        ops.push(Op::Share {
            id,
            parent,
            campaign: 0,
            located: id != 4,
        });
    }
    for i in 0..6_000u32 {
        let (share, located) = ((i % 10) as u8, i % 7 != 0);
        ops.push(match i % 5 {
            0 => Op::Purchase {
                id: None,
                share,
                located,
            },
            _ => Op::Click {
                id: None,
                share,
                located,
            },
        });
        if i % 250 == 249 {
            ops.push(Op::Commit);
        }
        if i == 3_100 {
            ops.push(Op::Restart);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (live, kept) = live_arcs(dir.path(), &ops);
    let kept = kept.get("a").map(|i| i.clone()).expect("a kept index");
    let read = RecordingIndex::read("a", &kept.path).expect("index");
    let arcs = live["a"].len() as u64;
    assert!(arcs > 4 * 1_024, "{arcs} arcs: several checkpoints");
    assert_eq!(kept.arcs(), arcs);
    assert_eq!(
        (
            kept.records(),
            kept.arcs(),
            kept.span(),
            kept.indexed_bytes()
        ),
        (
            read.records(),
            read.arcs(),
            read.span(),
            read.indexed_bytes()
        )
    );
    assert_eq!(
        kept.indexed_bytes(),
        std::fs::metadata(&kept.path).expect("file").len()
    );
    for seq in 0..=arcs {
        assert_eq!(kept.checkpoint_for_seq(seq), read.checkpoint_for_seq(seq));
    }
    let (first, last) = kept.span().expect("a span");
    for ts in (first - 1..=last + 1).step_by(97) {
        assert_eq!(kept.checkpoint_for(ts), read.checkpoint_for(ts));
    }
    assert_eq!(kept.minutes(first, last + 1), read.minutes(first, last + 1));
}
