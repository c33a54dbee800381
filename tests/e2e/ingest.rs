use std::time::Duration;

use serde_json::{Value, json};
use viralglobe_protocol::ArcKind;

use crate::support::{TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000; // 2012-10-16T17:00:00Z

fn server(args: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (TestServer::start_in(dir.path(), args), dir)
}

#[tokio::test]
async fn three_generations_resolve_into_arcs_between_real_places() {
    let (server, _dir) = server(&[]);
    let (mut live, _) = server.subscribe("").await;
    let (status, report) = server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            share("s2", Some("s1"), "twitter", BERLIN, T0 + 1_000),
            share("s3", Some("s2"), "facebook", TOKYO, T0 + 2_000),
            click("c1", "s3", SYDNEY, T0 + 3_000),
            conversion("v1", "s3", "signup", 0, SYDNEY, T0 + 4_000),
            conversion("v2", "s3", "purchase", 1499, SYDNEY, T0 + 5_000),
        ])
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 6);

    let arcs = live.arcs(6, Duration::from_secs(5)).await;
    let seqs: Vec<u64> = arcs.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    let root = &arcs[0];
    assert_eq!(
        (root.kind, root.generation, root.from.is_none()),
        (ArcKind::Share, 0, true)
    );
    assert_eq!(root.to.city.as_deref(), Some("Los Angeles"));

    let child = &arcs[1];
    assert_eq!(
        (child.kind, child.generation, child.root.as_str()),
        (ArcKind::Share, 1, "s1")
    );
    assert_eq!(
        child.from.as_ref().and_then(|p| p.city.as_deref()),
        Some("Los Angeles")
    );
    assert_eq!(child.to.city.as_deref(), Some("Berlin"));

    let grandchild = &arcs[2];
    assert_eq!((grandchild.generation, grandchild.root.as_str()), (2, "s1"));
    assert_eq!(
        grandchild.from.as_ref().and_then(|p| p.city.as_deref()),
        Some("Berlin")
    );
    assert_eq!(grandchild.to.country.as_deref(), Some("JP"));

    // Outgoing: the click runs from the share (Tokyo) to the visitor (Sydney).
    let click = &arcs[3];
    assert_eq!(
        (click.kind, click.share.as_str(), click.generation),
        (ArcKind::Click, "s3", 2)
    );
    assert_eq!(
        click.from.as_ref().and_then(|p| p.country.as_deref()),
        Some("JP")
    );
    assert_eq!(click.to.country.as_deref(), Some("AU"));

    // Inbound: conversions run from the converter (Sydney) back to the share (Tokyo).
    let purchase = &arcs[5];
    assert_eq!(purchase.kind, ArcKind::Conversion);
    assert_eq!(
        (purchase.goal.as_deref(), purchase.value_cents),
        (Some("purchase"), Some(1499))
    );
    assert_eq!(
        purchase.from.as_ref().and_then(|p| p.country.as_deref()),
        Some("AU")
    );
    assert_eq!(purchase.to.country.as_deref(), Some("JP"));

    let stats = server.stats("bones-brigade").await;
    assert_eq!(stats["summary"]["max_generation"], 2);
    for generation in ["0", "1", "2"] {
        assert_eq!(stats["by_generation"][generation]["shares"], 1, "{stats}");
    }
    assert_eq!(
        stats["by_goal"]["purchase"],
        json!({"conversions": 1, "value_cents": 1499})
    );
    assert_eq!(stats["totals"]["value_per_visit"], 14.99);
}

#[tokio::test]
async fn out_of_order_parents_and_early_clicks_wait_for_their_share() {
    let (server, _dir) = server(&[]);
    let (mut live, _) = server.subscribe("").await;

    let (_, first) = server
        .post_ndjson(&[
            share("s3", Some("s2"), "facebook", TOKYO, T0 + 2_000),
            click("c1", "s3", SYDNEY, T0 + 3_000),
        ])
        .await;
    assert_eq!(
        (first["accepted"].clone(), first["held"].clone()),
        (json!(2), json!(2))
    );
    let (_, second) = server
        .post_ndjson(&[share("s2", Some("s1"), "twitter", BERLIN, T0 + 1_000)])
        .await;
    assert_eq!(second["held"], 1);
    assert_eq!(server.stats_held().await, 3);

    let (_, last) = server
        .post_ndjson(&[share("s1", None, "facebook", LOS_ANGELES, T0)])
        .await;
    assert_eq!(
        (last["accepted"].clone(), last["held"].clone()),
        (json!(1), json!(0))
    );

    let arcs = live.arcs(4, Duration::from_secs(5)).await;
    let got: Vec<(ArcKind, &str, u32)> = arcs
        .iter()
        .map(|a| (a.kind, a.share.as_str(), a.generation))
        .collect();
    assert_eq!(
        got,
        [
            (ArcKind::Share, "s1", 0),
            (ArcKind::Share, "s2", 1),
            (ArcKind::Share, "s3", 2),
            (ArcKind::Click, "s3", 2)
        ]
    );
    assert!(arcs.iter().all(|a| a.root == "s1"));
    assert_eq!(server.stats_held().await, 0);
    assert_eq!(server.stats("bones-brigade").await["totals"]["clicks"], 1);
}

#[tokio::test]
async fn a_share_cycle_is_rejected_naming_the_parent_field() {
    let (server, _dir) = server(&[]);
    let (_, held) = server
        .post_ndjson(&[share("a", Some("b"), "facebook", TOKYO, T0)])
        .await;
    assert_eq!(held["held"], 1);
    let (status, report) = server
        .post_ndjson(&[share("b", Some("a"), "facebook", BERLIN, T0)])
        .await;
    assert_eq!(status, 400, "{report}");
    assert_eq!(report["rejected"][0]["field"], "parent");
    assert!(
        report["rejected"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cycle"))
    );
}

#[tokio::test]
async fn re_sent_events_are_acknowledged_and_counted_once() {
    let (server, _dir) = server(&[]);
    let batch = [
        share("s1", None, "facebook", LOS_ANGELES, T0),
        click("c1", "s1", TOKYO, T0 + 1),
        conversion("v1", "s1", "purchase", 1499, SYDNEY, T0 + 2),
    ];
    let (_, first) = server.post_ndjson(&batch).await;
    assert_eq!(
        (first["accepted"].clone(), first["duplicates"].clone()),
        (json!(3), json!(0))
    );
    let (status, again) = server.post_ndjson(&batch).await;
    assert_eq!(status, 200);
    assert_eq!(
        (again["accepted"].clone(), again["duplicates"].clone()),
        (json!(0), json!(3))
    );
    let totals = &server.stats("bones-brigade").await["totals"];
    assert_eq!(
        (totals["clicks"].clone(), totals["revenue_cents"].clone()),
        (json!(1), json!(1499))
    );
}

#[tokio::test]
async fn bad_lines_are_rejected_by_number_and_field_and_valid_ones_land() {
    let (server, _dir) = server(&["--max-line-bytes", "2048"]);
    let body = [
        share("s1", None, "facebook", LOS_ANGELES, T0),
        r#"{"type":"click" "share":"s1"}"#.to_owned(),
        r#"{"type":"click","ip":"1.21.128.10","ts":1350406800000}"#.to_owned(),
        r#"{"type":"click","share":"s1","ip":"300.1.1.1","ts":1350406800000}"#.to_owned(),
        click("c1", "s1", TOKYO, T0 + 1),
        "   ".to_owned(),
        r#"{"type":"like","share":"s1","ts":1350406800000}"#.to_owned(),
        r#"{"type":"conversion","share":"s1","goal":"purchase","value_cents":-5,"ts":1350406800000}"#
            .to_owned(),
    ]
    .join("\n");
    let (status, report) = server.post(&body, "application/x-ndjson", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2);
    let rejected: Vec<(u64, Value)> = report["rejected"]
        .as_array()
        .expect("rejected list")
        .iter()
        .map(|r| (r["line"].as_u64().expect("line"), r["field"].clone()))
        .collect();
    assert_eq!(
        rejected,
        [
            (2, Value::Null),
            (3, json!("share")),
            (4, json!("ip")),
            (7, json!("type")),
            (8, json!("value_cents"))
        ]
    );
    assert_eq!(server.stats("bones-brigade").await["totals"]["clicks"], 1);

    let (status, _) = server
        .post("{\"type\":\"nope\"}\n", "application/x-ndjson", None)
        .await;
    assert_eq!(status, 400, "a body with no valid line is a bad request");
    let (status, report) = server.post("[{\"type\":", "application/json", None).await;
    assert_eq!(status, 400, "{report}");
    let (status, report) = server.post(&body, "text/csv", None).await;
    assert_eq!(status, 415, "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("text/csv"))
    );
    let long = format!("{}\n{}\n", click("c9", "s1", TOKYO, T0), "x".repeat(4096));
    let (status, report) = server.post(&long, "application/x-ndjson", None).await;
    assert_eq!(status, 413, "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 2")),
        "{report}"
    );
    assert_eq!(
        report["report"]["accepted"], 1,
        "lines before the long one stay accepted"
    );
}

#[tokio::test]
async fn a_json_array_body_is_accepted_like_ndjson() {
    let (server, _dir) = server(&[]);
    let body = format!(
        "[{},{}]",
        share("s1", None, "facebook", LOS_ANGELES, T0),
        click("c1", "s1", TOKYO, T0 + 1)
    );
    let (status, report) = server.post(&body, "application/json", None).await;
    assert_eq!(
        (status, report["accepted"].clone()),
        (200, json!(2)),
        "{report}"
    );
}

#[tokio::test]
async fn private_addresses_are_counted_as_misses_and_never_drawn() {
    let (server, _dir) = server(&[]);
    let (mut live, _) = server.subscribe("?kind=click").await;
    server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", PRIVATE, T0 + 1),
            click("c2", "s1", TOKYO, T0 + 2),
        ])
        .await;
    let arcs = live.arcs(1, Duration::from_secs(5)).await;
    assert_eq!(arcs.len(), 1);
    assert_eq!(
        arcs[0].to.city.as_deref(),
        Some("Tokyo"),
        "the private click drew no arc"
    );
    assert!(live.arcs(1, Duration::from_millis(300)).await.is_empty());
    let summary = &server.stats("bones-brigade").await["summary"];
    assert_eq!(
        (summary["clicks"].clone(), summary["geo_misses"].clone()),
        (json!(2), json!(1))
    );
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await;
    let metrics = metrics.expect("text");
    assert!(
        metrics.contains(r#"viralglobe_geo_misses_total{reason="not_global"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_streamed_body_is_applied_while_the_request_is_still_open() {
    let (server, _dir) = server(&[]);
    let (mut live, _) = server.subscribe("").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(server.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send(),
    );
    tx.send(Ok(share("s1", None, "facebook", LOS_ANGELES, T0) + "\n"))
        .await
        .expect("send");
    let first = live.arcs(1, Duration::from_secs(5)).await;
    assert_eq!(
        first.len(),
        1,
        "the first line went live before the body ended"
    );
    tx.send(Ok(click("c1", "s1", TOKYO, T0 + 1) + "\n"))
        .await
        .expect("send");
    assert_eq!(live.arcs(1, Duration::from_secs(5)).await.len(), 1);
    drop(tx);
    let response = request.await.expect("join").expect("response");
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["accepted"], 2);
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl TestServer {
    async fn stats_held(&self) -> u64 {
        let (_, health) = self.get_json("/healthz").await;
        health["held_events"].as_u64().expect("held_events")
    }
}

/// Times and values no campaign has are refused by line and field, and nothing downstream
/// overflows: not the statistics, not the timeline.
#[tokio::test]
async fn impossible_times_and_values_are_refused_by_field() {
    let (server, _dir) = server(&[]);
    let conversion = |id: &str, cents: &str, ts: &str| {
        format!(
            r#"{{"type":"conversion","id":"{id}","share":"s1","goal":"purchase","value_cents":{cents},"ip":"{SYDNEY}","ts":{ts}}}"#
        )
    };
    let body = [
        share("s1", None, "facebook", LOS_ANGELES, T0),
        conversion("v1", "1999", "9223372036854775807"),
        conversion("v2", "1999", "1"),
        conversion("v3", "18446744073709551615", "1350406800001"),
        conversion("v4", "18446744073709551615", "1350406800002"),
        conversion("v5", "1999", "1350406800003"),
    ];
    let (status, report) = server.post_ndjson(&body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    let fields: Vec<(u64, &str)> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or(0),
                r["field"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [(2, "ts"), (3, "ts"), (4, "value_cents"), (5, "value_cents")]
    );
    let stats = server.stats("bones-brigade").await;
    assert_eq!(stats["totals"]["revenue_cents"], 1999);
    let (status, timeline) = server
        .get_json("/v1/campaigns/bones-brigade/timeline")
        .await;
    assert_eq!(status, 200, "{timeline}");
}

/// A chain of 40,000 shares, each waiting for the one before (the first's parent never comes),
/// goes in and comes back after a restart in seconds: each new share finds its chain's top in
/// near-constant time, where it used to walk every waiting ancestor under the ingest lock
/// (quadratic: a 43k chain took minutes, stalling every campaign).
#[tokio::test]
async fn a_long_chain_of_waiting_shares_stays_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    // More than one campaign may keep waiting by default (25,000).
    let server = TestServer::start_in(dir.path(), &["--max-held-per-campaign", "40000"]);
    let started = std::time::Instant::now();
    for batch in 0..40 {
        let lines: Vec<String> = (batch * 1_000..(batch + 1) * 1_000)
            .map(|i| {
                let parent = if i == 0 {
                    "missing".to_owned()
                } else {
                    format!("w{}", i - 1)
                };
                share(
                    &format!("w{i}"),
                    Some(&parent),
                    "facebook",
                    BERLIN,
                    T0 + i as i64,
                )
            })
            .collect();
        let (status, report) = server.post_ndjson(&lines).await;
        assert_eq!(
            (status, report["held"].as_u64()),
            (200, Some(1_000)),
            "{report}"
        );
    }
    let ingest = started.elapsed();
    // The last one's chain leads back to it: a cycle, found at once.
    let (_, report) = server
        .post_ndjson(&[share("missing", Some("w39999"), "facebook", BERLIN, T0)])
        .await;
    assert_eq!(report["rejected"][0]["field"], "parent", "{report}");
    assert!(
        ingest < Duration::from_secs(20),
        "40,000 waiting shares took {ingest:?}"
    );

    server.kill();
    let restarted = std::time::Instant::now();
    let server = TestServer::start_in(dir.path(), &[]);
    let (_, health) = server.get_json("/healthz").await;
    assert_eq!(health["held_events"], 40_000);
    let restart = restarted.elapsed();
    assert!(
        restart < Duration::from_secs(20),
        "the restart took {restart:?}"
    );
    // The missing root arrives: the whole chain resolves, 40,001 shares deep.
    let (_, report) = server
        .post_ndjson(&[share("missing", None, "facebook", LOS_ANGELES, T0)])
        .await;
    assert_eq!(report["accepted"], 1, "{report}");
    let stats = server.stats("bones-brigade").await;
    assert_eq!(stats["totals"]["shares"], 40_001);
    assert_eq!(stats["summary"]["max_generation"], 40_000);
}

/// Producers cannot blow the statistics up: over-long kinds, tools and place names are refused
/// by field, and a breakdown keeps at most 256 distinct values, counting the rest under
/// "(other)" — 3,000 distinct sharer kinds used to make a 181 MB stats answer.
#[tokio::test]
async fn strings_and_their_variety_are_bounded() {
    let (server, _dir) = server(&[]);
    let long = "k".repeat(300);
    let with = |field: &str, value: &str| {
        let mut event: Value =
            serde_json::from_str(&share("x", None, "facebook", LOS_ANGELES, T0)).expect("share");
        event[field] = json!(value);
        event.to_string()
    };
    let (_, report) = server
        .post_ndjson(&[
            with("sharer_kind", &long),
            with("tool", &long),
            with("city", &long),
        ])
        .await;
    let fields: Vec<&str> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["sharer_kind", "tool", "city"], "{report}");

    let shares: Vec<String> = (0..3_000)
        .map(|i| {
            let mut event: Value = serde_json::from_str(&share(
                &format!("s{i}"),
                None,
                &format!("channel-{i}"),
                LOS_ANGELES,
                T0,
            ))
            .expect("share");
            event["sharer_kind"] = json!(format!("kind-{i}-{}", "k".repeat(200)));
            event.to_string()
        })
        .collect();
    assert_eq!(server.post_ndjson(&shares).await.1["accepted"], 3_000);
    let response = reqwest::get(server.url("/v1/campaigns/bones-brigade/stats"))
        .await
        .expect("stats");
    let body = response.text().await.expect("text");
    assert!(body.len() < 1_000_000, "a {} byte answer", body.len());
    let stats: Value = serde_json::from_str(&body).expect("JSON");
    let kinds = stats["by_sharer_kind"].as_object().expect("kinds");
    assert_eq!(kinds.len(), 257);
    assert_eq!(
        stats["by_channel"].as_object().expect("channels").len(),
        257
    );
    let other_shares = kinds["(other)"]["shares"].as_u64().unwrap_or(0);
    assert_eq!(other_shares, 3_000 - 256, "nothing miscounted");
    assert_eq!(stats["totals"]["shares"], 3_000);
}

/// A JSON array is read whole before it is applied, so all the JSON bodies being read share a
/// bounded budget (`--max-json-bytes-in-flight`): one more than it holds gets 503 with
/// `Retry-After`, and goes in once the others are done. NDJSON streams and is never held whole.
/// Before, six 256 MB bodies held 1.5 GB.
#[tokio::test]
async fn json_bodies_share_a_bounded_budget() {
    let (server, _dir) = server(&["--max-json-bytes-in-flight", "1000000"]);
    server
        .post_ndjson(&[share("s1", None, "facebook", LOS_ANGELES, T0)])
        .await;
    let clicks = |prefix: &str| -> String {
        (0..8_000)
            .map(|i| click(&format!("{prefix}{i}"), "s1", TOKYO, T0 + i))
            .collect::<Vec<_>>()
            .join(",")
    };
    let client = reqwest::Client::new();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let first = {
        let request = client
            .post(server.url("/v1/events"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(tokio_stream(rx)));
        tokio::spawn(request.send())
    };
    let opening = format!("[{}", clicks("a"));
    assert!(opening.len() > 500_000);
    tx.send(Ok(opening)).await.expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let second_body = format!("[{}]", clicks("b"));
    let post_second = || {
        client
            .post(server.url("/v1/events"))
            .header("content-type", "application/json")
            .body(second_body.clone())
            .send()
    };
    let refused = post_second().await.expect("POST");
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));

    tx.send(Ok("]".to_owned())).await.expect("send");
    drop(tx);
    let first = first.await.expect("join").expect("response");
    let report: Value = first.json().await.expect("JSON");
    assert_eq!(report["accepted"], 8_000, "{report}");
    let second = post_second().await.expect("POST");
    assert_eq!(second.status().as_u16(), 200, "the budget came back");
}

/// An answer never echoes whole values: a JSON array of events whose `type` is 100 KB each is
/// refused line by line with short excerpts (it once came back as large as it was sent), and a
/// body that is one huge string is named by its length.
#[tokio::test]
async fn refusals_quote_only_an_excerpt_of_what_was_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let bad_type = "y".repeat(100_000);
    let elements: Vec<String> = (0..100)
        .map(|_| format!(r#"{{"type":"{bad_type}","share":"s","ts":1350406800000}}"#))
        .collect();
    let body = format!("[{}]", elements.join(","));
    let (status, answer) = server.post(&body, "application/json", None).await;
    assert_eq!(status, 400);
    assert_eq!(answer["rejected_count"], 100);
    let size = answer.to_string().len();
    assert!(
        size < 50_000,
        "{size} bytes answered to {} sent",
        body.len()
    );
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("(100000 bytes)")),
        "{}",
        answer["rejected"][0]
    );
    let body = format!(r#""{}""#, "z".repeat(1_000_000));
    let (status, answer) = server.post(&body, "application/json", None).await;
    assert_eq!(status, 400);
    assert!(answer.to_string().len() < 1_000, "{answer}");
}
