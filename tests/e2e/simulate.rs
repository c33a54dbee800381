use std::{collections::BTreeSet, process::Command, time::Duration};

use serde_json::Value;
use viralglobe_protocol::ArcKind;

use crate::support::TestServer;

/// An operator load-tests a server: `simulate` sends rate × duration fresh events, the server
/// accepts every one into the named campaign, a live subscriber sees them as arcs between real
/// places, and progress shows on stderr while the totals come out as JSON.
#[tokio::test]
async fn the_simulator_sends_fresh_events_at_the_chosen_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (mut live, _) = server.subscribe("?campaign=load-test").await;

    let base = server.base.clone();
    let run = || {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_viralglobe-server"))
                .args(["simulate", "--server", &base, "--campaign", "load-test"])
                .args(["--rate", "2000", "--duration", "2"])
                .output()
                .expect("the simulator runs")
        })
    };
    let first = run();
    let arcs = live.arcs(3_000, Duration::from_secs(30)).await;
    let output = first.await.expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let totals: Value = serde_json::from_slice(&output.stdout).expect("totals as JSON");
    assert_eq!(totals["sent"], 4_000, "{totals}");
    assert_eq!(totals["accepted"], 4_000, "{totals}");
    assert_eq!(totals["rejected"], 0, "{totals}");
    assert!(stderr.contains("accepted"), "no progress shown: {stderr}");
    assert!(stderr.contains("sent 4000 events"), "no summary: {stderr}");

    let kinds: BTreeSet<ArcKind> = arcs.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&ArcKind::Click) && kinds.contains(&ArcKind::Share));
    let countries: BTreeSet<String> = arcs.iter().filter_map(|a| a.to.country.clone()).collect();
    assert!(countries.len() >= 5, "arcs land in {countries:?}");

    // A second run sends new ids, not duplicates of the first.
    let second = run().await.expect("join");
    assert!(second.status.success());
    let stats = server.stats("load-test").await;
    let summary = &stats["summary"];
    let events = ["shares", "clicks", "conversions"]
        .iter()
        .map(|k| summary[k].as_u64().expect("count"))
        .sum::<u64>();
    assert_eq!(events, 8_000, "{summary}");
}

#[test]
fn the_simulator_names_an_unreachable_server() {
    let output = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"))
        .args([
            "simulate",
            "--server",
            "http://127.0.0.1:9",
            "--duration",
            "1",
        ])
        .output()
        .expect("the simulator runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot post events to http://127.0.0.1:9/v1/events"),
        "{stderr}"
    );
}
