//! Arcs: what the live feed and replays stream, one per resolved event.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A point on the globe, with names when the geo database knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArcKind {
    Share,
    Click,
    Conversion,
}

impl ArcKind {
    pub const ALL: [ArcKind; 3] = [ArcKind::Share, ArcKind::Click, ArcKind::Conversion];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Share => "share",
            Self::Click => "click",
            Self::Conversion => "conversion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Outgoing arcs run from a share to its visitors and child sharers; conversions come back.
    pub fn is_inbound(self) -> bool {
        self == Self::Conversion
    }
}

/// One arc: a click or child share running out from a share's location (outgoing), a
/// conversion running back to the credited share's location (inbound), or a root share as a
/// point event (no `from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArcEvent {
    /// Position of this arc in its campaign, from 1, gap-free within a campaign. A replay, and
    /// each loop of the demo, counts from 1 again: a client seeing `seq` go back knows the
    /// campaign restarted.
    pub seq: u64,
    pub kind: ArcKind,
    /// The conversion's goal (`signup`, `purchase`, …); only for conversions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    pub campaign: String,
    /// The share this arc belongs to: the new share for a share arc, the clicked or credited share
    /// otherwise.
    pub share: String,
    /// The root of that share's tree (a campaign's own post).
    pub root: String,
    /// Depth of `share` in its tree; the campaign's own posts are generation 0.
    pub generation: u32,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharer_kind: Option<String>,
    /// Conversion value in cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_cents: Option<u64>,
    /// For a share: the sharer's fans or followers on the channel, when the producer said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    pub ts: Timestamp,
    /// Where the arc starts; absent for a root share, which is a point event at `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Place>,
    pub to: Place,
}
