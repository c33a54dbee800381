//! The live feed: `GET /v1/live` upgrades to a websocket that sends [`ServerMessage`]s as JSON
//! text frames.
//!
//! Query parameters: `campaign=ID` (one campaign; all when absent), `kind=click,conversion`
//! (a comma-separated subset of `share`, `click`, `conversion`; all when absent), `token=…`
//! when the server requires a read token, and, to resume, `since=SEQ&epoch=E` with `campaign`:
//! every arc of that campaign after `seq` SEQ of epoch E first, then the live arcs, with no gap and
//! no duplicate (a [`ServerMessage::Reset`] first when E is not the campaign's epoch).

use serde::{Deserialize, Serialize};

use crate::{ArcEvent, ArcKind, CampaignSummary, ReplayClock};

/// Which arcs a subscriber wants: the live feed's, a replay's and an export's query parameters
/// `campaign`, `kind`, `channel` and `generation` (see [`LiveFilter::from_query`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LiveFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Empty means every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ArcKind>,
    /// The share channels wanted (an arc's `channel`: its share's); empty means every channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The share generations wanted; absent means every generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generations: Option<Generations>,
}

/// Share generations `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Generations {
    pub min: u32,
    pub max: u32,
}

/// A filter parameter that does not parse: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter `{field}`: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

/// At most this many channels in one filter (a filter is held for a subscriber's whole life).
pub const MAX_FILTER_CHANNELS: usize = 32;
/// At most this many bytes in one channel name of a filter.
pub const MAX_FILTER_CHANNEL_BYTES: usize = 64;

impl LiveFilter {
    /// The filter of a feed's query parameters: `kind=share,click,conversion`,
    /// `channel=facebook,email` (comma-separated; all when absent or empty) and `generation=N`,
    /// `N-M` or `N-` (inclusive; all when absent or empty).
    pub fn from_query(
        campaign: Option<String>,
        kind: Option<&str>,
        channel: Option<&str>,
        generation: Option<&str>,
    ) -> Result<Self, FilterError> {
        let error = |field, message| FilterError { field, message };
        Ok(Self {
            campaign: campaign.filter(|c| !c.is_empty()),
            kinds: Self::parse_kinds(kind.unwrap_or_default()).map_err(|m| error("kind", m))?,
            channels: parse_channels(channel.unwrap_or_default())
                .map_err(|m| error("channel", m))?,
            generations: parse_generations(generation.unwrap_or_default())
                .map_err(|m| error("generation", m))?,
        })
    }

    /// Parses the `kind` query parameter: a comma-separated list of arc kinds.
    pub fn parse_kinds(list: &str) -> Result<Vec<ArcKind>, String> {
        let mut kinds: Vec<ArcKind> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                ArcKind::parse(s).ok_or_else(|| {
                    format!("unknown kind `{s}`, expected share, click or conversion")
                })
            })
            .collect::<Result<_, _>>()?;
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }

    pub fn wants_kind(&self, kind: ArcKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    pub fn wants_campaign(&self, campaign: &str) -> bool {
        self.campaign.as_deref().is_none_or(|c| c == campaign)
    }

    /// Whether an arc of this kind, campaign, channel and generation passes.
    pub fn wants(&self, kind: ArcKind, campaign: &str, channel: &str, generation: u32) -> bool {
        self.wants_kind(kind)
            && self.wants_campaign(campaign)
            && (self.channels.is_empty() || self.channels.iter().any(|c| c == channel))
            && self
                .generations
                .is_none_or(|g| (g.min..=g.max).contains(&generation))
    }

    pub fn wants_arc(&self, arc: &ArcEvent) -> bool {
        self.wants(arc.kind, &arc.campaign, &arc.channel, arc.generation)
    }
}

fn parse_channels(list: &str) -> Result<Vec<String>, String> {
    let mut channels: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(long) = channels.iter().find(|c| c.len() > MAX_FILTER_CHANNEL_BYTES) {
        return Err(format!(
            "channel `{}…` is longer than {MAX_FILTER_CHANNEL_BYTES} bytes",
            long.chars().take(16).collect::<String>()
        ));
    }
    channels.sort();
    channels.dedup();
    if channels.len() > MAX_FILTER_CHANNELS {
        return Err(format!(
            "{} channels, at most {MAX_FILTER_CHANNELS}",
            channels.len()
        ));
    }
    Ok(channels)
}

fn parse_generations(text: &str) -> Result<Option<Generations>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let number = |s: &str| {
        s.trim().parse::<u32>().map_err(|_| {
            format!("`{text}` is not a generation: expected N, N-M or N- (whole numbers)")
        })
    };
    let (min, max) = match text.split_once('-') {
        None => (number(text)?, number(text)?),
        Some((min, "")) => (number(min)?, u32::MAX),
        Some((min, max)) => (number(min)?, number(max)?),
    };
    if min > max {
        return Err(format!("`{text}`: the first generation is after the last"));
    }
    Ok(Some(Generations { min, max }))
}

/// Arcs a rate-bounded feed left out, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedArcs {
    /// All of them: `shares + clicks + conversions`.
    pub arcs: u64,
    pub shares: u64,
    pub clicks: u64,
    pub conversions: u64,
}

impl SkippedArcs {
    /// Counts one more arc of `kind`.
    pub fn count(&mut self, kind: ArcKind, n: u64) {
        self.arcs += n;
        match kind {
            ArcKind::Share => self.shares += n,
            ArcKind::Click => self.clicks += n,
            ArcKind::Conversion => self.conversions += n,
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.arcs += other.arcs;
        self.shares += other.shares;
        self.clicks += other.clicks;
        self.conversions += other.conversions;
    }
}

/// The most arcs a second a live feed may ask for with `max_rate` (more is all of them anyway).
pub const MAX_RATE_LIMIT: u32 = 1_000_000;

/// Parses the `max_rate` query parameter: arcs a second, 1 to [`MAX_RATE_LIMIT`]; absent: every
/// arc.
pub fn parse_max_rate(text: Option<&str>) -> Result<Option<u32>, FilterError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<u32>() {
        Ok(rate @ 1..=MAX_RATE_LIMIT) => Ok(Some(rate)),
        _ => Err(FilterError {
            field: "max_rate",
            message: format!(
                "`{text}` is not a rate: expected arcs a second, a whole number from 1 to {MAX_RATE_LIMIT}"
            ),
        }),
    }
}

/// How a feed sends arcs: JSON text messages (the default and the reference), or binary messages
/// of [`crate::compact`] (`encoding=compact`; every other message stays JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    #[default]
    Json,
    Compact,
}

impl Encoding {
    /// Parses the `encoding` query parameter (absent: JSON).
    pub fn from_query(encoding: Option<&str>) -> Result<Self, FilterError> {
        match encoding.map(str::trim).unwrap_or_default() {
            "" | "json" => Ok(Self::Json),
            "compact" => Ok(Self::Compact),
            other => Err(FilterError {
                field: "encoding",
                message: format!("unknown encoding `{other}`, expected json or compact"),
            }),
        }
    }
}

/// Messages from the server to a live-feed subscriber.
// Each message is decoded once and consumed; boxing the big variants would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message on every connection.
    Hello {
        protocol: u32,
        server: String,
        filter: LiveFilter,
        /// Counters so far of the campaigns the filter selects.
        campaigns: Vec<CampaignSummary>,
        /// The live feed's `max_rate`, when it asked for one: at most this many arcs a second,
        /// the rest told as [`ServerMessage::Skipped`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rate: Option<u32>,
    },
    /// One arc.
    Arc(ArcEvent),
    /// Several arcs resolved within one short tick, in order.
    Arcs { arcs: Vec<ArcEvent> },
    /// The subscriber read too slowly: this many arcs were dropped for it since the last message.
    Lagged { dropped_arcs: u64 },
    /// Live feeds with `max_rate` only: arcs the filter selects that the rate left out since the
    /// last `skipped` (at most one a second), by kind; counted in the campaign's counters all
    /// the same, and in the recording.
    Skipped(SkippedArcs),
    /// The campaign's arc line (re)started in a new epoch: the next arc is `seq` 1 of it. Sent
    /// when a new campaign records its first event, when a demo loop starts again, and in answer
    /// to a resume from an epoch that is not the campaign's (followed by its arcs from the start).
    Reset { campaign: String, epoch: String },
    /// Replays only: where the replay stands, after every control message and once a second.
    Clock(ReplayClock),
    /// A control message the server could not follow, and why; the connection stays open.
    Error { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(channel: &str, generation: &str) -> Result<LiveFilter, FilterError> {
        LiveFilter::from_query(None, None, Some(channel), Some(generation))
    }

    #[test]
    fn channels_and_generations_select_arcs() {
        let f = filter("email, facebook,email", "1-2").expect("parses");
        assert_eq!(f.channels, ["email", "facebook"]);
        assert_eq!(f.generations, Some(Generations { min: 1, max: 2 }));
        assert!(f.wants(ArcKind::Click, "c", "email", 1));
        assert!(f.wants(ArcKind::Share, "c", "facebook", 2));
        assert!(!f.wants(ArcKind::Click, "c", "twitter", 1));
        assert!(!f.wants(ArcKind::Click, "c", "email", 0));
        assert!(!f.wants(ArcKind::Click, "c", "email", 3));
        let open = filter("", "3-").expect("parses");
        assert!(open.channels.is_empty() && open.wants(ArcKind::Conversion, "c", "x", 40));
        assert!(!open.wants(ArcKind::Conversion, "c", "x", 2));
        assert_eq!(
            filter("", "2").expect("parses").generations,
            Some(Generations { min: 2, max: 2 })
        );
        assert_eq!(filter("", "").expect("parses"), LiveFilter::default());
    }

    #[test]
    fn a_bad_filter_names_its_parameter() {
        for (channel, generation, field, says) in [
            ("", "two", "generation", "`two` is not a generation"),
            (
                "",
                "3-1",
                "generation",
                "first generation is after the last",
            ),
            ("", "-1", "generation", "not a generation"),
            (&"x".repeat(65), "", "channel", "longer than 64 bytes"),
        ] {
            let e = filter(channel, generation).expect_err("refused");
            assert_eq!(e.field, field);
            assert!(e.message.contains(says), "{e}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("c{i}")).collect();
        let e = filter(&many.join(","), "").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "query parameter `channel`: 33 channels, at most 32"
        );
        let e = LiveFilter::from_query(None, Some("clicks"), None, None).expect_err("refused");
        assert_eq!(e.field, "kind");
    }
}
