use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use viralglobe_protocol::{ArcKind, ServerMessage};

use crate::support::{Subscriber, TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;

#[tokio::test]
async fn subscribers_get_only_the_campaigns_and_kinds_they_ask_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (mut other_only, _) = server.subscribe("?campaign=other").await;
    let (mut conversions, _) = server.subscribe("?kind=conversion").await;
    let other_root = json!({"type":"share","id":"o1","campaign":"other","channel":"email",
        "sharer":"x","ip":BERLIN,"ts":T0})
    .to_string();
    server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", TOKYO, T0 + 1),
            conversion("v1", "s1", "signup", 0, SYDNEY, T0 + 2),
            other_root,
            click("c2", "o1", TOKYO, T0 + 3),
        ])
        .await;
    let other = other_only.arcs(2, Duration::from_secs(5)).await;
    assert_eq!(other.len(), 2);
    assert!(other.iter().all(|a| a.campaign == "other"), "{other:?}");
    let only = conversions.arcs(1, Duration::from_secs(5)).await;
    assert_eq!((only.len(), only[0].kind), (1, ArcKind::Conversion));
    assert!(
        other_only
            .arcs(1, Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert!(
        conversions
            .arcs(1, Duration::from_millis(300))
            .await
            .is_empty()
    );

    let bad = tokio_tungstenite::connect_async(format!("{}/v1/live?kind=likes", server.ws_base));
    assert!(bad.await.is_err(), "an unknown kind is refused");
}

/// Channel and generation filters: the live feed, a replay and an export give the same arcs for
/// the same filter; a bad one is refused naming its parameter.
#[tokio::test]
async fn channel_and_generation_filters_select_the_same_arcs_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (mut email_reshares, hello) = server
        .subscribe("?campaign=bones-brigade&channel=email&generation=1-")
        .await;
    let ServerMessage::Hello { filter, .. } = hello else {
        panic!("{hello:?}")
    };
    assert_eq!(filter.channels, ["email"]);
    let (mut posts, _) = server
        .subscribe("?campaign=bones-brigade&generation=0")
        .await;
    server
        .post_ndjson(&[
            share("root", None, "facebook", BERLIN, T0),
            share("e1", Some("root"), "email", BERLIN, T0 + 1),
            share("f1", Some("root"), "facebook", BERLIN, T0 + 2),
            share("e2", Some("e1"), "email", BERLIN, T0 + 3),
            click("k0", "root", TOKYO, T0 + 4),
            click("k1", "e1", TOKYO, T0 + 5),
            click("k2", "f1", TOKYO, T0 + 6),
            click("k3", "e2", TOKYO, T0 + 7),
        ])
        .await;
    let wanted = |arcs: &[viralglobe_protocol::ArcEvent]| {
        arcs.iter()
            .map(|a| format!("{:?} {} {}", a.kind, a.share, a.generation))
            .collect::<Vec<_>>()
    };
    let live = email_reshares.arcs(4, Duration::from_secs(5)).await;
    assert_eq!(
        wanted(&live),
        ["Share e1 1", "Share e2 2", "Click e1 1", "Click e2 2"]
    );
    let live_posts = posts.arcs(2, Duration::from_secs(5)).await;
    assert_eq!(wanted(&live_posts), ["Share root 0", "Click root 0"]);

    let mut replay = server
        .replay(
            "bones-brigade",
            "?speed=1000000&channel=email&generation=1-",
        )
        .await;
    assert_eq!(
        wanted(&replay.arcs(4, Duration::from_secs(5)).await),
        wanted(&live)
    );
    let export =
        reqwest::get(server.url("/v1/campaigns/bones-brigade/export?channel=email&generation=1-"))
            .await
            .expect("export")
            .text()
            .await
            .expect("body");
    let exported: Vec<viralglobe_protocol::ArcEvent> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("arc"))
        .collect();
    assert_eq!(wanted(&exported), wanted(&live));
    // The arcs keep their place in the campaign's line: seq counts the ones left out too.
    assert_eq!(
        live.iter().map(|a| a.seq).collect::<Vec<_>>(),
        exported.iter().map(|a| a.seq).collect::<Vec<_>>()
    );

    for (query, field) in [
        ("generation=two", "generation"),
        ("generation=3-1", "generation"),
        ("channel=", "none"),
    ] {
        let response =
            reqwest::get(server.url(&format!("/v1/campaigns/bones-brigade/export?{query}")))
                .await
                .expect("export");
        if field == "none" {
            assert_eq!(response.status().as_u16(), 200, "{query}");
            continue;
        }
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body = response.text().await.expect("body");
        assert!(body.contains(&format!("`{field}`")), "{query}: {body}");
    }
    let bad =
        tokio_tungstenite::connect_async(format!("{}/v1/live?generation=deep", server.ws_base));
    assert!(bad.await.is_err(), "a bad generation is refused");
}

/// `encoding=compact`: the same arcs as JSON, in binary messages a fraction of the size, live and
/// when resuming from the recording; an unknown encoding is refused naming the parameter.
#[tokio::test]
async fn compact_subscribers_get_the_same_arcs_in_fewer_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let (mut json, _) = server.subscribe("?campaign=bones-brigade").await;
    let url = format!(
        "{}/v1/live?campaign=bones-brigade&encoding=compact",
        server.ws_base
    );
    let (mut raw, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connects");
    let mut lines = vec![
        share("s1", None, "facebook", LOS_ANGELES, T0),
        share("s2", Some("s1"), "twitter", BERLIN, T0 + 1),
        conversion("v1", "s2", "purchase", 1999, SYDNEY, T0 + 2),
    ];
    lines.extend((0..300).map(|i| click(&format!("c{i}"), "s1", TOKYO, T0 + 3 + i)));
    assert_eq!(server.post_ndjson(&lines).await.0, 200);
    let expected = json.arcs(303, Duration::from_secs(5)).await;
    assert_eq!(expected.len(), 303);

    let (mut arcs, mut binary_bytes) = (Vec::new(), 0);
    while arcs.len() < 303 {
        let message = tokio::time::timeout(Duration::from_secs(5), raw.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("a message");
        if let Message::Binary(bytes) = message {
            binary_bytes += bytes.len();
            arcs.extend(viralglobe_protocol::compact::decode(&bytes).expect("decodes"));
        }
    }
    assert_eq!(arcs, expected);
    let json_bytes: usize = expected
        .iter()
        .map(|a| serde_json::to_string(a).expect("JSON").len())
        .sum();
    assert!(
        binary_bytes * 3 < json_bytes,
        "{binary_bytes} bytes against {json_bytes} in JSON"
    );

    // Resuming from the start: the recorded arcs, compact too.
    let ServerMessage::Hello { campaigns, .. } =
        server.subscribe("?campaign=bones-brigade").await.1
    else {
        panic!("hello")
    };
    let epoch = campaigns[0].epoch.clone().expect("epoch");
    let (mut resumed, _) = server
        .subscribe(&format!(
            "?campaign=bones-brigade&encoding=compact&since=0&epoch={epoch}"
        ))
        .await;
    assert_eq!(resumed.arcs(303, Duration::from_secs(5)).await, expected);

    let bad = reqwest::get(server.url("/v1/live?encoding=protobuf"))
        .await
        .expect("GET");
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.expect("body").contains("`encoding`"));
}

#[tokio::test]
async fn hello_carries_the_protocol_version_and_counters_so_far() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    server
        .post_ndjson(&[
            share("s1", None, "facebook", LOS_ANGELES, T0),
            click("c1", "s1", TOKYO, T0 + 1),
            conversion("v1", "s1", "purchase", 2500, SYDNEY, T0 + 2),
        ])
        .await;
    let (_, hello) = server.subscribe("?campaign=bones-brigade").await;
    let ServerMessage::Hello {
        protocol,
        campaigns,
        filter,
        ..
    } = hello
    else {
        panic!("not a hello")
    };
    assert_eq!(protocol, viralglobe_protocol::PROTOCOL_VERSION);
    assert_eq!(filter.campaign.as_deref(), Some("bones-brigade"));
    assert_eq!(campaigns.len(), 1);
    let c = &campaigns[0];
    assert_eq!(
        (c.shares, c.clicks, c.conversions, c.revenue_cents),
        (1, 1, 1, 2500)
    );
}

/// A subscriber with a tiny receive buffer that does not read while 40,000 arcs (~13 MB) go out:
/// ingest keeps its pace, a reading subscriber gets every arc in order, and the slow one is told
/// how many arcs it lost — what it got plus what it was told it lost is everything. A 1 ms tick
/// keeps frames small (about one POST each), so the buffers between (kernel ~4 MB, 64 queued frames
/// of ~33 kB) cannot hold it all, while the reader has 64 frames of slack on a busy CI machine.
#[tokio::test]
async fn a_slow_subscriber_is_told_what_it_lost_and_slows_nobody() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--subscriber-queue", "64", "--tick-ms", "1"]);
    let mut slow = slow_subscriber(&server).await;
    let (mut fast, _) = server.subscribe("").await;

    server
        .post_ndjson(&[share("s1", None, "facebook", LOS_ANGELES, T0)])
        .await;
    let (batches, per_batch) = (400, 100);
    let reader = tokio::spawn(async move {
        let arcs = fast
            .arcs(1 + batches * per_batch, Duration::from_secs(60))
            .await;
        arcs.iter().map(|a| a.seq).collect::<Vec<u64>>()
    });
    let started = Instant::now();
    for b in 0..batches {
        let lines: Vec<String> = (0..per_batch)
            .map(|i| click(&format!("c{b}-{i}"), "s1", TOKYO, T0 + i as i64))
            .collect();
        let (status, report) = server.post_ndjson(&lines).await;
        assert_eq!(
            (status, report["accepted"].as_u64()),
            (200, Some(per_batch as u64))
        );
    }
    let ingest_time = started.elapsed();
    let seqs = reader.await.expect("reader");
    let total = 1 + batches * per_batch;
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "the reading subscriber got all"
    );
    assert!(
        ingest_time < Duration::from_secs(20),
        "ingest took {ingest_time:?}"
    );

    // Now the slow one reads: some arcs, a lagged notice, and the two add up.
    let (mut received, mut lost) = (0u64, 0u64);
    server.post_ndjson(&[click("last", "s1", TOKYO, T0)]).await;
    loop {
        match slow.next_message(Duration::from_secs(3)).await {
            Some(ServerMessage::Arc(_)) => received += 1,
            Some(ServerMessage::Arcs { arcs }) => received += arcs.len() as u64,
            Some(ServerMessage::Lagged { dropped_arcs }) => lost += dropped_arcs,
            Some(_) => {}
            None => break,
        }
    }
    assert!(
        lost > 0,
        "the slow subscriber lost arcs (received {received})"
    );
    assert_eq!(
        received + lost,
        total as u64 + 1,
        "received {received} + lost {lost}"
    );
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await;
    assert!(
        metrics
            .expect("text")
            .contains("viralglobe_live_dropped_arcs_total")
    );
}

/// A websocket client whose socket buffers only a few kilobytes.
/// A subscriber that stops reading while its queue could hold everything (frames and bytes bounds
/// far off) still never gets arcs late: frames older than `--subscriber-max-lag-ms` are dropped
/// when it reads again, it is told how many, and what it gets and what it lost add up.
#[tokio::test]
async fn a_subscriber_is_never_sent_arcs_older_than_the_lag_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(
        dir.path(),
        &[
            "--subscriber-queue",
            "100000",
            "--subscriber-queue-bytes",
            "1000000000",
            "--subscriber-max-lag-ms",
            "300",
        ],
    );
    let mut slow = slow_subscriber(&server).await;
    server
        .post_ndjson(&[share("s1", None, "facebook", LOS_ANGELES, T0)])
        .await;
    let (batches, per_batch) = (600, 100);
    for b in 0..batches {
        let lines: Vec<String> = (0..per_batch)
            .map(|i| click(&format!("c{b}-{i}"), "s1", TOKYO, T0 + i as i64))
            .collect();
        assert_eq!(server.post_ndjson(&lines).await.0, 200);
    }
    // Everything is published; the subscriber has read nothing for longer than the bound.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (mut received, mut lost, mut seqs) = (0u64, 0u64, Vec::new());
    loop {
        match slow.next_message(Duration::from_secs(3)).await {
            Some(ServerMessage::Arc(a)) => {
                received += 1;
                seqs.push(a.seq);
            }
            Some(ServerMessage::Arcs { arcs }) => {
                received += arcs.len() as u64;
                seqs.extend(arcs.iter().map(|a| a.seq));
            }
            Some(ServerMessage::Lagged { dropped_arcs }) => lost += dropped_arcs,
            Some(_) => {}
            None => break,
        }
    }
    let total = 1 + (batches * per_batch) as u64;
    assert!(
        lost > 0,
        "nothing was dropped for age (received {received})"
    );
    assert_eq!(received + lost, total, "received {received} + lost {lost}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "arcs in order");
    let counted = server
        .metrics()
        .await
        .get("viralglobe_live_dropped_arcs_total");
    assert_eq!(counted, Some(lost as f64), "the metric counts them");
}

async fn slow_subscriber(server: &TestServer) -> Subscriber {
    let address = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let stream = socket.connect(address).await.expect("connect");
    let url = format!("{}/v1/live", server.ws_base);
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("handshake");
    let mut subscriber = Subscriber { ws };
    let first = subscriber.ws.next().await.expect("hello").expect("frame");
    assert!(matches!(first, Message::Text(_)));
    subscriber
}

/// Clients that open the live feed and then never read a byte (nor answer pings) are
/// disconnected once a frame has waited too long for them, and take nothing with them: their
/// queues go, and the server keeps serving everyone else.
#[tokio::test]
async fn subscribers_that_never_read_are_disconnected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .args(["demo", "--speed", "10000000", "--max-rate", "50000"])
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    let server = TestServer::spawn(command);
    let address = server.base.trim_start_matches("http://").to_owned();
    let subscribers = || async {
        let metrics = reqwest::get(server.url("/metrics")).await.expect("metrics");
        let text = metrics.text().await.expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix("viralglobe_live_subscribers "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    let stalled: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            never_reading(
                std::net::TcpStream::connect(&address).expect("connect"),
                "/v1/live",
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscribers().await < 5.0 {
        assert!(Instant::now() < deadline, "the five never registered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Their buffers fill within a second; a frame then waits 30 s at most, and the close 1 s.
    let deadline = Instant::now() + Duration::from_secs(75);
    while subscribers().await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} never-reading subscribers still connected",
            subscribers().await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (mut fresh, _) = server.subscribe("").await;
    assert!(!fresh.arcs(10, Duration::from_secs(5)).await.is_empty());
    drop(stalled);
}

/// `viralglobe_live_subscribers` counts open sockets: one that closes leaves the gauge within a
/// tick, though nothing is published (it once stayed until the next arc).
#[tokio::test]
async fn the_subscriber_gauge_drops_when_a_socket_closes_with_nothing_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let gauge = "viralglobe_live_subscribers";
    let (subscriber, _) = server.subscribe("").await;
    assert_eq!(server.metrics().await.value(gauge), 1.0);
    drop(subscriber);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.metrics().await.value(gauge) != 0.0 {
        assert!(
            Instant::now() < deadline,
            "a closed socket is still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The red team's stalled readers: sockets with a 4 KiB receive buffer that never read a byte nor
/// answer a ping, on the live feed, on a replay and on the live feed's event stream, while 60,000
/// arcs are published; then the traffic stops. Each is let go within the bound (30 s of silence ends the session; a peer whose
/// window stays shut 35 s loses the connection), and the server gives every descriptor back.
/// (They once waited on a ping, then on a flush, for ever.)
#[tokio::test]
async fn stalled_readers_with_small_buffers_are_let_go_within_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let address: std::net::SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let share = json!({"type": "share", "id": "st-s", "campaign": "stalled", "channel": "email",
        "sharer": "x", "ip": BERLIN, "ts": T0});
    let (status, _) = server.post_ndjson(&[share.to_string()]).await;
    assert_eq!(status, 200);
    let fds = || async { server.metrics().await.value("process_open_fds") };
    let before = fds().await;
    let paths = [
        "/v1/live",
        "/v1/campaigns/stalled/replay?speed=10000000",
        "/v1/live/events",
    ];
    let stalled: Vec<std::net::TcpStream> = paths
        .iter()
        .flat_map(|path| std::iter::repeat_n(*path, 5))
        .map(|path| {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
            socket.connect(&address.into()).expect("connect");
            never_reading(socket.into(), path)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds().await < before + 15.0 {
        assert!(
            Instant::now() < deadline,
            "the fifteen sockets never opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for batch in 0..6 {
        let clicks: Vec<String> = (0..10_000)
            .map(|i| {
                json!({"type": "click", "id": format!("st-{batch}-{i}"), "share": "st-s",
                    "ip": TOKYO, "ts": T0 + i})
                .to_string()
            })
            .collect();
        let (status, _) = server.post_ndjson(&clicks).await;
        assert_eq!(status, 200);
    }
    let stopped = Instant::now();
    let bound = Duration::from_secs(50);
    while fds().await > before {
        assert!(
            stopped.elapsed() < bound,
            "{} descriptors still held {:?} after the traffic stopped",
            fds().await - before,
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "all let go {:?} after the traffic stopped",
        stopped.elapsed()
    );
    let (mut fresh, _) = server.subscribe("?campaign=stalled").await;
    let click = json!({"type": "click", "share": "st-s", "ip": TOKYO, "ts": T0});
    server.post_ndjson(&[click.to_string()]).await;
    assert_eq!(fresh.arcs(1, Duration::from_secs(5)).await.len(), 1);
    drop(stalled);
}

/// A websocket client (an event stream's, for `/v1/live/events`) on `tcp` that asks for `path` and
/// then never reads a byte.
fn never_reading(mut tcp: std::net::TcpStream, path: &str) -> std::net::TcpStream {
    use std::io::Write as _;

    let host = tcp.peer_addr().expect("peer");
    if path.starts_with("/v1/live/events") {
        write!(tcp, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("request");
        return tcp;
    }
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    tcp
}

/// Connecting never waits for ingest: 1,000 subscribers connect while one batch of 100,000
/// events (a JSON array: one batch, applied under one lock) goes in, and each gets its `hello`
/// as quickly as with nothing going in. The hello's counters are those published after the last
/// batch; the batch is applied away from the workers that serve the sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_connect_while_a_large_batch_is_applied() {
    const EVENTS: usize = 100_000;
    const SUBSCRIBERS: usize = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(TestServer::start_in(dir.path(), &[]));
    server
        .post_ndjson(&[share("s0", None, "facebook", LOS_ANGELES, T0)])
        .await;
    let hello_within = |server: Arc<TestServer>| async move {
        let started = Instant::now();
        let (subscriber, _) = server.subscribe("?campaign=quiet").await;
        (started, started.elapsed(), subscriber)
    };
    // How long a hello takes with nothing going in, for comparison.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(hello_within(server.clone()).await.1);
    }
    idle.sort();

    let clicks: Vec<serde_json::Value> = (0..EVENTS)
        .map(|n| {
            json!({"type": "click", "id": format!("c{n}"), "share": "s0", "ip": TOKYO,
                   "ts": T0 + 1 + n as i64})
        })
        .collect();
    let body = serde_json::to_string(&clicks).expect("body");
    let posting = server.clone();
    let batch = tokio::spawn(async move {
        let started = Instant::now();
        let (status, report) = posting.post(&body, "application/json", None).await;
        (status, report, started, Instant::now())
    });
    let mut connects =
        futures_util::stream::iter((0..SUBSCRIBERS).map(|_| hello_within(server.clone())))
            .buffer_unordered(16);
    let mut hellos = Vec::new();
    let mut sockets = Vec::new();
    while let Some((started, took, subscriber)) = connects.next().await {
        hellos.push((started, took));
        sockets.push(subscriber);
    }
    let (status, report, posted, answered) = batch.await.expect("the batch");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], EVENTS, "{report}");
    let applying = answered - posted;
    // The hellos asked for while the batch was in: it must overlap them to show anything.
    let mut during: Vec<Duration> = hellos
        .iter()
        .filter(|(started, took)| *started > posted && *started + *took < answered)
        .map(|(_, took)| *took)
        .collect();
    during.sort();
    let slowest = during.last().copied().unwrap_or_default();
    let p99 = during
        .get(during.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    let shown = format!(
        "{} of {SUBSCRIBERS} hellos while the batch of {EVENTS} took {applying:?}; their p99 \
         {p99:?}, slowest {slowest:?}; with nothing going in the slowest of 50 took {:?}",
        during.len(),
        idle.last().expect("idle hellos"),
    );
    assert!(during.len() >= 100, "{shown}");
    assert!(slowest < applying / 4, "{shown}");
    eprintln!("{shown}");
}
