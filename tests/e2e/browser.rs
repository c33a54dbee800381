use std::{path::Path, process::Command};

use serde_json::Value;

use crate::{demo::demo_server, support::TestServer};

/// A person opens the page in Chromium: the demo's arcs arrive and are drawn, the counters fill,
/// and a replay pauses, speeds up and seeks from the page's own controls. Screenshots are saved
/// under the cargo target directory's `tmp/browser/`.
#[test]
fn the_page_shows_live_arcs_and_steers_a_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/page.mjs");
    let output = Command::new("node")
        .arg(script)
        .args([
            "--url",
            &server.base,
            "--campaign",
            "bones-brigade",
            "--out",
        ])
        .arg(&screenshots)
        .output()
        .expect("node runs (tests/run.sh installs Node.js, playwright-core and Chromium)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("the driver's JSON report");
    assert!(report["live"]["arcs"].as_u64() > Some(0), "{report}");
    assert!(
        report["live"]["pixels"]["click"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(report["replay"]["clock"]["speed"], 604_800.0, "{report}");
    for shot in ["live.png", "replay.png"] {
        let bytes = std::fs::metadata(screenshots.join(shot)).map_or(0, |m| m.len());
        assert!(bytes > 10_000, "{shot}: {bytes} bytes");
    }
    println!("screenshots in {}", screenshots.display());
}

/// The page is served by the server itself; pages elsewhere may read the API when their origin is
/// allowed (CORS), and the geography comes compressed.
#[tokio::test]
async fn the_page_and_the_read_api_are_served_to_browsers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--allowed-origins", "https://fans.example"]);
    let client = reqwest::Client::new();
    let page = client.get(server.url("/")).send().await.expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<canvas id=\"map\"")
    );

    let world = client
        .get(server.url("/world.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET /world.json");
    assert_eq!(world.headers()["content-encoding"], "gzip");

    let read = |origin: &'static str| {
        client
            .get(server.url("/v1/campaigns"))
            .header("origin", origin)
            .send()
    };
    let allowed = read("https://fans.example").await.expect("GET");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://fans.example"
    );
    let other = read("https://elsewhere.example").await.expect("GET");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
