//! The README's examples, run as written.

use std::{process::Command, time::Duration};

use viralglobe_protocol::ArcKind;

use crate::support::TestServer;

/// The shell block of README's section `heading`.
fn readme_block(heading: &str) -> String {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find(heading).expect("the section")..];
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    section[start..][..section[start..].find("\n```").expect("its end")].to_owned()
}

/// Runs `script` with `shell` (and `command`'s settings) and returns what it printed, failing the
/// test with its output when it fails.
fn run(shell: &str, script: &str, command: impl FnOnce(&mut Command) -> &mut Command) -> String {
    let output = command(Command::new(shell).args(["-c", script]))
        .output()
        .expect("the shell runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// "Sending events": against a server with no geo database, the curl command is acknowledged
/// and draws the four arcs the README describes; sent again, it is four duplicates.
#[tokio::test]
async fn the_sending_events_example_draws_what_the_readme_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    let server = TestServer::spawn(command);
    let (mut subscriber, _) = server.subscribe("?campaign=my-launch").await;
    let script = readme_block("## Sending events").replace("http://127.0.0.1:8080", &server.base);
    let run = || {
        serde_json::from_str::<serde_json::Value>(&run("sh", &script, |c| c))
            .expect("a JSON answer")
    };
    let answer = run();
    assert_eq!(
        (
            answer["accepted"].as_u64(),
            answer["rejected_count"].as_u64()
        ),
        (Some(4), Some(0)),
        "{answer}"
    );
    let arcs = subscriber.arcs(4, Duration::from_secs(5)).await;
    let drawn: Vec<(ArcKind, Option<&str>, &str, u32)> = arcs
        .iter()
        .map(|a| {
            let from = a.from.as_ref().and_then(|p| p.city.as_deref());
            (
                a.kind,
                from,
                a.to.city.as_deref().unwrap_or(""),
                a.generation,
            )
        })
        .collect();
    assert_eq!(
        drawn,
        [
            (ArcKind::Share, None, "Los Angeles", 0),
            (ArcKind::Share, Some("Los Angeles"), "Berlin", 1),
            (ArcKind::Click, Some("Los Angeles"), "Tokyo", 0),
            (ArcKind::Conversion, Some("Sydney"), "Berlin", 1),
        ]
    );
    let stats = server.stats("my-launch").await;
    assert_eq!(stats["totals"]["shares"], 2);
    assert_eq!(stats["totals"]["clicks"], 1);
    assert_eq!(stats["totals"]["revenue_cents"], 1499);
    assert_eq!(run()["duplicates"], 4, "sent again: duplicates");
}

/// "Track a campaign yourself": against the demo server trusting this machine's proxy header,
/// the commands mint a post's link, follow it from Stockholm, share it on and buy from Auckland;
/// the counters and arcs are what the README says.
#[tokio::test]
async fn the_track_a_campaign_example_fills_the_globe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::demo::demo_server_with(dir.path(), &["--trusted-proxy", "127.0.0.1"]);
    let script =
        readme_block("## Track a campaign yourself").replace("http://127.0.0.1:8080", &server.base);
    let printed = run("sh", &script, |c| c);
    assert!(
        printed.contains("302 http://localhost:8000/?vg="),
        "{printed}"
    );
    let stats = server.stats("my-film").await;
    let summary = &stats["summary"];
    assert_eq!(
        (
            &summary["shares"],
            &summary["clicks"],
            &summary["conversions"]
        ),
        (&2.into(), &2.into(), &1.into()),
        "{stats}\n{printed}"
    );
    assert!(
        printed.contains(r#""shares":2,"clicks":2,"conversions":1"#),
        "{printed}"
    );
    let city = |c: &str| Some(c.to_owned());
    assert_eq!(
        crate::support::drawn(&server, "my-film", 5).await,
        [
            ("Click".into(), 0, city("Los Angeles"), city("Stockholm")),
            ("Click".into(), 1, city("Stockholm"), city("Auckland")),
            ("Conversion".into(), 1, city("Auckland"), city("Stockholm")),
            ("Share".into(), 0, None, city("Los Angeles")),
            ("Share".into(), 1, city("Los Angeles"), city("Stockholm")),
        ]
    );
}

/// "Embedding the globe for a client": against the demo server with a token secret, the token
/// the command mints reads the client's campaign and is refused another's; the iframe snippet
/// names the embed page with it.
#[tokio::test]
async fn the_embedding_example_mints_a_token_for_one_campaign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = crate::tokens::SECRET;
    let server = crate::demo::demo_server_with(dir.path(), &["--jwt-secret", secret]);
    // As a person would: once the demo's campaign is there.
    let all = crate::tokens::mint(&["--campaign", "*"]);
    let stats = server.url(&format!("/v1/campaigns/bones-brigade/stats?token={all}"));
    for _ in 0..200 {
        let status = reqwest::get(&stats).await.expect("GET").status();
        if status.is_success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let script = readme_block("## Embedding the globe for a client")
        .replace("http://127.0.0.1:8080", &server.base);
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("its folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let printed = run("sh", &script, |c| {
        c.env("PATH", path).env("VIRALGLOBE_JWT_SECRET", secret)
    });
    assert!(
        printed.contains(r#"{"summary":{"id":"bones-brigade","shares":"#),
        "{printed}"
    );
    assert!(
        printed.contains(r#"{"error":"this token may not read campaign `another-client`"}"#),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "<iframe src=\"{}/embed?campaign=bones-brigade&token=ey",
            server.base
        )),
        "{printed}"
    );
}

/// "Consuming a stream": against a server consuming a Redis stream, Redis's own CLI adds the
/// three events and the stats count them as the README says.
#[tokio::test]
async fn the_consuming_example_counts_what_redis_cli_adds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = crate::cluster::TestRedis::start(&dir.path().join("redis"));
    let port = redis.url().rsplit(':').next().expect("a port").to_owned();
    let source = format!("{}/clicks?group=globe", redis.url());
    let server = TestServer::start_in(&dir.path().join("data"), &["--consume", &source]);
    let script = readme_block("## Consuming a stream")
        .replace("http://127.0.0.1:8080", &server.base)
        .replace("-p 6390", &format!("-p {port}"));
    let printed = run("sh", &script, |c| c);
    assert_one_of_each(&printed, "from-redis", &server);
}

/// "From NATS JetStream": against a server consuming a NATS stream it creates, bash publishes the
/// three events over the NATS protocol and the stats count them as the README says.
#[tokio::test]
async fn the_nats_example_counts_what_bash_publishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = crate::consume::TestNats::start(&dir.path().join("nats"));
    let port = nats.url().rsplit(':').next().expect("a port").to_owned();
    let source = format!("{}/EVENTS?durable=globe&subject=events", nats.url());
    let server = TestServer::start_in(&dir.path().join("data"), &["--consume", &source]);
    // Once the consumer has made the stream, as it would have by the time a person types.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = server.get_json("/healthz").await;
        if health["sources"][0]["state"] == "consuming" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let script = readme_block("### From NATS JetStream")
        .replace("http://127.0.0.1:8080", &server.base)
        .replace("127.0.0.1/4222", &format!("127.0.0.1/{port}"));
    let printed = run("bash", &script, |c| c);
    assert_one_of_each(&printed, "from-nats", &server);
}

/// "From Kafka": against a server consuming a topic of a Kafka broker (librdkafka's mock cluster,
/// as in `kafka.rs`), Debian's `kcat` produces the three events and the stats count them.
#[tokio::test]
async fn the_kafka_example_counts_what_kcat_produces() {
    let kafka = crate::kafka::TestKafka::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = format!("kafka://{}/clicks?group=globe", kafka.brokers());
    let server = TestServer::start_in(&dir.path().join("data"), &["--consume", &source]);
    // Once the group has given the server the topic's partitions, as it has by the time a person
    // types.
    crate::kafka::until_assigned(&server).await;
    let script = readme_block("### From Kafka")
        .replace("http://127.0.0.1:8080", &server.base)
        .replace("127.0.0.1:9092", &kafka.brokers());
    let printed = run("bash", &script, |c| c);
    assert_one_of_each(&printed, "from-kafka", &server);
}

/// "With Sentinel": the script starts its primary, replicas, sentinels and two nodes, sends an
/// event, shuts the primary down and sends another to the other node once Sentinel has promoted
/// a replica; both are counted, and `/healthz` names the new primary and one failover.
#[tokio::test]
async fn the_sentinel_example_follows_a_failover() {
    /// What the script starts, stopped even when it fails half-way.
    struct Leftovers;
    impl Drop for Leftovers {
        fn drop(&mut self) {
            for port in ["6380", "6381", "6382", "26380", "26381", "26382"] {
                let _ = Command::new("redis-cli")
                    .args(["-p", port, "shutdown", "nosave"])
                    .output();
            }
        }
    }
    let _leftovers = Leftovers;
    let dir = tempfile::tempdir().expect("tempdir");
    let script = readme_block("### With Sentinel").replace(
        "../target/release/viralglobe-server",
        env!("CARGO_BIN_EXE_viralglobe-server"),
    );
    let printed =
        tokio::task::spawn_blocking(move || run("bash", &script, |c| c.current_dir(dir.path())))
            .await
            .expect("the script ran");
    let answers: Vec<&str> = printed.lines().collect();
    assert!(answers[0].contains(r#""accepted":1"#), "{printed}");
    assert!(answers[1].contains(r#""accepted":1"#), "{printed}");
    assert!(printed.contains(r#""failovers":1"#), "{printed}");
    assert!(printed.contains(r#""redis":"ok""#), "{printed}");
    assert!(
        !printed.contains(r#""primary":"127.0.0.1:6380""#),
        "{printed}"
    );
    assert!(
        printed.contains(r#"{"summary":{"id":"failover","shares":1,"clicks":1,"conversions":0"#),
        "{printed}"
    );
}

/// The consuming examples' stats line: the campaign counts the one share, click and conversion.
fn assert_one_of_each(printed: &str, campaign: &str, server: &TestServer) {
    let line =
        format!(r#"{{"summary":{{"id":"{campaign}","shares":1,"clicks":1,"conversions":1,"goals""#);
    assert!(printed.contains(&line), "{printed}\n{}", server.log());
}
