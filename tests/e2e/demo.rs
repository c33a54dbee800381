use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use viralglobe_protocol::{
    ArcKind, CampaignStats, InputEvent, Timeline, TimelineBucket, attribution::Cascades,
};
use viralglobe_server::demo;

use crate::support::TestServer;

pub fn demo_server(data_dir: &Path) -> TestServer {
    demo_server_with(data_dir, &[])
}

/// The demo server with these options too.
pub fn demo_server_with(data_dir: &Path, args: &[&str]) -> TestServer {
    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir);
    TestServer::spawn(command)
}

/// What a presenter sees: within 5 seconds of connecting, arcs of every kind from several
/// generations.
#[tokio::test]
async fn the_demo_feed_shows_every_kind_from_several_generations_within_5_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let (mut live, _) = server.subscribe("").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut kinds, mut generations) = (BTreeSet::new(), BTreeSet::new());
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        for arc in live.arcs(500, left).await {
            let child_share = arc.kind == ArcKind::Share && arc.generation > 0;
            kinds.insert(match arc.kind {
                ArcKind::Conversion => arc.goal.clone().unwrap_or_default(),
                _ if child_share => "child share".into(),
                other => other.as_str().into(),
            });
            generations.insert(arc.generation);
        }
    }
    for kind in ["click", "child share", "signup", "purchase"] {
        assert!(kinds.contains(kind), "no {kind} arc within 5 s: {kinds:?}");
    }
    assert!(generations.len() >= 3, "generations seen: {generations:?}");
}

/// The demo campaign's statistics once it has loaded (clicks stop changing between two looks).
async fn loaded_stats(server: &TestServer) -> CampaignStats {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last_clicks = None;
    loop {
        let (status, stats) = server.get_json("/v1/campaigns/bones-brigade/stats").await;
        if status == 200 {
            let stats: CampaignStats = serde_json::from_value(stats).expect("stats");
            if last_clicks == Some(stats.totals.clicks) {
                return stats;
            }
            last_clicks = Some(stats.totals.clicks);
        }
        assert!(
            Instant::now() < deadline,
            "the demo campaign never finished loading"
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
}

/// The published table of the launch, row by row, from the stats API of the demo server.
#[tokio::test]
async fn the_demo_campaign_reproduces_the_published_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let stats = loaded_stats(&server).await;
    let figures = viralglobe_server::demo::figures::published(&stats);
    let table: Vec<String> = figures.iter().map(ToString::to_string).collect();
    assert!(figures.iter().all(|f| f.holds()), "\n{}", table.join("\n"));
    assert_eq!(stats.held, 0);
    assert!(stats.summary.max_generation >= 5, "{:?}", stats.summary);
}

/// The cascades of the demo from the API: every root share (the cast's nine posts), ranked by
/// the revenue of its whole cascade, each cascade adding up over its generations, all of them
/// adding up to the campaign; and the virality figures in the statistics.
#[tokio::test]
async fn the_demo_cascades_credit_every_conversion_to_a_root_by_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let stats = loaded_stats(&server).await;
    let (status, answer) = server
        .get_json("/v1/campaigns/bones-brigade/cascades?limit=256")
        .await;
    assert_eq!(status, 200, "{answer}");
    let cascades: Cascades = serde_json::from_value(answer).expect("cascades");
    assert_eq!(cascades.cascades.len(), 9, "one per cast post");
    let revenue: Vec<u64> = cascades
        .cascades
        .iter()
        .map(|c| c.totals.revenue_cents)
        .collect();
    assert!(revenue.windows(2).all(|w| w[0] >= w[1]), "{revenue:?}");
    for cascade in &cascades.cascades {
        let sum = |f: fn(&viralglobe_protocol::Tally) -> u64| -> u64 {
            cascade.by_generation.values().map(f).sum()
        };
        assert_eq!(sum(|t| t.clicks), cascade.totals.clicks);
        assert_eq!(sum(|t| t.revenue_cents), cascade.totals.revenue_cents);
        assert_eq!(cascade.by_generation[&0].shares, 1, "the root itself");
        assert_eq!(cascade.sharer_kind.as_deref(), Some("cast"));
    }
    let all = |f: fn(&viralglobe_protocol::Tally) -> u64| -> u64 {
        cascades.cascades.iter().map(|c| f(&c.totals)).sum()
    };
    assert_eq!(all(|t| t.shares), stats.totals.shares);
    assert_eq!(all(|t| t.clicks), stats.totals.clicks);
    assert_eq!(all(|t| t.revenue_cents), stats.totals.revenue_cents);
    let top = &cascades.cascades[0];
    assert_eq!(
        top.channel, "twitter",
        "Tony Hawk's tweets bring the most: {top:?}"
    );
    assert!(top.depth >= 5, "{top:?}");

    let virality = &stats.virality;
    assert_eq!(virality.depth, stats.summary.max_generation);
    let shares = |g: u32| virality.by_generation[&g].tally.shares as f64;
    let k0 = virality.by_generation[&0].k_factor.expect("k of the roots");
    assert!((k0 - shares(1) / shares(0)).abs() < 1e-9);
    assert!(k0 > 10.0, "each cast post spawns many fan shares: {k0}");
    let clicks = &stats.delays.all.share_to_click;
    assert_eq!(clicks.count, stats.totals.clicks);
    let (p50, p90) = (clicks.p50_s.expect("p50"), clicks.p90_s.expect("p90"));
    assert!(
        p50 > 3_600.0 && p50 < p90,
        "visits come hours after a share: {p50} {p90}"
    );
    let top_country = &stats.places.all.countries_by_clicks[0];
    assert_eq!(top_country.name, "US", "{top_country:?}");
}

/// Every published figure, and the title's "6-figure sales", computed straight from the
/// committed recording's lines as plain JSON: not through the server's statistics.
#[test]
fn the_recording_itself_holds_every_published_figure() {
    use serde_json::Value;
    use std::collections::HashMap;

    #[derive(Default, Clone, Copy)]
    struct Sums {
        shares: f64,
        clicks: f64,
        revenue: f64,
        reach: f64,
        reach_clicks: f64,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-data/bones-brigade.ndjson.zst");
    let raw = zstd::decode_all(std::fs::File::open(path).expect("the recording")).expect("zstd");
    // A share's facts: its sharer kind, channel and reach; credit goes to the share a click or
    // conversion names.
    let mut facts: HashMap<String, (String, String, Option<f64>)> = HashMap::new();
    let mut by: HashMap<(String, String), Sums> = HashMap::new();
    let mut signups = 0;
    for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line: Value = serde_json::from_slice(line).expect("a JSON line");
        assert!(line["generation"].is_u64(), "every line resolved: {line}");
        let event = &line["event"];
        let share = match event["type"].as_str() {
            Some("share") => event["id"].as_str(),
            _ => event["share"].as_str(),
        }
        .expect("a share id")
        .to_owned();
        if event["type"] == "share" {
            let kind = event["sharer_kind"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned();
            let channel = event["channel"].as_str().expect("channel").to_owned();
            facts.insert(share.clone(), (kind, channel, event["reach"].as_f64()));
        }
        let (kind, channel, reach) = facts[&share].clone();
        let sums = by.entry((kind, channel)).or_default();
        match event["type"].as_str() {
            Some("share") => {
                sums.shares += 1.0;
                sums.reach += reach.unwrap_or(0.0);
            }
            Some("click") => {
                sums.clicks += 1.0;
                sums.reach_clicks += f64::from(u8::from(reach.is_some()));
            }
            _ => {
                sums.revenue += event["value_cents"].as_f64().expect("value") / 100.0;
                signups += u32::from(event["goal"] == "signup");
            }
        }
    }
    let sum = |kind: Option<&str>, channel: Option<&str>| {
        by.iter()
            .filter(|((k, c), _)| kind.is_none_or(|x| x == k) && channel.is_none_or(|x| x == c))
            .fold(Sums::default(), |a, (_, s)| Sums {
                shares: a.shares + s.shares,
                clicks: a.clicks + s.clicks,
                revenue: a.revenue + s.revenue,
                reach: a.reach + s.reach,
                reach_clicks: a.reach_clicks + s.reach_clicks,
            })
    };
    let vpv = |s: Sums| s.revenue / s.clicks;
    let (all, cast, fans) = (
        sum(None, None),
        sum(Some("cast"), None),
        sum(Some("fan"), None),
    );
    let (cast_fb, cast_tw) = (
        sum(Some("cast"), Some("facebook")),
        sum(Some("cast"), Some("twitter")),
    );
    let (fan_fb, fan_tw) = (
        sum(Some("fan"), Some("facebook")),
        sum(Some("fan"), Some("twitter")),
    );
    let twitter = sum(None, Some("twitter"));
    let within = |name: &str, measured: f64, published: f64, tolerance: f64| {
        assert!(
            (measured - published).abs() <= tolerance,
            "{name}: published {published}, the recording says {measured:.3}"
        );
    };
    within("value per visit, all sharing", vpv(all), 1.59, 0.05);
    within("value per visit, cast", vpv(cast), 2.11, 0.05);
    within("value per visit, fans", vpv(fans), 1.21, 0.05);
    within(
        "fans' shares to Facebook %",
        100.0 * fan_fb.shares / fans.shares,
        87.8,
        1.0,
    );
    within(
        "fans' shares to Twitter %",
        100.0 * fan_tw.shares / fans.shares,
        12.2,
        1.0,
    );
    within("fans' value per visit, Facebook", vpv(fan_fb), 1.29, 0.05);
    within("fans' value per visit, Twitter", vpv(fan_tw), 0.60, 0.05);
    let even = cast_fb.shares / cast_tw.shares;
    assert!(
        (0.67..=1.5).contains(&even),
        "cast's shares Facebook per Twitter: {even}"
    );
    within(
        "cast's revenue from Twitter %",
        100.0 * cast_tw.revenue / cast.revenue,
        82.0,
        1.0,
    );
    within(
        "cast's revenue from Facebook %",
        100.0 * cast_fb.revenue / cast.revenue,
        18.0,
        1.0,
    );
    within("cast's value per visit, Facebook", vpv(cast_fb), 1.93, 0.05);
    within("cast's value per visit, Twitter", vpv(cast_tw), 2.07, 0.05);
    within(
        "cast's eCTR Facebook %",
        100.0 * cast_fb.reach_clicks / cast_fb.reach,
        1.10,
        0.1,
    );
    within(
        "cast's eCTR Twitter %",
        100.0 * cast_tw.reach_clicks / cast_tw.reach,
        2.82,
        0.1,
    );
    let per_share = |s: Sums| s.clicks / s.shares;
    assert!(
        per_share(cast_tw) > 2.0 * per_share(cast_fb),
        "cast's visits per share"
    );
    within(
        "Twitter's part of traffic %",
        100.0 * twitter.clicks / all.clicks,
        40.3,
        1.0,
    );
    within(
        "Twitter's part of revenue %",
        100.0 * twitter.revenue / all.revenue,
        47.3,
        1.0,
    );
    assert!(
        (100_000.0..1_000_000.0).contains(&all.revenue),
        "6-figure sales: ${:.2}",
        all.revenue
    );
    assert!(signups > 46_000, "sign-ups: {signups}");
}

/// A marketer replays the demo from its first post at 100,000× and draws its timeline.
#[tokio::test]
async fn the_demo_campaign_replays_from_its_first_post_with_a_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let timeline = loop {
        let (status, body) = server
            .get_json("/v1/campaigns/bones-brigade/timeline")
            .await;
        if status == 200 {
            break serde_json::from_value::<Timeline>(body).expect("a timeline");
        }
        assert!(
            Instant::now() < deadline,
            "no demo timeline: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut expected = TimelineBucket::default();
    for record in demo::records() {
        match record.event {
            InputEvent::Share(_) => expected.shares += 1,
            InputEvent::Click(_) => expected.clicks += 1,
            InputEvent::Conversion(c) if c.goal == "signup" => expected.signups += 1,
            InputEvent::Conversion(c) => {
                expected.purchases += 1;
                expected.revenue_cents += c.value_cents;
            }
        }
    }
    let mut total = TimelineBucket::default();
    for bucket in &timeline.buckets {
        total += *bucket;
    }
    assert_eq!(total, expected);
    assert!(
        (150..=200).contains(&timeline.buckets.len()),
        "{}",
        timeline.buckets.len()
    );

    let mut replay = server.replay("bones-brigade", "?speed=100000").await;
    let arcs = replay.arcs(2_000, Duration::from_secs(10)).await;
    let first = &arcs[0];
    assert_eq!(
        (first.seq, first.kind, first.share.as_str()),
        (1, ArcKind::Share, "s1")
    );
    assert_eq!(first.to.city.as_deref(), Some("Los Angeles"));
    let kinds: BTreeSet<ArcKind> = arcs.iter().map(|a| a.kind).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}
