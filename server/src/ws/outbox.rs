//! The sending half of a websocket: every frame waits for room no longer than the client may take
//! ([`CLIENT_TIMEOUT`]), so a client that stopped reading ends its session instead of holding it.

use std::time::{Duration, Instant};

use actix_ws::Session;
use bytestring::ByteString;
use viralglobe_protocol::{ArcEvent, Encoding, ServerMessage, compact};

use super::{CLIENT_TIMEOUT, Ended};

/// How long a close frame may wait for room: a client that stopped reading never makes any.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Outbox {
    session: Session,
}

impl Outbox {
    pub(super) fn new(session: Session) -> Self {
        Self { session }
    }

    /// One text frame, already encoded.
    pub(crate) async fn text(&mut self, frame: impl Into<ByteString>) -> Result<(), Ended> {
        within(CLIENT_TIMEOUT, self.session.text(frame)).await
    }

    /// One binary frame, already encoded.
    pub(crate) async fn binary(&mut self, bytes: bytes::Bytes) -> Result<(), Ended> {
        within(CLIENT_TIMEOUT, self.session.binary(bytes)).await
    }

    pub(crate) async fn message(&mut self, message: &ServerMessage) -> Result<(), Ended> {
        self.text(serde_json::to_string(message).expect("server messages serialize"))
            .await
    }

    /// Arcs in one message of the client's encoding.
    pub(crate) async fn arcs(
        &mut self,
        arcs: Vec<ArcEvent>,
        encoding: Encoding,
    ) -> Result<(), Ended> {
        match encoding {
            Encoding::Json => self.message(&ServerMessage::Arcs { arcs }).await,
            Encoding::Compact => {
                let bytes = compact::encode(&arcs.iter().collect::<Vec<_>>());
                self.binary(bytes.into()).await
            }
        }
    }

    pub(super) async fn pong(&mut self, bytes: &[u8]) -> Result<(), Ended> {
        within(CLIENT_TIMEOUT, self.session.pong(bytes)).await
    }

    /// On each heartbeat: pings, or gives up on a client silent for longer than
    /// [`CLIENT_TIMEOUT`]. The ping waits no longer than the client has left: one that stopped
    /// reading leaves no room for it.
    pub(super) async fn keep_alive(&mut self, last_heard: Instant) -> Result<(), Ended> {
        let left = CLIENT_TIMEOUT
            .checked_sub(last_heard.elapsed())
            .ok_or(Ended::ClientSilent)?;
        within(left, self.session.ping(b""))
            .await
            .map_err(|_| Ended::ClientSilent)
    }

    /// A close frame if the client takes it soon; the session is dropped either way, so the
    /// subscriber's queue and the task go whatever the client does.
    pub(super) async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.session.close(None)).await;
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
