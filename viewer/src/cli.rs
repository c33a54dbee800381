//! The command line.

use std::path::PathBuf;

use clap::Parser;
use viralglobe_protocol::Timestamp;

#[derive(Debug, Parser)]
#[command(
    name = "viralglobe-viewer",
    version,
    about = "A 3D globe that shows a Viral Globe campaign spreading: live from a server, replayed \
             from a file or by a server, on screen or exported as PNG frames or a video.",
    after_help = "Keys: Space pause/play · ↑/↓ speed · ←/→ seek · R restart · L loop · \
                  F follow · P presenter view · S story mode · H help"
)]
pub struct Cli {
    /// The server's live feed (the default: ws://127.0.0.1:8080); several, comma-separated or
    /// repeated (the nodes of a cluster), are tried in turn when a connection is lost.
    #[arg(
        long,
        value_name = "ws://HOST:PORT",
        value_delimiter = ',',
        conflicts_with_all = ["replay", "replay_from", "demo"]
    )]
    pub live: Vec<String>,
    /// Replay a file from disk, no server needed: a campaign recording (the server's
    /// `data/campaigns/ID.ndjson`, or `demo-data/bones-brigade.ndjson.zst`) or the NDJSON that
    /// `viralglobe-server export ID` writes; plain or zstd-compressed; `-` for standard input.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["replay_from", "demo"])]
    pub replay: Option<PathBuf>,
    /// Play the demo campaign (the Bones Brigade launch built into the viewer), no server needed.
    #[arg(long, conflicts_with = "replay_from")]
    pub demo: bool,
    /// Replay a recorded campaign served by the server (needs --campaign).
    #[arg(long, value_name = "ws://HOST:PORT", requires = "campaign")]
    pub replay_from: Option<String>,
    /// The campaign to show (all campaigns when live without it).
    #[arg(long, env = "VIRALGLOBE_CAMPAIGN")]
    pub campaign: Option<String>,
    /// The server's read token, if it has one.
    #[arg(long, env = "VIRALGLOBE_READ_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Replay speed, campaign seconds per second (default 21,600 on screen: a day in 4 s;
    /// 600 for --frames and --video: the kickoff, 100 minutes in 10 s).
    #[arg(long, value_parser = parse_speed)]
    pub speed: Option<f64>,
    /// Where a replay starts: RFC 3339 or epoch milliseconds (default: the first arc).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,
    /// Render the replay offscreen to numbered PNG frames in DIR, then exit (no window).
    #[arg(long, value_name = "DIR", conflicts_with = "video")]
    pub frames: Option<PathBuf>,
    /// Render the replay offscreen straight into an MP4 video (H.264, by ffmpeg, which must be
    /// installed; without it, --frames writes PNG frames), then exit (no window).
    #[arg(long, value_name = "FILE.mp4")]
    pub video: Option<PathBuf>,
    /// Frames per second of the export.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Seconds of output to export.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Size of the exported frames (or of the window), WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Open full screen (for the stage).
    #[arg(long)]
    pub fullscreen: bool,
    /// Story mode (S toggles it): the camera follows the biggest cascade, from its post out to
    /// its newest generation, and captions tell what just happened.
    #[arg(long)]
    pub story: bool,
    /// Arcs drawn in flight at most: above it shares and conversions are drawn first and clicks
    /// sampled (every arc is still counted).
    #[arg(
        long,
        default_value_t = crate::arcs::DEFAULT_BUDGET as u32,
        value_parser = clap::value_parser!(u32).range(1..=crate::arcs::CAPACITY as i64)
    )]
    pub max_arcs: u32,
    /// Show this address as a QR code in the corner: a tracked link of the campaign's post
    /// (`POST /v1/links` answers its `url`), for an audience to scan from the stage screen.
    #[arg(long, value_name = "URL")]
    pub qr: Option<String>,
}

impl Cli {
    /// Rendering to frames or a video: offscreen, at a fixed frame rate, then exit.
    pub fn exporting(&self) -> bool {
        self.frames.is_some() || self.video.is_some()
    }

    pub fn replay_speed(&self) -> f64 {
        self.speed
            .unwrap_or(if self.exporting() { 600.0 } else { 21_600.0 })
    }

    pub fn frame_count(&self) -> u32 {
        (self.duration * self.fps as f64).round().max(1.0) as u32
    }
}

fn parse_speed(text: &str) -> Result<f64, String> {
    use viralglobe_protocol::replay::{MAX_SPEED, MIN_SPEED};
    let speed: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!("must be from {MIN_SPEED} to {MAX_SPEED}"))
    }
}

fn parse_time(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .or_else(|| Timestamp::parse_rfc3339(text).map(|t| t.0))
        .ok_or_else(|| format!("`{text}` is neither RFC 3339 nor epoch milliseconds"))
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{text}` is not WIDTHxHEIGHT"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (16..=8192).contains(n))
    };
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("`{text}`: width and height from 16 to 8192")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_say_why() {
        let cli = Cli::try_parse_from([
            "viewer",
            "--replay",
            "f.ndjson",
            "--frames",
            "out",
            "--from",
            "2012-10-16T17:00:00Z",
            "--size",
            "640x360",
            "--fps",
            "10",
            "--duration",
            "2",
        ])
        .expect("valid");
        assert_eq!(cli.size, (640, 360));
        assert_eq!(cli.from, Some(1_350_406_800_000));
        assert_eq!(cli.frame_count(), 20);
        assert_eq!(cli.replay_speed(), 600.0);

        let error = |args: &[&str]| Cli::try_parse_from(args).expect_err("invalid").to_string();
        assert!(error(&["viewer", "--speed", "0"]).contains("from 0.001"));
        assert!(error(&["viewer", "--size", "big"]).contains("WIDTHxHEIGHT"));
        assert!(error(&["viewer", "--replay-from", "ws://h:1"]).contains("--campaign"));
        assert!(
            error(&["viewer", "--live", "ws://h:1", "--replay", "f"]).contains("cannot be used")
        );
    }
}
