//! What the campaign's sharing brought, as the server's statistics say at connect: the headline
//! the HUD shows under the counters.

use bevy::prelude::Resource;
use viralglobe_protocol::CampaignStats;

#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct Attribution {
    /// Child shares per campaign post (the roots' k-factor).
    pub k_factor: Option<f64>,
    /// Median seconds from a share to a click on it.
    pub click_delay_s: Option<f64>,
    /// The country with the most clicks.
    pub top_country: Option<String>,
}

impl Attribution {
    pub fn of_stats(stats: &CampaignStats) -> Self {
        Self {
            k_factor: stats
                .virality
                .by_generation
                .get(&0)
                .and_then(|g| g.k_factor),
            click_delay_s: stats.delays.all.share_to_click.p50_s,
            top_country: stats
                .places
                .all
                .countries_by_clicks
                .first()
                .map(|p| p.name.clone()),
        }
    }

    /// The HUD's lines; empty until the statistics say anything.
    pub fn headline(&self) -> String {
        let mut lines = Vec::new();
        if let Some(k) = self.k_factor {
            lines.push(format!("{k:.1}  child shares per post"));
        }
        if let Some(s) = self.click_delay_s {
            lines.push(format!("{}  share to visit, median", duration(s)));
        }
        if let Some(country) = &self.top_country {
            lines.push(format!("{country}  most visits"));
        }
        lines.join("\n")
    }
}

fn duration(s: f64) -> String {
    match s {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5_400.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3_600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use viralglobe_protocol::attribution::{GenerationVirality, PlaceTally};

    use super::*;

    #[test]
    fn the_headline_comes_from_the_stats_and_says_nothing_it_does_not_know() {
        assert_eq!(Attribution::default().headline(), "");
        let mut stats = CampaignStats::default();
        stats.virality.by_generation.insert(
            0,
            GenerationVirality {
                k_factor: Some(595.8),
                ..GenerationVirality::default()
            },
        );
        stats.delays.all.share_to_click.p50_s = Some(12_240.0);
        stats.places.all.countries_by_clicks.push(PlaceTally {
            name: "US".into(),
            ..PlaceTally::default()
        });
        let headline = Attribution::of_stats(&stats).headline();
        assert_eq!(
            headline,
            "595.8  child shares per post\n3.4 h  share to visit, median\nUS  most visits"
        );
    }
}
