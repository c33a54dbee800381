use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use viralglobe_protocol::{ArcKind, CampaignStats};
use viralglobe_server::demo;

use crate::support::TestServer;

fn demo_server(data_dir: &Path) -> TestServer {
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
    let figures = demo::figures::published(&stats);
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
        committed.join(demo::CITIES_FILE),
        dir.path().join(demo::CITIES_FILE),
    )
    .expect("cities");
    demo::regenerate(dir.path(), 2012).expect("regenerate");
    for file in [demo::RECORDING_FILE, demo::GEO_DB_FILE, demo::PARAMS_FILE] {
        let fresh = std::fs::read(dir.path().join(file)).expect("fresh");
        let kept = std::fs::read(committed.join(file)).expect("committed");
        assert!(fresh == kept, "{file} differs from a fresh generation");
    }
}
