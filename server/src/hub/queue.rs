//! A subscriber's bounded queue: the frames offered to it, and its end of them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;
use viralglobe_protocol::{Encoding, LiveFilter, ServerMessage, SkippedArcs};

/// One message for one subscriber.
#[derive(Debug, Clone)]
pub struct Frame {
    /// A JSON message; empty when the frame is `binary`.
    pub text: ByteString,
    /// The arcs in the compact encoding, for subscribers that asked for it.
    pub binary: Option<Bytes>,
    /// The first and last `seq` of the arcs in it; `None` for other messages.
    pub seqs: Option<(u64, u64)>,
    /// What it says.
    pub kind: FrameKind,
    /// When the oldest arc in it was published (for other messages: when it was made).
    pub published: Instant,
    /// Arcs in it.
    pub arcs: u64,
}

/// What a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Arcs,
    /// The campaign's arc line started over.
    Reset,
    /// Arcs were dropped for the subscriber: `lagged`.
    Lagged,
    /// Arcs its `max_rate` left out: `skipped`.
    Skipped,
}

/// How much one subscriber's queue may hold: frames and bytes (a frame that does not fit is
/// dropped for it, and it is told `lagged`), and how long a frame may wait (one older is dropped
/// when it is read, rather than sent late: a subscriber never falls further behind than this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueBounds {
    pub frames: usize,
    pub bytes: usize,
    pub max_lag: Duration,
}

impl QueueBounds {
    pub(crate) fn frames(frames: usize) -> Self {
        Self {
            frames,
            bytes: 8 << 20,
            max_lag: Duration::from_millis(500),
        }
    }
}

/// A subscriber's end of its queue.
pub struct Frames {
    // Shared, not copied: a queue slot is a pointer, and every subscriber's copy the same frame.
    pub(super) rx: mpsc::Receiver<Arc<Frame>>,
    pub(super) bytes: Arc<AtomicUsize>,
}

impl Frames {
    pub async fn recv(&mut self) -> Option<Arc<Frame>> {
        let frame = self.rx.recv().await?;
        self.bytes.fetch_sub(frame.wire_len(), Relaxed);
        Some(frame)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub fn try_recv(&mut self) -> Result<Arc<Frame>, mpsc::error::TryRecvError> {
        let frame = self.rx.try_recv()?;
        self.bytes.fetch_sub(frame.wire_len(), Relaxed);
        Ok(frame)
    }
}

impl Frame {
    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        self.text.len() + self.binary.as_ref().map_or(0, Bytes::len)
    }

    pub(super) fn message(kind: FrameKind, message: &ServerMessage) -> Self {
        let text = serde_json::to_string(message).expect("server messages serialize");
        Self {
            text: text.into(),
            binary: None,
            seqs: None,
            kind,
            published: Instant::now(),
            arcs: 0,
        }
    }
}

pub(super) struct Subscriber {
    pub(super) filter: LiveFilter,
    pub(super) encoding: Encoding,
    pub(super) tx: mpsc::Sender<Arc<Frame>>,
    /// Bytes in its queue, and how many it may hold.
    pub(super) queued_bytes: Arc<AtomicUsize>,
    pub(super) max_bytes: usize,
    pub(super) dropped_arcs: u64,
    /// At most this many arcs a second (`max_rate`).
    pub(super) max_rate: Option<u32>,
    /// Arcs the rate left out, not yet told; when they were last told (the first time: at once).
    pub(super) skipped: SkippedArcs,
    pub(super) skipped_told: Option<Instant>,
}

/// How often a subscriber is told what its rate left out.
const SKIPPED_EVERY: Duration = Duration::from_secs(1);

impl Subscriber {
    /// Queues `frame` if it fits, in frames and in bytes (a frame bigger than the bound still
    /// goes into an empty queue).
    pub(super) fn try_send(&mut self, frame: Arc<Frame>) -> bool {
        let len = frame.wire_len();
        let queued = self.queued_bytes.load(Relaxed);
        if queued > 0 && queued + len > self.max_bytes {
            return false;
        }
        // Counted before it can be read, so the reader's subtraction never goes below zero.
        self.queued_bytes.fetch_add(len, Relaxed);
        let sent = self.tx.try_send(frame).is_ok();
        if !sent {
            self.queued_bytes.fetch_sub(len, Relaxed);
        }
        sent
    }

    /// Tells the subscriber how many arcs it lost, if any; false if its queue is still full.
    pub(super) fn try_send_lagged(&mut self) -> bool {
        if self.dropped_arcs == 0 {
            return true;
        }
        let lagged = ServerMessage::Lagged {
            dropped_arcs: self.dropped_arcs,
        };
        let sent = self.try_send(Arc::new(Frame::message(FrameKind::Lagged, &lagged)));
        if sent {
            self.dropped_arcs = 0;
        }
        sent
    }

    /// Tells the subscriber what its rate left out, at most once every [`SKIPPED_EVERY`] (a full
    /// queue: later).
    pub(super) fn try_send_skipped(&mut self, now: Instant) {
        let soon = self
            .skipped_told
            .is_some_and(|told| now.saturating_duration_since(told) < SKIPPED_EVERY);
        if self.skipped.arcs == 0 || soon {
            return;
        }
        let skipped = ServerMessage::Skipped(self.skipped);
        if self.try_send(Arc::new(Frame::message(FrameKind::Skipped, &skipped))) {
            self.skipped = SkippedArcs::default();
            self.skipped_told = Some(now);
        }
    }
}
