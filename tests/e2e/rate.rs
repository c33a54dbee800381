//! A live feed with `max_rate`: a bounded, deterministic sample of the arcs, the same for every
//! subscriber asking for the same filter and rate, shares and conversions kept over clicks, and
//! what was left out told (`skipped`) so the counters stay exact.

use std::time::{Duration, Instant};

use viralglobe_protocol::{ArcEvent, ArcKind, ServerMessage, SkippedArcs};

use crate::support::{Subscriber, TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;
const RATE: u64 = 50;

/// Arcs and `skipped` totals until `last` has come (or nothing more comes for `quiet`).
async fn read_until(
    subscriber: &mut Subscriber,
    last: u64,
    quiet: Duration,
) -> (Vec<ArcEvent>, SkippedArcs, Option<Instant>) {
    let (mut arcs, mut skipped, mut at) = (Vec::new(), SkippedArcs::default(), None);
    while let Some(message) = subscriber.next_message(quiet).await {
        match message {
            ServerMessage::Arc(arc) => arcs.push(arc),
            ServerMessage::Arcs { arcs: more } => arcs.extend(more),
            ServerMessage::Skipped(more) => skipped.add(&more),
            ServerMessage::Lagged { dropped_arcs } => panic!("lagged {dropped_arcs}"),
            _ => continue,
        }
        if arcs.last().is_some_and(|a: &ArcEvent| a.seq >= last) {
            at.get_or_insert_with(Instant::now);
        }
    }
    (arcs, skipped, at)
}

fn seqs(arcs: &[ArcEvent]) -> Vec<u64> {
    arcs.iter().map(|a| a.seq).collect()
}

/// Three seconds of 10 shares, 10 conversions and 1,000 clicks a second, read at 50 arcs a
/// second by two JSON subscribers and a compact one, and in full by a fourth.
#[tokio::test]
async fn a_rate_bounded_feed_gets_a_faithful_sample_and_the_count_of_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let query = format!("?campaign=bones-brigade&max_rate={RATE}");
    let (mut first, hello) = server.subscribe(&query).await;
    let ServerMessage::Hello { max_rate, .. } = hello else {
        panic!("not a hello: {hello:?}")
    };
    assert_eq!(max_rate, Some(RATE as u32), "the hello says the rate");
    let (mut second, _) = server.subscribe(&query).await;
    let (mut compact, _) = server.subscribe(&format!("{query}&encoding=compact")).await;
    let (mut every, _) = server.subscribe("?campaign=bones-brigade").await;

    let started = Instant::now();
    let mut posted = 0;
    for n in 0..30 {
        let ts = T0 + n * 1_000;
        let share_id = format!("s{n}");
        let mut lines = vec![share(&share_id, None, "facebook", LOS_ANGELES, ts)];
        lines.push(conversion(
            &format!("v{n}"),
            &share_id,
            "signup",
            0,
            SYDNEY,
            ts + 1,
        ));
        lines.extend((0..100).map(|c| click(&format!("c{n}.{c}"), &share_id, TOKYO, ts + 2)));
        let (status, answer) = server.post_ndjson(&lines).await;
        assert_eq!(status, 200, "{answer}");
        posted += lines.len() as u64;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let all = every.arcs(posted as usize, Duration::from_secs(10)).await;
    assert_eq!(
        all.len() as u64,
        posted,
        "the unbounded subscriber gets every arc"
    );
    let last = all.last().expect("arcs").seq;
    // Read until a second and a half of quiet: the last `skipped` comes within a second.
    let quiet = Duration::from_millis(1_500);
    let (a, a_skipped, a_done) = read_until(&mut first, last, quiet).await;
    let (b, b_skipped, _) = read_until(&mut second, last, quiet).await;
    let (c, _, _) = read_until(&mut compact, last, quiet).await;

    assert_eq!(
        seqs(&a),
        seqs(&b),
        "the same filter and rate, the same arcs"
    );
    assert_eq!(seqs(&a), seqs(&c), "in either encoding");
    assert_eq!(a_skipped, b_skipped);
    let kept: Vec<u64> = all
        .iter()
        .filter(|arc| arc.kind != ArcKind::Click)
        .map(|arc| arc.seq)
        .collect();
    assert_eq!(kept.len(), 60);
    assert!(
        kept.iter().all(|seq| seqs(&a).contains(seq)),
        "every share and conversion fits the rate, and is sent"
    );
    // At most the rate in any second (so over the seconds the arcs took), and not starved.
    let took = a_done.unwrap_or_else(Instant::now) - started;
    let most = RATE as f64 * took.as_secs_f64().ceil();
    let n = a.len() as f64;
    assert!(n <= most, "{n} arcs in {took:?} at {RATE}/s");
    assert!(n >= RATE as f64 * 2.0, "{n} arcs in {took:?}: starved");
    assert!(a.windows(2).all(|w| w[0].seq < w[1].seq), "in order, once");
    // What was left out adds up: every arc sent or counted, only clicks left out.
    assert_eq!(a.len() as u64 + a_skipped.arcs, posted, "{a_skipped:?}");
    assert_eq!(
        (a_skipped.shares, a_skipped.conversions, a_skipped.clicks),
        (0, 0, a_skipped.arcs)
    );

    // Resuming after the last arc it got still works: nothing the rate skipped is "missed".
    let ServerMessage::Hello { campaigns, .. } = server.subscribe(&query).await.1 else {
        unreachable!()
    };
    let epoch = campaigns[0].epoch.clone().expect("an epoch");
    let resume = format!("{query}&since={last}&epoch={epoch}");
    let (mut resumed, _) = server.subscribe(&resume).await;
    let (status, _) = server
        .post_ndjson(&[share("late", None, "email", BERLIN, T0 + 60_000)])
        .await;
    assert_eq!(status, 200);
    let more = resumed.arcs(1, Duration::from_secs(5)).await;
    assert_eq!(seqs(&more), [last + 1]);

    // A rate that is not one is refused, naming the parameter.
    let (status, answer) = server
        .get_json("/v1/live/events?campaign=bones-brigade&max_rate=0")
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("max_rate"), "{answer}");
}
