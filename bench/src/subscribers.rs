//! Live-feed subscribers: real websocket clients that count the arcs they receive and, from the
//! send time each arc carries, how late it arrived.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use memchr::memmem;
use tokio::{sync::watch, task::JoinHandle};
use tokio_tungstenite::tungstenite::Message;

use crate::workload::now_ms;

/// Latencies are whole milliseconds (the events' timestamps are); the last bucket is "10 s or
/// more".
const LATENCY_BUCKETS: usize = 10_001;

/// What every subscriber of a run saw, together.
pub struct Tally {
    /// Connections opened (websocket handshakes, event streams answered).
    pub connected: AtomicU64,
    pub hellos: AtomicU64,
    pub arcs: AtomicU64,
    /// Arcs the server said it dropped for slow reading (`lagged`).
    pub dropped: AtomicU64,
    /// Bytes of the messages that carried arcs.
    pub arc_bytes: AtomicU64,
    measuring: AtomicBool,
    latency_ms: Vec<AtomicU64>,
}

impl Tally {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            connected: AtomicU64::new(0),
            hellos: AtomicU64::new(0),
            arcs: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            arc_bytes: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            latency_ms: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Starts recording latencies (after the warm-up).
    pub fn measure_latency(&self) {
        self.measuring.store(true, Relaxed);
    }

    /// The latency under which `fraction` of the measured arcs arrived, in ms.
    pub fn latency_quantile(&self, fraction: f64) -> Option<u64> {
        let counts: Vec<u64> = self.latency_ms.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * fraction).ceil().max(1.0) as u64;
        let mut seen = 0;
        counts
            .iter()
            .position(|&c| {
                seen += c;
                seen >= rank
            })
            .map(|ms| ms as u64)
    }

    /// Counts what one text message carries.
    pub fn observe(&self, text: &[u8]) {
        if text.starts_with(br#"{"type":"arc"#) {
            let measuring = self.measuring.load(Relaxed);
            let now = now_ms();
            let mut arcs = 0;
            for at in memmem::find_iter(text, br#""ts":"#) {
                arcs += 1;
                if measuring && let Some(ts) = number_at(&text[at + 5..]) {
                    let late = (now - ts as i64).clamp(0, LATENCY_BUCKETS as i64 - 1);
                    self.latency_ms[late as usize].fetch_add(1, Relaxed);
                }
            }
            self.arcs.fetch_add(arcs, Relaxed);
            self.arc_bytes.fetch_add(text.len() as u64, Relaxed);
        } else if text.starts_with(br#"{"type":"lagged""#) {
            if let Some(at) = memmem::find(text, br#""dropped_arcs":"#)
                && let Some(n) = number_at(&text[at + 15..])
            {
                self.dropped.fetch_add(n, Relaxed);
            }
        } else if text.starts_with(br#"{"type":"hello""#) {
            self.hellos.fetch_add(1, Relaxed);
        }
    }
}

impl Tally {
    /// Counts the arcs of a message in the compact encoding.
    pub fn observe_compact(&self, bytes: &[u8]) {
        // Only the times: building every arc would make the client's core the bottleneck.
        let Ok(times) = viralglobe_protocol::compact::times(bytes) else {
            return;
        };
        if self.measuring.load(Relaxed) {
            let now = now_ms();
            for ts in &times {
                let late = (now - ts.0).clamp(0, LATENCY_BUCKETS as i64 - 1);
                self.latency_ms[late as usize].fetch_add(1, Relaxed);
            }
        }
        self.arcs.fetch_add(times.len() as u64, Relaxed);
        self.arc_bytes.fetch_add(bytes.len() as u64, Relaxed);
    }
}

/// The unsigned integer that `text` starts with.
fn number_at(text: &[u8]) -> Option<u64> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[..digits]).ok()?.parse().ok()
}

/// Subscribers that stay connected until `stop` turns true.
pub struct Crowd {
    pub tally: Arc<Tally>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Crowd {
    /// Connects `readers` subscribers that read everything and `stalled` that never read a byte
    /// after the handshake, and waits for every reader's `hello`.
    pub async fn connect(url: &str, readers: usize, stalled: usize) -> anyhow::Result<Self> {
        Self::connect_greeted(url, readers, stalled, true).await
    }

    /// [`Crowd::connect`] to a server that may send no `hello` (`greeted: false`, the Node
    /// peer): then it waits for every handshake instead.
    pub async fn connect_greeted(
        url: &str,
        readers: usize,
        stalled: usize,
        greeted: bool,
    ) -> anyhow::Result<Self> {
        let tally = Tally::new();
        let (stop, stopped) = watch::channel(false);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(128));
        let mut tasks = Vec::with_capacity(readers + stalled);
        for i in 0..readers + stalled {
            let reads = i < readers;
            let (url, tally, mut stopped) = (url.to_owned(), tally.clone(), stopped.clone());
            let handshakes = handshakes.clone();
            tasks.push(tokio::spawn(async move {
                let permit = handshakes.acquire_owned().await?;
                let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                    .await
                    .with_context(|| format!("subscribing to {url}"))?;
                drop(permit);
                tally.connected.fetch_add(1, Relaxed);
                if !reads {
                    let _ = stopped.wait_for(|s| *s).await;
                    return Ok(());
                }
                loop {
                    tokio::select! {
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Text(text))) => tally.observe(text.as_bytes()),
                            Some(Ok(Message::Binary(bytes))) => tally.observe_compact(&bytes),
                            Some(Ok(Message::Close(_))) | None => bail!("the server closed a feed"),
                            Some(Err(e)) => return Err(e.into()),
                            Some(Ok(_)) => {}
                        },
                        _ = stopped.wait_for(|s| *s) => return Ok(()),
                    }
                }
            }));
        }
        let mut crowd = Self { tally, stop, tasks };
        crowd.wait_for(readers, greeted).await?;
        Ok(crowd)
    }

    /// Subscribers already running (their tasks), once every reader is greeted or connected.
    pub fn of(
        tally: Arc<Tally>,
        stop: watch::Sender<bool>,
        tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    ) -> Self {
        Self { tally, stop, tasks }
    }

    /// Waits for `readers` hellos (or handshakes, when not `greeted`); an error if a
    /// subscriber failed first or two minutes pass.
    pub async fn wait_for(&mut self, readers: usize, greeted: bool) -> anyhow::Result<()> {
        let crowd = self;
        let tally = crowd.tally.clone();
        let counter = if greeted {
            &tally.hellos
        } else {
            &tally.connected
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while counter.load(Relaxed) < readers as u64 {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "only {} of {readers} subscribers were greeted within 2 minutes",
                    counter.load(Relaxed)
                );
            }
            if let Some(failed) = crowd.tasks.iter().position(JoinHandle::is_finished) {
                let task = crowd.tasks.swap_remove(failed);
                task.await??;
                bail!("a subscriber ended before the run");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Disconnects everyone; an error if a reader failed on the way.
    pub async fn disconnect(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_lag_notices_and_latency_are_read_from_the_wire() {
        let tally = Tally::new();
        tally.observe(br#"{"type":"hello","protocol":1,"campaigns":[{"first_ts":1,"last_ts":2}]}"#);
        tally.measure_latency();
        let sent = now_ms() - 30;
        tally.observe(
            format!(
                r#"{{"type":"arcs","arcs":[{{"seq":1,"ts":{sent}}},{{"seq":2,"ts":{sent}}}]}}"#
            )
            .as_bytes(),
        );
        tally.observe(br#"{"type":"lagged","dropped_arcs":120}"#);
        assert_eq!(tally.hellos.load(Relaxed), 1);
        assert_eq!(tally.arcs.load(Relaxed), 2);
        assert_eq!(tally.dropped.load(Relaxed), 120);
        let p50 = tally.latency_quantile(0.5).expect("measured");
        assert!((30..40).contains(&p50), "{p50} ms");
    }
}
