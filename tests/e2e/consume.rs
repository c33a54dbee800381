//! Consuming streams where they flow: a real Redis (Debian's `redis-server`, the test's own, on a
//! free loopback port) whose stream the server reads as a consumer group, and Dub's webhooks.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    cluster::TestRedis,
    support::{TestServer, events, ips::*},
};

const STREAM: &str = "clicks";
const T0: i64 = 1_350_406_800_000;

/// 10,000 lines of one campaign: 100 shares (10 posts, each with 9 children), 9,400 clicks, 400
/// conversions, and 100 lines that are not events (1%), in messages of one to 50 lines.
pub(crate) fn campaign_messages() -> (Vec<String>, Expected) {
    let mut lines = Vec::new();
    for root in 0..10 {
        lines.push(events::share(
            &format!("r{root}"),
            None,
            "facebook",
            LOS_ANGELES,
            T0,
        ));
        for child in 0..9 {
            let ip = [BERLIN, TOKYO, SYDNEY][child % 3];
            lines.push(events::share(
                &format!("r{root}-{child}"),
                Some(&format!("r{root}")),
                "twitter",
                ip,
                T0 + 1_000,
            ));
        }
    }
    let share_of = |n: usize| {
        let root = n % 10;
        match (n / 10) % 10 {
            0 => format!("r{root}"),
            child => format!("r{root}-{}", child - 1),
        }
    };
    for n in 0..9_400 {
        let ip = [BERLIN, TOKYO, SYDNEY, LOS_ANGELES][n % 4];
        lines.push(events::click(
            &format!("c{n}"),
            &share_of(n),
            ip,
            T0 + 2_000 + n as i64,
        ));
    }
    for n in 0..400 {
        lines.push(events::conversion(
            &format!("v{n}"),
            &share_of(n),
            "purchase",
            1_000,
            SYDNEY,
            T0 + 20_000 + n as i64,
        ));
    }
    // Not events: a bad time, a missing share, not JSON (with an address, which a dead letter
    // must not keep).
    let mut bad = Vec::new();
    for n in 0..100 {
        bad.push(match n % 3 {
            0 => json!({"type": "click", "id": format!("bad{n}"), "share": "r0", "ip": BERLIN, "ts": "yesterday"}).to_string(),
            1 => json!({"type": "conversion", "id": format!("bad{n}"), "goal": "purchase", "ts": T0}).to_string(),
            _ => format!("garbage {n} from 10.9.8.{n}"),
        });
    }
    // Shares first, so that most clicks find theirs; the bad lines spread through the rest.
    let mut all: Vec<String> = lines.drain(..100).collect();
    for (n, line) in lines.into_iter().enumerate() {
        all.push(line);
        if n % 98 == 0 && !bad.is_empty() {
            all.push(bad.pop().expect("a bad line"));
        }
    }
    all.extend(bad);
    let mut messages = Vec::new();
    let mut rest = &all[..];
    let mut size = 1;
    while !rest.is_empty() {
        let take = size.min(rest.len());
        messages.push(rest[..take].join("\n"));
        rest = &rest[take..];
        size = size % 50 + 7;
    }
    (
        messages,
        Expected {
            shares: 100,
            clicks: 9_400,
            conversions: 400,
            bad: 100,
            lines: all.len(),
        },
    )
}

pub(crate) struct Expected {
    shares: u64,
    clicks: u64,
    conversions: u64,
    pub(crate) bad: u64,
    lines: usize,
}

fn produce(redis: &TestRedis, messages: &[String]) {
    let mut con = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("a Redis connection");
    for chunk in messages.chunks(200) {
        let mut pipe = redis::pipe();
        for message in chunk {
            pipe.cmd("XADD")
                .arg(STREAM)
                .arg("*")
                .arg("event")
                .arg(message)
                .ignore();
        }
        pipe.query::<()>(&mut con).expect("XADD");
    }
}

async fn summary(server: &TestServer) -> (u64, u64, u64) {
    let (status, stats) = server.get_json("/v1/campaigns/bones-brigade/stats").await;
    if status != 200 {
        return (0, 0, 0);
    }
    let s = &stats["summary"];
    let n = |f: &str| s[f].as_u64().unwrap_or(0);
    (n("shares"), n("clicks"), n("conversions"))
}

/// Waits until the campaign's counters are `expected`, failing with what they were.
pub(crate) async fn until_counted(server: &TestServer, expected: &Expected, within: Duration) {
    let want = (expected.shares, expected.clicks, expected.conversions);
    let deadline = Instant::now() + within;
    let mut got = summary(server).await;
    while got != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        got = summary(server).await;
    }
    assert_eq!(got, want, "shares, clicks, conversions\n{}", server.log());
}

fn consume_url(redis: &TestRedis) -> String {
    format!("{}/{STREAM}?group=globe", redis.url())
}

pub(crate) fn dead_letters(data_dir: &Path) -> Vec<Value> {
    let dir = data_dir.join("dead-letter");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            std::fs::read_to_string(e.expect("entry").path())
                .expect("letters")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str(&l).expect("a JSON letter"))
        .collect()
}

#[tokio::test]
async fn a_redis_stream_is_consumed_whole_and_its_bad_lines_are_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = TestRedis::start(&dir.path().join("redis"));
    let (messages, expected) = campaign_messages();
    assert_eq!(expected.lines, 10_000);
    produce(&redis, &messages);
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &["--consume", &consume_url(&redis)]);
    until_counted(&server, &expected, Duration::from_secs(60)).await;
    let letters = dead_letters(&data);
    assert_eq!(letters.len() as u64, expected.bad, "{letters:?}");
    for letter in &letters {
        assert!(
            letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{letter}"
        );
        assert!(
            letter["position"].as_str().is_some_and(|p| p.contains('-')),
            "an entry id: {letter}"
        );
        assert!(letter["line"].as_u64() > Some(0), "{letter}");
        let text = letter.to_string();
        assert!(
            !text.contains(BERLIN) && !text.contains("10.9.8."),
            "a dead letter keeps an address: {text}"
        );
    }
    assert!(letters.iter().any(|l| {
        l["reason"]
            .as_str()
            .is_some_and(|r| r.contains("field `ts`"))
    }));
    let (_, health) = server.get_json("/healthz").await;
    let source = &health["sources"][0];
    assert_eq!(source["state"], "consuming", "{health}");
    assert_eq!(source["consumed"], 9_900, "{health}");
    assert_eq!(source["dead_lettered"], 100, "{health}");
    assert_eq!(source["lag"], 0, "{health}");
    let metrics = server.metrics().await;
    assert!(
        metrics
            .0
            .contains("viralglobe_consume_dead_letters_total{source="),
        "{}",
        metrics.0
    );
    // Everything was acknowledged: nothing pending in the group.
    let mut con = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("Redis");
    let pending: redis::streams::StreamPendingReply =
        redis::Commands::xpending(&mut con, STREAM, "globe").expect("XPENDING");
    assert_eq!(pending.count(), 0);
}

#[tokio::test]
async fn killed_three_times_mid_stream_nothing_is_lost_or_counted_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = TestRedis::start(&dir.path().join("redis"));
    let (messages, expected) = campaign_messages();
    let data = dir.path().join("data");
    // Each start is on a new port, so a new consumer of the group (a node that died and another
    // that took its place): the dead one's pending entries are claimed after a second.
    let source = format!("{}&claim_after_ms=1000", consume_url(&redis));
    let mut server = TestServer::start_in(&data, &["--consume", &source]);
    // The stream grows while the server is killed and started again.
    let quarter = messages.len() / 4;
    for round in 0..4 {
        produce(
            &redis,
            &messages[round * quarter..if round == 3 {
                messages.len()
            } else {
                (round + 1) * quarter
            }],
        );
        if round < 3 {
            tokio::time::sleep(Duration::from_millis(20 + 20 * round as u64)).await;
            server.kill();
            server = TestServer::start_in(&data, &["--consume", &source]);
        }
    }
    until_counted(&server, &expected, Duration::from_secs(60)).await;
    // Lines re-delivered after a kill were duplicates; the bad ones may be dead-lettered twice.
    let letters = dead_letters(&data);
    assert!(letters.len() as u64 >= expected.bad, "{}", letters.len());
}

#[tokio::test]
async fn a_stopped_broker_is_reported_and_consuming_resumes_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = TestRedis::start(&dir.path().join("redis"));
    let (messages, expected) = campaign_messages();
    let half = messages.len() / 2;
    produce(&redis, &messages[..half]);
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--consume", &consume_url(&redis)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while summary(&server).await.1 == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health = Value::Null;
    while Instant::now() < deadline {
        let (status, answer) = server.get_json("/healthz").await;
        assert_eq!(status, 200, "the server serves on: {answer}");
        health = answer;
        if health["sources"][0]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("broker unreachable"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        health["sources"][0]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("broker unreachable")),
        "{health}"
    );
    redis.restart();
    produce(&redis, &messages[half..]);
    until_counted(&server, &expected, Duration::from_secs(60)).await;
    let (_, health) = server.get_json("/healthz").await;
    assert_eq!(health["sources"][0]["state"], "consuming", "{health}");
}

/// Dub's signature: hex HMAC-SHA256 of the body with the webhook's secret.
fn signed(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn dub_webhooks_become_shares_clicks_and_conversions() {
    const SECRET: &str = "whsec_test_secret";
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--dub-webhook-secret", SECRET]);
    let (mut subscriber, _) = server.subscribe("?campaign=dub-launch").await;
    let link = json!({"id": "cm0faqkyn", "domain": "dub.sh", "key": "79ys3WA", "url": "https://example.com/",
        "shortLink": "https://dub.sh/79ys3WA", "utm_campaign": null, "createdAt": "2024-08-30T10:00:00.000Z"});
    let click = json!({"id": "d0UtZqE0BZuBPrJS", "timestamp": "2024-08-30T10:16:12.124Z", "ip": TOKYO,
        "country": "JP", "city": "Tokyo", "bot": false, "qr": false});
    let clicked = json!({"id": "evt_click1", "event": "link.clicked", "createdAt": "2024-08-30T10:16:13.149Z",
        "data": {"click": click, "link": link}});
    let lead = json!({"id": "evt_lead1", "event": "lead.created", "createdAt": "2024-08-30T10:20:00.000Z",
        "data": {"eventName": "Sign up", "customer": {"id": "cus_1", "name": "John"}, "click": click, "link": link}});
    let sale = json!({"id": "evt_sale1", "event": "sale.created", "createdAt": "2024-08-30T10:30:00.000Z",
        "data": {"eventName": "Purchased", "customer": {"id": "cus_1"}, "click": click, "link": link,
                 "sale": {"amount": 2499, "currency": "usd"}}});
    let post = |body: String, signature: Option<String>| {
        let mut request = reqwest::Client::new()
            .post(server.url("/v1/hooks/dub?campaign=dub-launch&lat=34.05&lon=-118.24&city=Los%20Angeles&country=US"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Dub-Signature", signature);
        }
        request.send()
    };
    for payload in [&clicked, &lead, &sale] {
        let body = payload.to_string();
        let response = post(body.clone(), Some(signed(SECRET, &body)))
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200);
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["rejected_count"], 0, "{answer}");
    }
    let arcs = subscriber.arcs(4, Duration::from_secs(5)).await;
    let drawn: Vec<_> = arcs
        .iter()
        .map(|a| {
            (
                format!("{:?}", a.kind),
                a.goal.clone(),
                a.value_cents,
                a.from.as_ref().and_then(|p| p.city.clone()),
                a.to.city.clone(),
            )
        })
        .collect();
    let city = |c: &str| Some(c.to_owned());
    assert_eq!(
        drawn,
        [
            ("Share".into(), None, None, None, city("Los Angeles")),
            (
                "Click".into(),
                None,
                None,
                city("Los Angeles"),
                city("Tokyo")
            ),
            (
                "Conversion".into(),
                Some("signup".into()),
                Some(0),
                city("Tokyo"),
                city("Los Angeles")
            ),
            (
                "Conversion".into(),
                Some("purchase".into()),
                Some(2499),
                city("Tokyo"),
                city("Los Angeles")
            ),
        ]
    );
    // A delivery Dub repeats is a duplicate; a wrong or missing signature is refused.
    let body = sale.to_string();
    let answer: Value = post(body.clone(), Some(signed(SECRET, &body)))
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{answer}"
    );
    let forged = post(body.replace("2499", "9999"), Some(signed(SECRET, &body)))
        .await
        .expect("POST");
    assert_eq!(forged.status().as_u16(), 401);
    assert_eq!(
        post(body.clone(), None)
            .await
            .expect("POST")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        post(body.clone(), Some(signed("another", &body)))
            .await
            .expect("POST")
            .status()
            .as_u16(),
        401
    );
    let stats = server.stats("dub-launch").await;
    assert_eq!(stats["summary"]["revenue_cents"], 2499, "{stats}");
    assert!(
        !server.log().contains(TOKYO),
        "the visitor's address is not logged"
    );
}

/// A NATS server of the test's own with JetStream (Debian's `nats-server`), killed when dropped.
pub(crate) struct TestNats {
    child: Option<std::process::Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl TestNats {
    pub(crate) fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            child: None,
            port,
            dir: dir.to_owned(),
        };
        nats.restart();
        nats
    }

    fn restart(&mut self) {
        // Debian installs it in /usr/sbin, which a user's PATH may lack.
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = std::process::Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs (tests/run.sh installs Debian's nats-server)");
        self.child = Some(child);
        crate::cluster::listening(self.port, "nats-server");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream context of a fresh client; `events` and `dead.events` are captured by streams
    /// of their own.
    async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.url())
            .await
            .expect("a NATS client");
        let context = async_nats::jetstream::new(client);
        for (name, subject) in [("EVENTS", "events"), ("DEAD", "dead.events")] {
            context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: name.into(),
                    subjects: vec![subject.into()],
                    ..Default::default()
                })
                .await
                .expect("a stream");
        }
        context
    }

    async fn produce(&self, messages: &[String]) {
        let context = self.jetstream().await;
        let mut acks = Vec::new();
        for message in messages {
            acks.push(
                context
                    .publish("events", message.clone().into())
                    .await
                    .expect("published"),
            );
        }
        for ack in acks {
            ack.await.expect("stored");
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_source(nats: &TestNats) -> String {
    format!(
        "{}/EVENTS?durable=globe&dlq=dead.events&ack_wait_ms=1000",
        nats.url()
    )
}

#[tokio::test]
async fn a_nats_stream_is_consumed_whole_and_its_bad_lines_go_to_its_dead_letter_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = TestNats::start(&dir.path().join("nats"));
    let (messages, expected) = campaign_messages();
    nats.produce(&messages).await;
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &["--consume", &nats_source(&nats)]);
    until_counted(&server, &expected, Duration::from_secs(60)).await;
    // The letters are in the broker's dead-letter stream, none in the data directory.
    let context = nats.jetstream().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut dead = context.get_stream("DEAD").await.expect("DEAD");
    while dead.info().await.expect("info").state.messages < expected.bad
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        dead.info().await.expect("info").state.messages,
        expected.bad
    );
    let letter = dead.get_raw_message(1).await.expect("a letter");
    let letter: Value = serde_json::from_slice(&letter.payload).expect("JSON");
    assert!(
        letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{letter}"
    );
    assert!(
        letter["position"]
            .as_str()
            .is_some_and(|p| p.parse::<u64>().is_ok()),
        "a stream sequence: {letter}"
    );
    assert!(dead_letters(&data).is_empty());
    let (_, health) = server.get_json("/healthz").await;
    let source = &health["sources"][0];
    assert_eq!(
        (
            &source["state"],
            &source["consumed"],
            &source["dead_lettered"]
        ),
        (&json!("consuming"), &json!(9_900), &json!(100)),
        "{health}"
    );
}

#[tokio::test]
async fn a_nats_consumer_killed_three_times_and_a_nats_restart_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nats = TestNats::start(&dir.path().join("nats"));
    let (messages, expected) = campaign_messages();
    let data = dir.path().join("data");
    let mut server = TestServer::start_in(&data, &["--consume", &nats_source(&nats)]);
    let quarter = messages.len() / 4;
    for round in 0..3 {
        nats.produce(&messages[round * quarter..(round + 1) * quarter])
            .await;
        tokio::time::sleep(Duration::from_millis(20 + 20 * round as u64)).await;
        server.kill();
        server = TestServer::start_in(&data, &["--consume", &nats_source(&nats)]);
    }
    // The broker goes away: reported, the server serves on; back, the rest arrives.
    nats.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, health) = server.get_json("/healthz").await;
        assert_eq!(status, 200, "{health}");
        if health["sources"][0]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("broker unreachable"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    nats.restart();
    nats.produce(&messages[3 * quarter..]).await;
    until_counted(&server, &expected, Duration::from_secs(60)).await;
}

/// A source the server cannot consume stops it at start, saying why, before it serves anything.
#[test]
fn a_source_it_cannot_consume_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (url, says) in [
        (
            "kafka://127.0.0.1:9092/clicks?group=globe&start=beginning",
            "start: `earliest` or `latest`, not `beginning`",
        ),
        (
            "redis://127.0.0.1:6379/clicks",
            "name the consumer group: ?group=G",
        ),
        (
            "nats://127.0.0.1:4222/EVENTS?durable=d&colour=red",
            "unknown parameter `colour`",
        ),
        (
            "redis://:s3cret@127.0.0.1:6379/clicks",
            "redis://…@127.0.0.1:6379/clicks",
        ),
    ] {
        let output = TestServer::command_in(dir.path(), &["--consume", url])
            .output()
            .expect("the server runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(
            !stderr.contains("s3cret"),
            "the password is not shown: {stderr}"
        );
    }
}

/// Several nodes: every node given the same `--consume` joins the same consumer group; the
/// stream's entries are spread over them, each appends what it takes to the shared log, and
/// every node counts the whole campaign.
#[tokio::test]
async fn nodes_of_a_cluster_share_a_consumer_group_and_all_count_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = TestRedis::start(&dir.path().join("redis"));
    let source = consume_url(&redis);
    let nodes = two_nodes_consuming(dir.path(), &redis, &source);
    let (messages, expected) = campaign_messages();
    produce(&redis, &messages);
    for node in &nodes {
        until_counted(node, &expected, Duration::from_secs(60)).await;
    }
    let consumed = consumed_by(&nodes).await;
    assert_eq!(
        consumed.iter().sum::<u64>(),
        9_900,
        "taken once in all: {consumed:?}"
    );
    println!("entries' events taken by each node: {consumed:?}");
}

/// Two cluster nodes on `redis`'s log, each consuming `source`.
pub(crate) fn two_nodes_consuming(dir: &Path, redis: &TestRedis, source: &str) -> Vec<TestServer> {
    (0..2)
        .map(|n| {
            TestServer::start_in(
                &dir.join(format!("node{n}")),
                &["--redis", &redis.url(), "--consume", source],
            )
        })
        .collect()
}

/// What each node's (first) source has taken, duplicates included.
pub(crate) async fn consumed_by(nodes: &[TestServer]) -> Vec<u64> {
    let mut consumed = Vec::new();
    for node in nodes {
        let (_, health) = node.get_json("/healthz").await;
        consumed.push(health["sources"][0]["consumed"].as_u64().unwrap_or(0));
    }
    consumed
}
