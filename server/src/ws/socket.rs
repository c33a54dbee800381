//! A websocket on the connection itself, once the upgrade handed it over (see [`super::upgrade`]):
//! each frame goes out in one vectored write of its header and the shared payload — no copy, no
//! channel, no task between the session and the kernel — and nothing is buffered while the
//! connection is idle (an inbound buffer exists only while a message is part-read).

use std::{
    io::{self, IoSlice},
    rc::Rc,
};

use actix_web::rt::net::TcpStream;
use actix_http::ws::{Codec, Frame, Item, OpCode};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use actix_codec::Decoder;

/// The largest message a client may send (replay controls are a few dozen bytes).
const MAX_INBOUND: usize = 64 * 1024;

/// Bytes read from the socket at a time, on the stack.
const READ_CHUNK: usize = 4096;

/// A client's message, as a session sees it.
pub(super) enum Inbound {
    Text(ByteString),
    Ping(Bytes),
    /// Anything else a session ignores: binary messages, pongs.
    Other,
    Close,
}

/// The receiving half: whole messages, fragments joined.
pub(super) struct Receiver {
    stream: Rc<TcpStream>,
    codec: Codec,
    /// Bytes read and not yet a whole frame; empty (unallocated) while the client says nothing.
    read: BytesMut,
    /// A fragmented text message so far.
    fragments: Option<BytesMut>,
}

/// The sending half.
pub(crate) struct Sender {
    stream: Rc<TcpStream>,
    /// A frame was cut off part-way (its send timed out): the stream is no longer framed, and
    /// nothing more, not even a close frame, may go out on it.
    torn: bool,
}

/// Splits a connection whose upgrade was answered into a websocket's two halves; `read` is what
/// the client sent after its request (frames it did not wait to send).
pub(super) fn split(stream: TcpStream, read: BytesMut) -> (Receiver, Sender) {
    // Every write is a whole frame: out at once, not held for the next.
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let receiver = Receiver {
        stream: stream.clone(),
        codec: Codec::new().max_size(MAX_INBOUND),
        read,
        fragments: None,
    };
    (receiver, Sender { stream, torn: false })
}

impl Receiver {
    /// The next message; an error for a broken connection or protocol. Cancel-safe: what was
    /// read stays in the buffer.
    pub(super) async fn recv(&mut self) -> io::Result<Inbound> {
        loop {
            while let Some(frame) = self.codec.decode(&mut self.read).map_err(io::Error::other)? {
                if let Some(message) = self.joined(frame)? {
                    return Ok(message);
                }
            }
            if self.read.is_empty() {
                // Give the allocation back: an idle subscriber holds no buffer.
                self.read = BytesMut::new();
            }
            self.stream.readable().await?;
            let mut chunk = [0u8; READ_CHUNK];
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Ok(Inbound::Close),
                Ok(n) => self.read.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A frame as a message, once a fragmented one is whole.
    fn joined(&mut self, frame: Frame) -> io::Result<Option<Inbound>> {
        Ok(Some(match frame {
            Frame::Text(text) => text_message(text)?,
            Frame::Ping(bytes) => Inbound::Ping(bytes),
            Frame::Close(_) => Inbound::Close,
            Frame::Binary(_) | Frame::Pong(_) => Inbound::Other,
            Frame::Continuation(item) => {
                let (first, text, last) = match item {
                    Item::FirstText(b) => (true, true, b),
                    Item::FirstBinary(b) => (true, false, b),
                    Item::Continue(b) => (false, true, b),
                    Item::Last(b) => {
                        let Some(mut whole) = self.fragments.take() else {
                            return Ok(Some(Inbound::Other));
                        };
                        self.append(&mut whole, &b)?;
                        return text_message(whole.freeze()).map(Some);
                    }
                };
                match (first, text) {
                    (true, true) => self.fragments = Some(BytesMut::from(&last[..])),
                    (true, false) => self.fragments = None,
                    (false, _) => {
                        if let Some(mut whole) = self.fragments.take() {
                            self.append(&mut whole, &last)?;
                            self.fragments = Some(whole);
                        }
                    }
                }
                return Ok(None);
            }
        }))
    }

    fn append(&self, whole: &mut BytesMut, more: &[u8]) -> io::Result<()> {
        if whole.len() + more.len() > MAX_INBOUND {
            return Err(io::Error::other("message too large"));
        }
        whole.extend_from_slice(more);
        Ok(())
    }
}

fn text_message(bytes: Bytes) -> io::Result<Inbound> {
    ByteString::try_from(bytes)
        .map(Inbound::Text)
        .map_err(|_| io::Error::other("text message is not UTF-8"))
}

impl Sender {
    pub(super) async fn text(&mut self, text: &ByteString) -> io::Result<()> {
        self.send(OpCode::Text, text.as_bytes()).await
    }

    pub(super) async fn binary(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send(OpCode::Binary, bytes).await
    }

    pub(super) async fn ping(&mut self) -> io::Result<()> {
        self.send(OpCode::Ping, b"").await
    }

    pub(super) async fn pong(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send(OpCode::Pong, bytes).await
    }

    /// A close frame (normal closure), unless a frame was cut off before it.
    pub(super) async fn close(&mut self) -> io::Result<()> {
        if self.torn {
            return Ok(());
        }
        self.send(OpCode::Close, &1000u16.to_be_bytes()).await
    }

    /// One frame: its header and payload in as few writes as the socket's room allows.
    async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        if self.torn {
            return Err(io::Error::other("an earlier frame was cut off"));
        }
        let (header, header_len) = header(opcode, payload.len());
        let mut parts = [IoSlice::new(&header[..header_len]), IoSlice::new(payload)];
        let mut left = &mut parts[..];
        self.torn = true;
        while !left.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write_vectored(left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.torn = false;
        Ok(())
    }
}

/// A server frame's header (final, unmasked): its length and its first bytes.
fn header(opcode: OpCode, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | u8::from(opcode);
    let used = if len < 126 {
        header[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (header, used)
}

#[cfg(test)]
mod tests {
    use actix_http::ws::Parser;

    use super::*;

    /// The header written by hand against actix-http's own frame writer, at each length form.
    #[test]
    fn headers_match_the_protocol() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
            let payload = vec![7u8; len];
            let mut expected = BytesMut::new();
            Parser::write_message(&mut expected, &payload, OpCode::Binary, true, false);
            let (header, used) = header(OpCode::Binary, len);
            let mut ours = header[..used].to_vec();
            ours.extend_from_slice(&payload);
            assert_eq!(ours, expected.to_vec(), "payload of {len} bytes");
        }
    }
}
