//! Tracked links: a campaign post's link is minted, its visitors are redirected and counted, their
//! browsers mint child links and report purchases; all of it through the ordinary pipeline, kept
//! through restarts and kills, and never keeping a visitor's address.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use viralglobe_protocol::ArcKind;

use crate::support::{TestServer, campaign_arcs, ips, no_redirects};

const CAMPAIGN: &str = "summer-launch";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// A server that takes the visitor's address from `X-Forwarded-For`, as behind a proxy.
fn tracker(dir: &Path, args: &[&str]) -> TestServer {
    let mut all = vec!["--trusted-proxy", "127.0.0.1"];
    all.extend_from_slice(args);
    TestServer::start_in(dir, &all)
}

async fn create(server: &TestServer, body: Value) -> (u16, Value) {
    let response = no_redirects()
        .post(server.url("/v1/links"))
        .json(&body)
        .send()
        .await
        .expect("POST /v1/links");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn post_link() -> Value {
    json!({
        "campaign": CAMPAIGN, "destination": "https://shop.example/film?ref=fb#buy",
        "channel": "facebook", "sharer": "studio", "sharer_kind": "cast", "reach": 120000,
        "lat": 34.05, "lon": -118.24, "city": "Los Angeles", "country": "US",
    })
}

/// A visit of `path` from `address` with `user_agent`: the status and where it sends the visitor.
async fn visit(
    server: &TestServer,
    path: &str,
    address: &str,
    user_agent: &str,
) -> (u16, Option<String>) {
    let response = no_redirects()
        .get(server.url(path))
        .header("x-forwarded-for", address)
        .header("user-agent", user_agent)
        .send()
        .await
        .expect("GET the link");
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().expect("ascii").to_owned());
    (response.status().as_u16(), location)
}

/// What a visitor's browser posts through `vg.js`, from `address`.
async fn from_browser(server: &TestServer, path: &str, address: &str, body: Value) -> (u16, Value) {
    let response = no_redirects()
        .post(server.url(path))
        .header("x-forwarded-for", address)
        .header("content-type", "text/plain")
        .header("origin", "https://shop.example")
        .body(body.to_string())
        .send()
        .await
        .expect("POST from the browser");
    let status = response.status().as_u16();
    let cors = response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(
        cors.as_deref(),
        Some("*"),
        "{path}: any site's page may call it"
    );
    (status, response.json().await.expect("JSON"))
}

/// Waits until the campaign counts `clicks` clicks (the redirect does not wait for them).
async fn clicks_reach(server: &TestServer, clicks: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, stats) = server
            .get_json(&format!("/v1/campaigns/{CAMPAIGN}/stats"))
            .await;
        if status == 200 && stats["summary"]["clicks"].as_u64() >= Some(clicks) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "clicks never reached {clicks}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole loop without a browser: a post's link, a visit (a reload and a link preview that do
/// not count), a visitor's child link, that link's visitor buying; the arcs, generations, places
/// and counters that follow.
#[tokio::test]
async fn a_posts_link_brings_visits_child_shares_and_a_purchase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tracker(dir.path(), &["--public-url", "https://go.example/"]);
    let (status, root) = create(&server, post_link()).await;
    assert_eq!(status, 201, "{root}");
    let code = root["code"].as_str().expect("code").to_owned();
    assert_eq!(code.len(), 11, "{root}");
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{root}");
    assert_eq!(root["url"], format!("https://go.example/l/{code}"));

    // A person in Tokyo clicks: sent on with the code, the fragment kept last.
    let (status, location) = visit(&server, &format!("/l/{code}"), ips::TOKYO, BROWSER).await;
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some(format!("https://shop.example/film?ref=fb&vg={code}#buy").as_str())
    );
    // A reload within the hour is the same visit; a link preview and a HEAD are no visit at all.
    visit(&server, &format!("/l/{code}"), ips::TOKYO, BROWSER).await;
    let twitterbot = "Twitterbot/1.0";
    let (status, location) = visit(&server, &format!("/l/{code}"), ips::BERLIN, twitterbot).await;
    assert_eq!(
        (status, location.is_some()),
        (302, true),
        "bots are redirected too"
    );
    let head = no_redirects()
        .head(server.url(&format!("/l/{code}")))
        .header("user-agent", BROWSER)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status().as_u16(), 302);
    // A code that is no link: a page that says so, and nothing recorded.
    let (status, _) = visit(&server, "/l/AAAAAAAAAAA", ips::TOKYO, BROWSER).await;
    assert_eq!(status, 404);
    // (Clicks are recorded after the redirect: wait, so the arcs below come in this order.)
    clicks_reach(&server, 1).await;

    // The visitor in Tokyo shares it on: a link of their own, one generation down.
    let (status, child) = from_browser(
        &server,
        &format!("/v1/links/{code}/share"),
        ips::TOKYO,
        json!({"channel": "twitter", "sharer": "kenji"}),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    let child_code = child["code"].as_str().expect("code").to_owned();
    assert_ne!(child_code, code);
    // Someone in Berlin arrives through it and buys.
    let (status, location) =
        visit(&server, &format!("/l/{child_code}"), ips::BERLIN, BROWSER).await;
    assert_eq!(status, 302);
    assert!(
        location.is_some_and(|l| l.ends_with(&format!("vg={child_code}#buy"))),
        "a child link leads where its parent does"
    );
    clicks_reach(&server, 2).await;
    // Bought; the same order reported again (a second tab, a back button) counts once.
    for (expected, said) in [(201, "recorded"), (200, "duplicate")] {
        let (status, answer) = from_browser(
            &server,
            &format!("/v1/links/{child_code}/conversions"),
            ips::BERLIN,
            json!({"goal": "purchase", "value_cents": 1999, "id": "order-77"}),
        )
        .await;
        assert_eq!(
            (status, &answer[said]),
            (expected, &json!(true)),
            "{answer}"
        );
    }

    let stats = clicks_reach(&server, 2).await;
    let summary = &stats["summary"];
    assert_eq!(
        (
            &summary["shares"],
            &summary["clicks"],
            &summary["conversions"],
            &summary["revenue_cents"],
            &summary["max_generation"]
        ),
        (&json!(2), &json!(2), &json!(1), &json!(1999), &json!(1)),
        "{stats}"
    );
    assert_eq!(
        stats["unverified"],
        json!({"conversions": 1, "value_cents": 1999})
    );
    assert_eq!(stats["by_generation"]["1"]["conversions"], 1, "{stats}");

    // The arcs: the post in Los Angeles, the visit to Tokyo, the child share in Tokyo, the visit
    // to Berlin from it, the purchase flowing back from Berlin.
    let arcs = campaign_arcs(&server, CAMPAIGN, 5).await;
    let seen: Vec<(ArcKind, u32, Option<&str>)> = arcs
        .iter()
        .map(|a| (a.kind, a.generation, a.to.city.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (ArcKind::Share, 0, Some("Los Angeles")),
            (ArcKind::Click, 0, Some("Tokyo")),
            (ArcKind::Share, 1, Some("Tokyo")),
            (ArcKind::Click, 1, Some("Berlin")),
            (ArcKind::Conversion, 1, Some("Tokyo")),
        ],
        "{arcs:#?}"
    );
    assert_eq!(
        arcs[4].from.as_ref().and_then(|f| f.city.as_deref()),
        Some("Berlin")
    );

    // Describing the child link: its share, parent and generation.
    let (status, described) = server.get_json(&format!("/v1/links/{child_code}")).await;
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["parent"], root["id"]);
    assert_eq!(described["generation"], 1);
    assert_eq!(
        described["destination"],
        "https://shop.example/film?ref=fb#buy"
    );
    let qr = reqwest::get(server.url(&format!("/v1/links/{code}/qr.svg")))
        .await
        .expect("QR");
    assert_eq!(qr.status().as_u16(), 200);
    assert!(qr.text().await.expect("svg").contains("<svg"));

    let metrics = server.metrics().await;
    for (series, value) in [
        (r#"viralglobe_link_redirects_total{visitor="person"}"#, 3.0),
        (r#"viralglobe_link_redirects_total{visitor="bot"}"#, 1.0),
        (r#"viralglobe_link_redirects_total{visitor="head"}"#, 1.0),
        (
            r#"viralglobe_link_redirects_total{visitor="unknown_link"}"#,
            1.0,
        ),
        (r#"viralglobe_link_clicks_total{outcome="recorded"}"#, 2.0),
        (r#"viralglobe_link_clicks_total{outcome="duplicate"}"#, 1.0),
        (r#"viralglobe_link_clicks_total{outcome="lost"}"#, 0.0),
    ] {
        assert_eq!(metrics.value(series), value, "{series}");
    }
}

/// Every refusal names its field or its limit, and a browser can add only to links that exist.
#[tokio::test]
async fn bad_or_abusive_link_requests_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tracker(
        dir.path(),
        &[
            "--link-rate-per-address",
            "3",
            "--link-rate-per-campaign",
            "5",
            "--browser-conversions-off",
            "no-browser-revenue",
        ],
    );
    let mut body = post_link();
    for (field, value) in [
        ("destination", json!("javascript:alert(1)")),
        (
            "destination",
            json!(format!("https://a.example/{}", "x".repeat(2100))),
        ),
        ("channel", Value::Null),
        ("reach", json!(-4)),
        ("campaign", json!("../etc")),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        let (status, answer) = create(&server, bad).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, answer) = create(&server, json!({"campaign": "x".repeat(20_000)})).await;
    assert_eq!(status, 413, "{answer}");

    // Five links a minute in this campaign, whoever asks.
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (status, link) = create(&server, body.clone()).await;
        assert_eq!(status, 201, "{link}");
        codes.push(link["code"].as_str().expect("code").to_owned());
    }
    let response = no_redirects()
        .post(server.url("/v1/links"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");

    // A browser: unknown codes are 404, a child link cannot choose where it goes (a destination
    // sent along is ignored), names are short, one address makes three a minute and the
    // campaign five.
    let (status, _) = from_browser(
        &server,
        "/v1/links/AAAAAAAAAAA/share",
        ips::TOKYO,
        json!({"channel": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    body["campaign"] = json!("no-browser-revenue");
    let (_, other) = create(&server, body).await;
    let other_code = other["code"].as_str().expect("code");
    let (status, answer) = from_browser(
        &server,
        &format!("/v1/links/{other_code}/conversions"),
        ips::TOKYO,
        json!({"goal": "purchase", "value_cents": 100}),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = from_browser(
        &server,
        &format!("/v1/links/{}/share", codes[0]),
        ips::TOKYO,
        json!({"channel": "face book"}),
    )
    .await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("channel")),
        "{answer}"
    );
    let (status, answer) = from_browser(
        &server,
        &format!("/v1/links/{}/conversions", codes[0]),
        ips::TOKYO,
        json!({"goal": "purchase", "value_cents": 10_000_000_000_000u64}),
    )
    .await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("value_cents")),
        "{answer}"
    );
    let share = format!("/v1/links/{other_code}/share");
    let (status, answer) = from_browser(
        &server,
        &share,
        ips::SYDNEY,
        json!({"channel": "x".repeat(2000)}),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    for _ in 0..3 {
        let (status, child) = from_browser(
            &server,
            &share,
            ips::SYDNEY,
            json!({"channel": "email", "destination": "https://evil.example"}),
        )
        .await;
        assert_eq!(status, 201, "{child}");
        let (_, location) = visit(
            &server,
            &format!("/l/{}", child["code"].as_str().expect("code")),
            ips::BERLIN,
            BROWSER,
        )
        .await;
        assert!(
            location.is_some_and(|l| l.starts_with("https://shop.example/film")),
            "a child link goes where its parent goes"
        );
    }
    let (status, answer) =
        from_browser(&server, &share, ips::SYDNEY, json!({"channel": "email"})).await;
    assert_eq!(status, 429, "the fourth from one address: {answer}");
    let (status, answer) =
        from_browser(&server, &share, ips::BERLIN, json!({"channel": "email"})).await;
    assert_eq!(status, 201, "another address: {answer}");
    let (status, answer) =
        from_browser(&server, &share, ips::TOKYO, json!({"channel": "email"})).await;
    assert_eq!(
        status, 429,
        "the campaign's sixth link this minute: {answer}"
    );

    // With an ingest token, minting a link needs it.
    let dir = tempfile::tempdir().expect("tempdir");
    let guarded = tracker(dir.path(), &["--ingest-token", "tok-links"]);
    let (status, _) = create(&guarded, post_link()).await;
    assert_eq!(status, 401);
    let response = no_redirects()
        .post(guarded.url("/v1/links"))
        .bearer_auth("tok-links")
        .json(&post_link())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 201);
}

/// Links and their clicks are events like any other: a restart and a kill -9 keep them.
#[tokio::test]
async fn links_and_clicks_survive_a_restart_and_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tracker(dir.path(), &[]);
    let (_, root) = create(&server, post_link()).await;
    let code = root["code"].as_str().expect("code").to_owned();
    visit(&server, &format!("/l/{code}"), ips::TOKYO, BROWSER).await;
    clicks_reach(&server, 1).await;
    drop(server);

    let server = tracker(dir.path(), &[]);
    let (status, location) = visit(&server, &format!("/l/{code}"), ips::SYDNEY, BROWSER).await;
    assert_eq!(status, 302, "the link is known after a restart");
    assert!(location.is_some_and(|l| l.contains(&code)));
    clicks_reach(&server, 2).await;
    server.kill();

    let server = tracker(dir.path(), &[]);
    let (status, _) = visit(&server, &format!("/l/{code}"), ips::BERLIN, BROWSER).await;
    assert_eq!(status, 302, "the link is known after a kill -9");
    let stats = clicks_reach(&server, 3).await;
    assert_eq!(stats["summary"]["shares"], 1, "{stats}");
}

/// A visitor's address places the event and is dropped: it is nowhere in the data directory,
/// the exports or the debug log.
#[tokio::test]
async fn no_visitor_address_is_kept_anywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = TestServer::command_in(dir.path(), &["--trusted-proxy", "127.0.0.1"]);
    command.env("RUST_LOG", "debug");
    let server = TestServer::spawn(command);
    let (_, root) = create(&server, post_link()).await;
    let code = root["code"].as_str().expect("code").to_owned();
    let visitors = [ips::TOKYO, ips::BERLIN, ips::SYDNEY, ips::LOS_ANGELES];
    for &address in &visitors[..3] {
        visit(&server, &format!("/l/{code}"), address, BROWSER).await;
    }
    let (_, child) = from_browser(
        &server,
        &format!("/v1/links/{code}/share"),
        ips::TOKYO,
        json!({"channel": "email"}),
    )
    .await;
    let (status, _) = from_browser(
        &server,
        &format!(
            "/v1/links/{}/conversions",
            child["code"].as_str().expect("code")
        ),
        ips::SYDNEY,
        json!({"goal": "signup"}),
    )
    .await;
    assert_eq!(status, 201);
    // A producer's event with an address: placed, then the address dropped as well.
    let click = json!({"type": "click", "id": "shop-visit-1", "share": root["id"],
        "ip": ips::LOS_ANGELES, "ts": 1_700_000_000_000i64});
    let (status, report) = server.post_ndjson(&[click.to_string()]).await;
    assert_eq!((status, &report["accepted"]), (200, &json!(1)), "{report}");
    let stats = clicks_reach(&server, 4).await;
    assert_eq!(
        stats["summary"]["geo_misses"], 0,
        "every visit was placed: {stats}"
    );

    let mut kept = Vec::new();
    for format in ["ndjson", "csv", "geojson"] {
        let export =
            reqwest::get(server.url(&format!("/v1/campaigns/{CAMPAIGN}/export?format={format}")))
                .await
                .expect("export")
                .text()
                .await
                .expect("text");
        assert!(export.contains("Tokyo"), "{format}: {export}");
        kept.push((format!("the {format} export"), export.into_bytes()));
    }
    let log = server.log();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    server.kill();
    kept.push(("the debug log".into(), log.into_bytes()));
    for entry in walk(dir.path()) {
        kept.push((
            entry.display().to_string(),
            std::fs::read(&entry).expect("read"),
        ));
    }
    for (what, bytes) in &kept {
        let text = String::from_utf8_lossy(bytes);
        for address in visitors {
            assert!(!text.contains(address), "{address} is in {what}");
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `--respect-gpc`: a visitor whose browser sends `Sec-GPC: 1` is counted, without a place (no
/// arc); without the flag, the same visit is placed.
#[tokio::test]
async fn global_privacy_control_visits_count_without_a_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tracker(dir.path(), &["--respect-gpc"]);
    let (_, root) = create(&server, post_link()).await;
    let path = format!("/l/{}", root["code"].as_str().expect("code"));
    for (address, gpc) in [(ips::TOKYO, "1"), (ips::BERLIN, "0")] {
        let response = no_redirects()
            .get(server.url(&path))
            .header("x-forwarded-for", address)
            .header("user-agent", BROWSER)
            .header("sec-gpc", gpc)
            .send()
            .await
            .expect("GET the link");
        assert_eq!(response.status().as_u16(), 302);
    }
    let stats = clicks_reach(&server, 2).await;
    assert_eq!(stats["summary"]["geo_misses"], 1, "{stats}");
    let arcs = campaign_arcs(&server, CAMPAIGN, 2).await;
    let places: Vec<_> = arcs.iter().map(|a| a.to.city.as_deref()).collect();
    assert_eq!(places, [Some("Los Angeles"), Some("Berlin")], "{arcs:?}");
}

/// The queue between the redirect and the pipeline is bounded (`--click-queue`): a burst beyond
/// it is still redirected, every visitor, and what could not be queued is counted lost, never
/// held in memory; recorded and lost add up to the visits.
#[tokio::test]
async fn a_burst_beyond_the_click_queue_is_redirected_and_counted_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A queue of one, and a commit that waits for the disk: a burst cannot all fit.
    let server = tracker(dir.path(), &["--click-queue", "1", "--fsync", "always"]);
    let (_, root) = create(&server, post_link()).await;
    let path = format!("/l/{}", root["code"].as_str().expect("code"));
    let visits: Vec<_> = (0..300u32)
        .map(|i| {
            let request = no_redirects()
                .get(server.url(&path))
                .header(
                    "x-forwarded-for",
                    std::net::Ipv4Addr::from(0x5100_0000 + i).to_string(),
                )
                .header("user-agent", BROWSER)
                .send();
            tokio::spawn(async move { request.await.expect("GET").status().as_u16() })
        })
        .collect();
    for visit in visits {
        assert_eq!(visit.await.expect("visit"), 302);
    }
    let series = |outcome: &str| format!(r#"viralglobe_link_clicks_total{{outcome="{outcome}"}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (recorded, lost) = loop {
        let metrics = server.metrics().await;
        let (recorded, lost) = (
            metrics.value(&series("recorded")),
            metrics.value(&series("lost")),
        );
        if recorded + lost == 300.0 || Instant::now() > deadline {
            break (recorded, lost);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(recorded + lost, 300.0, "recorded {recorded}, lost {lost}");
    assert!(lost > 0.0, "a queue of 1 took a burst of 300 whole");
    let stats = clicks_reach(&server, recorded as u64).await;
    assert_eq!(stats["summary"]["clicks"], recorded as u64, "{stats}");
    assert!(
        server
            .log()
            .contains("clicks on tracked links not recorded")
    );
}
