//! The HTTP surface as an operator meets it: every error in JSON, HEAD where GET is, 405 for a
//! method a path does not serve, and the environment standing in for any flag.

use std::process::Command;

use crate::support::{TestServer, events::*, ips::*};

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
}
