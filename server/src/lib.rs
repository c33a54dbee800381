//! The Viral Globe server: ingest → geolocation → share generations → recordings → live arcs.
//! `ARCHITECTURE.md` at the repository root has the map.

pub(crate) mod auth;
pub mod cluster;
pub mod demo;
pub mod engine;
pub(crate) mod error;
mod fast_hash;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub(crate) mod hello;
pub mod hub;
pub mod ingest;
pub mod links;
pub mod live;
pub mod recording;
pub mod replay;
pub(crate) mod routes;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub(crate) mod ws;
