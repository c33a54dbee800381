//! The HTTP surface as an operator meets it: every error in JSON, HEAD where GET is, 405 for a
//! method a path does not serve, and the environment standing in for any flag.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tokio_tungstenite::MaybeTlsStream;

use crate::support::{TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;

#[tokio::test]
async fn every_error_is_json_and_methods_are_answered_properly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let client = reqwest::Client::new();
    for (method, path, status, says) in [
        ("GET", "/v1/campaigns/x/export?format=xml", 400, "xml"),
        ("GET", "/v1/campaigns/x/timeline?buckets=abc", 400, "query"),
        ("GET", "/nope", 404, "/nope"),
        ("POST", "/v1/campaigns", 405, "POST"),
        ("DELETE", "/v1/events", 405, "DELETE"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.expect("JSON");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{method} {path}: {error}");
    }
    for path in ["/", "/healthz", "/v1/campaigns", "/metrics"] {
        let head = client.head(server.url(path)).send().await.expect("HEAD");
        assert_eq!(head.status().as_u16(), 200, "HEAD {path}");
        assert!(
            head.bytes().await.expect("body").is_empty(),
            "HEAD {path} has no body"
        );
    }
}

/// A subcommand's flags have environment variables too: here `export --format`.
#[tokio::test]
async fn flags_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (status, _) = server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, 1_350_406_800_000),
            click("c1", "s1", TOKYO, 1_350_406_801_000),
        ])
        .await;
    assert_eq!(status, 200);
    server.kill();
    let output = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"))
        .args(["export", "bones-brigade"])
        .env("VIRALGLOBE_DATA_DIR", dir.path())
        .env("VIRALGLOBE_EXPORT_FORMAT", "csv")
        .output()
        .expect("export runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(csv.starts_with("seq,kind,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "a header and two arcs: {csv}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("exporting"),
        "no bar off a terminal: {stderr}"
    );

    // On a terminal (`script` gives it one), export shows its progress.
    let out = dir.path().join("arcs.csv");
    let command = format!(
        "{} export bones-brigade --out {}",
        env!("CARGO_BIN_EXE_viralglobe-server"),
        out.display()
    );
    let typescript = dir.path().join("typescript");
    let status = Command::new("script")
        .args(["-qec", &command])
        .arg(&typescript)
        .env("VIRALGLOBE_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script (util-linux) runs");
    assert!(status.success());
    let shown =
        String::from_utf8_lossy(&std::fs::read(&typescript).expect("typescript")).into_owned();
    assert!(
        shown.contains("exporting bones-brigade") && shown.contains("2/2 arcs"),
        "{shown}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("out").lines().count(),
        2
    );
}

/// A fresh server's metrics already hold every series at 0 and say which build runs; requests
/// are timed by the route that served them (unknown paths pooled, so they cannot add series);
/// a batch's events and arcs are counted by type, duplicates apart.
#[tokio::test]
async fn metrics_exist_from_the_start_and_time_requests_by_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let metrics = || async {
        reqwest::get(server.url("/metrics"))
            .await
            .expect("GET")
            .text()
            .await
            .expect("text")
    };
    let fresh = metrics().await;
    for series in [
        r#"viralglobe_events_ingested_total{type="click"} 0"#,
        r#"viralglobe_arcs_total{kind="conversion"} 0"#,
        "viralglobe_recording_errors_total 0",
        "viralglobe_live_subscribers 0",
    ] {
        assert!(fresh.contains(series), "missing `{series}`:\n{fresh}");
    }
    assert!(fresh.contains(&format!(
        r#"viralglobe_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    )));
    for path in [
        "/v1/campaigns/a/stats",
        "/v1/campaigns/b/stats",
        "/nope/1",
        "/nope/2",
    ] {
        reqwest::get(server.url(path)).await.expect("GET");
    }
    let after = metrics().await;
    assert!(
        after.contains(
            r#"viralglobe_http_request_seconds_count{route="/v1/campaigns/{id}/stats",status="404"} 2"#
        ),
        "{after}"
    );
    assert!(
        after
            .contains(r#"viralglobe_http_request_seconds_count{route="unmatched",status="404"} 2"#),
        "{after}"
    );

    let (status, answer) = server
        .post_ndjson(&[
            share("m1", None, "facebook", LOS_ANGELES, T0),
            share("m2", Some("m1"), "email", BERLIN, T0 + 1),
            click("mc1", "m2", TOKYO, T0 + 2),
            click("mc2", "m1", TOKYO, T0 + 3),
            click("mc1", "m2", TOKYO, T0 + 4),
            conversion("mv1", "m2", "purchase", 1_500, BERLIN, T0 + 5),
        ])
        .await;
    assert_eq!(status, 200, "{answer}");
    let counted = server.metrics().await;
    for (series, count) in [
        (r#"viralglobe_events_ingested_total{type="share"}"#, 2.0),
        (r#"viralglobe_events_ingested_total{type="click"}"#, 2.0),
        (
            r#"viralglobe_events_ingested_total{type="conversion"}"#,
            1.0,
        ),
        (r#"viralglobe_events_duplicate_total{type="click"}"#, 1.0),
        (r#"viralglobe_arcs_total{kind="click"}"#, 2.0),
        (r#"viralglobe_arcs_total{kind="conversion"}"#, 1.0),
    ] {
        assert_eq!(counted.value(series), count, "{series}");
    }
}

/// With `--log-format json` at debug, a live session logs its connect and close, with the reason,
/// inside a span naming its kind, id and campaign — and nowhere the client's address; `/metrics`
/// has the process's own figures and the fan-out's delivery time and queue depth.
#[tokio::test]
async fn sessions_log_why_they_closed_and_metrics_cover_process_and_fan_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = TestServer::command_in(dir.path(), &["--log-format", "json"]);
    command.env("RUST_LOG", "info,viralglobe_server=debug");
    let server = TestServer::spawn(command);
    let (mut subscriber, _) = server.subscribe("?campaign=bones-brigade").await;
    let (status, _) = server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", TOKYO, T0 + 1),
        ])
        .await;
    assert_eq!(status, 200);
    subscriber.arcs(1, Duration::from_secs(5)).await;
    let MaybeTlsStream::Plain(tcp) = subscriber.ws.get_ref() else {
        panic!("a plain websocket")
    };
    let client_address = tcp.local_addr().expect("the client's address");
    subscriber.ws.close(None).await.expect("close");

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        let log = server.log();
        let closed = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "websocket closed");
        if let Some(closed) = closed {
            break closed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no close line:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(closed["reason"], "client closed", "{closed}");
    assert_eq!(closed["span"]["kind"], "live", "{closed}");
    assert_eq!(closed["span"]["campaign"], "bones-brigade", "{closed}");
    assert!(closed["span"]["id"].as_u64().is_some(), "{closed}");
    assert!(server.log().contains(r#""message":"websocket connected""#));
    assert!(
        !server.log().contains(&client_address.to_string()),
        "the client's address {client_address} is in the log"
    );

    let metrics = server.metrics().await;
    let value = |name: &str| metrics.value(name);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("viralglobe_live_delivery_seconds_count") >= 1.0);
    assert!(value("viralglobe_live_queue_depth_count") >= 1.0);
}
