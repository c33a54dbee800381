use std::{io::Write, time::Duration};

use serde_json::json;

use crate::support::{TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;

/// Everything acknowledged before a SIGKILL is there after a restart: counters, share tree,
/// held events, seen ids and sequence numbers.
#[tokio::test]
async fn a_killed_server_restarts_with_everything_it_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--fsync", "never"]);
    let (status, _) = server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            share("s2", Some("s1"), "twitter", BERLIN, T0 + 1),
            click("c1", "s2", TOKYO, T0 + 2),
            conversion("v1", "s2", "purchase", 1499, SYDNEY, T0 + 3),
            // Held: s4's parent s3 and c9's share s5 have not arrived.
            share("s4", Some("s3"), "facebook", TOKYO, T0 + 4),
            click("c9", "s5", SYDNEY, T0 + 5),
        ])
        .await;
    assert_eq!(status, 200);
    let before = server.stats("bones-brigade").await;
    server.kill();

    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(server.stats("bones-brigade").await, before);
    let (_, again) = server
        .post_ndjson(&[click("c1", "s2", TOKYO, T0 + 2)])
        .await;
    assert_eq!(
        again["duplicates"], 1,
        "ids seen before the crash are still known"
    );

    let (mut live, _) = server.subscribe("").await;
    server
        .post_ndjson(&[
            share("s3", Some("s2"), "email", SYDNEY, T0 + 6),
            share("s5", Some("s1"), "facebook", BERLIN, T0 + 7),
        ])
        .await;
    let arcs = live.arcs(4, Duration::from_secs(5)).await;
    let got: Vec<(u64, &str, u32)> = arcs
        .iter()
        .map(|a| (a.seq, a.share.as_str(), a.generation))
        .collect();
    // Sequence numbers continue after the 4 arcs drawn before the crash.
    assert_eq!(
        got,
        [(5, "s3", 2), (6, "s4", 3), (7, "s5", 1), (8, "s5", 1)]
    );
    assert_eq!(
        arcs[3].to.city.as_deref(),
        Some("Sydney"),
        "the held click resolved"
    );
    let stats = server.stats("bones-brigade").await;
    assert_eq!(
        (stats["totals"]["shares"].clone(), stats["held"].clone()),
        (json!(5), json!(0))
    );
}

#[tokio::test]
async fn a_torn_last_line_is_cut_with_a_log_line_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", TOKYO, T0),
        ])
        .await;
    server.kill();
    let recording = dir.path().join("campaigns/bones-brigade.ndjson");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&recording)
        .expect("open");
    file.write_all(br#"{"event":{"type":"click","id":"c2","sha"#)
        .expect("tear");
    drop(file);

    let server = TestServer::start_in(dir.path(), &[]);
    assert!(server.log().contains("torn last line"), "{}", server.log());
    assert_eq!(server.stats("bones-brigade").await["totals"]["clicks"], 1);
    let (status, _) = server
        .post_ndjson(&[click("c2", "s1", TOKYO, T0 + 1)])
        .await;
    assert_eq!(status, 200);
    let text = std::fs::read_to_string(&recording).expect("read");
    assert_eq!(text.lines().count(), 3);
    for line in text.lines() {
        serde_json::from_str::<viralglobe_protocol::RecordedEvent>(line)
            .expect("every line parses");
    }
}
