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

/// A share of another campaign, as the `events` builders make them for `bones-brigade`.
fn share_in(campaign: &str, id: &str, parent: Option<&str>, ip: &str, ts: i64) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&share(id, parent, "facebook", ip, ts)).expect("a share");
    event["campaign"] = json!(campaign);
    event.to_string()
}

/// A restart follows what was recorded; it does not apply the live `--max-held` limit again. Nine
/// children arrived before their parent in one campaign; later ten orphans filled the limit in
/// another, which a restart reads first: all ten shares are still there afterwards.
#[tokio::test]
async fn a_restart_keeps_every_acknowledged_share_whatever_the_held_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--max-held", "10"]);
    let mut early: Vec<String> = (1..=9)
        .map(|i| {
            share_in(
                "b-late",
                &format!("child{i}"),
                Some("parent"),
                BERLIN,
                T0 + i,
            )
        })
        .collect();
    early.push(share_in("b-late", "parent", None, LOS_ANGELES, T0 + 10));
    let (_, answer) = server.post_ndjson(&early).await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["held"].as_u64()),
        (Some(10), Some(9))
    );
    let orphans: Vec<String> = (1..=10)
        .map(|i| {
            share_in(
                "a-orphans",
                &format!("orphan{i}"),
                Some("nowhere"),
                TOKYO,
                T0 + 20 + i,
            )
        })
        .collect();
    let (_, answer) = server.post_ndjson(&orphans).await;
    assert_eq!(answer["held"], 10);
    let before = server.stats("b-late").await;
    assert_eq!(before["totals"]["shares"], 10);
    server.kill();

    let server = TestServer::start_in(dir.path(), &["--max-held", "10"]);
    // Every share, and the ten orphans still held (the server's held count is in each campaign's).
    assert_eq!(server.stats("b-late").await, before);
    assert_eq!(before["held"], 10);
}

/// A waiting share whose parent turns up in another campaign never joins that campaign, before
/// or after a restart; re-sent without the wrong parent, it resolves, and the click that waited
/// for it with it.
#[tokio::test]
async fn a_waiting_share_never_resolves_into_another_campaign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (_, answer) = server
        .post_ndjson(&[
            share_in("b", "s2", Some("s1"), BERLIN, T0 + 1),
            click("c1", "s2", TOKYO, T0 + 2),
            share_in("a", "s1", None, LOS_ANGELES, T0 + 3),
        ])
        .await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["held"].as_u64()),
        (Some(3), Some(2))
    );
    let a = server.stats("a").await;
    assert_eq!(
        (
            a["totals"]["shares"].as_u64(),
            a["totals"]["clicks"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        a["held"], 1,
        "the click still waits for a share s2 it can be credited to"
    );
    server.kill();

    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(server.stats("a").await, a, "the same after a restart");
    let (_, answer) = server
        .post_ndjson(&[share_in("b", "s2", None, BERLIN, T0 + 4)])
        .await;
    assert_eq!(answer["accepted"], 1);
    let b = server.stats("b").await;
    assert_eq!(
        (
            b["totals"]["shares"].as_u64(),
            b["totals"]["clicks"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(b["held"], 0);
}

/// When a recording cannot be written, ingest answers 503 and stops until a restart, and
/// `/healthz` says so (with the reason) instead of "ok", so a load balancer or an operator
/// notices.
#[tokio::test]
async fn healthz_says_when_ingest_has_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (status, _) = server
        .post_ndjson(&[share_in("fine", "s1", None, LOS_ANGELES, T0)])
        .await;
    assert_eq!(status, 200);
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    // A recording whose writes fail (the device is full) after it opened: what was decided may
    // be ahead of the disk, so ingest stops until a restart.
    std::os::unix::fs::symlink("/dev/full", dir.path().join("campaigns/broken.ndjson"))
        .expect("symlink");
    let response = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(share_in("broken", "s2", None, LOS_ANGELES, T0))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "ingest stopped");
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("broken.ndjson"), "{reason}");
}

/// Under `ulimit -n 256`, 400 campaigns come and go: a recording not written lately is closed,
/// so descriptors stay bounded and every campaign, old or new, takes events. Before, every
/// campaign kept two descriptors for ever, and the 120th or so stopped ingest for good.
#[tokio::test]
async fn hundreds_of_campaigns_fit_in_a_low_descriptor_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", r#"ulimit -n 256 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_viralglobe-server"))
        .args(["--listen", "127.0.0.1:0", "--max-open-recordings", "32"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--geoip")
        .arg(crate::support::geolite2_city());
    let server = TestServer::spawn(command);
    for i in 0..400 {
        let (status, answer) = server
            .post_ndjson(&[share_in(
                &format!("c{i}"),
                &format!("s{i}"),
                None,
                LOS_ANGELES,
                T0,
            )])
            .await;
        assert_eq!(status, 200, "campaign {i}: {answer}");
    }
    let (status, _) = server
        .post_ndjson(&[share_in("c0", "again", None, LOS_ANGELES, T0)])
        .await;
    assert_eq!(status, 200, "an old campaign's recording opens again");
    assert_eq!(server.stats("c0").await["totals"]["shares"], 2);
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

/// A recording that cannot be opened refuses only the events that need it, with a 503 and
/// `Retry-After`; what came before them in the request is acknowledged, other campaigns go on, a
/// restart with the cause still there starts without that campaign, and once the cause is gone
/// the same events are taken. Nothing stops.
#[tokio::test]
async fn a_recording_that_cannot_be_opened_refuses_only_its_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let blocker = dir.path().join("campaigns/blocked.ndjson");
    std::fs::create_dir_all(&blocker).expect("a directory where the recording would go");
    let (status, answer) = server
        .post_ndjson(&[
            share_in("fine", "s1", None, LOS_ANGELES, T0),
            share_in("blocked", "s2", None, LOS_ANGELES, T0),
            share_in("fine", "s3", None, LOS_ANGELES, T0),
        ])
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(
        answer["report"]["accepted"], 1,
        "the line before it is acknowledged: {answer}"
    );
    assert_eq!(
        answer["report"]["not_acknowledged_from"], 2,
        "the answer says where to send again from: {answer}"
    );
    let (status, _) = server
        .post_ndjson(&[share_in("fine", "s3", None, LOS_ANGELES, T0)])
        .await;
    assert_eq!(status, 200, "other campaigns go on");
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    // A restart with the directory still there starts, without that campaign, and says so.
    server.kill();
    let server = TestServer::start_in(dir.path(), &[]);
    assert!(
        server
            .log()
            .contains("not a file where a campaign recording would be"),
        "{}",
        server.log()
    );
    assert_eq!(server.stats("fine").await["totals"]["shares"], 2);

    std::fs::remove_dir(&blocker).expect("the cause goes");
    let (status, answer) = server
        .post_ndjson(&[share_in("blocked", "s2", None, LOS_ANGELES, T0)])
        .await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(server.stats("fine").await["totals"]["shares"], 2);
}

/// A restart with no room to write what it needs (here the held-event journal it rewrites: the
/// disk is full) still starts: it serves what it has — statistics, replays — while ingest answers
/// 503 and `/healthz` says why. Before, the server would not start at all.
#[tokio::test]
async fn a_restart_without_room_to_write_still_serves_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (status, _) = server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", TOKYO, T0 + 1),
            click("c9", "s5", SYDNEY, T0 + 2),
        ])
        .await;
    assert_eq!(status, 200);
    let before = server.stats("bones-brigade").await;
    assert_eq!(before["held"], 1);
    server.kill();

    std::os::unix::fs::symlink("/dev/full", dir.path().join("held.ndjson.tmp")).expect("symlink");
    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(server.stats("bones-brigade").await, before);
    let (status, _) = server
        .post_ndjson(&[click("c2", "s1", TOKYO, T0 + 3)])
        .await;
    assert_eq!(status, 503);
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!(status, 503, "{health}");
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("while restarting"), "{reason}");
}

/// A new recording's directory entry, and the journal's rename at a restart, reach the disk: the
/// server fsyncs the directory after each (seen in the system calls it makes, under strace), so
/// that a power cut cannot lose a file whose lines were acknowledged.
#[tokio::test]
async fn new_files_and_renames_are_made_durable_in_their_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let traced = |trace: &std::path::Path| {
        let mut command = std::process::Command::new("strace");
        // `-D`: strace runs as a grandchild, so the child that the test kills is the server
        // itself (killing strace would leave the server running).
        command
            .args([
                "-D",
                "-f",
                "-qq",
                "-e",
                "trace=openat,fsync,rename,renameat,renameat2",
                "-o",
            ])
            .arg(trace)
            .arg(env!("CARGO_BIN_EXE_viralglobe-server"))
            .args(["--listen", "127.0.0.1:0", "--fsync", "always", "--data-dir"])
            .arg(&data)
            .arg("--geoip")
            .arg(crate::support::geolite2_city());
        TestServer::spawn(command)
    };
    let first = dir.path().join("first.trace");
    let server = traced(&first);
    let (status, _) = server
        .post_ndjson(&[
            share_in("fresh", "s1", None, LOS_ANGELES, T0),
            click("c9", "nowhere", TOKYO, T0 + 1),
        ])
        .await;
    assert_eq!(status, 200);
    server.kill();
    let campaigns = data.join("campaigns");
    let trace = std::fs::read_to_string(&first).expect("trace");
    assert!(
        fsyncs_after(&trace, "fresh.ndjson", &campaigns),
        "no fsync of {} after creating the recording:\n{trace}",
        campaigns.display()
    );
    assert!(
        fsyncs_after(&trace, "held.ndjson", &data),
        "no fsync of {} after creating the journal:\n{trace}",
        data.display()
    );

    let second = dir.path().join("second.trace");
    let server = traced(&second);
    server.kill();
    let trace = std::fs::read_to_string(&second).expect("trace");
    assert!(
        fsyncs_after(&trace, "held.ndjson.tmp", &data),
        "no fsync of {} after renaming the rewritten journal:\n{trace}",
        data.display()
    );
}

/// Whether, after the first system call naming `file`, the process opened `dir` and fsynced that
/// descriptor (strace -f output: `pid call(args) = result`).
fn fsyncs_after(trace: &str, file: &str, dir: &std::path::Path) -> bool {
    let opened = format!("\"{}\"", dir.display());
    let mut lines = trace.lines().skip_while(|l| !l.contains(file));
    let mut fds = Vec::new();
    lines.any(|line| {
        if line.contains("openat(") && line.contains(&opened) {
            if let Some(fd) = line
                .rsplit("= ")
                .next()
                .and_then(|r| r.trim().parse::<i32>().ok())
            {
                fds.push(fd);
            }
            return false;
        }
        fds.iter()
            .any(|fd| line.contains(&format!("fsync({fd})")) && line.ends_with("= 0"))
    })
}

/// Requests that arrive together are applied and written out together (group commit), and each is
/// answered only once its own event is on disk: every acknowledged click is there after a SIGKILL,
/// counted once.
#[tokio::test]
async fn concurrent_requests_share_a_commit_and_lose_nothing_acknowledged() {
    const CLIENTS: usize = 32;
    const EACH: usize = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    // The default fsync policy: an answered event is in the file, which is what a kill -9
    // tests (a fsync per commit would only load the disk that other tests share).
    let server = TestServer::start_in(dir.path(), &[]);
    let (status, _) = server
        .post_ndjson(&[share("s1", None, "facebook", LOS_ANGELES, T0)])
        .await;
    assert_eq!(status, 200);
    let url = server.url("/v1/events");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..EACH {
                    let body = click(&format!("c{c}-{i}"), "s1", TOKYO, T0 + 1 + i as i64);
                    let answer: serde_json::Value = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .expect("POST")
                        .json()
                        .await
                        .expect("JSON");
                    assert_eq!(answer["accepted"], 1, "{answer}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client");
    }
    let metrics = server.metrics().await;
    let value = |name: &str| metrics.value(name);
    let (requests, groups) = (
        value("viralglobe_ingest_group_requests_sum"),
        value("viralglobe_ingest_group_requests_count"),
    );
    assert_eq!(requests, (CLIENTS * EACH + 1) as f64);
    assert!(
        groups < requests,
        "{requests} requests from {CLIENTS} clients at once, in {groups} commits: none shared one"
    );
    server.kill();

    let server = TestServer::start_in(dir.path(), &[]);
    let stats = server.stats("bones-brigade").await;
    assert_eq!(
        stats["totals"]["clicks"],
        (CLIENTS * EACH) as u64,
        "{stats}"
    );
    let (_, again) = server
        .post_ndjson(&[click("c7-7", "s1", TOKYO, T0 + 8)])
        .await;
    assert_eq!(again["duplicates"], 1, "{again}");
}
