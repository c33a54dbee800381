//! Attribution by generation: what each root share's cascade brought, how viral each generation
//! was, how long visits and conversions took, and where they came from. Served in
//! `GET /v1/campaigns/{id}/stats` (virality, delays, places) and `GET /v1/campaigns/{id}/cascades`.
//!
//! *Direct credit* counts a click or conversion for the share whose link brought the visitor (the
//! statistics' slices). *Root credit* counts it, as well, for the root share (campaign post) whose
//! cascade that share belongs to, at the share's generation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Tally;

/// `GET /v1/campaigns/{id}/cascades`: the campaign's root shares, ranked by the revenue of their
/// whole cascade, then its clicks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cascades {
    pub campaign: String,
    pub cascades: Vec<Cascade>,
}

/// One root share and everything its cascade brought.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cascade {
    /// The root share's id (`(other)` pools the roots past the first 256 of a campaign).
    pub root: String,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharer_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    /// Shares (the root included), clicks, conversions and revenue of the whole cascade.
    pub totals: Tally,
    /// The deepest generation the cascade reached (the root is 0).
    pub depth: u32,
    /// The same, generation by generation.
    pub by_generation: BTreeMap<u32, Tally>,
}

/// How viral each generation was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Virality {
    pub by_generation: BTreeMap<u32, GenerationVirality>,
    /// The deepest generation reached.
    pub depth: u32,
    /// The generation with the most shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widest_generation: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationVirality {
    #[serde(flatten)]
    pub tally: Tally,
    /// Shares of the next generation per share of this one (none once there are no shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_factor: Option<f64>,
}

/// How long visits and conversions come after the share that brought them, per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delays {
    pub all: ChannelDelays,
    pub by_channel: BTreeMap<String, ChannelDelays>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelDelays {
    /// From a share to a click on its link.
    pub share_to_click: Quantiles,
    /// From a share to a conversion credited to it.
    pub share_to_conversion: Quantiles,
}

/// Quantiles of a delay, in seconds (to within 5%); none before the first sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_s: Option<f64>,
}

/// Where the visitors and buyers were: the top places, overall and per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Places {
    pub all: TopPlaces,
    pub by_channel: BTreeMap<String, TopPlaces>,
}

/// The ten places with the most clicks, and the ten with the most revenue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopPlaces {
    pub countries_by_clicks: Vec<PlaceTally>,
    pub countries_by_revenue: Vec<PlaceTally>,
    pub cities_by_clicks: Vec<PlaceTally>,
    pub cities_by_revenue: Vec<PlaceTally>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaceTally {
    /// A country code, or a city's name.
    pub name: String,
    /// A city's country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub clicks: u64,
    pub revenue_cents: u64,
}
