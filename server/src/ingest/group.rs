//! Group commit: the batches of requests that arrive together are applied under one lock and
//! written out with one commit, instead of a lock and a `write(2)` (and under `--fsync always`
//! an fsync) each. Every request is still answered only once its own events are written.
//!
//! The first request of a group schedules the commit on its worker and the commit yields once
//! before it takes the group: the requests the worker reads in the meantime (those that arrived
//! with it) join. A request alone waits for nothing else. A large group is applied on a blocking
//! thread rather than the worker (a batch of 100,000 events would otherwise stall every
//! connection the worker serves).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::oneshot;

use crate::engine::{Engine, EngineError, Located, Outcome};

/// Groups of at most this many events are applied on the worker (in 20 ms or so): handing them
/// to a blocking thread costs the ingest its priority on a busy machine, where fan-out then takes
/// the CPU and ingest falls seconds behind (the latency benchmark at 20,000 events/s). Larger
/// ones, rare, go to a blocking thread so that they do not hold the worker's connections.
const APPLIED_ON_THE_WORKER: usize = 10_000;

type Answer = oneshot::Sender<Result<Vec<Outcome>, EngineError>>;

pub(crate) struct GroupCommit {
    engine: Arc<Engine>,
    waiting: Mutex<Vec<(Vec<Located>, Answer)>>,
    /// Whether a commit is scheduled that will take what is waiting.
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
        self.scheduled.store(false, Ordering::Release);
        let group = std::mem::take(&mut *self.lock());
        if group.is_empty() {
            return;
        }
        metrics::histogram!("viralglobe_ingest_group_requests").record(group.len() as f64);
        let (batches, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let count = batches.len();
        let events: usize = batches.iter().map(Vec::len).sum();
        let results = if events <= APPLIED_ON_THE_WORKER {
            self.engine.apply_group(batches)
        } else {
            let engine = self.engine.clone();
            let applied =
                actix_web::rt::task::spawn_blocking(move || engine.apply_group(batches)).await;
            applied.unwrap_or_else(|_| {
                (0..count)
                    .map(|_| {
                        Err(EngineError::Stopped(
                            "applying this request's group failed".into(),
                        ))
                    })
                    .collect()
            })
        };
        for (answer, result) in answers.into_iter().zip(results) {
            // A client that went away is not answered; its events are in, as with any request.
            let _ = answer.send(result);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<Located>, Answer)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
