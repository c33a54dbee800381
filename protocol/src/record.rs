//! Recordings: one append-only NDJSON file per campaign, one [`RecordedEvent`] per line, in the
//! order the server accepted the events. Replays and exports read these files.

use serde::{Deserialize, Serialize};

use crate::{InputEvent, Place};

/// An accepted event and what the server resolved when it accepted it.
///
/// An event whose share (or parent share) had not arrived yet is recorded without `generation`
/// and `root`; it is resolved, by the same rules, when a later line brings the missing share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The event as the producer sent it.
    pub event: InputEvent,
    /// The campaign; absent only in the server's journal of clicks and conversions whose share it
    /// has not seen yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Where the event happened; absent when its address has no known location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Place>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Set on events that waited for their share in the server's journal of held events: the
    /// number of that journal entry, so that a restart does not apply it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<u64>,
    /// Cluster mode, on a line that starts a wait (a held share, a held click or conversion):
    /// the log's time, in milliseconds, when it began to wait. Waits are given up by the log's
    /// clock, so a node rebuilt from these lines gives them up at the same entry as the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_at: Option<u64>,
    /// Set on a line that gives up an event that was waiting: a share (in its campaign's
    /// recording, unresolved) whose wait expired or whose parent arrived in another campaign, or
    /// a held click or conversion (in the journal, with its `hold`) whose wait expired. It draws
    /// nothing; readers skip it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub given_up: bool,
}
