//! Cluster mode under Sentinel: a primary, two replicas and three sentinels (Debian's
//! redis-server, the sentinels in its sentinel mode), started here on loopback; primaries killed
//! with -9 mid-ingest, one failover after another.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;
use viralglobe_protocol::ArcEvent;

use crate::{
    cluster::{
        CAMPAIGN, TestRedis, batch, converged, free_port, listening, redis_cli, reseed, stopped_for,
    },
    support::TestServer,
};

const MASTER: &str = "viral";

/// A sentinel of the test's own, killed when dropped.
struct TestSentinel {
    child: Child,
    port: u16,
}

impl TestSentinel {
    fn start(dir: &Path, primary: &TestRedis) -> Self {
        std::fs::create_dir_all(dir).expect("sentinel directory");
        let port = free_port();
        // Sentinel rewrites its configuration file: one per sentinel.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile sentinel.log\n\
                 sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds {MASTER} 2000\n\
                 sentinel failover-timeout {MASTER} 3000\n",
                dir.display(),
                primary.port
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs in sentinel mode");
        listening(port, "the sentinel");
        Self { child, port }
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A primary, two replicas, three sentinels watching them.
struct Deployment {
    redis: Vec<TestRedis>,
    sentinels: Vec<TestSentinel>,
}

impl Deployment {
    fn start(dir: &Path) -> Self {
        // Any of them may become the primary: each sends a new replica its data at once (by
        // default a primary waits 5 s for more replicas first).
        let now = ["--repl-diskless-sync-delay", "0", "--logfile", "redis.log"];
        let primary = TestRedis::start_with(&dir.join("redis0"), &now);
        let port = primary.port.to_string();
        let replicas: Vec<TestRedis> = (1..3)
            .map(|i| {
                let replicating = [&now[..], &["--replicaof", "127.0.0.1", &port]].concat();
                TestRedis::start_with(&dir.join(format!("redis{i}")), &replicating)
            })
            .collect();
        let sentinels = (0..3)
            .map(|i| TestSentinel::start(&dir.join(format!("sentinel{i}")), &primary))
            .collect();
        let deployment = Self {
            redis: std::iter::once(primary).chain(replicas).collect(),
            sentinels,
        };
        // Ready when both replicas have the primary's data and every sentinel knows the other
        // two.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let replicas = redis_cli(deployment.redis[0].port, &["INFO", "replication"]);
            let sentinels_know = deployment.sentinels.iter().all(|s| {
                field(
                    &redis_cli(s.port, &["SENTINEL", "master", MASTER]),
                    "num-other-sentinels",
                ) == "2"
            });
            if replicas.matches("state=online").count() == 2 && sentinels_know {
                return deployment;
            }
            assert!(
                Instant::now() < deadline,
                "Sentinel never got ready: {replicas}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The primary's port, as the first sentinel names it.
    fn primary(&self) -> u16 {
        let named = redis_cli(
            self.sentinels[0].port,
            &["SENTINEL", "get-master-addr-by-name", MASTER],
        );
        named
            .lines()
            .last()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no primary named: {named}"))
    }

    fn instance(&mut self, port: u16) -> &mut TestRedis {
        self.redis
            .iter_mut()
            .find(|r| r.port == port)
            .expect("one of ours")
    }
}

/// The value after `name` in `redis-cli`'s one-per-line answer to `SENTINEL master`.
fn field(answer: &str, name: &str) -> String {
    let mut lines = answer.lines();
    while let Some(line) = lines.next() {
        if line == name {
            return lines.next().unwrap_or_default().to_owned();
        }
    }
    String::new()
}

/// Posts `lines` until a 200 says they are on the primary and its replicas (as `--redis-wait` asks); a 503 (the primary gone)
/// or a 202 (a replica short) sends them again, whole (their ids make repeats duplicates).
async fn post_until_replicated(node: &TestServer, lines: Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, report) = node.post_ndjson(&lines).await;
        match status {
            200 => {
                assert_eq!(report["rejected_count"], 0, "{report}");
                return;
            }
            202 | 503 => {
                assert!(Instant::now() < deadline, "never acknowledged: {report}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other}: {report}"),
        }
    }
}

/// Sends batch after batch (numbered from `next`, shared) to `node` until the failovers are over,
/// and ten more.
async fn ingest(node: &TestServer, failing_over: &AtomicBool, next: &AtomicUsize) {
    let mut after = 0;
    while after < 10 {
        if !failing_over.load(Ordering::Relaxed) {
            after += 1;
        }
        let b = next.fetch_add(1, Ordering::Relaxed);
        post_until_replicated(node, batch(b)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two nodes on `--redis redis+sentinel://…/viral --redis-wait 2` (every replica: whichever
/// Sentinel promotes has what a node applied; with 1 of 2, a promotion of the other one, which
/// Sentinel may pick on stale offsets, takes back what nodes applied and stops them — seen here
/// under load), ingest spread over both all along: the primary is killed with -9, five times, the killed one coming back each time (it
/// returns as a replica, which changes nothing for the nodes) and the next failover two
/// seconds later. Both nodes follow each new primary within 15 s, every batch
/// answered 200 is on both, their statistics and exports are equal, and a subscriber that stayed
/// on one node saw every arc once, in order.
#[tokio::test]
async fn two_nodes_follow_five_sentinel_failovers_and_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut deployment = Deployment::start(dir.path());
    let url = deployment.url();
    let nodes = [
        TestServer::start_in(
            &dir.path().join("a"),
            &["--redis", &url, "--redis-wait", "2"],
        ),
        TestServer::start_in(
            &dir.path().join("b"),
            &["--redis", &url, "--redis-wait", "2"],
        ),
    ];
    let (mut watching, _) = nodes[0].subscribe(&format!("?campaign={CAMPAIGN}")).await;
    let first = deployment.primary();
    for node in &nodes {
        let (_, health) = node.get_json("/healthz").await;
        assert_eq!(
            health["log"]["primary"],
            format!("127.0.0.1:{first}"),
            "{health}"
        );
        assert_eq!(health["log"]["failovers"], 0, "{health}");
    }

    let failing_over = AtomicBool::new(true);
    let next = AtomicUsize::new(0);
    let failovers = async {
        for round in 1..=5u64 {
            // Ingest goes on for a while on the primary of the moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let killed = deployment.primary();
            deployment.instance(killed).kill();
            let started = Instant::now();
            let new = loop {
                let named = deployment.primary();
                if named != killed {
                    break named;
                }
                assert!(started.elapsed() < Duration::from_secs(15), "no failover");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            for node in &nodes {
                loop {
                    let (_, health) = node.get_json("/healthz").await;
                    let log = &health["log"];
                    // Following: connected to the new primary (which may wait a moment for a
                    // replica before anything is applied).
                    // At least this round's failover (Sentinel may fail over once more on a
                    // loaded machine: a node counts that too).
                    if log["failovers"].as_u64() >= Some(round)
                        && log["primary"] == format!("127.0.0.1:{new}")
                        && (log["redis"] == "ok" || log["redis"] == "short of replicas")
                    {
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(15),
                        "round {round}: not following 127.0.0.1:{new} within 15 s: {health}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // The old primary comes back with its data, as a replica (the next failover comes
            // two seconds later).
            deployment.instance(killed).restart_as_replica_of(new);
        }
        failing_over.store(false, Ordering::Relaxed);
    };
    let ingesting = AtomicBool::new(true);
    let ingest = async {
        tokio::join!(
            ingest(&nodes[0], &failing_over, &next),
            ingest(&nodes[1], &failing_over, &next),
        );
        ingesting.store(false, Ordering::Relaxed);
    };
    // The subscriber reads all along, as a page would.
    let watch = async {
        let mut seen = Vec::new();
        while ingesting.load(Ordering::Relaxed) {
            seen.extend(watching.arcs(usize::MAX, Duration::from_millis(200)).await);
        }
        seen
    };
    let ((), (), mut seen) = tokio::join!(ingest, failovers, watch);

    let batches = next.load(Ordering::Relaxed) as u64;
    let arcs = batches * 10;
    let states = converged(&[&nodes[0], &nodes[1]], arcs).await;
    let summary = &states[0].0["summary"];
    assert_eq!(summary["seq"], arcs, "every acknowledged batch: {summary}");
    assert_eq!(summary["clicks"], batches * 8, "{summary}");
    assert_eq!(states[0], states[1], "node b = node a");
    for node in &nodes {
        let (status, health) = node.get_json("/healthz").await;
        assert_eq!(status, 200, "{health}");
        let failovers = health["log"]["failovers"].as_u64().unwrap_or_default();
        assert!(failovers >= 5, "{health}");
        let metrics = node.metrics().await;
        assert_eq!(
            metrics.value("viralglobe_log_failovers_total"),
            failovers as f64
        );
    }

    let rest = (arcs as usize).saturating_sub(seen.len());
    seen.extend(watching.arcs(rest, Duration::from_secs(30)).await);
    assert_eq!(
        seen.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=arcs).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let exported: Vec<ArcEvent> = states[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).expect("an arc"))
        .collect();
    assert_eq!(seen, exported, "the live feed = the export");
}

/// Without `--redis-wait`, a failover to replicas that missed the tail of the log takes back
/// entries both nodes applied: they notice (the entry they applied last is gone), stop applying
/// the log and say so on `/healthz`, keeping what they serve as it was. A third node started
/// afterwards takes ingest on the new primary, numbering arcs with `seq`s the stopped nodes gave
/// others. `reseed` from a stopped node's data directory rebuilds the log from its mirror,
/// keeping the third node's entries, under a new epoch: the third node stops at the new log, and
/// all three, restarted, agree on every acknowledged event under the new epoch.
#[tokio::test]
async fn a_failover_that_loses_the_tail_stops_the_nodes_and_reseed_brings_them_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut deployment = Deployment::start(dir.path());
    let url = deployment.url();
    let args = ["--redis", url.as_str()];
    let dirs = ["a", "b", "c"].map(|n| dir.path().join(n));
    let (a, b) = (
        TestServer::start_in(&dirs[0], &args),
        TestServer::start_in(&dirs[1], &args),
    );
    for i in 0..3 {
        post_until_replicated([&a, &b][i % 2], batch(i)).await;
    }
    let (_, hello) = a.subscribe(&format!("?campaign={CAMPAIGN}")).await;
    let (old_epoch, _) = crate::cluster::epoch_and_seq(&hello).expect("the campaign");
    // The replicas go away; what is acknowledged next is on the primary alone, and applied by
    // both nodes.
    let primary = deployment.primary();
    for replica in deployment.redis.iter_mut().filter(|r| r.port != primary) {
        replica.kill();
    }
    for i in 3..6 {
        let (status, report) = [&a, &b][i % 2].post_ndjson(&batch(i)).await;
        assert_eq!(status, 200, "{report}");
    }
    let seq: Value = 60.into();
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [&a, &b] {
        while node.stats(CAMPAIGN).await["summary"]["seq"] != seq {
            assert!(Instant::now() < deadline, "not applied");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Where each node stands is noted within a second of applying.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // The primary dies and the replicas come back with what they had: Sentinel promotes one.
    deployment.instance(primary).kill();
    for replica in deployment.redis.iter_mut().filter(|r| r.port != primary) {
        replica.restart();
    }
    for node in [&a, &b] {
        stopped_for(node, "rolled back", &seq).await;
        let (status, answer) = node.post_ndjson(&batch(9)).await;
        assert_eq!(status, 503, "{answer}");
    }

    // A node that never applied the lost tail follows the new primary and takes ingest: batch 6
    // draws arcs 31 to 40 there (a and b drew batch 3 with those); 7 and 8 wait for share s3,
    // which was in the lost tail.
    let c = TestServer::start_in(&dirs[2], &args);
    for i in 6..9 {
        post_until_replicated(&c, batch(i)).await;
    }
    assert_eq!(c.stats(CAMPAIGN).await["summary"]["seq"], 40);

    a.kill();
    b.kill();
    let done = reseed(&url, &dirs[0]);
    assert_eq!(done["from_epoch"], old_epoch.as_str(), "{done}");
    assert_eq!(done["kept_entries"], 3, "c's three batches: {done}");
    let new_epoch = done["epoch"].as_str().expect("the new epoch").to_owned();
    assert_ne!(new_epoch, old_epoch);

    stopped_for(&c, "another one", &40.into()).await;
    c.kill();
    let nodes = dirs.clone().map(|d| TestServer::start_in(&d, &args));
    let states = converged(&[&nodes[0], &nodes[1], &nodes[2]], 90).await;
    assert_eq!(
        states[0].0["summary"]["seq"], 90,
        "every acknowledged batch"
    );
    assert_eq!(states[0], states[1], "b = a");
    assert_eq!(states[0], states[2], "c = a");
    for node in &nodes {
        let (_, hello) = node.subscribe(&format!("?campaign={CAMPAIGN}")).await;
        let (epoch, seq) = crate::cluster::epoch_and_seq(&hello).expect("the campaign");
        assert_eq!((epoch.as_str(), seq), (new_epoch.as_str(), 90));
        let (status, health) = node.get_json("/healthz").await;
        assert_eq!(status, 200, "{health}");
    }
    // The new log goes on taking ingest.
    post_until_replicated(&nodes[2], batch(9)).await;
    converged(&[&nodes[0], &nodes[1], &nodes[2]], 100).await;
}
