//! Websocket plumbing shared by the live feed and replays: sending with a deadline, answering
//! pings, and closing on clients that went silent.

use std::time::{Duration, Instant};

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
        Some(Ok(Message::Ping(bytes))) => Inbound::Handled(session.pong(&bytes).await.is_ok()),
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Inbound::Handled(false),
        Some(Ok(_)) => Inbound::Handled(true),
    }
}

/// On each heartbeat: pings, or gives up on a client silent for longer than [`CLIENT_TIMEOUT`].
pub async fn keep_alive(session: &mut Session, last_heard: Instant) -> bool {
    last_heard.elapsed() < CLIENT_TIMEOUT && session.ping(b"").await.is_ok()
}
