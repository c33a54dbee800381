//! The live feed: `GET /v1/live`, one websocket session per subscriber, fed by the hub and, for a
//! subscriber that resumes or fell behind, by the recording.

mod catch_up;
mod feed;

use actix_web::web;

/// `GET /v1/live` (a websocket) and `GET /v1/live/events` (server-sent events).
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(crate::routes::resource("/v1/live").get(feed::live))
        .service(crate::routes::resource("/v1/live/events").get(feed::live_events));
}
