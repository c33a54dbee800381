use std::{
    io::Write,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use viralglobe_protocol::{ArcEvent, ArcKind, ReplayClock, ServerMessage, Timeline};

use crate::support::{Subscriber, TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;

/// A root share at T0 in Los Angeles and a click from Tokyo every second after it.
async fn one_click_a_second(server: &TestServer, seconds: i64) {
    let mut lines = vec![share("s1", None, "facebook", LOS_ANGELES, T0)];
    lines.extend((1..=seconds).map(|i| click(&format!("c{i}"), "s1", TOKYO, T0 + i * 1_000)));
    let (status, report) = server.post_ndjson(&lines).await;
    assert_eq!(
        (status, report["accepted"].as_u64()),
        (200, Some(lines.len() as u64))
    );
}

/// The answer to a control: an error, or the first clock that shows it was followed (the
/// replay also sends its clock once a second, unasked). Returns the arcs that came before it.
async fn answer_to_control(
    replay: &mut Subscriber,
    followed: impl Fn(&ReplayClock) -> bool,
) -> (Vec<ArcEvent>, ServerMessage) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut arcs = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (before, message) = replay.next_answer(left).await;
        arcs.extend(before);
        match &message {
            ServerMessage::Clock(clock) if !followed(clock) => continue,
            _ => return (arcs, message),
        }
    }
}

fn clock_of(message: &ServerMessage) -> &ReplayClock {
    match message {
        ServerMessage::Clock(clock) => clock,
        other => panic!("expected a clock, got {other:?}"),
    }
}

/// 20 s of campaign at 10× takes 2 s, and every arc comes, in order.
#[tokio::test]
async fn a_replay_at_10x_takes_a_tenth_of_the_campaign_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    one_click_a_second(&server, 20).await;
    let mut replay = server.replay("bones-brigade", "?speed=10").await;
    let mut arcs: Vec<(Instant, ArcEvent)> = Vec::new();
    while arcs.len() < 21 {
        let got = replay.arcs(1, Duration::from_secs(10)).await;
        assert!(
            !got.is_empty(),
            "the replay stalled after {} arcs",
            arcs.len()
        );
        arcs.extend(got.into_iter().map(|a| (Instant::now(), a)));
    }
    let took = arcs[20].0 - arcs[0].0;
    assert!(
        (1.7..2.6).contains(&took.as_secs_f64()),
        "20 s at 10x took {took:?}"
    );
    let seqs: Vec<u64> = arcs.iter().map(|(_, a)| a.seq).collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>());
    assert_eq!(arcs[0].1.kind, ArcKind::Share);
}

/// A presenter pauses, changes speed, seeks and plays; each control is answered with the clock,
/// and a bad one with an error that says what was wrong.
#[tokio::test]
async fn a_replay_can_be_paused_sped_up_and_seeked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    one_click_a_second(&server, 60).await;
    let mut replay = server.replay("bones-brigade", "?paused=true").await;

    replay
        .send_json(json!({"type": "speed", "speed": 20}))
        .await;
    let (arcs, answer) = answer_to_control(&mut replay, |c| c.speed == 20.0).await;
    let clock = clock_of(&answer);
    assert_eq!((clock.speed, clock.playing, clock.ts.0), (20.0, false, T0));
    assert_eq!((clock.from.0, clock.to.0), (T0, T0 + 60_000));
    assert!(
        arcs.len() <= 1,
        "a paused replay played {} arcs",
        arcs.len()
    );

    replay
        .send_json(json!({"type": "seek", "ts": "2012-10-16T17:00:30Z"}))
        .await;
    let (_, answer) = answer_to_control(&mut replay, |c| c.ts.0 == T0 + 30_000).await;
    assert_eq!(clock_of(&answer).ts.0, T0 + 30_000);

    replay.send_json(json!({"type": "play"})).await;
    // Paused at 17:00:30, the replay has already drawn the click of 17:00:30.
    let (mut played, answer) = answer_to_control(&mut replay, |c| c.playing).await;
    assert!(clock_of(&answer).playing);
    played.extend(replay.arcs(10, Duration::from_secs(5)).await);
    assert!(played.len() >= 10, "{} arcs", played.len());
    // Click 30 is the first at or after the seek; seq still counts from the campaign's start.
    assert_eq!((played[0].ts.0, played[0].seq), (T0 + 30_000, 31));

    replay.send_json(json!({"type": "pause"})).await;
    let (_, answer) = answer_to_control(&mut replay, |c| !c.playing).await;
    let paused_at = clock_of(&answer).ts.0;
    assert!(!clock_of(&answer).playing && paused_at > T0 + 30_000);
    let after_pause = replay.arcs(1, Duration::from_millis(600)).await;
    assert!(after_pause.is_empty(), "arcs after pause: {after_pause:?}");

    replay
        .send_json(json!({"type": "speed", "speed": -1}))
        .await;
    let (_, answer) = answer_to_control(&mut replay, |_| false).await;
    assert!(
        matches!(&answer, ServerMessage::Error { message } if message.contains("speed must be")),
        "{answer:?}"
    );
    replay.send_json(json!({"type": "rewind"})).await;
    let (_, answer) = answer_to_control(&mut replay, |_| false).await;
    assert!(
        matches!(&answer, ServerMessage::Error { message } if message.contains("control message")),
        "{answer:?}"
    );
}

/// A replay asked to play faster than its client reads holds its clock back to what it sent; a
/// pause then holds the clock exactly where the arcs stopped, however far ahead the wall clock ran.
#[tokio::test]
async fn a_replay_paused_while_catching_up_holds_still_where_its_arcs_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    one_click_a_second(&server, 30_000).await;
    let mut replay = server.replay("bones-brigade", "?speed=10000000").await;
    let mut arcs = replay.arcs(1, Duration::from_secs(5)).await;
    replay.send_json(json!({"type": "pause"})).await;
    let (before, answer) = answer_to_control(&mut replay, |c| !c.playing).await;
    arcs.extend(before);
    let paused_at = clock_of(&answer).ts.0;
    let last_sent = arcs.last().expect("arcs before the pause").ts.0;
    // Held where the arcs stopped: at the last arc sent, or at most before the next one (clicks
    // are a second apart), never ahead of arcs it did not send.
    assert!(
        (last_sent..last_sent + 1_000).contains(&paused_at),
        "paused at {paused_at}, away from the last arc sent at {last_sent}"
    );
    assert!(
        last_sent < T0 + 30_000_000,
        "the replay had caught up before the pause; the test needs it behind"
    );

    // The periodic clock (once a second) repeats the pause point, and nothing more plays.
    let (after, clock) = answer_to_control(&mut replay, |_| true).await;
    assert!(after.is_empty(), "{} arcs after the pause", after.len());
    assert_eq!(clock_of(&clock).ts.0, paused_at);
}

/// Replaying a campaign that is still live runs on into events that arrive after the replay
/// caught up.
#[tokio::test]
async fn a_replay_of_a_live_campaign_continues_into_new_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    one_click_a_second(&server, 5).await;
    let mut replay = server.replay("bones-brigade", "?speed=1000").await;
    assert_eq!(replay.arcs(6, Duration::from_secs(5)).await.len(), 6);
    server
        .post_ndjson(&[click("late", "s1", SYDNEY, T0 + 3_600_000)])
        .await;
    let late = replay.arcs(1, Duration::from_secs(5)).await;
    assert_eq!(late.len(), 1, "the new click was not replayed");
    assert_eq!((late[0].seq, late[0].ts.0), (7, T0 + 3_600_000));
}

#[tokio::test]
async fn the_timeline_counts_each_kind_per_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let hour = 3_600_000;
    let mut lines = vec![share("s1", None, "twitter", LOS_ANGELES, T0)];
    lines.extend((0..30).map(|i| click(&format!("c{i}"), "s1", TOKYO, T0 + i * hour / 10)));
    lines.push(conversion(
        "v1",
        "s1",
        "purchase",
        1_999,
        SYDNEY,
        T0 + 2 * hour,
    ));
    lines.push(conversion(
        "v2",
        "s1",
        "signup",
        0,
        BERLIN,
        T0 + 2 * hour + 1,
    ));
    // The last event, in the campaign's 180th minute: three buckets of an hour.
    lines.push(click("last", "s1", TOKYO, T0 + 3 * hour - 60_000));
    server.post_ndjson(&lines).await;

    let (status, body) = server
        .get_json("/v1/campaigns/bones-brigade/timeline?buckets=3")
        .await;
    assert_eq!(status, 200, "{body}");
    let timeline: Timeline = serde_json::from_value(body).expect("a timeline");
    assert_eq!(timeline.bucket_ms, hour);
    let per_bucket: Vec<(u64, u64, u64, u64, u64)> = timeline
        .buckets
        .iter()
        .map(|b| (b.shares, b.clicks, b.signups, b.purchases, b.revenue_cents))
        .collect();
    assert_eq!(
        per_bucket,
        [(1, 10, 0, 0, 0), (0, 10, 0, 0, 0), (0, 11, 1, 1, 1_999)]
    );

    let (status, body) = server
        .get_json("/v1/campaigns/bones-brigade/timeline?buckets=0")
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("buckets"), "{body}");
    let (status, _) = server.get_json("/v1/campaigns/nope/timeline").await;
    assert_eq!(status, 404);
}

/// A marketer exports a campaign: CSV opens in a spreadsheet, GeoJSON has `[lon, lat]` positions,
/// NDJSON is the live feed's arcs; the CLI writes the same bytes as the API.
#[tokio::test]
async fn exports_open_in_spreadsheets_and_gis_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", TOKYO, T0 + 1_000),
            share("s2", Some("s1"), "twitter", BERLIN, T0 + 2_000),
            conversion("v1", "s2", "purchase", 2_499, SYDNEY, T0 + 3_000),
        ])
        .await;
    let get = |format: &str| {
        let url = server.url(&format!(
            "/v1/campaigns/bones-brigade/export?format={format}"
        ));
        async move {
            let response = reqwest::get(url).await.expect("GET export");
            assert_eq!(response.status().as_u16(), 200);
            let content_type = response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .to_owned();
            (content_type, response.text().await.expect("text"))
        }
    };

    let (content_type, csv_text) = get("csv").await;
    assert!(content_type.starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a CSV row")).collect();
    assert_eq!(rows.len(), 4);
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let click = &rows[1];
    assert_eq!(&click[column("kind")], "click");
    assert_eq!(&click[column("ts")], "2012-10-16T17:00:01.000Z");
    let lon = |row: &csv::StringRecord, name: &str| row[column(name)].parse::<f64>().expect(name);
    assert!(lon(click, "from_lon") < -100.0 && lon(click, "to_lon") > 130.0);
    assert_eq!(&rows[3][column("value_cents")], "2499");

    let (content_type, geojson) = get("geojson").await;
    assert_eq!(content_type, "application/geo+json");
    let geojson: Value = serde_json::from_str(&geojson).expect("GeoJSON is JSON");
    assert_eq!(geojson["type"], "FeatureCollection");
    let features = geojson["features"].as_array().expect("features");
    assert_eq!(features.len(), 4);
    assert_eq!(features[0]["geometry"]["type"], "Point");
    let line = &features[1]["geometry"];
    assert_eq!(line["type"], "LineString");
    let (la, tokyo) = (&line["coordinates"][0], &line["coordinates"][1]);
    assert!(
        (-119.0..-117.0).contains(&la[0].as_f64().expect("lon")),
        "{la}"
    );
    assert!((33.0..35.0).contains(&la[1].as_f64().expect("lat")), "{la}");
    assert!(tokyo[0].as_f64().expect("lon") > 130.0, "{tokyo}");
    assert_eq!(features[3]["properties"]["kind"], "conversion");

    let (_, ndjson) = get("ndjson").await;
    let arcs: Vec<ArcEvent> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("an arc"))
        .collect();
    assert_eq!(arcs.len(), 4);
    assert_eq!(arcs[2].generation, 1);

    let cli = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"))
        .args([
            "export",
            "bones-brigade",
            "--format",
            "ndjson",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("export runs");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&cli.stdout), ndjson);
}

/// Seeking anywhere in a recording of a million events answers within 50 ms (median of 20).
#[tokio::test]
async fn seeking_in_a_million_event_recording_answers_within_50_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let campaigns = dir.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).expect("mkdir");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(campaigns.join("million.ndjson")).expect("create"),
    );
    let at = r#""at":{"lat":35.6895,"lon":139.6917,"city":"Tokyo","country":"JP"}"#;
    let (events, per_share, step_ms) = (1_000_000i64, 1_000i64, 5_000i64);
    for n in 0..events {
        let (share, ts) = (n / per_share, T0 + n * step_ms);
        let line = if n % per_share == 0 {
            format!(
                r#"{{"event":{{"type":"share","id":"s{share}","campaign":"million","channel":"facebook","sharer":"x","ip":"{TOKYO}","ts":{ts}}},"campaign":"million",{at},"generation":0,"root":"s{share}"}}"#
            )
        } else {
            format!(
                r#"{{"event":{{"type":"click","id":"c{n}","share":"s{share}","ip":"{TOKYO}","ts":{ts}}},"campaign":"million",{at},"generation":0,"root":"s{share}"}}"#
            )
        };
        writeln!(file, "{line}").expect("write");
    }
    file.flush().expect("flush");
    drop(file);

    let server = TestServer::start_in(dir.path(), &[]);
    let mut replay = server.replay("million", "?paused=true").await;
    let mut latencies = Vec::new();
    for i in 0..20i64 {
        let target = T0 + (i * 48_611 % 1_000) * (events / 1_000) * step_ms + 2_500;
        let started = Instant::now();
        replay
            .send_json(json!({"type": "seek", "ts": target}))
            .await;
        let (_, answer) = answer_to_control(&mut replay, |c| c.ts.0 == target).await;
        latencies.push(started.elapsed());
        assert_eq!(clock_of(&answer).ts.0, target);
    }
    // The replay resumes at the first event after the last seek, with its campaign-wide seq.
    replay.send_json(json!({"type": "play"})).await;
    let next = replay.arcs(1, Duration::from_secs(5)).await;
    let last_target = T0 + (19 * 48_611 % 1_000) * 1_000 * step_ms + 2_500;
    let expected_n = (last_target - T0) / step_ms + 1;
    assert_eq!(
        (next[0].ts.0, next[0].seq),
        (T0 + expected_n * step_ms, expected_n as u64 + 1)
    );
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    println!(
        "seek latency: median {median:?}, max {:?}",
        latencies[latencies.len() - 1]
    );
    assert!(
        median < Duration::from_millis(50),
        "median seek {median:?}: {latencies:?}"
    );
}

/// Exports whose clients never read are bounded: at most `--max-exports` stream at once (more are
/// answered 503 with `Retry-After`), and one whose client takes nothing for 30 s ends, giving its
/// place back. Before, each held a thread and its buffers for ever.
#[tokio::test]
async fn stalled_exports_are_bounded_and_end() {
    use std::io::Write as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--max-exports", "2"]);
    server
        .post_ndjson(&[share("s1", None, "facebook", LOS_ANGELES, T0)])
        .await;
    for batch in 0..6 {
        let clicks: Vec<String> = (0..10_000)
            .map(|i| click(&format!("c{batch}-{i}"), "s1", TOKYO, T0 + i))
            .collect();
        assert_eq!(server.post_ndjson(&clicks).await.0, 200);
    }
    let address = server.base.trim_start_matches("http://").to_owned();
    let stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut tcp = std::net::TcpStream::connect(&address).expect("connect");
            write!(
                tcp,
                "GET /v1/campaigns/bones-brigade/export HTTP/1.1\r\nHost: {address}\r\n\r\n"
            )
            .expect("request");
            tcp
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let export_url = server.url("/v1/campaigns/bones-brigade/export");
    let third = reqwest::get(&export_url).await.expect("GET");
    assert_eq!(third.status().as_u16(), 503);
    assert!(third.headers().contains_key("retry-after"));

    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let response = reqwest::get(&export_url).await.expect("GET");
        if response.status().as_u16() == 200 {
            break response.text().await.expect("text").lines().count();
        }
        assert!(Instant::now() < deadline, "the stalled exports never ended");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(lines, 60_001, "a whole export once a place is free");
    drop(stalled);
}

/// A websocket runs on its bare connection (out of actix's HTTP dispatcher), so the server reads
/// the protocol itself: a control sent in fragments is heard whole, a client's ping is answered
/// with its payload, a message over 64 KiB ends the session (the server serves on), and a
/// refused upgrade is an HTTP answer naming the field.
#[tokio::test]
async fn the_server_reads_websocket_frames_as_the_protocol_says() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{
        Error, Message,
        protocol::frame::{
            Frame,
            coding::{Data, OpCode},
        },
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    one_click_a_second(&server, 60).await;
    let mut replay = server.replay("bones-brigade", "?paused=true").await;

    let control = json!({"type": "speed", "speed": 20}).to_string();
    let (first, rest) = control.split_at(5);
    let (middle, last) = rest.split_at(7);
    for (part, opcode, fin) in [
        (first, OpCode::Data(Data::Text), false),
        (middle, OpCode::Data(Data::Continue), false),
        (last, OpCode::Data(Data::Continue), true),
    ] {
        let frame = Frame::message(part.as_bytes().to_vec(), opcode, fin);
        replay.ws.send(Message::Frame(frame)).await.expect("send");
    }
    let (_, answer) = answer_to_control(&mut replay, |c| c.speed == 20.0).await;
    assert_eq!(clock_of(&answer).speed, 20.0, "{answer:?}");

    replay
        .ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match replay.ws.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong within 5 s");
    assert_eq!(&pong[..], b"are you there");

    let too_large = "x".repeat(64 * 1024 + 1);
    replay
        .ws
        .send(Message::Text(too_large.into()))
        .await
        .expect("send");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match replay.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a message over 64 KiB did not end the session"
    );

    // The server serves on; a refused upgrade is answered over HTTP, naming the field.
    let url = format!(
        "{}/v1/campaigns/bones-brigade/replay?speed=-1",
        server.ws_base
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400);
            let body =
                String::from_utf8(response.body().clone().unwrap_or_default()).expect("UTF-8");
            assert!(body.contains("speed"), "{body}");
        }
        other => panic!("a replay at speed -1 was not refused: {other:?}"),
    }
    server.replay("bones-brigade", "").await;
}
