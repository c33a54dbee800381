//! The live feed: `GET /v1/live`, one websocket session per subscriber, fed by the hub and, for a
//! subscriber that resumes or fell behind, by the recording.

mod catch_up;
mod feed;

pub(crate) use feed::live;
