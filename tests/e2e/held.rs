//! Events that wait for their share or parent share: bounded per campaign, given up after a
//! while, reported, and kept on disk; a restart reaches the same state.

use std::time::{Duration, Instant};

use crate::support::{TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;

fn share_in(campaign: &str, id: &str, parent: Option<&str>, ts: i64) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&share(id, parent, "facebook", BERLIN, ts)).expect("a share");
    event["campaign"] = campaign.into();
    event.to_string()
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text")
}

/// Orphans of one campaign fill its own quota, not the server's: another campaign's late
/// children still wait for their parent and resolve.
#[tokio::test]
async fn one_campaign_cannot_fill_the_held_limit_for_every_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(
        dir.path(),
        &["--max-held", "20", "--max-held-per-campaign", "5"],
    );
    let orphans: Vec<String> = (0..8)
        .map(|i| share_in("flood", &format!("o{i}"), Some("nowhere"), T0 + i))
        .collect();
    let (status, answer) = server.post_ndjson(&orphans).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["held"], 5, "{answer}");
    let rejected = answer["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 3, "{answer}");
    assert_eq!(rejected[0]["line"], 6, "{answer}");
    assert_eq!(rejected[0]["field"], "parent", "{answer}");
    let error = rejected[0]["error"].as_str().expect("error");
    assert!(
        error.contains("campaign `flood`") && error.contains("--max-held-per-campaign"),
        "{error}"
    );

    let (_, answer) = server
        .post_ndjson(&[
            share("child", Some("root"), "twitter", TOKYO, T0 + 10),
            share("root", None, "facebook", LOS_ANGELES, T0 + 11),
        ])
        .await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["held"].as_u64()),
        (Some(2), Some(1)),
        "{answer}"
    );
    assert_eq!(server.stats("bones-brigade").await["totals"]["shares"], 2);
}

/// Held events that wait longer than `--held-expiry-secs` are given up: the limit they filled
/// frees up, the expiry is counted in the metrics and logged, a share that arrives later does not
/// bring them back, a re-sent click then counts, and a restart reaches the same statistics and
/// moves the given-up clicks to `held-expired.ndjson`.
#[tokio::test]
async fn held_events_expire_are_reported_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--max-held", "10", "--held-expiry-secs", "1"]);
    let mut lines = vec![share("kid", Some("gone"), "twitter", TOKYO, T0)];
    lines.extend((0..9).map(|i| click(&format!("c{i}"), "late", SYDNEY, T0 + 1 + i)));
    lines.push(click("c-full", "other", SYDNEY, T0 + 20));
    let (_, answer) = server.post_ndjson(&lines).await;
    assert_eq!(answer["held"], 10, "{answer}");
    assert_eq!(
        answer["rejected"][0]["line"], 11,
        "the limit is full: {answer}"
    );

    let started = Instant::now();
    loop {
        let text = metrics(&server).await;
        if text.contains(r#"viralglobe_held_expired_total{type="click_or_conversion"} 9"#)
            && text.contains(r#"viralglobe_held_expired_total{type="share"} 1"#)
        {
            assert!(text.contains("viralglobe_held_events 0"), "{text}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "nothing expired:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("gave up events"), "{}", server.log());

    // Room again; what expired does not come back when its share arrives; re-sent, it counts.
    let (_, answer) = server
        .post_ndjson(&[
            click("c-late", "still-missing", SYDNEY, T0 + 30),
            share("late", None, "facebook", LOS_ANGELES, T0 + 31),
            share("gone", None, "facebook", LOS_ANGELES, T0 + 32),
        ])
        .await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["held"].as_u64()),
        (Some(3), Some(1)),
        "{answer}"
    );
    let stats = server.stats("bones-brigade").await;
    assert_eq!(
        (
            stats["totals"]["shares"].as_u64(),
            stats["totals"]["clicks"].as_u64()
        ),
        (Some(2), Some(0)),
        "the given-up share and clicks stay given up: {stats}"
    );
    let resent: Vec<String> = (0..3)
        .map(|i| click(&format!("c{i}"), "late", SYDNEY, T0 + 1 + i))
        .collect();
    let (_, answer) = server.post_ndjson(&resent).await;
    assert_eq!(answer["accepted"], 3, "re-sent, they count: {answer}");
    assert_eq!(answer["duplicates"], 0, "{answer}");
    let before = server.stats("bones-brigade").await;
    assert_eq!(before["totals"]["clicks"], 3);
    assert_eq!(before["held"], 1);
    server.kill();

    let server = TestServer::start_in(dir.path(), &["--max-held", "10"]);
    assert_eq!(server.stats("bones-brigade").await, before);
    let expired =
        std::fs::read_to_string(dir.path().join("held-expired.ndjson")).expect("expired file");
    let ids: Vec<String> = expired
        .lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).expect("JSON");
            line["event"]["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        (0..9).map(|i| format!("c{i}")).collect::<Vec<_>>(),
        "{expired}"
    );
    // The re-sent clicks are duplicates now; the given-up ones not re-sent count when re-sent.
    let (_, answer) = server
        .post_ndjson(&[
            click("c0", "late", SYDNEY, T0 + 1),
            click("c5", "late", SYDNEY, T0 + 6),
        ])
        .await;
    assert_eq!(
        (answer["duplicates"].as_u64(), answer["accepted"].as_u64()),
        (Some(1), Some(1)),
        "{answer}"
    );
}

/// Ids are unique within a campaign (the campaign of the share an event names): two producers
/// may both number their clicks `c0`, `c1`… — every click counts in each campaign, a re-send is
/// still a duplicate in its own, and a restart decides alike. A click that waited for its share
/// and turns out to repeat an id of the campaign its share is in is given up as a duplicate.
#[tokio::test]
async fn click_ids_are_unique_within_their_campaign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let clicks_of = |share: &str, ts: i64| -> Vec<String> {
        (0..50)
            .map(|i| click(&format!("c{i}"), share, TOKYO, ts + i))
            .collect()
    };
    let mut first = vec![share_in("alpha", "a-post", None, T0)];
    first.extend(clicks_of("a-post", T0 + 1));
    let (_, answer) = server.post_ndjson(&first).await;
    assert_eq!(answer["accepted"], 51, "{answer}");
    let mut second = vec![share_in("beta", "b-post", None, T0)];
    second.extend(clicks_of("b-post", T0 + 1));
    let (_, answer) = server.post_ndjson(&second).await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(51), Some(0)),
        "the same ids in another campaign are other clicks: {answer}"
    );
    let (_, answer) = server.post_ndjson(&clicks_of("b-post", T0 + 1)).await;
    assert_eq!(
        answer["duplicates"], 50,
        "re-sent in its own campaign: {answer}"
    );

    // c0 waits for a share of alpha's that has not arrived: when it does, c0 repeats an id of
    // alpha's and is given up; c99 counts.
    let (_, answer) = server
        .post_ndjson(&[
            click("c0", "a-late", SYDNEY, T0 + 100),
            click("c99", "a-late", SYDNEY, T0 + 101),
        ])
        .await;
    assert_eq!(answer["held"], 2, "{answer}");
    let (_, answer) = server
        .post_ndjson(&[share_in("alpha", "a-late", Some("a-post"), T0 + 102)])
        .await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let alpha = server.stats("alpha").await;
    assert_eq!(alpha["totals"]["clicks"], 51, "{alpha}");
    assert_eq!(alpha["held"], 0, "{alpha}");
    let beta = server.stats("beta").await;
    assert_eq!(beta["totals"]["clicks"], 50, "{beta}");
    assert!(
        metrics(&server)
            .await
            .contains("viralglobe_held_duplicates_total 1"),
        "the given-up repeat is counted"
    );
    server.kill();

    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(server.stats("alpha").await, alpha);
    assert_eq!(server.stats("beta").await, beta);
    let (_, answer) = server.post_ndjson(&clicks_of("a-post", T0 + 1)).await;
    assert_eq!(answer["duplicates"], 50, "after a restart too: {answer}");
}

/// Clicks and conversions on a share that waits for its parent count in that share's campaign's
/// budget (`--max-held-per-campaign`), so one producer's stuck cascade cannot use up the whole
/// server's (`--max-held`): another campaign's out-of-order events still wait and resolve.
#[tokio::test]
async fn clicks_on_a_waiting_share_count_in_its_campaign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(
        dir.path(),
        &["--max-held", "20", "--max-held-per-campaign", "5"],
    );
    let mut stuck = vec![share_in("flood", "f-child", Some("f-missing"), T0)];
    stuck.extend((0..10).map(|i| click(&format!("f{i}"), "f-child", BERLIN, T0 + 1 + i)));
    let (status, answer) = server.post_ndjson(&stuck).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["held"], 5, "one share and four clicks: {answer}");
    let rejected = answer["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 6, "{answer}");
    assert_eq!(rejected[0]["line"], 6, "{answer}");
    let error = rejected[0]["error"].as_str().expect("error");
    assert!(
        error.contains("campaign `flood`") && error.contains("--max-held-per-campaign"),
        "{error}"
    );

    let (_, answer) = server
        .post_ndjson(&[
            click("k1", "root", TOKYO, T0 + 20),
            share("child", Some("root"), "twitter", TOKYO, T0 + 21),
            share("root", None, "facebook", LOS_ANGELES, T0 + 22),
        ])
        .await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["held"].as_u64()),
        (Some(3), Some(2)),
        "{answer}"
    );
    let stats = server.stats("bones-brigade").await;
    assert_eq!(
        (
            stats["totals"]["shares"].as_u64(),
            stats["totals"]["clicks"].as_u64()
        ),
        (Some(2), Some(1)),
        "{stats}"
    );
    // A restart counts the waiting clicks in their campaign again: its budget is still full.
    server.kill();
    let server = TestServer::start_in(
        dir.path(),
        &["--max-held", "20", "--max-held-per-campaign", "5"],
    );
    let (_, answer) = server
        .post_ndjson(&[click("f99", "f-child", BERLIN, T0 + 30)])
        .await;
    assert_eq!(
        answer["rejected_count"], 1,
        "still full after a restart: {answer}"
    );
}
