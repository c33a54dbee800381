//! The standing of each `--consume` source (`consume/`), kept here so that `/healthz` reads it
//! without depending on the consumers.

use std::sync::{Arc, Mutex, atomic::AtomicU64};

use serde::Serialize;

/// A `--consume` source's standing, for `/healthz` and `/metrics`.
#[derive(Debug, Serialize)]
pub(crate) struct SourceStatus {
    pub(crate) source: String,
    #[serde(serialize_with = "locked")]
    pub(crate) state: Mutex<String>,
    pub(crate) consumed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    #[serde(serialize_with = "locked")]
    pub(crate) committed: Mutex<String>,
    #[serde(serialize_with = "locked")]
    pub(crate) lag: Mutex<Option<u64>>,
    /// Partitions the broker has given this node (Kafka); none for brokers without them.
    #[serde(serialize_with = "locked", skip_serializing_if = "no_partitions")]
    pub(crate) partitions: Mutex<Option<usize>>,
}

fn no_partitions(partitions: &Mutex<Option<usize>>) -> bool {
    partitions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_none()
}

fn locked<T: Serialize, S: serde::Serializer>(value: &Mutex<T>, s: S) -> Result<S::Ok, S::Error> {
    value.lock().unwrap_or_else(|e| e.into_inner()).serialize(s)
}

impl SourceStatus {
    pub(crate) fn new(source: String) -> Self {
        Self {
            source,
            state: Mutex::new("starting".into()),
            consumed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            committed: Mutex::new(String::new()),
            lag: Mutex::new(None),
            partitions: Mutex::new(None),
        }
    }

    pub(crate) fn set_state(&self, state: impl Into<String>) {
        let state = state.into();
        let mut current = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *current != state {
            tracing::info!(source = self.source, state, "consumer");
            *current = state;
        }
    }
}

/// Every source's standing, in `--consume` order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Consumers(Arc<Vec<Arc<SourceStatus>>>);

impl Consumers {
    pub(crate) fn new(statuses: Vec<Arc<SourceStatus>>) -> Self {
        Self(Arc::new(statuses))
    }

    pub(crate) fn statuses(&self) -> &[Arc<SourceStatus>] {
        &self.0
    }
}
