use std::{
    io::Write,
    process::Command,
    time::{Duration, Instant},
};

use crate::support::{TestServer, events::*, geolite2_city, ips::*};

const T0: i64 = 1_350_406_800_000;

async fn wait_for_clicks(server: &TestServer, clicks: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, stats) = server.get_json("/v1/campaigns/bones-brigade/stats").await;
        if status == 200 && stats["totals"]["clicks"].as_u64() == Some(clicks) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "clicks never reached {clicks}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_ingest_command_follows_a_file_as_it_grows_and_rotates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("events.ndjson");
    let mut file = std::fs::File::create(&log).expect("create");
    writeln!(file, "{}", share("s1", None, "facebook", LOS_ANGELES, T0)).expect("write");
    writeln!(file, "{}", click("c1", "s1", TOKYO, T0 + 1)).expect("write");

    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .arg("ingest")
        .arg(&log)
        .args(["--listen", "127.0.0.1:0", "--geoip"]);
    command
        .arg(geolite2_city())
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let server = TestServer::spawn(command);
    wait_for_clicks(&server, 1).await;

    // A line written in two parts is read once it is whole.
    let line = click("c2", "s1", SYDNEY, T0 + 2);
    let (head, tail) = line.split_at(10);
    write!(file, "{head}").expect("write");
    file.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(500)).await;
    writeln!(file, "{tail}").expect("write");
    wait_for_clicks(&server, 2).await;

    // Rotation: the file is moved away and a new one takes its name.
    std::fs::rename(&log, dir.path().join("events.ndjson.1")).expect("rotate");
    let mut file = std::fs::File::create(&log).expect("create");
    writeln!(file, "{}", click("c3", "s1", BERLIN, T0 + 3)).expect("write");
    wait_for_clicks(&server, 3).await;
}

/// A restarted server goes on following where it was left: events without ids, which nothing
/// could tell apart, are not counted twice, and lines appended while it was down come in.
#[tokio::test]
async fn a_restart_goes_on_following_where_it_was_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("events.ndjson");
    let mut file = std::fs::File::create(&log).expect("create");
    writeln!(file, "{}", share("s1", None, "facebook", LOS_ANGELES, T0)).expect("write");
    let idless = |n: i64| {
        format!(
            r#"{{"type":"click","share":"s1","ip":"{TOKYO}","ts":{}}}"#,
            T0 + n
        )
    };
    for n in 1..=3 {
        writeln!(file, "{}", idless(n)).expect("write");
    }
    let start = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
        command
            .arg("ingest")
            .arg(&log)
            .args(["--listen", "127.0.0.1:0", "--fsync", "always", "--geoip"])
            .arg(geolite2_city())
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        TestServer::spawn(command)
    };
    let server = start();
    wait_for_clicks(&server, 3).await;
    // Give the follower a moment to note where it is, then stop as a crash would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();

    writeln!(file, "{}", idless(4)).expect("write");
    let server = start();
    wait_for_clicks(&server, 4).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (_, stats) = server.get_json("/v1/campaigns/bones-brigade/stats").await;
    assert_eq!(
        stats["totals"]["clicks"], 4,
        "nothing counted twice: {stats}"
    );
    assert_eq!(stats["totals"]["shares"], 1);
}

/// Lines the server cannot take for a moment (a recording that cannot be opened: 503) are sent
/// again until they go in: none lost, none counted twice (these clicks have no ids).
#[tokio::test]
async fn followed_lines_refused_for_a_moment_are_sent_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let blocker = data.join("campaigns/blocked.ndjson");
    let log = dir.path().join("events.ndjson");
    let mut file = std::fs::File::create(&log).expect("create");
    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .arg("ingest")
        .arg(&log)
        .args(["--listen", "127.0.0.1:0", "--geoip"])
        .arg(geolite2_city())
        .arg("--data-dir")
        .arg(&data);
    let server = TestServer::spawn(command);
    std::fs::create_dir_all(&blocker).expect("a directory where the recording would go");
    let in_campaign = |campaign: &str, line: String| {
        let mut event: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        event["campaign"] = campaign.into();
        event.to_string()
    };
    let idless = |share: &str, n: i64| {
        format!(
            r#"{{"type":"click","share":"{share}","ip":"{TOKYO}","ts":{}}}"#,
            T0 + n
        )
    };
    for line in [
        share("s1", None, "facebook", LOS_ANGELES, T0),
        idless("s1", 1),
        in_campaign("blocked", share("s2", None, "facebook", BERLIN, T0 + 2)),
        idless("s2", 3),
        idless("s1", 4),
    ] {
        writeln!(file, "{line}").expect("write");
    }
    wait_for_clicks(&server, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.stats("bones-brigade").await["totals"]["clicks"],
        1,
        "the lines from the refused one on wait"
    );

    std::fs::remove_dir(&blocker).expect("the cause goes");
    wait_for_clicks(&server, 2).await;
    let blocked = server.stats("blocked").await;
    assert_eq!(
        (
            blocked["totals"]["shares"].as_u64(),
            blocked["totals"]["clicks"].as_u64()
        ),
        (Some(1), Some(1)),
        "{blocked}"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        server.stats("bones-brigade").await["totals"]["clicks"],
        2,
        "nothing counted twice"
    );
    assert!(
        server.log().contains("will be sent again"),
        "{}",
        server.log()
    );
}
