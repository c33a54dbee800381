//! The live feed: arcs out to websocket subscribers.

mod feed;
mod hub;
pub mod socket;

pub use feed::live;
pub use hub::Hub;
