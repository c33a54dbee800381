//! The live feed: arcs out to websocket subscribers.

mod catch_up;
mod feed;
mod hub;
pub mod socket;

pub use feed::live;
pub use hub::{Hub, Offset};
use viralglobe_protocol::{LiveFilter, PROTOCOL_VERSION, ServerMessage};

use crate::engine::Engine;

/// The first message of every websocket (live feed and replays): the counters of the campaigns
/// `filter` selects, each with its epoch and last `seq` as `offset_of` tells them.
pub fn hello(
    engine: &Engine,
    filter: &LiveFilter,
    offset_of: impl Fn(&str) -> Option<Offset>,
) -> ServerMessage {
    let campaigns = engine
        .summaries()
        .into_iter()
        .filter(|c| filter.wants_campaign(&c.id))
        .map(|mut c| {
            if let Some(offset) = offset_of(&c.id) {
                c.epoch = Some(offset.epoch.to_string());
                c.seq = offset.seq;
            }
            c
        })
        .collect();
    ServerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        server: concat!("viralglobe-server/", env!("CARGO_PKG_VERSION")).into(),
        filter: filter.clone(),
        campaigns,
    }
}
