//! The Viral Globe server: ingest → geolocation → share generations → recordings → live arcs.
//! `ARCHITECTURE.md` at the repository root has the map.
//!
//! The library is the server binary's, and exports only what the binary, the benchmarks, the
//! maintainers' tools (`xtask`), the fuzz targets and the end-to-end tests need.
#![warn(unreachable_pub)]

pub mod auth;
mod cluster;
mod commands;
mod consume;
pub mod demo;
mod engine;
mod error;
mod fast_hash;
#[doc(hidden)]
pub mod fuzzing;
mod geo;
mod hello;
mod hooks;
mod hub;
mod ingest;
mod links;
mod live;
mod reading;
mod recording;
mod replay;
mod routes;
mod settings;
mod startup;
mod telemetry;
mod ws;

pub use cluster::{Reseed, reseed};
pub use engine::{Engine, HeldLimits};
pub use geo::{GeoDb, decode_place};
pub use hub::Hub;
pub use ingest::{IngestReport, Pipeline};
pub use recording::campaign_path;
pub use settings::{Cli, Command, ExportFormat, LogFormat, TokenScope};
pub use startup::Application;
pub use telemetry::init_logging;

/// Exports of a campaign's arcs to a file (the `export` command).
pub mod export {
    pub use crate::{commands::export_to_file as to_file, replay::export::Format};
}
