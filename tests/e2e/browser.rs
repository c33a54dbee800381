use std::{path::Path, process::Command};

use serde_json::Value;

use crate::{
    demo::{demo_server, demo_server_with},
    support::{TestServer, drawn},
};

/// A person opens the page in Chromium: the demo's arcs arrive and are drawn, the counters fill,
/// and a replay pauses, speeds up and seeks from the page's own controls. Screenshots are saved
/// under the cargo target directory's `tmp/browser/`.
#[test]
fn the_page_shows_live_arcs_and_steers_a_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let report = drive_page("page.mjs", &server.base, &[]);
    assert!(report["live"]["arcs"].as_u64() > Some(0), "{report}");
    assert!(
        report["live"]["pixels"]["click"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(report["replay"]["clock"]["speed"], 604_800.0, "{report}");
    assert_eq!(report["globe"]["webgl"], "webgl2", "{report}");
    // The globe's frame time in software WebGL, for the record (`--nocapture` shows it).
    println!("globe: {}", report["globe"]);
    for shot in ["live.png", "replay.png"] {
        let bytes = std::fs::metadata(screenshots().join(shot)).map_or(0, |m| m.len());
        assert!(bytes > 10_000, "{shot}: {bytes} bytes");
    }
    println!("screenshots in {}", screenshots().display());
}

/// A server that wants a read token: the page asks for it instead of retrying, and with it shows
/// the feed (the token kept in the page's address).
#[test]
fn the_page_asks_for_a_read_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server_with(dir.path(), &["--read-token", "s3cret-read"]);
    let report = drive_page("token.mjs", &server.base, &["--token", "s3cret-read"]);
    assert_eq!(report["socketsWithoutToken"], 0, "{report}");
    assert!(report["arcs"].as_u64() > Some(0), "{report}");
}

/// Behind a proxy that breaks websockets, the page reads the live feed as server-sent events
/// (`/v1/live/events`) and draws the demo's arcs all the same.
#[test]
fn the_page_falls_back_to_server_sent_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server_with(dir.path(), &[]);
    let report = drive_page("events.mjs", &server.base, &[]);
    assert!(report["streams"].as_u64() > Some(0), "{report}");
    assert!(report["arcs"].as_u64() > Some(20), "{report}");
}

/// A page that stops reading (a busy tab, a slow machine) is dropped arcs rather than slowing the
/// server, and says so: the `lagged` notice, with how many arcs it missed.
#[test]
fn the_page_says_when_it_fell_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server_with(dir.path(), &["--subscriber-queue", "4"]);
    let report = drive_page("lagged.mjs", &server.base, &[]);
    assert!(report["lagged"].as_u64() > Some(0), "{report}");
}

/// The committed bundle `assets/embed/viral-globe.js` (the embeddable element and the page's
/// globe), like any bundle an esbuild script of `assets/package.json` writes, is what that script
/// makes from `assets/web-src/` and the lockfile's three.js and esbuild: the same command, writing
/// elsewhere, gives the same bytes. (Edited the globe and forgot to rebuild? This says so.)
#[test]
fn the_committed_bundles_are_rebuilt_from_their_sources() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let package: Value = serde_json::from_str(
        &std::fs::read_to_string(assets.join("package.json")).expect("assets/package.json"),
    )
    .expect("JSON");
    let scripts = package["scripts"].as_object().expect("scripts");
    let bundles: Vec<_> = scripts
        .iter()
        .filter(|(_, script)| script.as_str().is_some_and(|s| s.starts_with("esbuild ")))
        .collect();
    assert!(
        bundles.iter().any(|(name, _)| *name == "embed"),
        "{scripts:?}"
    );
    for (name, script) in bundles {
        let script = script.as_str().expect("a bundle script");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("bundle.js");
        let mut words = script.split_whitespace();
        assert_eq!(words.next(), Some("esbuild"), "{script}");
        let mut committed = None;
        let args: Vec<String> = words
            .map(|word| match word.strip_prefix("--outfile=") {
                Some(path) => {
                    committed = Some(assets.join(path));
                    format!("--outfile={}", out.display())
                }
                None => word.to_owned(),
            })
            .collect();
        let committed = committed.expect("an --outfile");
        let status = std::process::Command::new(assets.join("node_modules/.bin/esbuild"))
            .args(&args)
            .current_dir(&assets)
            .status()
            .expect("esbuild runs (tests/run.sh runs `npm ci --prefix assets`)");
        assert!(status.success());
        let rebuilt = std::fs::read(&out).expect("rebuilt");
        let committed_bytes = std::fs::read(&committed).expect("committed");
        assert!(
            rebuilt == committed_bytes,
            "{} is not what its sources build ({} against {} bytes): run `npm run {name} \
             --prefix assets` and commit it",
            committed.display(),
            rebuilt.len(),
            committed_bytes.len()
        );
    }
}

/// A web developer puts the globe on a client's page, on another origin: the npm package, packed
/// and installed from its tarball, draws the campaign with a token scoped to it (and to that
/// page's origin), tells the host page through its events, and with a token for another campaign
/// is refused and says so; the iframe form draws too.
#[test]
fn the_globe_embeds_in_another_sites_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server_with(dir.path(), &["--jwt-secret", crate::tokens::SECRET]);
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let host = format!("http://127.0.0.1:{host_port}");
    let token = crate::tokens::mint(&[
        "--campaign",
        "bones-brigade",
        "--origin",
        &host,
        "--origin",
        &server.base,
    ]);
    let other = crate::tokens::mint(&["--campaign", "another-client"]);
    let report = drive_page(
        "embed.mjs",
        &server.base,
        &[
            "--token",
            &token,
            "--other-token",
            &other,
            "--host-port",
            &host_port.to_string(),
        ],
    );
    assert!(report["ours"]["drawn"].as_u64() > Some(0), "{report}");
    assert!(report["framed"]["drawn"].as_u64() > Some(0), "{report}");
    assert_eq!(report["theirs"]["heard"]["status"], 403, "{report}");
}

/// Where the drivers save their screenshots: the cargo target directory's `tmp/browser/`.
fn screenshots() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Runs a page driver to the end (screenshots saved) and returns its JSON report; fails the test
/// with the driver's problems when it found any.
fn drive_page(script: &str, base: &str, args: &[&str]) -> Value {
    let _one_at_a_time = one_chromium();
    let output = page_driver(script, base)
        .args(args)
        .arg("--out")
        .arg(screenshots())
        .output()
        .expect("node runs (tests/run.sh installs Node.js, playwright-core and Chromium)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).expect("the driver's JSON report")
}

/// One Chromium at a time: two software-rendered pages side by side on a 2-core machine slow each
/// other to a frame a second, and the pages' checks measure drawing and pointing.
fn one_chromium() -> std::sync::MutexGuard<'static, ()> {
    static CHROMIUM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    CHROMIUM.lock().unwrap_or_else(|e| e.into_inner())
}

/// `node tests/browser/SCRIPT` driving the page of the server at `base`, on the demo's campaign.
fn page_driver(script: &str, base: &str) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/browser")
        .join(script);
    let mut command = Command::new("node");
    command
        .arg(script)
        .args(["--url", base, "--campaign", "bones-brigade"]);
    command
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
    // Asked without an Origin (a same-origin page), the answer still varies by Origin, so a
    // browser never hands that copy, without its CORS header, to another site's page; and it
    // still varies by encoding.
    let vary: Vec<_> = world
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase())
        .collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
    assert!(
        vary.iter().any(|v| v.contains("accept-encoding")),
        "{vary:?}"
    );

    // The page's colours are the viewer's: the shared palette.
    let (status, palette) = server.get_json("/palette.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        palette,
        serde_json::to_value(viralglobe_protocol::palette::PALETTE).expect("JSON")
    );

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

/// The page loses its connection (the server is killed and started again) while arcs keep coming:
/// it reconnects by itself and resumes after the last arc it had, with no gap and no duplicate.
#[tokio::test]
#[allow(clippy::await_holding_lock)]
async fn the_page_resumes_after_the_server_restarts() {
    use std::{
        io::{BufRead, BufReader},
        process::Stdio,
        sync::mpsc,
        time::Duration,
    };

    use crate::support::{events, ips};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let click = |i: usize| {
        events::click(
            &format!("c{i}"),
            "s1",
            ips::TOKYO,
            1_350_406_801_000 + i as i64,
        )
    };
    let mut first = vec![events::share(
        "s1",
        None,
        "twitter",
        ips::LOS_ANGELES,
        1_350_406_800_000,
    )];
    first.extend((1..10).map(click));
    assert_eq!(server.post_ndjson(&first).await.0, 200);

    // Held while the page runs, across the test's awaits: each test has a runtime of its own,
    // and only the page drivers take this lock.
    let _one_at_a_time = one_chromium();
    let mut node = page_driver("resume.mjs", &server.base)
        .args(["--at", "10", "--until", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (tests/run.sh installs Node.js, playwright-core and Chromium)");
    let (lines, said) = mpsc::channel();
    let stdout = node.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let wait_for = |what: &str| {
        let line = said.recv_timeout(Duration::from_secs(60));
        assert_eq!(
            line.as_deref().ok(),
            Some(what),
            "the page driver said {line:?}"
        );
    };
    wait_for("at 10");

    server.kill();
    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .args(["--listen", &address, "--data-dir"])
        .arg(dir.path())
        .arg("--geoip")
        .arg(crate::support::geolite2_city());
    let server = TestServer::spawn(command);
    // Arcs while the page is away (it waits a second before it tries again), then after it is back.
    assert_eq!(
        server
            .post_ndjson(&(10..20).map(click).collect::<Vec<_>>())
            .await
            .0,
        200
    );
    wait_for("resumed");
    assert_eq!(
        server
            .post_ndjson(&(20..30).map(click).collect::<Vec<_>>())
            .await
            .0,
        200
    );

    let report = said
        .recv_timeout(Duration::from_secs(60))
        .expect("the page's report");
    let output = node.wait_with_output().expect("node ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&report).expect("JSON report");
    assert_eq!(report["seq"], 30, "{report}");
    // The page opened after the first 10 arcs: it counted them from the stats, then 20 arcs.
    assert_eq!(report["arcs"], 20, "every arc once: {report}");
    assert_eq!(
        report["clicks"], 29,
        "counters neither miss nor repeat: {report}"
    );
    assert_eq!(
        (report["gaps"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    assert!(report["resumes"].as_u64() >= Some(1), "{report}");
}

/// A campaign through tracked links in real browsers (`links.mjs`): the post's link, a visitor's
/// own link from `vg.js` on the campaign's site (another origin), a second visitor's share and
/// purchase. The server counts and draws exactly that, with the visitors' places.
#[tokio::test]
async fn tracked_links_fill_the_globe_from_real_browsers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--trusted-proxy", "127.0.0.1"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/links.mjs");
    let output = {
        let _one_at_a_time = one_chromium();
        Command::new("node")
            .arg(script)
            .args(["--url", &server.base, "--campaign", "film-launch", "--out"])
            .arg(screenshots())
            .output()
            .expect("node runs (tests/run.sh installs Node.js, playwright-core and Chromium)")
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("the driver's JSON report");
    let stats = server.stats("film-launch").await;
    let summary = &stats["summary"];
    assert_eq!(
        (
            &summary["shares"],
            &summary["clicks"],
            &summary["conversions"]
        ),
        (&3.into(), &2.into(), &1.into()),
        "{stats}\n{report}"
    );
    assert_eq!(stats["unverified"]["value_cents"], 2499, "{stats}");
    let arcs = drawn(&server, "film-launch", 6).await;
    let city = |c: &str| Some(c.to_owned());
    assert_eq!(
        arcs,
        [
            ("Click".into(), 0, city("Los Angeles"), city("Tokyo")),
            ("Click".into(), 1, city("Tokyo"), city("Berlin")),
            ("Conversion".into(), 1, city("Berlin"), city("Tokyo")),
            ("Share".into(), 0, None, city("Los Angeles")),
            ("Share".into(), 1, city("Los Angeles"), city("Tokyo")),
            ("Share".into(), 2, city("Tokyo"), city("Berlin")),
        ],
        "{report}"
    );
}
