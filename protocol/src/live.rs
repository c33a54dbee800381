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

/// Which arcs a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LiveFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Empty means every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ArcKind>,
}

impl LiveFilter {
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
    },
    /// One arc.
    Arc(ArcEvent),
    /// Several arcs resolved within one short tick, in order.
    Arcs { arcs: Vec<ArcEvent> },
    /// The subscriber read too slowly: this many arcs were dropped for it since the last message.
    Lagged { dropped_arcs: u64 },
    /// The campaign's arc line (re)started in a new epoch: the next arc is `seq` 1 of it. Sent
    /// when a new campaign records its first event, when a demo loop starts again, and in answer
    /// to a resume from an epoch that is not the campaign's (followed by its arcs from the start).
    Reset { campaign: String, epoch: String },
    /// Replays only: where the replay stands, after every control message and once a second.
    Clock(ReplayClock),
    /// A control message the server could not follow, and why; the connection stays open.
    Error { message: String },
}
