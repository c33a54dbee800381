//! One typed configuration, from the command line or the environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "viralglobe-server",
    version,
    about = "Ingests share, click and conversion events, geolocates them, tracks share \
             generations, records every campaign and streams arcs over websockets.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Settings),
    /// Run the server and ingest the NDJSON lines of FILE (or `-` for stdin), following the file
    /// as it grows and when it is rotated, like `tail -F`.
    Ingest {
        /// The file to follow, or `-` for standard input.
        source: PathBuf,
        #[command(flatten)]
        settings: Settings,
    },
}

impl Cli {
    /// The settings to serve with, and the file to follow if any.
    pub fn into_settings(self) -> Settings {
        match self.command {
            None => self.settings,
            Some(Command::Serve(settings)) => settings,
            Some(Command::Ingest {
                source,
                mut settings,
            }) => {
                settings.follow = Some(source);
                settings
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncPolicy {
    /// Every acknowledged batch is on disk before the answer (safest, slowest).
    Always,
    /// Acknowledged batches are in the OS page cache at once and on disk within the interval:
    /// a crash of the process loses nothing, a power cut at most the interval.
    Interval,
    /// Leave it to the OS.
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "VIRALGLOBE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// MaxMind-format City database (GeoLite2/GeoIP2 City, DB-IP City Lite). Without it the server
    /// looks in /var/lib/GeoIP and /usr/share/GeoIP.
    #[arg(long, env = "VIRALGLOBE_GEOIP")]
    pub geoip: Option<PathBuf>,

    /// Directory of the campaign recordings.
    #[arg(long, env = "VIRALGLOBE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Bearer token producers must send to POST /v1/events. Without one, ingest is refused on
    /// non-loopback addresses.
    #[arg(long, env = "VIRALGLOBE_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,

    /// Token that live-feed subscribers must pass as `?token=` (browsers cannot set websocket
    /// headers) or as a bearer token.
    #[arg(long, env = "VIRALGLOBE_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,

    /// Origins allowed to open the live feed from a browser, comma-separated (e.g.
    /// `https://example.com`). Empty allows any.
    #[arg(long, env = "VIRALGLOBE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// When recordings reach the disk.
    #[arg(long, env = "VIRALGLOBE_FSYNC", value_enum, default_value = "interval")]
    pub fsync: FsyncPolicy,

    /// Interval of `--fsync interval`, in milliseconds.
    #[arg(long, env = "VIRALGLOBE_FSYNC_INTERVAL_MS", default_value_t = 1000)]
    pub fsync_interval_ms: u64,

    /// Largest request body accepted by POST /v1/events, in bytes.
    #[arg(long, env = "VIRALGLOBE_MAX_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest single NDJSON line, in bytes.
    #[arg(long, env = "VIRALGLOBE_MAX_LINE_BYTES", default_value_t = 64 * 1024)]
    pub max_line_bytes: usize,

    /// Most events held at once waiting for their share or parent share.
    #[arg(long, env = "VIRALGLOBE_MAX_HELD", default_value_t = 100_000)]
    pub max_held: usize,

    /// Live feed batching tick, in milliseconds: arcs resolved within one tick go out in one frame.
    #[arg(long, env = "VIRALGLOBE_TICK_MS", default_value_t = 10)]
    pub tick_ms: u64,

    /// Frames queued per live subscriber before frames are dropped for it.
    #[arg(long, env = "VIRALGLOBE_SUBSCRIBER_QUEUE", default_value_t = 256)]
    pub subscriber_queue: usize,

    /// Decoded geo records kept in memory.
    #[arg(long, env = "VIRALGLOBE_GEO_CACHE", default_value_t = 500_000)]
    pub geo_cache: usize,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "VIRALGLOBE_WORKERS")]
    pub workers: Option<usize>,

    /// Ingest the NDJSON lines of this file (or `-` for stdin) as it grows.
    #[arg(long, env = "VIRALGLOBE_FOLLOW")]
    pub follow: Option<PathBuf>,
}

impl Settings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(1))
    }

    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms.max(1))
    }

    /// Settings for tests and embedding: loopback, port 0, everything else default.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut settings = Cli::parse_from(["viralglobe-server"]).into_settings();
        settings.listen = ([127, 0, 0, 1], 0).into();
        settings.data_dir = data_dir.into();
        settings
    }
}
