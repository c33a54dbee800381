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
    /// How log lines are written to stderr: `text`, or `json` (one object per line, for log
    /// collectors).
    #[arg(
        long,
        global = true,
        env = "VIRALGLOBE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Run the server with the embedded demo: the recorded Bones Brigade launch plays into the
    /// live feed in a loop, and its statistics are served like any campaign's.
    Demo {
        /// Campaign seconds per second of playback (21600: the two months in about four minutes).
        #[arg(long, env = "VIRALGLOBE_DEMO_SPEED", default_value_t = 21_600.0)]
        speed: f64,
        /// Most events per second; busy hours slow the clock so they stay watchable.
        #[arg(long, env = "VIRALGLOBE_DEMO_MAX_RATE", default_value_t = 2_500.0)]
        max_rate: f64,
        #[command(flatten)]
        settings: Settings,
    },
    /// Send live traffic to a running server: the demo campaign's events with fresh ids, in a
    /// campaign of their own, stamped now, at RATE events per second. For demos of live ingest
    /// and for load tests; progress on stderr, totals on stdout as JSON.
    Simulate {
        /// Base URL of the server.
        #[arg(
            long,
            env = "VIRALGLOBE_SERVER",
            default_value = "http://127.0.0.1:8080"
        )]
        server: String,
        /// Events per second.
        #[arg(long, env = "VIRALGLOBE_SIMULATE_RATE", default_value_t = 200.0)]
        rate: f64,
        /// Seconds to run; without it, runs until interrupted.
        #[arg(long, env = "VIRALGLOBE_SIMULATE_DURATION")]
        duration: Option<f64>,
        /// The campaign the events belong to.
        #[arg(
            long,
            env = "VIRALGLOBE_SIMULATE_CAMPAIGN",
            default_value = "bones-brigade-live"
        )]
        campaign: String,
        /// The server's ingest token, if it has one.
        #[arg(long, env = "VIRALGLOBE_INGEST_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Print a campaign-scoped token (JWT, HS256) for a client: what it may do (`--scope`), in
    /// which campaigns (`--campaign`, repeatable, or `*`), for how long (`--ttl`). The server
    /// that checks it runs with the same --jwt-secret.
    Token {
        /// A campaign the token opens (repeatable); `*` for every campaign.
        #[arg(long = "campaign", required = true)]
        campaigns: Vec<String>,
        /// What it opens (repeatable, or comma-separated).
        #[arg(
            long = "scope",
            value_enum,
            value_delimiter = ',',
            default_value = "read"
        )]
        scopes: Vec<TokenScope>,
        /// How long it lasts: seconds, or a number with `s`, `m`, `h` or `d` (`30d`).
        #[arg(long, default_value = "30d", value_parser = parse_ttl)]
        ttl: Duration,
        /// Pages (origins, e.g. `https://client.example`) that may use it; any when none is named.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Who it is for (`sub`), named in the server's log when it is refused.
        #[arg(long)]
        subject: Option<String>,
        #[arg(long, env = "VIRALGLOBE_JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
    },
    /// Write a recorded campaign's arcs to stdout (or --out) as NDJSON, CSV or GeoJSON.
    Export {
        /// The campaign (with --demo: the embedded demo's, bones-brigade).
        #[arg(required_unless_present = "demo")]
        campaign: Option<String>,
        /// Export the embedded demo campaign (unpacked into the data directory first).
        #[arg(long, env = "VIRALGLOBE_EXPORT_DEMO")]
        demo: bool,
        #[arg(
            long,
            env = "VIRALGLOBE_EXPORT_FORMAT",
            value_enum,
            default_value = "ndjson"
        )]
        format: ExportFormat,
        /// Directory of the campaign recordings.
        #[arg(long, env = "VIRALGLOBE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Write here instead of stdout.
        #[arg(long, env = "VIRALGLOBE_EXPORT_OUT")]
        out: Option<PathBuf>,
    },
    /// Cluster mode's way back from a log that lost history (healthz: emptied, rolled back):
    /// rebuild the log in Redis from this stopped node's mirror, keeping the entries the log took
    /// after it, under a new epoch. Run it on the node that applied the most (healthz's
    /// `applied`), then restart every node.
    Reseed {
        /// The Redis the nodes use (as their --redis).
        #[arg(long, env = "VIRALGLOBE_REDIS", hide_env_values = true)]
        redis: String,
        /// The node's data directory (its mirror is DATA_DIR/redis-mirror).
        #[arg(long, env = "VIRALGLOBE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

impl Cli {
    /// What to run: a bare invocation serves with the top-level settings.
    pub fn command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.settings))
    }
}

/// What a token minted by `token` opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenScope {
    /// The live feed, replays, exports and the read API.
    Read,
    /// POST /v1/events.
    Ingest,
    /// POST /v1/links.
    Links,
}

/// `30d`, `12h`, `15m`, `90s` or `90`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: a number with s, m, h or d, e.g. 30d")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}`: a number of {unit} above 0"))
}

/// The formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
    Geojson,
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

    /// Token that readers must pass as `?token=` (browsers cannot set websocket headers) or as a
    /// bearer token: the live feed, replays, exports, the read API (`/v1/campaigns…`) and
    /// `/metrics`. `/healthz` stays open.
    #[arg(long, env = "VIRALGLOBE_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,

    /// Secret (32 bytes or more) that signs campaign-scoped tokens (JWT, HS256): tokens minted by
    /// `viralglobe-server token` open only the campaigns and scopes they name. With it (or
    /// --jwt-public-key) reading needs a token: a scoped one, or --read-token.
    #[arg(long, env = "VIRALGLOBE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Public key of an issuer of campaign-scoped tokens: a PEM file (RSA: RS256, EC P-256: ES256)
    /// or a JWKS file (`{"keys": [...]}`, each key picked by its `kid`).
    #[arg(long, env = "VIRALGLOBE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Origins of browser pages allowed to open the live feed and replays and to read the API
    /// (CORS), comma-separated (e.g. `https://example.com`). Empty allows any.
    #[arg(long, env = "VIRALGLOBE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names (comma-separated) that token-less ingest answers to besides this machine's
    /// (`localhost`, loopback addresses). Any other `Host`, or a page of another site, is refused:
    /// a web page cannot post events to a token-less server through DNS rebinding.
    #[arg(long, env = "VIRALGLOBE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_host: Vec<String>,

    /// When recordings reach the disk.
    #[arg(long, env = "VIRALGLOBE_FSYNC", value_enum, default_value = "interval")]
    pub fsync: FsyncPolicy,

    /// Interval of `--fsync interval`, in milliseconds.
    #[arg(long, env = "VIRALGLOBE_FSYNC_INTERVAL_MS", default_value_t = 1000)]
    pub fsync_interval_ms: u64,

    /// Largest request body accepted by POST /v1/events, in bytes.
    #[arg(long, env = "VIRALGLOBE_MAX_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most bytes of `application/json` bodies held at once, all requests together (a JSON array
    /// is read whole before it is applied; NDJSON is applied as it streams). Beyond: 503.
    #[arg(long, env = "VIRALGLOBE_MAX_JSON_BYTES_IN_FLIGHT", default_value_t = 256 * 1024 * 1024)]
    pub max_json_bytes_in_flight: usize,

    /// Largest single NDJSON line, in bytes.
    #[arg(long, env = "VIRALGLOBE_MAX_LINE_BYTES", default_value_t = 64 * 1024)]
    pub max_line_bytes: usize,

    /// Most events held at once waiting for their share or parent share.
    #[arg(long, env = "VIRALGLOBE_MAX_HELD", default_value_t = 100_000)]
    pub max_held: usize,

    /// Most events of one campaign waiting: shares for their parent share, and clicks and
    /// conversions on such a share (those whose share has not arrived at all name no campaign:
    /// only --max-held bounds them).
    #[arg(
        long,
        env = "VIRALGLOBE_MAX_HELD_PER_CAMPAIGN",
        default_value_t = 25_000
    )]
    pub max_held_per_campaign: usize,

    /// Seconds an event may wait for its share or parent share before it is given up (counted
    /// from when this process started holding it; 0: never). A given-up share stays in its
    /// recording, unresolved; a click or conversion moves to held-expired.ndjson at the next
    /// restart.
    #[arg(long, env = "VIRALGLOBE_HELD_EXPIRY_SECS", default_value_t = 3600)]
    pub held_expiry_secs: u64,

    /// Most campaign recordings kept open at once (two descriptors each); the least recently
    /// written is closed when another is needed.
    #[arg(long, env = "VIRALGLOBE_MAX_OPEN_RECORDINGS", default_value_t = 64)]
    pub max_open_recordings: usize,

    /// Most exports streaming at once (each holds a thread); more are answered 503.
    #[arg(long, env = "VIRALGLOBE_MAX_EXPORTS", default_value_t = 16)]
    pub max_exports: usize,

    /// Live feed batching tick, in milliseconds: arcs resolved within one tick go out in one frame.
    #[arg(long, env = "VIRALGLOBE_TICK_MS", default_value_t = 10)]
    pub tick_ms: u64,

    /// Frames queued per live subscriber before frames are dropped for it.
    #[arg(long, env = "VIRALGLOBE_SUBSCRIBER_QUEUE", default_value_t = 256)]
    pub subscriber_queue: usize,

    /// Bytes queued per live subscriber before frames are dropped for it.
    #[arg(long, env = "VIRALGLOBE_SUBSCRIBER_QUEUE_BYTES", default_value_t = 8 << 20)]
    pub subscriber_queue_bytes: usize,

    /// Milliseconds a frame may wait in a subscriber's queue: older ones are dropped (the
    /// subscriber is told `lagged`) rather than sent late.
    #[arg(long, env = "VIRALGLOBE_SUBSCRIBER_MAX_LAG_MS", default_value_t = 500)]
    pub subscriber_max_lag_ms: u64,

    /// Geo cache sizes: decoded records kept, and recently seen addresses remembered.
    #[arg(long, env = "VIRALGLOBE_GEO_CACHE", default_value_t = 500_000)]
    pub geo_cache: usize,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "VIRALGLOBE_WORKERS")]
    pub workers: Option<usize>,

    /// Ingest the NDJSON lines of this file (or `-` for stdin) as it grows.
    #[arg(long, env = "VIRALGLOBE_FOLLOW")]
    pub follow: Option<PathBuf>,

    /// Consume events from a broker (repeatable; in the environment, space-separated):
    /// `redis://host:port[/db]/STREAM?group=G` (Redis Streams, field `event`),
    /// `nats://host:port/STREAM?durable=D` (NATS JetStream) or
    /// `kafka://host:port[,host:port]/TOPIC?group=G` (Kafka). Each message is one event or NDJSON
    /// lines; it is acknowledged once its events are. docs/consuming.md.
    #[arg(
        long,
        env = "VIRALGLOBE_CONSUME",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub consume: Vec<String>,

    /// Signing secret of a Dub webhook: POST /v1/hooks/dub takes Dub's `link.clicked`,
    /// `lead.created` and `sale.created` signed with it (docs/consuming.md).
    #[arg(long, env = "VIRALGLOBE_DUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub dub_webhook_secret: Option<String>,

    /// Cluster mode: keep the log of accepted events in this Redis (`redis://[:password@]host:port`,
    /// `rediss://` for TLS; a private CA via SSL_CERT_FILE), or in the primary Sentinel names
    /// (`redis+sentinel://[:password@]host:port[,host:port…]/master-name`, followed through
    /// failovers), shared by every node started with it. Each node follows the whole log and
    /// mirrors it under DATA_DIR/redis-mirror.
    #[arg(long, env = "VIRALGLOBE_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// With --redis: acknowledge a batch only once this many replicas have it (Redis `WAIT`), and
    /// apply entries once they do, so a failover to a replica takes back nothing a node applied.
    #[arg(long, env = "VIRALGLOBE_REDIS_WAIT", default_value_t = 0)]
    pub redis_wait: u32,

    /// With --redis: events between snapshots of the state in Redis (a starting node loads the
    /// latest and applies the log from there; the log is trimmed up to the one before). 0: no
    /// snapshots, and the log keeps everything.
    #[arg(
        long,
        env = "VIRALGLOBE_REDIS_SNAPSHOT_EVENTS",
        default_value_t = 1_000_000
    )]
    pub redis_snapshot_events: u64,

    /// The address people reach this server at, for tracked links' URLs
    /// (`https://go.example.com`; default: `http://` and the listening address).
    #[arg(long, env = "VIRALGLOBE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Proxies (addresses or CIDR ranges, comma-separated) whose `Forwarded` or
    /// `X-Forwarded-For` header names a visitor's address. From anyone else it is ignored.
    #[arg(long, env = "VIRALGLOBE_TRUSTED_PROXY", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// Visits and browser events that send `Sec-GPC: 1` or `DNT: 1` are counted without a place.
    #[arg(long, env = "VIRALGLOBE_RESPECT_GPC")]
    pub respect_gpc: bool,

    /// Campaigns (comma-separated; `*` for all) whose conversions browsers may not report
    /// through `vg.js`; they must come server to server.
    #[arg(
        long,
        env = "VIRALGLOBE_BROWSER_CONVERSIONS_OFF",
        value_delimiter = ','
    )]
    pub browser_conversions_off: Vec<String>,

    /// Child links and browser conversions one address may make per minute.
    #[arg(long, env = "VIRALGLOBE_LINK_RATE_PER_ADDRESS", default_value_t = 60)]
    pub link_rate_per_address: u32,

    /// Links one campaign may gain per minute (producers' and browsers' together).
    #[arg(
        long,
        env = "VIRALGLOBE_LINK_RATE_PER_CAMPAIGN",
        default_value_t = 6_000
    )]
    pub link_rate_per_campaign: u32,

    /// Clicks on tracked links waiting to be recorded, at most; beyond, a click is counted lost.
    #[arg(long, env = "VIRALGLOBE_CLICK_QUEUE", default_value_t = 65_536)]
    pub click_queue: usize,
}

/// An address range (`10.0.0.0/8`) or one address.
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or a CIDR range"))
}

impl Settings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(1))
    }

    /// How long an event may wait for its share; `None`: for ever.
    pub fn held_expiry(&self) -> Option<Duration> {
        (self.held_expiry_secs > 0).then(|| Duration::from_secs(self.held_expiry_secs))
    }

    /// Cluster mode's settings, with `--redis`.
    pub fn cluster(&self) -> Option<crate::cluster::ClusterOptions> {
        Some(crate::cluster::ClusterOptions {
            url: self.redis.clone()?,
            wait_replicas: self.redis_wait,
            held_expiry: self.held_expiry(),
            snapshot_every: self.redis_snapshot_events,
        })
    }

    /// Tracked links, for a server listening on `address`.
    pub fn links(&self, address: SocketAddr) -> crate::links::LinkOptions {
        let public_url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        crate::links::LinkOptions {
            public_url: public_url.trim_end_matches('/').to_owned(),
            trusted_proxies: self.trusted_proxy.clone(),
            respect_gpc: self.respect_gpc,
            browser_conversions_off: self.browser_conversions_off.clone(),
            per_address_per_minute: self.link_rate_per_address,
            per_campaign_per_minute: self.link_rate_per_campaign,
            click_queue: self.click_queue,
            redis: self.redis.clone(),
        }
    }

    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms.max(1))
    }
}
