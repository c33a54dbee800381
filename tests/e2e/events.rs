//! The live feed as server-sent events (`GET /v1/live/events`), read by a real HTTP client the
//! way a browser's `EventSource` reads it: the same arcs as a websocket, each arcs event named
//! `epoch:seq`, resumed after `Last-Event-ID` with no gap and no duplicate.

use std::time::Duration;

use viralglobe_protocol::{ArcEvent, ServerMessage};

use crate::support::{TestServer, events::*, ips::*};

const T0: i64 = 1_350_406_800_000;

/// An event stream being read: whole events, comments (heartbeats) skipped.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(server: &TestServer, query: &str, last_event_id: Option<&str>) -> Self {
        Self::open_on(&reqwest::Client::new(), server, query, last_event_id).await
    }

    /// Opened by `client`, on a connection it already has if it has one.
    async fn open_on(
        client: &reqwest::Client,
        server: &TestServer,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut request = client.get(server.url(&format!("/v1/live/events{query}")));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("GET /v1/live/events");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("type"),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's id and message; `None` on timeout or the end of the stream.
    async fn next(&mut self, within: Duration) -> Option<(Option<String>, ServerMessage)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in event.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(value.to_owned());
                    }
                }
                if let Some(data) = data {
                    let message = serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("not a protocol message ({e}): {data}"));
                    return Some((id, message));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Arcs until the one numbered `seq` has come, with the id of the last arcs event.
    async fn arcs_until(&mut self, seq: u64) -> (Vec<ArcEvent>, Option<String>) {
        let (mut arcs, mut last_id): (Vec<ArcEvent>, _) = (Vec::new(), None);
        while arcs.last().is_none_or(|a| a.seq < seq) {
            match self.next(Duration::from_secs(5)).await {
                Some((id, ServerMessage::Arcs { arcs: more })) => {
                    arcs.extend(more);
                    last_id = id;
                }
                Some((id, ServerMessage::Arc(arc))) => {
                    arcs.push(arc);
                    last_id = id;
                }
                Some(_) => {}
                None => break,
            }
        }
        (arcs, last_id)
    }
}

/// A websocket subscriber's arcs until the one numbered `seq`.
async fn socket_arcs_until(socket: &mut crate::support::Subscriber, seq: u64) -> Vec<ArcEvent> {
    let mut arcs: Vec<ArcEvent> = Vec::new();
    while arcs.last().is_none_or(|a| a.seq < seq) {
        match socket.next_message(Duration::from_secs(5)).await {
            Some(ServerMessage::Arcs { arcs: more }) => arcs.extend(more),
            Some(ServerMessage::Arc(arc)) => arcs.push(arc),
            Some(_) => {}
            None => break,
        }
    }
    arcs
}

/// The `seq`s of `arcs` from `first` on (a subscriber that joined while earlier arcs were being
/// published may get them too, after a `hello` that says so).
fn seqs_from(arcs: &[ArcEvent], first: u64) -> Vec<u64> {
    arcs.iter().map(|a| a.seq).filter(|&s| s >= first).collect()
}

fn epoch_of(hello: &ServerMessage) -> String {
    let ServerMessage::Hello { campaigns, .. } = hello else {
        panic!("not a hello: {hello:?}")
    };
    campaigns[0].epoch.clone().expect("an epoch")
}

async fn post_cascade(server: &TestServer, n: i64) {
    let (status, answer) = server
        .post_ndjson(&[
            share(&format!("s{n}"), None, "facebook", LOS_ANGELES, T0 + n),
            click(&format!("c{n}"), &format!("s{n}"), TOKYO, T0 + n + 1),
        ])
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// The same arcs as a websocket subscriber with the same filter, each arcs event named by the
/// epoch of its campaign's line and the `seq` of its last arc — asked for on a new connection
/// (served on it, which then closes when the stream ends: no chunks) and on one that served a
/// request before (as a browser reuses its connections: served by the HTTP dispatcher, chunked).
#[tokio::test]
async fn an_event_stream_gets_the_arcs_a_websocket_gets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    post_cascade(&server, 0).await;
    let query = "?campaign=bones-brigade&kind=share,click";
    let (mut socket, hello) = server.subscribe(query).await;
    let mut fresh = EventStream::open(&server, query, None).await;
    let headers = fresh.response.headers();
    assert_eq!(headers["connection"], "close", "{headers:?}");
    assert!(!headers.contains_key("transfer-encoding"), "{headers:?}");
    let reusing = reqwest::Client::new();
    let health = reusing.get(server.url("/healthz")).send().await;
    health
        .expect("GET /healthz")
        .text()
        .await
        .expect("its body");
    let mut reused = EventStream::open_on(&reusing, &server, query, None).await;
    let headers = reused.response.headers();
    assert_eq!(headers["transfer-encoding"], "chunked", "{headers:?}");
    for events in [&mut fresh, &mut reused] {
        let (_, first) = events.next(Duration::from_secs(5)).await.expect("hello");
        assert_eq!(epoch_of(&first), epoch_of(&hello));
    }
    post_cascade(&server, 10).await;
    post_cascade(&server, 20).await;
    let by_socket = socket_arcs_until(&mut socket, 6).await;
    assert_eq!(seqs_from(&by_socket, 3), [3, 4, 5, 6], "{by_socket:?}");
    let kinds = |arcs: &[ArcEvent]| arcs.iter().map(|a| (a.seq, a.kind)).collect::<Vec<_>>();
    for events in [&mut fresh, &mut reused] {
        let (by_events, last_id) = events.arcs_until(6).await;
        assert_eq!(seqs_from(&by_events, 3), [3, 4, 5, 6], "{by_events:?}");
        assert_eq!(
            kinds(&by_events[by_events.len() - 4..]),
            kinds(&by_socket[by_socket.len() - 4..])
        );
        assert_eq!(last_id, Some(format!("{}:6", epoch_of(&hello))));
    }
}

/// A reader that comes back with `Last-Event-ID` after the server was killed and restarted gets
/// every arc after that event, from the recording and then live: no gap, no duplicate.
#[tokio::test]
async fn an_event_stream_resumes_after_its_last_event_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    post_cascade(&server, 0).await;
    let mut events = EventStream::open(&server, "?campaign=bones-brigade", None).await;
    let (_, hello) = events.next(Duration::from_secs(5)).await.expect("hello");
    post_cascade(&server, 10).await;
    let (arcs, last_id) = events.arcs_until(4).await;
    assert_eq!(seqs_from(&arcs, 3), [3, 4]);
    // It got up to seq 2 only, say: it resumes after event `epoch:2`.
    let resume_at = format!("{}:2", epoch_of(&hello));
    assert_eq!(last_id, Some(format!("{}:4", epoch_of(&hello))));
    drop(events);
    server.kill();

    let server = TestServer::start_in(dir.path(), &[]);
    post_cascade(&server, 20).await;
    let mut events = EventStream::open(&server, "?campaign=bones-brigade", Some(&resume_at)).await;
    let (_, again) = events.next(Duration::from_secs(5)).await.expect("hello");
    assert_eq!(
        epoch_of(&again),
        epoch_of(&hello),
        "the same line after a restart"
    );
    let (mut arcs, _) = events.arcs_until(6).await;
    post_cascade(&server, 30).await;
    arcs.extend(events.arcs_until(8).await.0);
    assert_eq!(seqs_from(&arcs, 0), [3, 4, 5, 6, 7, 8], "{arcs:?}");
}

/// `Last-Event-ID` from another line (a data directory made afresh, say) gets a reset to the
/// current epoch and the whole line; one that is not `epoch:seq` is a 400 naming the header.
#[tokio::test]
async fn a_stale_last_event_id_gets_a_reset_and_the_whole_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    post_cascade(&server, 0).await;
    let mut events =
        EventStream::open(&server, "?campaign=bones-brigade", Some("gone-epoch:9")).await;
    let (_, hello) = events.next(Duration::from_secs(5)).await.expect("hello");
    let (_, reset) = events.next(Duration::from_secs(5)).await.expect("reset");
    assert!(
        matches!(&reset, ServerMessage::Reset { epoch, .. } if *epoch == epoch_of(&hello)),
        "{reset:?}"
    );
    let (arcs, last_id) = events.arcs_until(2).await;
    assert_eq!(seqs_from(&arcs, 0), [1, 2]);
    assert_eq!(last_id, Some(format!("{}:2", epoch_of(&hello))));

    let response = reqwest::Client::new()
        .get(server.url("/v1/live/events?campaign=bones-brigade"))
        .header("last-event-id", "no-seq-here")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 400);
    let body = response.text().await.expect("body");
    assert!(body.contains("Last-Event-ID"), "{body}");
}

/// The server tells an event stream's connection from any other by its first bytes, however they
/// come: a request line sent a few bytes at a time still gets its stream on its own connection
/// (not chunked), and requests that only begin like one (`/v1/live/eventsX`, a `HEAD`) or come
/// slowly are served as usual.
#[tokio::test]
async fn a_request_line_in_pieces_is_served_whatever_it_asks_for() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let ask = |request: String| {
        let address = address.clone();
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            for piece in request.as_bytes().chunks(7) {
                tcp.write_all(piece).await.expect("write");
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            // Until the answer's head and something of its body came, or the server closed.
            while !String::from_utf8_lossy(&answer).contains("\r\n\r\n{")
                && !String::from_utf8_lossy(&answer).contains("data: ")
            {
                let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk));
                match read.await.expect("an answer within 5 s").expect("read") {
                    0 => break,
                    n => answer.extend_from_slice(&chunk[..n]),
                }
            }
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let host = format!("Host: {address}\r\n\r\n");
    let stream = ask(format!("GET /v1/live/events?campaign=c HTTP/1.1\r\n{host}")).await;
    assert!(stream.starts_with("HTTP/1.1 200"), "{stream}");
    assert!(stream.contains("text/event-stream"), "{stream}");
    assert!(stream.contains(r#"data: {"type":"hello""#), "{stream}");
    let lower = stream.to_ascii_lowercase();
    assert!(lower.contains("connection: close") && !lower.contains("transfer-encoding"));
    let other = ask(format!("GET /v1/live/eventsX HTTP/1.1\r\n{host}")).await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let head = ask(format!(
        "HEAD /v1/live/events HTTP/1.1\r\nConnection: close\r\n{host}"
    ))
    .await;
    assert!(
        head.starts_with("HTTP/1.1 ") && !head.contains("data: "),
        "{head}"
    );
    let health = ask(format!("GET /healthz HTTP/1.1\r\n{host}")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// A websocket handshake sent to the event stream's route is refused with a 400 that says where
/// websockets go — on a new connection and on one that served a request first — and the
/// connection closes (it never holds a stream nobody reads).
#[tokio::test]
async fn a_websocket_handshake_for_the_event_stream_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let handshake = format!(
        "GET /v1/live/events HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let health = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    for first in ["", health.as_str()] {
        let mut tcp = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        tcp.write_all(format!("{first}{handshake}").as_bytes())
            .await
            .expect("write");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer));
        read.await.expect("closed within 10 s").expect("read");
        let answer = String::from_utf8_lossy(&answer);
        let refusal = answer.rsplit("HTTP/1.1 ").next().expect("an answer");
        assert!(refusal.starts_with("400"), "{answer}");
        assert!(refusal.contains("/v1/live"), "{answer}");
    }
}

/// A connection that stops part-way through asking for an event stream is not held: one that
/// sent part of its request line is closed within the 5 s the server waits to tell what it asks
/// for, one that sent the line but not the rest of its head within 5 s more.
#[tokio::test]
async fn a_request_for_an_event_stream_left_unfinished_is_let_go() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let unfinished = [
        "GET /v1/live/ev",
        "GET /v1/live/events HTTP/1.1\r\nHost: x\r\n",
    ];
    let closed = unfinished.map(|sent| {
        let address = address.clone();
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            tcp.write_all(sent.as_bytes()).await.expect("write");
            let mut rest = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut rest));
            // Closed, or reset (what the client sent was never read).
            match read.await.expect("closed within 15 s") {
                Ok(_) => {}
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            }
            (started.elapsed(), rest.len())
        }
    });
    let [(line_cut, line_answer), (head_cut, head_answer)] = futures_util::future::join_all(closed)
        .await
        .try_into()
        .expect("two");
    assert!(line_cut < Duration::from_secs(7), "{line_cut:?}");
    assert!(head_cut < Duration::from_secs(12), "{head_cut:?}");
    assert_eq!(
        (line_answer, head_answer),
        (0, 0),
        "closed without an answer"
    );
}
