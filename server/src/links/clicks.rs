//! Clicks on their way to the pipeline. The redirect answers at once and leaves its click here:
//! one task takes whatever has queued up and applies it as one batch (one group commit, or one
//! append to the cluster's log). The queue is bounded; a click that finds it full, or that the
//! pipeline refuses (full disk, Redis away), is counted in `viralglobe_link_clicks_total`
//! with `outcome="lost"` and logged, and the visitor has been redirected all the same.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use tokio::sync::mpsc;

use crate::{
    engine::{EngineError, Located, Outcome},
    ingest::Pipeline,
};

/// Clicks applied in one batch at most.
const BATCH: usize = 4_096;
/// How long the clicks that follow a first one are gathered into its batch.
const GATHER: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub(crate) struct ClickQueue {
    sender: mpsc::Sender<Located>,
}

impl ClickQueue {
    /// Starts the task that records queued clicks; call inside the server's runtime.
    pub(super) fn start(pipeline: Pipeline, capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        actix_web::rt::spawn(record(pipeline, receiver));
        Self { sender }
    }

    pub(super) fn push(&self, click: Located) {
        if let Err(error) = self.sender.try_send(click) {
            lost(1, &error.to_string());
        }
    }
}

fn lost(clicks: usize, why: &str) {
    metrics::counter!("viralglobe_link_clicks_total", "outcome" => "lost").increment(clicks as u64);
    // At most a line a second: a full queue under load would otherwise log every click.
    static LOGGED_AT: AtomicI64 = AtomicI64::new(0);
    let second = viralglobe_protocol::Timestamp::now().0 / 1_000;
    if LOGGED_AT.swap(second, Ordering::Relaxed) != second {
        tracing::warn!(clicks, why, "clicks on tracked links not recorded");
    }
}

async fn record(pipeline: Pipeline, mut receiver: mpsc::Receiver<Located>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        // The first click wakes this task; the ones after it within GATHER join its batch
        // without waking anything (nobody waits on the queue meanwhile): at a viral peak, a
        // wake-up and a commit every few milliseconds rather than one a click.
        tokio::time::sleep(GATHER).await;
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(click) => batch.push(click),
                Err(_) => break,
            }
        }
        let clicks = batch.len();
        let outcomes = match pipeline.apply_located(std::mem::take(&mut batch)).await {
            Ok(outcomes) => outcomes,
            Err(EngineError::Unavailable { reason, applied }) => {
                lost(clicks - applied.len(), &reason);
                applied
            }
            // In the log, applied later: recorded, not lost.
            Err(EngineError::Logged(_) | EngineError::Unreplicated(_)) => Vec::new(),
            Err(error) => {
                lost(clicks, &error.to_string());
                Vec::new()
            }
        };
        for outcome in outcomes {
            let outcome = match outcome {
                Outcome::Accepted | Outcome::Held => "recorded",
                Outcome::Duplicate => "duplicate",
                Outcome::Rejected(_) => "rejected",
            };
            metrics::counter!("viralglobe_link_clicks_total", "outcome" => outcome).increment(1);
        }
    }
}
