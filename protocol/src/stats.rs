//! The read API's campaign counters and statistics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Timestamp,
    attribution::{Delays, Places, Virality},
};

/// A campaign's headline counters, as listed by `GET /v1/campaigns` and sent in `hello`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub id: String,
    pub shares: u64,
    pub clicks: u64,
    pub conversions: u64,
    /// Of those, how many reached each goal (`signup`, `purchase`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub goals: BTreeMap<String, u64>,
    pub revenue_cents: u64,
    /// Deepest share generation seen (roots are 0).
    pub max_generation: u32,
    /// Events whose address had no known location.
    pub geo_misses: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<Timestamp>,
    /// The campaign's arc line: its `seq` numbers start from 1 within this epoch, and a new epoch
    /// means they started over (a demo loop, a recreated data directory). Absent for a campaign
    /// with no arc line yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The last `seq` of the epoch so far: resuming with `since` equal to it misses nothing.
    #[serde(default)]
    pub seq: u64,
}

/// Counts for one slice of a campaign (a channel, a generation, …). Clicks and conversions are
/// attributed to the slice of the share they were credited to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub shares: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub revenue_cents: u64,
    /// Sum of the reach of shares that state one.
    pub reach: u64,
    /// Clicks on shares that state a reach (the numerator of eCTR).
    pub reach_clicks: u64,
    /// Revenue in dollars per click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_per_visit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicks_per_share: Option<f64>,
    /// Clicks per fan or follower, as a fraction (0.011 = 1.1%), over shares with a reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ectr: Option<f64>,
}

impl Tally {
    /// Fills the derived ratios from the counts.
    pub fn with_ratios(mut self) -> Self {
        let ratio = |num: f64, den: u64| (den > 0).then(|| num / den as f64);
        self.value_per_visit = ratio(self.revenue_cents as f64 / 100.0, self.clicks);
        self.clicks_per_share = ratio(self.clicks as f64, self.shares);
        self.ectr = ratio(self.reach_clicks as f64, self.reach);
        self
    }
}

/// Conversions and their value for one goal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoalTally {
    pub conversions: u64,
    pub value_cents: u64,
}

/// `GET /v1/campaigns/{id}/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignStats {
    pub summary: CampaignSummary,
    pub totals: Tally,
    pub by_goal: BTreeMap<String, GoalTally>,
    pub by_channel: BTreeMap<String, Tally>,
    /// Keyed by the sharer kind; shares without one count under `unknown`.
    pub by_sharer_kind: BTreeMap<String, Tally>,
    pub by_generation: BTreeMap<u32, Tally>,
    /// Sharer kind, then channel: e.g. the cast's Twitter shares.
    pub by_sharer_kind_channel: BTreeMap<String, BTreeMap<String, Tally>>,
    /// Of the conversions, those a visitor's browser reported (`vg.js`): counted in the totals
    /// like any other, but nobody can verify them. Revenue to trust is reported server to server.
    #[serde(default)]
    pub unverified: GoalTally,
    /// Clicks and conversions still waiting for their share, and shares for their parent.
    pub held: u64,
    #[serde(default)]
    pub virality: Virality,
    #[serde(default)]
    pub delays: Delays,
    #[serde(default)]
    pub places: Places,
}
