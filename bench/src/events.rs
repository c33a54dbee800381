//! Live-feed subscribers over server-sent events (`GET /v1/live/events`): plain HTTP/1.1 over a
//! socket, the body (chunked, or up to the connection's close) taken apart and each event's
//! `data:` counted as a websocket subscriber counts a message.

use std::sync::{Arc, atomic::Ordering::Relaxed};

use anyhow::{Context, bail};
use memchr::memmem;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use crate::subscribers::{Crowd, Tally};

/// Opens `readers` event streams of `path` (with its query) on `address` and waits for every
/// `hello`.
pub async fn connect(address: &str, path: &str, readers: usize) -> anyhow::Result<Crowd> {
    let tally = Tally::new();
    let (stop, stopped) = watch::channel(false);
    let opening = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::with_capacity(readers);
    for _ in 0..readers {
        let (address, path, tally, mut stopped) = (
            address.to_owned(),
            path.to_owned(),
            tally.clone(),
            stopped.clone(),
        );
        let opening = opening.clone();
        tasks.push(tokio::spawn(async move {
            let permit = opening.acquire_owned().await?;
            let mut socket = TcpStream::connect(&address)
                .await
                .with_context(|| format!("connecting to {address}"))?;
            let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n");
            socket.write_all(request.as_bytes()).await?;
            drop(permit);
            tally.connected.fetch_add(1, Relaxed);
            let mut stream = EventStream::default();
            let mut buffer = vec![0; 64 * 1024];
            loop {
                tokio::select! {
                    read = socket.read(&mut buffer) => {
                        let n = read?;
                        if n == 0 {
                            bail!("the server closed an event stream");
                        }
                        stream.feed(&buffer[..n], |data| tally.observe(data))?;
                    }
                    _ = stopped.wait_for(|s| *s) => return Ok(()),
                }
            }
        }));
    }
    let mut crowd = Crowd::of(tally, stop, tasks);
    crowd.wait_for(readers, true).await?;
    Ok(crowd)
}

/// One event stream's bytes so far: the response head, then events (in chunks, if chunked).
#[derive(Default)]
struct EventStream {
    raw: Vec<u8>,
    head_read: bool,
    chunked: bool,
    /// The body, de-chunked, up to the last whole event.
    body: Vec<u8>,
}

impl EventStream {
    /// Takes more bytes; hands each whole event's `data:` to `data`.
    fn feed(&mut self, bytes: &[u8], mut data: impl FnMut(&[u8])) -> anyhow::Result<()> {
        self.raw.extend_from_slice(bytes);
        if !self.head_read {
            let Some(end) = memmem::find(&self.raw, b"\r\n\r\n") else {
                return Ok(());
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_string();
            if !head.starts_with("HTTP/1.1 200") {
                bail!(
                    "the event stream answered {}",
                    head.lines().next().unwrap_or("")
                );
            }
            let head = head.to_ascii_lowercase();
            self.chunked = head.contains("transfer-encoding: chunked");
            if !self.chunked && !head.contains("connection: close") {
                bail!("an event stream neither chunked nor ended by its close: {head}");
            }
            self.raw.drain(..end + 4);
            self.head_read = true;
        }
        if !self.chunked {
            self.body.append(&mut self.raw);
        }
        // Whole chunks: `SIZE\r\nDATA\r\n`.
        while let Some(line) = memmem::find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .context("a chunk size")?;
            if self.raw.len() < line + 2 + size + 2 {
                break;
            }
            self.body
                .extend_from_slice(&self.raw[line + 2..line + 2 + size]);
            self.raw.drain(..line + 2 + size + 2);
        }
        let mut start = 0;
        while let Some(end) = memmem::find(&self.body[start..], b"\n\n") {
            let event = &self.body[start..start + end];
            for line in event.split(|&b| b == b'\n') {
                if let Some(payload) = line.strip_prefix(b"data: ") {
                    data(payload);
                }
            }
            start += end + 2;
        }
        self.body.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks_split_anywhere() {
        let body =
            "id: e:1\ndata: {\"type\":\"arc\",\"ts\":1}\n\n: \n\ndata: {\"type\":\"hello\"}\n\n";
        let (first, second) = body.split_at(20);
        let wire = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n",
            first.len(),
            second.len()
        );
        let mut stream = EventStream::default();
        let mut seen = Vec::new();
        for piece in wire.as_bytes().chunks(7) {
            stream
                .feed(piece, |d| seen.push(String::from_utf8_lossy(d).to_string()))
                .expect("reads");
        }
        assert_eq!(seen, [r#"{"type":"arc","ts":1}"#, r#"{"type":"hello"}"#]);
    }

    #[test]
    fn events_are_read_up_to_the_close_when_not_chunked() {
        let wire = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nid: e:1\ndata: {\"a\":1}\n\n: \n\ndata: {\"b\":2}\n\n";
        let mut stream = EventStream::default();
        let mut seen = Vec::new();
        for piece in wire.as_bytes().chunks(5) {
            stream
                .feed(piece, |d| seen.push(String::from_utf8_lossy(d).to_string()))
                .expect("reads");
        }
        assert_eq!(seen, [r#"{"a":1}"#, r#"{"b":2}"#]);
    }
}
