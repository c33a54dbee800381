//! A websocket or an event stream on the connection itself, once it was taken over (see
//! [`super::takeover`]): frames (events) are queued as their header (`id:` and `data:` lines) and
//! the payload shared with every subscriber sent the same, and written together in one `writev`
//! — no copy, no channel, no task between the session and the kernel. Nothing is buffered while
//! the connection is idle: the outbound queue and the inbound buffer exist only while there is
//! something in them.

use std::{
    io::{self, IoSlice},
    rc::Rc,
};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, OpCode};
use actix_web::rt::net::TcpStream;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

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
    /// `None` on an event stream, whose client has nothing to say: what it sends is dropped, and
    /// only its close is heard.
    codec: Option<Codec>,
    /// Bytes read and not yet a whole frame; empty (unallocated) while the client says nothing.
    read: BytesMut,
    /// A fragmented text message so far.
    fragments: Option<BytesMut>,
}

/// The sending half: frames are queued and written together, as many as one `writev` takes.
pub(crate) struct Sender {
    stream: Rc<TcpStream>,
    /// Frames not yet (wholly) written; unallocated while the connection is idle.
    queued: Vec<Queued>,
    /// Bytes of the first queued frame already written.
    written: usize,
    /// A frame was cut off part-way (its send timed out): the stream is no longer framed, and
    /// nothing more, not even a close frame, may go out on it.
    torn: bool,
}

/// One frame or event waiting to be written: its header, its payload (shared with every other
/// subscriber sent the same) and what ends it.
struct Queued {
    header: Header,
    payload: Bytes,
    /// An event's blank line; nothing after a frame.
    tail: &'static [u8],
}

enum Header {
    /// A websocket frame's header, and how much of it is used.
    Frame([u8; 10], u8),
    /// An event's fields before its data.
    Event(Bytes),
}

impl Queued {
    fn parts(&self) -> [&[u8]; 3] {
        let header = match &self.header {
            Header::Frame(bytes, used) => &bytes[..usize::from(*used)],
            Header::Event(bytes) => &bytes[..],
        };
        [header, &self.payload, self.tail]
    }

    fn len(&self) -> usize {
        self.parts().iter().map(|part| part.len()).sum()
    }
}

/// The most frames one `writev` carries (three slices each, within Linux's `IOV_MAX` of 1,024).
const FRAMES_A_WRITE: usize = 64;

/// Splits a connection whose upgrade was answered into a websocket's two halves; `read` is what
/// the client sent after its request (frames it did not wait to send).
pub(super) fn split(stream: TcpStream, read: BytesMut) -> (Receiver, Sender) {
    halves(stream, read, Some(Codec::new().max_size(MAX_INBOUND)))
}

/// Splits a connection whose request for an event stream was answered; what the client sent
/// after its request is dropped.
pub(super) fn split_events(stream: TcpStream) -> (Receiver, Sender) {
    halves(stream, BytesMut::new(), None)
}

fn halves(stream: TcpStream, read: BytesMut, codec: Option<Codec>) -> (Receiver, Sender) {
    // Every write is whole frames, as many as were ready: out at once, not held back by Nagle.
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let receiver = Receiver {
        stream: stream.clone(),
        codec,
        read,
        fragments: None,
    };
    let sender = Sender {
        stream,
        queued: Vec::new(),
        written: 0,
        torn: false,
    };
    (receiver, sender)
}

impl Receiver {
    /// The next message; an error for a broken connection or protocol. Cancel-safe: what was
    /// read stays in the buffer.
    pub(super) async fn recv(&mut self) -> io::Result<Inbound> {
        loop {
            while let Some(frame) = self.decoded()? {
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

    /// The next whole frame read; on an event stream, none, and what was read is dropped.
    fn decoded(&mut self) -> io::Result<Option<Frame>> {
        match &mut self.codec {
            Some(codec) => codec.decode(&mut self.read).map_err(io::Error::other),
            None => {
                self.read.clear();
                Ok(None)
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
    /// Queues a text message.
    pub(super) fn text(&mut self, text: &ByteString) {
        self.queue(OpCode::Text, text.as_bytes().clone());
    }

    /// Queues a binary message.
    pub(super) fn binary(&mut self, bytes: &Bytes) {
        self.queue(OpCode::Binary, bytes.clone());
    }

    pub(super) fn ping(&mut self) {
        self.queue(OpCode::Ping, Bytes::new());
    }

    pub(super) fn pong(&mut self, bytes: &Bytes) {
        self.queue(OpCode::Pong, bytes.clone());
    }

    /// Queues a close frame (normal closure), unless a frame was cut off before it.
    pub(super) fn close(&mut self) {
        if !self.torn {
            // Status 1000, normal closure.
            self.queue(OpCode::Close, Bytes::from_static(&[0x03, 0xe8]));
        }
    }

    /// Queues an event: its fields up to its data (`id: …\ndata: `, or a comment's `: `), the
    /// data, and the blank line that ends it.
    pub(super) fn event(&mut self, fields: Bytes, data: Bytes) {
        self.queued.push(Queued {
            header: Header::Event(fields),
            payload: data,
            tail: b"\n\n",
        });
    }

    fn queue(&mut self, opcode: OpCode, payload: Bytes) {
        let (header, used) = header(opcode, payload.len());
        self.queued.push(Queued {
            header: Header::Frame(header, used as u8),
            payload,
            tail: b"",
        });
    }

    /// Bytes queued and not yet written.
    pub(super) fn queued_bytes(&self) -> usize {
        self.queued.iter().map(Queued::len).sum::<usize>() - self.written
    }

    /// Writes everything queued, in as few writes as the socket's room allows. A flush that is
    /// given up part-way (its deadline passed) leaves the stream torn.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        if self.torn {
            return Err(io::Error::other("an earlier frame was cut off"));
        }
        while !self.queued.is_empty() {
            self.torn = true;
            self.stream.writable().await?;
            match self.write_some() {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.torn = false;
        // Give the allocation back: an idle subscriber holds no queue.
        self.queued = Vec::new();
        Ok(())
    }

    /// One `writev` of the queued frames, from where the last one stopped.
    fn write_some(&self) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); 3 * FRAMES_A_WRITE];
        let mut used = 0;
        let mut skip = self.written;
        for frame in self.queued.iter().take(FRAMES_A_WRITE) {
            for part in frame.parts() {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[used] = IoSlice::new(&part[skip..]);
                skip = 0;
                used += 1;
            }
        }
        self.stream.try_write_vectored(&slices[..used])
    }

    /// Drops what `n` more bytes written finished.
    fn advance(&mut self, n: usize) {
        self.written += n;
        let done = self
            .queued
            .iter()
            .scan(0, |total, frame| {
                *total += frame.len();
                Some(*total)
            })
            .take_while(|&total| total <= self.written)
            .count();
        let finished: usize = self.queued.drain(..done).map(|frame| frame.len()).sum();
        self.written -= finished;
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
    use std::io::Read;

    use actix_http::ws::Parser;

    use super::*;

    /// Frames queued together and written with `writev` arrive whole and in order, though the
    /// socket takes them in pieces (4 MB, far more than a loopback send buffer holds at once,
    /// read slowly by the peer); the queue is gone after the flush.
    #[actix_web::test]
    async fn queued_frames_arrive_whole_across_partial_writes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("non-blocking");
        let (_receiver, mut sender) = split(
            TcpStream::from_std(server).expect("tokio stream"),
            BytesMut::new(),
        );
        let frames: Vec<Bytes> = (0..40u8).map(|n| Bytes::from(vec![n; 100_000])).collect();
        for frame in &frames {
            sender.binary(frame);
        }
        sender.text(&ByteString::from_static("and a last word"));
        let reader = std::thread::spawn(move || {
            let (mut client, mut read, mut got) = (client, BytesMut::new(), Vec::new());
            let mut codec = Codec::new().client_mode().max_size(1 << 20);
            let mut chunk = [0u8; 7_000];
            while got.len() < 41 {
                std::thread::sleep(std::time::Duration::from_micros(200));
                let n = client.read(&mut chunk).expect("read");
                assert!(n > 0, "closed after {} frames", got.len());
                read.extend_from_slice(&chunk[..n]);
                while let Some(frame) = codec.decode(&mut read).expect("a valid frame") {
                    got.push(frame);
                }
            }
            got
        });
        sender.flush().await.expect("flush");
        assert!(sender.queued.is_empty() && sender.queued.capacity() == 0);
        let got = reader.join().expect("reader");
        for (n, frame) in frames.iter().enumerate() {
            assert_eq!(got[n], Frame::Binary(frame.clone()), "frame {n}");
        }
        assert_eq!(got[40], Frame::Text(Bytes::from_static(b"and a last word")));
    }

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
