//! Consuming a Kafka topic as a consumer group. The broker is librdkafka's mock cluster, held by
//! the test: a Kafka wire-protocol broker on loopback ports, with topics, partitions, consumer
//! groups and committed offsets, that the server reaches over TCP like any broker (see
//! docs/consuming.md for why it stands in for Apache Kafka here).

use std::time::{Duration, Instant};

use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    mocking::MockCluster,
    producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer},
};
use serde_json::{Value, json};

use crate::{
    cluster::TestRedis,
    consume::{campaign_messages, consumed_by, dead_letters, two_nodes_consuming, until_counted},
    support::TestServer,
};

const TOPIC: &str = "clicks";
const DEAD: &str = "clicks-dead";
const PARTITIONS: i32 = 3;
/// The mock cluster's one broker.
const BROKER: i32 = 1;

pub(crate) struct TestKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl TestKafka {
    pub(crate) fn start() -> Self {
        let cluster = MockCluster::new(1).expect("a mock Kafka cluster");
        for topic in [TOPIC, DEAD] {
            cluster.create_topic(topic, PARTITIONS, 1).expect("a topic");
        }
        Self { cluster }
    }

    pub(crate) fn brokers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    fn source(&self, extra: &str) -> String {
        format!(
            "kafka://{}/{TOPIC}?group=globe&session_timeout_ms=6000{extra}",
            self.brokers()
        )
    }

    /// Produces the messages to the topic, spread over its partitions in turn, waiting until all
    /// are stored.
    fn produce(&self, messages: &[String]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("linger.ms", "5")
            .create()
            .expect("a producer");
        for (n, message) in messages.iter().enumerate() {
            let mut record = BaseRecord::<(), str>::to(TOPIC)
                .partition(n as i32 % PARTITIONS)
                .payload(message.as_str());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        // The local queue is full: let it drain.
                        producer.poll(Duration::from_millis(10));
                        record = back;
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(30)).expect("produced");
    }

    /// Every message in `topic`, from its start.
    fn read_all(&self, topic: &str, at_least: usize) -> Vec<Value> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "reader")
            .create()
            .expect("a consumer");
        let mut partitions = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            partitions
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&partitions).expect("assigned");
        let mut read = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while read.len() < at_least && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                read.push(
                    serde_json::from_slice(message.payload().unwrap_or_default())
                        .expect("a JSON letter"),
                );
            }
        }
        read
    }
}

async fn source_state(server: &TestServer) -> Value {
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!(status, 200, "the server serves on: {health}");
    health["sources"][0].clone()
}

/// Waits until the group has given the node's consumer partitions of the topic.
pub(crate) async fn until_assigned(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while source_state(server).await["partitions"].as_u64() < Some(1) {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_kafka_topic_is_consumed_whole_and_its_bad_lines_go_to_its_dead_letter_topic() {
    let kafka = TestKafka::start();
    let (messages, expected) = campaign_messages();
    kafka.produce(&messages);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let source = kafka.source(&format!("&dlq={DEAD}"));
    let server = TestServer::start_in(&data, &["--consume", &source]);
    until_counted(&server, &expected, Duration::from_secs(60)).await;
    let letters = kafka.read_all(DEAD, expected.bad as usize);
    assert_eq!(letters.len() as u64, expected.bad);
    for letter in &letters {
        assert!(
            letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{letter}"
        );
        assert!(
            letter["position"]
                .as_str()
                .is_some_and(|p| p.starts_with("partition ") && p.contains(" offset ")),
            "a partition and offset: {letter}"
        );
        assert!(!letter.to_string().contains("10.9.8."), "{letter}");
    }
    assert!(dead_letters(&data).is_empty(), "all went to the broker");
    // The lag comes from librdkafka's statistics, a second apart: 0 soon after the last commit.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut source = source_state(&server).await;
    while source["lag"] != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        source = source_state(&server).await;
    }
    assert_eq!(
        (
            &source["state"],
            &source["consumed"],
            &source["dead_lettered"],
            &source["lag"],
            &source["partitions"]
        ),
        (
            &json!("consuming"),
            &json!(9_900),
            &json!(100),
            &json!(0),
            &json!(PARTITIONS)
        ),
        "{source}"
    );
    // Every message is committed for the group: another member would start at the end.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("group.id", "globe")
        .create()
        .expect("a consumer");
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(TOPIC, partition);
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(5))
        .expect("committed offsets");
    let mut total = 0;
    for element in committed.elements() {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, element.partition(), Duration::from_secs(5))
            .expect("watermarks");
        assert_eq!(element.offset(), Offset::Offset(high), "{element:?}");
        total += high;
    }
    assert_eq!(total as usize, messages.len());
    let metrics = server.metrics().await.0;
    assert!(
        metrics.contains("viralglobe_consume_events_total{source=\"kafka://"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_kafka_consumer_killed_three_times_and_a_broker_outage_lose_nothing() {
    let kafka = TestKafka::start();
    let (messages, expected) = campaign_messages();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let source = kafka.source("");
    let mut server = TestServer::start_in(&data, &["--consume", &source]);
    let quarter = messages.len() / 4;
    for round in 0..3 {
        kafka.produce(&messages[round * quarter..(round + 1) * quarter]);
        tokio::time::sleep(Duration::from_millis(300 + 200 * round as u64)).await;
        server.kill();
        server = TestServer::start_in(&data, &["--consume", &source]);
    }
    // The broker goes away: reported, the server serves on; back, the rest arrives.
    let deadline = Instant::now() + Duration::from_secs(60);
    while source_state(&server).await["state"] != "consuming" {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kafka.cluster.broker_down(BROKER).expect("brokers down");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let source = source_state(&server).await;
        if source["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("broker unreachable"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{source}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kafka.cluster.broker_up(BROKER).expect("brokers up");
    kafka.produce(&messages[3 * quarter..]);
    until_counted(&server, &expected, Duration::from_secs(90)).await;
    assert_eq!(source_state(&server).await["state"], "consuming");
    let letters = dead_letters(&data);
    assert!(letters.len() as u64 >= expected.bad, "{}", letters.len());
}

/// Every node given the same `--consume` joins the same group: the broker spreads the topic's
/// partitions over them, each appends what it takes to the shared log, every node counts it all.
#[tokio::test]
async fn nodes_of_a_cluster_share_a_kafka_consumer_group_and_all_count_everything() {
    let kafka = TestKafka::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = TestRedis::start(&dir.path().join("redis"));
    let source = kafka.source("");
    let nodes = two_nodes_consuming(dir.path(), &redis, &source);
    // Both members given their partitions before the first message.
    for node in &nodes {
        until_assigned(node).await;
    }
    let (messages, expected) = campaign_messages();
    kafka.produce(&messages);
    for node in &nodes {
        until_counted(node, &expected, Duration::from_secs(60)).await;
    }
    let consumed = consumed_by(&nodes).await;
    assert_eq!(
        consumed.iter().sum::<u64>(),
        9_900,
        "taken once in all: {consumed:?}"
    );
    assert!(
        consumed.iter().all(|&c| c > 0),
        "the partitions are spread over both nodes: {consumed:?}"
    );
}
