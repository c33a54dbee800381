//! The sending half of a session, on a websocket or a server-sent event stream: every frame
//! waits for room no longer than the client may take ([`CLIENT_TIMEOUT`]), so a client that
//! stopped reading ends its session instead of holding it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;
use viralglobe_protocol::{ArcEvent, Encoding, ServerMessage, compact};

use super::{CLIENT_TIMEOUT, Ended, socket::Sender};

/// How long a close frame may wait for room: a client that stopped reading never makes any.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The most a held websocket keeps queued before writing it anyway.
const HELD_BYTES: usize = 64 * 1024;

pub(crate) struct Outbox {
    transport: Transport,
    /// The epoch the arcs sent count in: an event stream names each arcs event `epoch:seq`, the
    /// position a browser's `EventSource` resumes from (`Last-Event-ID`).
    epoch: Option<String>,
    /// A websocket's frames are being held for one write (see [`Outbox::hold`]).
    holding: bool,
}

enum Transport {
    /// A websocket.
    Socket(Sender),
    /// An event stream on its own connection.
    EventSocket(Sender),
    /// An event stream served by the HTTP dispatcher: its body, a bounded queue of whole events.
    Events(mpsc::Sender<Bytes>),
}

impl Outbox {
    pub(super) fn socket(sender: Sender) -> Self {
        Self {
            transport: Transport::Socket(sender),
            epoch: None,
            holding: false,
        }
    }

    pub(super) fn event_socket(sender: Sender) -> Self {
        Self {
            transport: Transport::EventSocket(sender),
            epoch: None,
            holding: false,
        }
    }

    pub(super) fn events(body: mpsc::Sender<Bytes>) -> Self {
        Self {
            transport: Transport::Events(body),
            epoch: None,
            holding: false,
        }
    }

    /// The epoch that the arcs sent from now on count in.
    pub(crate) fn set_epoch(&mut self, epoch: &str) {
        self.epoch = Some(epoch.to_owned());
    }

    /// Holds what is sent on a connection from now until [`Outbox::flush`], to write it at once:
    /// a subscriber a few frames behind catches up in one `writev`, not one each (the kernel's
    /// send path is most of the cost of a frame).
    pub(crate) fn hold(&mut self) {
        self.holding = true;
    }

    /// Writes what was held.
    pub(crate) async fn flush(&mut self) -> Result<(), Ended> {
        self.holding = false;
        self.sent().await
    }

    /// After a frame or event was queued on a connection: written now, unless held (and not
    /// too much is).
    async fn sent(&mut self) -> Result<(), Ended> {
        match &mut self.transport {
            Transport::Socket(socket) | Transport::EventSocket(socket)
                if !self.holding || socket.queued_bytes() >= HELD_BYTES =>
            {
                within(CLIENT_TIMEOUT, socket.flush()).await
            }
            _ => Ok(()),
        }
    }

    /// One message, already encoded as JSON.
    pub(crate) async fn text(&mut self, frame: impl Into<ByteString>) -> Result<(), Ended> {
        self.text_at(frame.into(), None).await
    }

    /// A frame of the hub's: JSON, or its compact binary form; `last` is the `seq` of its last
    /// arc, if it carries arcs.
    pub(crate) async fn frame(
        &mut self,
        text: &ByteString,
        binary: Option<&Bytes>,
        last: Option<u64>,
    ) -> Result<(), Ended> {
        match (&mut self.transport, binary) {
            (Transport::Socket(socket), Some(bytes)) => {
                socket.binary(bytes);
                self.sent().await
            }
            _ => self.text_at(text.clone(), last).await,
        }
    }

    pub(crate) async fn message(&mut self, message: &ServerMessage) -> Result<(), Ended> {
        if let ServerMessage::Reset { epoch, .. } = message {
            self.set_epoch(epoch);
        }
        let text = serde_json::to_string(message).expect("server messages serialize");
        self.text_at(text.into(), None).await
    }

    /// Arcs in one message of the client's encoding.
    pub(crate) async fn arcs(
        &mut self,
        arcs: Vec<ArcEvent>,
        encoding: Encoding,
    ) -> Result<(), Ended> {
        let last = arcs.last().map(|a| a.seq);
        match (&mut self.transport, encoding) {
            (Transport::Socket(socket), Encoding::Compact) => {
                let bytes = compact::encode(&arcs.iter().collect::<Vec<_>>());
                socket.binary(&Bytes::from(bytes));
                self.sent().await
            }
            _ => {
                let text = serde_json::to_string(&ServerMessage::Arcs { arcs })
                    .expect("server messages serialize");
                self.text_at(text.into(), last).await
            }
        }
    }

    async fn text_at(&mut self, text: ByteString, last: Option<u64>) -> Result<(), Ended> {
        match &mut self.transport {
            Transport::Socket(socket) => {
                socket.text(&text);
                self.sent().await
            }
            Transport::EventSocket(socket) => {
                let fields = event_fields(self.epoch.as_deref(), last);
                socket.event(fields, text.into_bytes());
                self.sent().await
            }
            Transport::Events(body) => {
                let fields = event_fields(self.epoch.as_deref(), last);
                let event = Bytes::from([&fields[..], text.as_bytes(), b"\n\n"].concat());
                within(CLIENT_TIMEOUT, body.send(event)).await
            }
        }
    }

    pub(super) async fn pong(&mut self, bytes: &Bytes) -> Result<(), Ended> {
        match &mut self.transport {
            Transport::Socket(socket) => {
                socket.pong(bytes);
                self.sent().await
            }
            Transport::EventSocket(_) | Transport::Events(_) => Ok(()),
        }
    }

    /// On each heartbeat: a websocket is pinged, or given up when its client was silent for
    /// longer than [`CLIENT_TIMEOUT`] (the ping waits no longer than the client has left: one
    /// that stopped reading leaves no room for it); an event stream gets a comment line, which
    /// keeps proxies from closing it and finds a client that went away.
    pub(super) async fn keep_alive(&mut self, last_heard: Instant) -> Result<(), Ended> {
        match &mut self.transport {
            Transport::Socket(socket) => {
                let left = CLIENT_TIMEOUT
                    .checked_sub(last_heard.elapsed())
                    .ok_or(Ended::ClientSilent)?;
                socket.ping();
                within(left, socket.flush())
                    .await
                    .map_err(|_| Ended::ClientSilent)
            }
            Transport::EventSocket(socket) => {
                socket.event(Bytes::from_static(b": "), Bytes::new());
                within(CLIENT_TIMEOUT, socket.flush()).await
            }
            Transport::Events(body) => {
                within(CLIENT_TIMEOUT, body.send(Bytes::from_static(b": \n\n"))).await
            }
        }
    }

    /// A close frame if the client takes it soon; the session is dropped either way, so the
    /// subscriber's queue and the task go whatever the client does. An event stream ends with
    /// its connection (or its body's sender).
    pub(super) async fn close(self) {
        if let Transport::Socket(mut socket) = self.transport {
            socket.close();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
        }
    }
}

/// An event's fields before its data: its id when it carries arcs (`epoch:seq` of the last), and
/// the one `data:` line (the server's JSON has no line breaks).
fn event_fields(epoch: Option<&str>, last: Option<u64>) -> Bytes {
    match (epoch, last) {
        (Some(epoch), Some(seq)) => Bytes::from(format!("id: {epoch}:{seq}\ndata: ")),
        _ => Bytes::from_static(b"data: "),
    }
}

async fn within<E>(
    deadline: Duration,
    sent: impl Future<Output = Result<(), E>>,
) -> Result<(), Ended> {
    match tokio::time::timeout(deadline, sent).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Ended::SendFailed),
    }
}
