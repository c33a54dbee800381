//! The campaign's counters as the HUD shows them, kept from the arcs themselves so they match
//! what the globe draws at any point of a replay.

use std::collections::BTreeMap;

use bevy::prelude::Resource;
use viralglobe_protocol::{ArcEvent, ArcKind, CampaignStats, CampaignSummary, TimelineBucket};

/// What counters and activity need of an arc, borrowed from wherever it is kept (an event, a
/// file's packed arcs).
pub struct Counted<'a> {
    pub ts: i64,
    pub kind: ArcKind,
    pub generation: u32,
    pub goal: Option<&'a str>,
    pub value_cents: u64,
    pub channel: &'a str,
}

#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Events by kind and goal (`other_conversions` also holds conversions whose goal a summary
    /// did not say).
    pub counts: TimelineBucket,
    pub max_generation: u32,
    /// Per channel: clicks and revenue, for value per visit.
    pub channels: BTreeMap<String, ChannelTally>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelTally {
    pub clicks: u64,
    pub revenue_cents: u64,
}

impl Tally {
    pub fn count(&mut self, arc: &ArcEvent) {
        self.count_counted(&Counted {
            ts: arc.ts.0,
            kind: arc.kind,
            generation: arc.generation,
            goal: arc.goal.as_deref(),
            value_cents: arc.value_cents.unwrap_or(0),
            channel: &arc.channel,
        });
    }

    pub fn count_counted(&mut self, arc: &Counted<'_>) {
        self.max_generation = self.max_generation.max(arc.generation);
        let value = arc.value_cents;
        self.counts.count(arc.kind, arc.goal, value);
        let channel = match self.channels.get_mut(arc.channel) {
            Some(channel) => channel,
            None => self.channels.entry(arc.channel.to_owned()).or_default(),
        };
        match arc.kind {
            ArcKind::Share => {}
            ArcKind::Click => channel.clicks += 1,
            ArcKind::Conversion => channel.revenue_cents += value,
        }
    }

    /// The counters of a file's arcs, read from where they are packed.
    pub fn of_counted<'a>(arcs: impl IntoIterator<Item = Counted<'a>>) -> Self {
        let mut tally = Self::default();
        arcs.into_iter().for_each(|arc| tally.count_counted(&arc));
        tally
    }

    #[cfg(test)]
    pub fn of_arcs<'a>(arcs: impl IntoIterator<Item = &'a ArcEvent>) -> Self {
        let mut tally = Self::default();
        arcs.into_iter().for_each(|arc| tally.count(arc));
        tally
    }

    /// The counters the server reports for a campaign, split by goal and channel.
    pub fn of_stats(stats: &CampaignStats) -> Self {
        let goal = |name: &str| stats.by_goal.get(name).map_or(0, |g| g.conversions);
        let (signups, purchases) = (goal("signup"), goal("purchase"));
        Self {
            counts: TimelineBucket {
                shares: stats.summary.shares,
                clicks: stats.summary.clicks,
                signups,
                purchases,
                other_conversions: stats
                    .summary
                    .conversions
                    .saturating_sub(signups + purchases),
                revenue_cents: stats.summary.revenue_cents,
            },
            max_generation: stats.summary.max_generation,
            channels: stats
                .by_channel
                .iter()
                .map(|(name, t)| {
                    let channel = ChannelTally {
                        clicks: t.clicks,
                        revenue_cents: t.revenue_cents,
                    };
                    (name.clone(), channel)
                })
                .collect(),
        }
    }

    /// The live feed's `hello` counters, summed over the campaigns it selects (no goal split).
    pub fn of_summaries(summaries: &[CampaignSummary]) -> Self {
        let mut tally = Self::default();
        for s in summaries {
            tally.counts += TimelineBucket {
                shares: s.shares,
                clicks: s.clicks,
                other_conversions: s.conversions,
                revenue_cents: s.revenue_cents,
                ..TimelineBucket::default()
            };
            tally.max_generation = tally.max_generation.max(s.max_generation);
        }
        tally
    }

    /// Dollars of revenue per click, by channel seen; `None` for a channel without a click yet
    /// (no visit is no data, not $0.00).
    pub fn value_per_visit(&self) -> Vec<(&str, Option<f64>)> {
        self.channels
            .iter()
            .map(|(name, c)| {
                let value =
                    (c.clicks > 0).then(|| c.revenue_cents as f64 / 100.0 / c.clicks as f64);
                (name.as_str(), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::arc;

    #[test]
    fn counts_by_kind_goal_and_channel() {
        let mut purchase = arc(3, ArcKind::Conversion, 2);
        purchase.goal = Some("purchase".into());
        purchase.value_cents = Some(1_500);
        let mut signup = arc(4, ArcKind::Conversion, 0);
        signup.goal = Some("signup".into());
        let tally = Tally::of_arcs(&[
            arc(1, ArcKind::Share, 1),
            arc(2, ArcKind::Click, 0),
            purchase,
            signup,
        ]);
        let c = tally.counts;
        assert_eq!(
            (c.shares, c.clicks, c.signups, c.purchases, c.revenue_cents),
            (1, 1, 1, 1, 1_500)
        );
        assert_eq!(tally.max_generation, 2);
        assert_eq!(tally.value_per_visit(), vec![("facebook", Some(15.0))]);
    }

    #[test]
    fn a_channel_without_a_visit_has_no_value_per_visit() {
        let mut share = arc(1, ArcKind::Share, 0);
        share.channel = "twitter".into();
        let tally = Tally::of_arcs(&[share, arc(2, ArcKind::Click, 0)]);
        assert_eq!(
            tally.value_per_visit(),
            vec![("facebook", Some(0.0)), ("twitter", None)]
        );
    }
}
