//! Websocket plumbing shared by the live feed and replays: sending with a deadline, answering
//! pings, and closing on clients that went silent.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use actix_web::HttpRequest;
use actix_ws::{Message, ProtocolError, Session};
use bytestring::ByteString;

/// How often the server pings, and how long a client may stay silent (pongs count) or take to
/// accept one frame before it is closed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a close frame may wait for room: a client that stopped reading never makes any.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Ends a session: a close frame if the client takes it soon, and the session is dropped either
/// way, so the subscriber's queue and the task go whatever the client does.
pub async fn close(session: Session) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.close(None)).await;
}

/// Sends one text frame; false when the client is gone or did not take it in time.
pub async fn send(session: &mut Session, frame: impl Into<ByteString>) -> bool {
    matches!(
        tokio::time::timeout(CLIENT_TIMEOUT, session.text(frame)).await,
        Ok(Ok(()))
    )
}

/// [`send`] for a binary message.
pub async fn send_binary(session: &mut Session, bytes: bytes::Bytes) -> bool {
    matches!(
        tokio::time::timeout(CLIENT_TIMEOUT, session.binary(bytes)).await,
        Ok(Ok(()))
    )
}

/// What a message from the client means for the connection.
pub enum Inbound {
    /// A text message, for the caller to act on.
    Text(ByteString),
    /// Anything else, handled here: whether the connection stays open.
    Handled(bool),
}

pub async fn receive(
    session: &mut Session,
    msg: Option<Result<Message, ProtocolError>>,
) -> Inbound {
    match msg {
        Some(Ok(Message::Text(text))) => Inbound::Text(text),
        Some(Ok(Message::Ping(bytes))) => Inbound::Handled(matches!(
            tokio::time::timeout(CLIENT_TIMEOUT, session.pong(&bytes)).await,
            Ok(Ok(()))
        )),
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Inbound::Handled(false),
        Some(Ok(_)) => Inbound::Handled(true),
    }
}

/// On each heartbeat: pings, or gives up on a client silent for longer than [`CLIENT_TIMEOUT`].
/// The ping itself waits no longer than that: a client that stopped reading leaves no room for
/// it, and without a deadline the session would wait for room for ever.
pub async fn keep_alive(session: &mut Session, last_heard: Instant) -> bool {
    let Some(left) = CLIENT_TIMEOUT.checked_sub(last_heard.elapsed()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(left, session.ping(b"")).await,
        Ok(Ok(()))
    )
}

/// Why a websocket session ended, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed the connection (or it broke).
    ClientClosed,
    /// Nothing heard from the client, not even a pong, for [`CLIENT_TIMEOUT`].
    ClientSilent,
    /// A frame could not be sent: the client is gone, or did not take it in time.
    SendFailed,
    /// The server is shutting down.
    ServerStopping,
    /// The recording could not be read.
    ReadFailed,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client closed",
            Self::ClientSilent => "client silent",
            Self::SendFailed => "send failed or timed out",
            Self::ServerStopping => "server stopping",
            Self::ReadFailed => "recording unreadable",
        }
    }
}

/// The span of one websocket session (`live` or `replay`): a number of its own, the peer and the
/// campaign, so that its connect and close lines (at debug) and any error can be told apart.
pub fn session_span(
    kind: &'static str,
    req: &HttpRequest,
    campaign: Option<&str>,
) -> tracing::Span {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info_span!(
        "session",
        kind,
        id,
        peer,
        campaign = campaign.unwrap_or("*")
    )
}

/// The close line of a session: why, and after how long.
pub fn log_end(ended: Ended, started: Instant) {
    tracing::debug!(
        reason = ended.as_str(),
        duration_s = started.elapsed().as_secs_f64(),
        "websocket closed"
    );
}
