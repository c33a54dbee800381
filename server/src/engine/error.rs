//! What the engine answers when it cannot take a batch, and why.

use super::Outcome;
use crate::recording::RecordingError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    /// After a failed write the in-memory state may be ahead of the disk; ingest stops until a
    /// restart rebuilds the state from what was written.
    #[error("ingest is stopped after a recording failure ({0}); restart the server")]
    Stopped(String),
    /// Cluster mode: the log (Redis) did not take the batch, or its outcome is not known here.
    /// Nothing in it was acknowledged; it can be sent again.
    #[error("the log cannot take this batch now: {0}; send it again later")]
    Log(String),
    /// A recording could not be opened (no descriptor left, say): the events before the one that
    /// needed it were applied and written (`applied`), that one and the rest were not. Ingest
    /// goes on; they can be sent again.
    #[error("the recordings cannot take this event now ({reason}); send it again later")]
    Unavailable {
        reason: String,
        applied: Vec<Outcome>,
    },
    /// Cluster mode with `--redis-wait N`: the batch is in the log, but fewer than N replicas
    /// confirmed it in time, and nodes apply it only once N have it. Not a refusal: it is
    /// acknowledged, with less durability than asked (answered 202, `replicated: false`, its
    /// events counted as `logged`).
    #[error("the batch is in the log, but {0}; nodes apply it once enough replicas have it")]
    Unreplicated(String),
    /// Cluster mode: the log took the batch, but this node had not applied it in time; every
    /// node will (answered 202 with the events counted as `logged`, never as not acknowledged).
    #[error("{0}")]
    Logged(String),
}

impl EngineError {
    /// What went wrong, without the words a `Stopped` wraps it in: the reason a caller that stops
    /// in turn gives, so that it reads once.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Stopped(reason) => reason.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EngineError;

    /// The cluster's follower stops with the reason the engine gave; `append` then answers with
    /// it: the words of a stop are said once (they once read "ingest is stopped after a
    /// recording failure (ingest is stopped after a recording failure (…").
    #[test]
    fn a_stop_passed_on_says_its_reason_once() {
        let engine = EngineError::Stopped("cannot write campaigns/a.ndjson: disk full".into());
        let passed_on = EngineError::Stopped(engine.reason()).to_string();
        assert_eq!(
            passed_on.matches("ingest is stopped").count(),
            1,
            "{passed_on}"
        );
        assert!(passed_on.contains("disk full"), "{passed_on}");
    }
}
