//! Replays: `GET /v1/campaigns/{id}/replay` upgrades to a websocket that plays a recorded campaign
//! with the live feed's messages ([`crate::ServerMessage`]: `hello`, `arcs`), paced by the events'
//! own timestamps times a speed, plus a [`ReplayClock`] after every change and once a second.
//!
//! Query parameters: `speed` (campaign seconds per second, default 1), `from` and `to` (RFC 3339
//! or epoch ms; default the whole recording), `loop` (`true` starts again at `from` after `to`),
//! `paused` (`true` waits for `play`), and the live feed's `kind` and `token`.
//!
//! The client steers with [`ReplayControl`] text messages; each is answered with a `clock`, or with
//! an `error` naming what was wrong.

use serde::{Deserialize, Serialize};

use crate::{ArcKind, Timestamp};

/// What a replay client may ask, as `{"type":"pause"}`, `{"type":"speed","speed":3600}`,
/// `{"type":"seek","ts":"2012-10-20T00:00:00Z"}`, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplayControl {
    Pause,
    Play,
    /// Campaign seconds per second of replay, from 0.001 to 10,000,000.
    Speed {
        speed: f64,
    },
    /// Jump to a campaign time; arcs resume from the first event at or after it.
    Seek {
        ts: Timestamp,
    },
    /// Whether to start again at `from` after `to`.
    Loop {
        enabled: bool,
    },
}

/// Slowest and fastest replay speeds accepted.
pub const MIN_SPEED: f64 = 0.001;
pub const MAX_SPEED: f64 = 10_000_000.0;

impl ReplayControl {
    /// Parses one control message from a client and checks its values; the error says what was
    /// expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let control: Self = serde_json::from_str(text).map_err(|e| {
            format!(
                "control message: {e}; expected {{\"type\":\"pause\"}}, {{\"type\":\"play\"}}, \
                 {{\"type\":\"speed\",\"speed\":N}}, {{\"type\":\"seek\",\"ts\":T}} or \
                 {{\"type\":\"loop\",\"enabled\":B}}"
            )
        })?;
        if let Self::Speed { speed } = control {
            check_speed(speed)?;
        }
        Ok(control)
    }
}

/// `speed` if it is a replay speed the server plays at.
pub fn check_speed(speed: f64) -> Result<f64, String> {
    if (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!(
            "speed must be from {MIN_SPEED} to {MAX_SPEED}, not {speed}"
        ))
    }
}

/// Where a replay stands: enough to draw its timeline and playhead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayClock {
    pub campaign: String,
    /// The playhead, in campaign time.
    pub ts: Timestamp,
    pub speed: f64,
    pub playing: bool,
    pub looping: bool,
    /// The replayed span: the first and last event (or the `from`/`to` asked for). `to` grows
    /// while a live campaign records more.
    pub from: Timestamp,
    pub to: Timestamp,
    /// True when every recorded event up to `to` has been sent and the replay waits for more
    /// (a campaign still live) or for a seek.
    pub at_end: bool,
}

/// `GET /v1/campaigns/{id}/timeline?buckets=N`: a campaign's arcs per time bucket, for drawing a
/// timeline (the arcs a replay of each bucket shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub campaign: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Width of each bucket, in milliseconds (a whole number of minutes).
    pub bucket_ms: i64,
    /// Consecutive buckets from `from`; bucket `i` starts at `from + i × bucket_ms`.
    pub buckets: Vec<TimelineBucket>,
}

/// Arcs in one bucket, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineBucket {
    pub shares: u64,
    pub clicks: u64,
    pub signups: u64,
    pub purchases: u64,
    /// Conversions with other goals.
    pub other_conversions: u64,
    pub revenue_cents: u64,
}

impl TimelineBucket {
    /// Counts one event of `kind`; a conversion towards `goal`, worth `value_cents`.
    pub fn count(&mut self, kind: ArcKind, goal: Option<&str>, value_cents: u64) {
        match kind {
            ArcKind::Share => self.shares += 1,
            ArcKind::Click => self.clicks += 1,
            ArcKind::Conversion => {
                self.revenue_cents = self.revenue_cents.saturating_add(value_cents);
                match goal {
                    Some("signup") => self.signups += 1,
                    Some("purchase") => self.purchases += 1,
                    _ => self.other_conversions += 1,
                }
            }
        }
    }
}

impl std::ops::AddAssign for TimelineBucket {
    fn add_assign(&mut self, other: Self) {
        self.shares += other.shares;
        self.clicks += other.clicks;
        self.signups += other.signups;
        self.purchases += other.purchases;
        self.other_conversions += other.other_conversions;
        self.revenue_cents = self.revenue_cents.saturating_add(other.revenue_cents);
    }
}
