//! Group commit: the batches of requests that arrive together are applied under one lock and
//! written out with one commit, instead of a lock and a `write(2)` (and under `--fsync always`
//! an fsync) each. Every request is still answered only once its own events are written.
//!
//! The first request of a group schedules the commit on its worker and the commit yields once
//! before it takes the group: the requests the worker reads in the meantime (those that arrived
//! with it) join. A request alone waits for nothing else. One group is applied at a time, on a
//! blocking thread rather than the worker (a batch of 100,000 events would otherwise stall every
//! connection the worker serves); the requests that arrive meanwhile are the next group.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::oneshot;

use crate::engine::{Engine, EngineError, Located, Outcome};

type Answer = oneshot::Sender<Result<Vec<Outcome>, EngineError>>;

pub(crate) struct GroupCommit {
    engine: Arc<Engine>,
    waiting: Mutex<Vec<(Vec<Located>, Answer)>>,
    /// Whether a commit is scheduled or running that will take what is waiting.
    scheduled: AtomicBool,
}

impl GroupCommit {
    pub(super) fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            waiting: Mutex::default(),
            scheduled: AtomicBool::new(false),
        })
    }

    /// Applies `batch` with whatever else arrives with it; what [`Engine::apply`] returns.
    pub(super) async fn apply(
        self: &Arc<Self>,
        batch: Vec<Located>,
    ) -> Result<Vec<Outcome>, EngineError> {
        let (answer, answered) = oneshot::channel();
        self.lock().push((batch, answer));
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            actix_web::rt::spawn(self.clone().commit());
        }
        answered.await.unwrap_or_else(|_| {
            Err(EngineError::Stopped(
                "the commit of this request's group did not finish".into(),
            ))
        })
    }

    async fn commit(self: Arc<Self>) {
        // Behind the requests this worker has read already: they join the group.
        tokio::task::yield_now().await;
        loop {
            let group = std::mem::take(&mut *self.lock());
            if group.is_empty() {
                self.scheduled.store(false, Ordering::Release);
                // A request that came between the take and the store saw a commit scheduled:
                // take it now, unless a commit it scheduled itself since will.
                if self.lock().is_empty() || self.scheduled.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            metrics::histogram!("viralglobe_ingest_group_requests").record(group.len() as f64);
            let (batches, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            let engine = self.engine.clone();
            let count = batches.len();
            let results = match actix_web::rt::task::spawn_blocking(move || {
                engine.apply_group(batches)
            })
            .await
            {
                Ok(results) => results,
                Err(_) => (0..count)
                    .map(|_| {
                        Err(EngineError::Stopped(
                            "applying this request's group failed".into(),
                        ))
                    })
                    .collect(),
            };
            for (answer, result) in answers.into_iter().zip(results) {
                // A client that went away is not answered; its events are in, as with any
                // request.
                let _ = answer.send(result);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<Located>, Answer)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
