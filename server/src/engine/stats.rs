//! Running statistics of one campaign, updated as events resolve.

use std::sync::Arc;

use viralglobe_protocol::{CampaignStats, CampaignSummary, GoalTally, Tally, Timestamp};

use super::tree::ShareNode;
use crate::fast_hash::FastMap;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub shares: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub revenue_cents: u64,
    pub reach: u64,
    pub reach_clicks: u64,
}

impl Counts {
    pub(super) fn add(&mut self, other: &Counts) {
        self.shares += other.shares;
        self.clicks += other.clicks;
        self.conversions += other.conversions;
        self.revenue_cents = self.revenue_cents.saturating_add(other.revenue_cents);
        self.reach = self.reach.saturating_add(other.reach);
        self.reach_clicks += other.reach_clicks;
    }

    pub(super) fn to_wire(self) -> Tally {
        Tally {
            shares: self.shares,
            clicks: self.clicks,
            conversions: self.conversions,
            revenue_cents: self.revenue_cents,
            reach: self.reach,
            reach_clicks: self.reach_clicks,
            ..Tally::default()
        }
        .with_ratios()
    }
}

const UNKNOWN_KIND: &str = "unknown";
/// Distinct values one breakdown keeps (channels, sharer kinds, goals); any further value counts
/// under [`OTHER`], so the statistics stay small whatever producers send.
pub(crate) const MAX_SLICES: usize = 256;
pub(crate) const OTHER: &str = "(other)";

/// `map`'s entry for `key`, or for `other` once the map holds [`MAX_SLICES`] other keys.
pub(super) fn slice<K: Eq + std::hash::Hash, V: Default>(
    map: &mut FastMap<K, V>,
    key: K,
    other: impl FnOnce() -> K,
) -> &mut V {
    if map.len() >= MAX_SLICES && !map.contains_key(&key) {
        return map.entry(other()).or_default();
    }
    map.entry(key).or_default()
}

#[derive(Debug, Default)]
pub(super) struct CampaignStatsAccumulator {
    totals: Counts,
    by_goal: FastMap<Arc<str>, GoalTally>,
    unverified: GoalTally,
    by_channel: FastMap<Arc<str>, Counts>,
    by_sharer_kind: FastMap<Arc<str>, Counts>,
    by_generation: Vec<Counts>,
    by_kind_channel: FastMap<(Arc<str>, Arc<str>), Counts>,
    max_generation: u32,
    geo_misses: u64,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    unknown_kind: Option<Arc<str>>,
    other: Option<Arc<str>>,
}

impl CampaignStatsAccumulator {
    /// Applies `f` to every slice `node` belongs to.
    fn each_slice(&mut self, node: &ShareNode, f: impl Fn(&mut Counts)) {
        let kind = match &node.via.sharer_kind {
            Some(kind) => kind.clone(),
            None => self
                .unknown_kind
                .get_or_insert_with(|| UNKNOWN_KIND.into())
                .clone(),
        };
        let other = self.other.get_or_insert_with(|| OTHER.into()).clone();
        f(&mut self.totals);
        f(slice(
            &mut self.by_channel,
            node.via.channel.clone(),
            || other.clone(),
        ));
        f(slice(&mut self.by_sharer_kind, kind.clone(), || {
            other.clone()
        }));
        let generation = node.generation as usize;
        if self.by_generation.len() <= generation {
            self.by_generation.resize(generation + 1, Counts::default());
        }
        f(&mut self.by_generation[generation]);
        f(slice(
            &mut self.by_kind_channel,
            (kind, node.via.channel.clone()),
            || (other.clone(), other.clone()),
        ));
    }

    pub(super) fn saw(&mut self, ts: Timestamp, located: bool) {
        self.first_ts = Some(self.first_ts.map_or(ts, |t| t.min(ts)));
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        if !located {
            self.geo_misses += 1;
        }
    }

    pub(super) fn share(&mut self, node: &ShareNode) {
        self.max_generation = self.max_generation.max(node.generation);
        let reach = node.reach.get().unwrap_or(0);
        self.each_slice(node, |c| {
            c.shares += 1;
            c.reach = c.reach.saturating_add(reach);
        });
    }

    pub(super) fn click(&mut self, node: &ShareNode) {
        let reached = u64::from(node.reach.get().is_some());
        self.each_slice(node, |c| {
            c.clicks += 1;
            c.reach_clicks += reached;
        });
    }

    pub(super) fn conversion(
        &mut self,
        node: &ShareNode,
        goal: &Arc<str>,
        value_cents: u64,
        unverified: bool,
    ) {
        if unverified {
            self.unverified.conversions += 1;
            self.unverified.value_cents = self.unverified.value_cents.saturating_add(value_cents);
        }
        self.each_slice(node, |c| {
            c.conversions += 1;
            c.revenue_cents = c.revenue_cents.saturating_add(value_cents);
        });
        let other = self.other.get_or_insert_with(|| OTHER.into()).clone();
        let tally = slice(&mut self.by_goal, goal.clone(), || other);
        tally.conversions += 1;
        tally.value_cents = tally.value_cents.saturating_add(value_cents);
    }

    pub(super) fn summary(&self, id: &str) -> CampaignSummary {
        CampaignSummary {
            id: id.to_owned(),
            shares: self.totals.shares,
            clicks: self.totals.clicks,
            conversions: self.totals.conversions,
            goals: self
                .by_goal
                .iter()
                .map(|(goal, tally)| (goal.to_string(), tally.conversions))
                .collect(),
            revenue_cents: self.totals.revenue_cents,
            max_generation: self.max_generation,
            geo_misses: self.geo_misses,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            ..CampaignSummary::default()
        }
    }

    pub(super) fn to_wire(&self, id: &str, held: u64) -> CampaignStats {
        let map = |m: &FastMap<Arc<str>, Counts>| {
            m.iter()
                .map(|(k, c)| (k.to_string(), c.to_wire()))
                .collect()
        };
        let mut by_kind_channel: std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>> =
            Default::default();
        for ((kind, channel), counts) in &self.by_kind_channel {
            by_kind_channel
                .entry(kind.to_string())
                .or_default()
                .insert(channel.to_string(), counts.to_wire());
        }
        CampaignStats {
            summary: self.summary(id),
            totals: self.totals.to_wire(),
            by_goal: self
                .by_goal
                .iter()
                .map(|(k, g)| (k.to_string(), g.clone()))
                .collect(),
            by_channel: map(&self.by_channel),
            by_sharer_kind: map(&self.by_sharer_kind),
            by_generation: (0u32..)
                .zip(&self.by_generation)
                .map(|(g, c)| (g, c.to_wire()))
                .collect(),
            by_sharer_kind_channel: by_kind_channel,
            unverified: self.unverified.clone(),
            held,
            ..CampaignStats::default()
        }
    }
}
