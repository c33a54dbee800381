//! One websocket session to the server on the network thread: connect with a deadline, hand every
//! message to the app's bounded channel, send replay controls, notice a silent server. The caller
//! reconnects.

use std::{
    io::ErrorKind,
    net::{TcpStream, ToSocketAddrs},
    sync::mpsc::{Receiver, SyncSender, TryRecvError},
    time::{Duration, Instant},
};

use tungstenite::{Message, WebSocket};
use viralglobe_protocol::{ReplayControl, ServerMessage, compact};

use super::{NetEvent, position::Position};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a blocked read wakes up to send pending controls.
const POLL: Duration = Duration::from_millis(50);
/// The server pings every few seconds; this long without a byte means the link is dead.
const SILENCE: Duration = Duration::from_secs(30);

/// Why a session ended.
#[derive(Debug)]
pub enum Ended {
    /// The viewer is closing: stop.
    AppGone,
    /// The link failed or closed; try again.
    Lost(String),
}

/// Connects to `url` and relays until the link ends, keeping `position` up to date. `connected`
/// runs once the handshake is done.
pub fn session(
    authority: &str,
    url: &str,
    events: &SyncSender<NetEvent>,
    controls: Option<&Receiver<ReplayControl>>,
    position: &mut Position,
    connected: impl FnOnce(),
) -> Ended {
    let mut socket = match open(authority, url) {
        Ok(socket) => socket,
        Err(e) => return Ended::Lost(e),
    };
    connected();
    let mut last_heard = Instant::now();
    loop {
        if let Some(controls) = controls {
            loop {
                match controls.try_recv() {
                    Ok(control) => {
                        position.sent(&control);
                        let text = serde_json::to_string(&control).unwrap_or_default();
                        if let Err(e) = socket.send(Message::text(text)) {
                            return Ended::Lost(e.to_string());
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ended::AppGone,
                }
            }
        }
        match socket.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                last_heard = Instant::now();
                let decoded = match &message {
                    Message::Binary(bytes) => compact::decode(bytes)
                        .map(|arcs| ServerMessage::Arcs { arcs })
                        .map_err(|e| e.to_string()),
                    _ => serde_json::from_str::<ServerMessage>(message.to_text().unwrap_or(""))
                        .map_err(|e| e.to_string()),
                };
                match decoded {
                    // Blocks when the app is behind: the server then sees a slow reader and tells
                    // us how many arcs it dropped (`lagged`), instead of the viewer's memory growing.
                    Ok(message) => {
                        position.saw(&message);
                        if events.send(NetEvent::Server(message)).is_err() {
                            return Ended::AppGone;
                        }
                    }
                    // A message type from a newer server: ignored, as the protocol asks.
                    Err(e) => bevy::log::debug!("ignored a message: {e}"),
                }
            }
            Ok(Message::Close(frame)) => {
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Ended::Lost(format!("server closed the connection {reason}"));
            }
            Ok(_) => last_heard = Instant::now(),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                if last_heard.elapsed() > SILENCE {
                    return Ended::Lost(format!("server silent for {}s", SILENCE.as_secs()));
                }
            }
            Err(e) => return Ended::Lost(e.to_string()),
        }
    }
}

fn open(authority: &str, url: &str) -> Result<WebSocket<TcpStream>, String> {
    let addresses: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .collect();
    let mut last_error = format!("{authority} has no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(POLL))
                    .and_then(|()| stream.set_nodelay(true))
                    .map_err(|e| e.to_string())?;
                return tungstenite::client::client(url, stream)
                    .map(|(socket, _response)| socket)
                    .map_err(|e| format!("{url}: {e}"));
            }
            Err(e) => last_error = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(last_error)
}
