//! End-to-end tests: the real `viralglobe-server` binary on a free loopback port, the real
//! GeoLite2 City database, real HTTP and websocket clients.

mod access;
mod browser;
mod cluster;
mod consume;
mod demo;
mod events;
mod failover;
mod follow;
mod held;
mod http_api;
mod ingest;
mod kafka;
mod links;
mod live;
mod rate;
mod readme;
mod recovery;
mod replay;
mod resume;
mod simulate;
mod support;
mod tokens;
mod viewer;
