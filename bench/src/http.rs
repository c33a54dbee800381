//! A minimal HTTP/1.1 keep-alive client: the load generator writes requests as fast as the server
//! answers them, with no client library in the way of what is measured.

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

pub struct Connection {
    stream: BufReader<TcpStream>,
    head: Vec<u8>,
    line: String,
}

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// Events the server acknowledged, from an ingest answer.
    pub fn accepted(&self) -> anyhow::Result<u64> {
        let report: serde_json::Value =
            serde_json::from_slice(&self.body).context("ingest answer is not JSON")?;
        report["accepted"]
            .as_u64()
            .with_context(|| format!("no `accepted` in {report}"))
    }
}

impl Connection {
    pub async fn open(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            head: Vec::with_capacity(256),
            line: String::new(),
        })
    }

    /// POSTs NDJSON to `path` and reads the whole answer.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<Answer> {
        self.head.clear();
        self.head.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.exchange(body).await
    }

    /// GETs `path` with `headers` (whole `Name: value` lines) and reads the whole answer.
    pub async fn get(&mut self, path: &str, headers: &[&str]) -> anyhow::Result<Answer> {
        self.head.clear();
        self.head
            .extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n").as_bytes());
        for header in headers {
            self.head.extend_from_slice(header.as_bytes());
            self.head.extend_from_slice(b"\r\n");
        }
        self.head.extend_from_slice(b"\r\n");
        self.exchange(&[]).await
    }

    async fn exchange(&mut self, body: &[u8]) -> anyhow::Result<Answer> {
        let socket = self.stream.get_mut();
        socket.write_all(&self.head).await?;
        socket.write_all(body).await?;

        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            bail!("the server closed the connection");
        }
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = 0;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                bail!("the server closed the connection mid-answer");
            }
            if self.line == "\r\n" {
                break;
            }
            if let Some((name, value)) = self.line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(Answer { status, body })
    }
}
