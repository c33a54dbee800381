//! The Viral Globe server: ingest → geolocation → share generations → recordings → live arcs.
//! `ARCHITECTURE.md` at the repository root has the map.

pub mod auth;
pub mod demo;
pub mod engine;
pub mod error;
pub mod geo;
pub mod ingest;
pub mod live;
pub mod recording;
pub mod replay;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
