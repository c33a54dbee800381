use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use viralglobe_protocol::{ArcKind, CampaignStats, InputEvent, Timeline, TimelineBucket};
use viralglobe_server::demo;

use crate::support::TestServer;

pub fn demo_server(data_dir: &Path) -> TestServer {
    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    TestServer::spawn(command)
}

/// What a presenter sees: within 5 seconds of connecting, arcs of every kind from several
/// generations.
#[tokio::test]
async fn the_demo_feed_shows_every_kind_from_several_generations_within_5_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let (mut live, _) = server.subscribe("").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut kinds, mut generations) = (BTreeSet::new(), BTreeSet::new());
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        for arc in live.arcs(500, left).await {
            let child_share = arc.kind == ArcKind::Share && arc.generation > 0;
            kinds.insert(match arc.kind {
                ArcKind::Conversion => arc.goal.clone().unwrap_or_default(),
                _ if child_share => "child share".into(),
                other => other.as_str().into(),
            });
            generations.insert(arc.generation);
        }
    }
    for kind in ["click", "child share", "signup", "purchase"] {
        assert!(kinds.contains(kind), "no {kind} arc within 5 s: {kinds:?}");
    }
    assert!(generations.len() >= 3, "generations seen: {generations:?}");
}

/// The published table of the launch, row by row, from the stats API of the demo server.
#[tokio::test]
async fn the_demo_campaign_reproduces_the_published_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last_clicks = None;
    let stats: CampaignStats = loop {
        let (status, stats) = server.get_json("/v1/campaigns/bones-brigade/stats").await;
        if status == 200 {
            let stats: CampaignStats = serde_json::from_value(stats).expect("stats");
            if last_clicks == Some(stats.totals.clicks) {
                break stats;
            }
            last_clicks = Some(stats.totals.clicks);
        }
        assert!(
            Instant::now() < deadline,
            "the demo campaign never finished loading"
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    };
    let figures = xtask::figures::published(&stats);
    let table: Vec<String> = figures.iter().map(ToString::to_string).collect();
    assert!(figures.iter().all(|f| f.holds()), "\n{}", table.join("\n"));
    assert_eq!(stats.held, 0);
    assert!(stats.summary.max_generation >= 5, "{:?}", stats.summary);
}

#[test]
fn regenerating_the_demo_with_its_seed_gives_the_committed_bytes() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-data");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        committed.join(xtask::CITIES_FILE),
        dir.path().join(xtask::CITIES_FILE),
    )
    .expect("cities");
    xtask::regenerate(dir.path(), 2012).expect("regenerate");
    for file in [
        xtask::RECORDING_FILE,
        xtask::GEO_DB_FILE,
        xtask::PARAMS_FILE,
    ] {
        let fresh = std::fs::read(dir.path().join(file)).expect("fresh");
        let kept = std::fs::read(committed.join(file)).expect("committed");
        assert!(fresh == kept, "{file} differs from a fresh generation");
    }
}

/// A marketer replays the demo from its first post at 100,000× and draws its timeline.
#[tokio::test]
async fn the_demo_campaign_replays_from_its_first_post_with_a_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let timeline = loop {
        let (status, body) = server
            .get_json("/v1/campaigns/bones-brigade/timeline")
            .await;
        if status == 200 {
            break serde_json::from_value::<Timeline>(body).expect("a timeline");
        }
        assert!(
            Instant::now() < deadline,
            "no demo timeline: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut expected = TimelineBucket::default();
    for record in demo::player::records() {
        match record.event {
            InputEvent::Share(_) => expected.shares += 1,
            InputEvent::Click(_) => expected.clicks += 1,
            InputEvent::Conversion(c) if c.goal == "signup" => expected.signups += 1,
            InputEvent::Conversion(c) => {
                expected.purchases += 1;
                expected.revenue_cents += c.value_cents;
            }
        }
    }
    let mut total = TimelineBucket::default();
    for bucket in &timeline.buckets {
        total += *bucket;
    }
    assert_eq!(total, expected);
    assert!(
        (150..=200).contains(&timeline.buckets.len()),
        "{}",
        timeline.buckets.len()
    );

    let mut replay = server.replay("bones-brigade", "?speed=100000").await;
    let arcs = replay.arcs(2_000, Duration::from_secs(10)).await;
    let first = &arcs[0];
    assert_eq!(
        (first.seq, first.kind, first.share.as_str()),
        (1, ArcKind::Share, "s1")
    );
    assert_eq!(first.to.city.as_deref(), Some("Los Angeles"));
    let kinds: BTreeSet<ArcKind> = arcs.iter().map(|a| a.kind).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}
