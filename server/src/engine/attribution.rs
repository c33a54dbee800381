//! Attribution by generation, kept up to date as lines are followed (so a restart, and any node
//! following the same log, reaches the same figures): root credit per cascade, delays from share
//! to click and conversion, and where visitors and buyers were.

use std::{collections::BTreeMap, sync::Arc};

use viralglobe_protocol::{
    Place, Tally, Timestamp,
    attribution::{
        Cascade, ChannelDelays, Delays, GenerationVirality, PlaceTally, Places, Quantiles,
        TopPlaces, Virality,
    },
};

use super::{
    stats::{Counts, MAX_SLICES, OTHER, slice},
    tree::ShareNode,
};
use crate::fast_hash::FastMap;

/// Places listed per ranking.
const TOP_PLACES: usize = 10;

/// One root share's cascade, generation by generation.
#[derive(Debug)]
struct CascadeCounts {
    channel: Arc<str>,
    sharer_kind: Option<Arc<str>>,
    reach: Option<u64>,
    by_generation: Vec<Counts>,
}

impl CascadeCounts {
    fn at(&mut self, generation: u32) -> &mut Counts {
        let g = generation as usize;
        if self.by_generation.len() <= g {
            self.by_generation.resize(g + 1, Counts::default());
        }
        &mut self.by_generation[g]
    }

    fn to_wire(&self, root: &str) -> Cascade {
        let mut totals = Counts::default();
        for counts in &self.by_generation {
            totals.add(counts);
        }
        Cascade {
            root: root.to_owned(),
            channel: self.channel.to_string(),
            sharer_kind: self.sharer_kind.as_deref().map(str::to_owned),
            reach: self.reach,
            totals: totals.to_wire(),
            depth: self.by_generation.len().saturating_sub(1) as u32,
            by_generation: (0u32..)
                .zip(&self.by_generation)
                .map(|(g, c)| (g, c.to_wire()))
                .collect(),
        }
    }
}

/// Delays in a log-scaled histogram: bucket 0 is under a second, then 16 buckets per doubling
/// (each about 4.4% wide) up to about a year.
#[derive(Debug, Default)]
struct DelayHistogram {
    counts: Vec<u64>,
    total: u64,
}

const DELAY_BUCKETS: usize = 16 * 25 + 1;

impl DelayHistogram {
    fn record(&mut self, delay_ms: i64) {
        let bucket = if delay_ms < 1_000 {
            0
        } else {
            let doublings = (delay_ms as f64 / 1_000.0).log2();
            (1 + (doublings * 16.0) as usize).min(DELAY_BUCKETS - 1)
        };
        if self.counts.is_empty() {
            self.counts = vec![0; DELAY_BUCKETS];
        }
        self.counts[bucket] += 1;
        self.total += 1;
    }

    /// The delay, in seconds, under which `fraction` of the samples fall: the middle of its
    /// bucket (half a second for the first).
    fn quantile(&self, fraction: f64) -> Option<f64> {
        let rank = ((self.total as f64 * fraction).ceil() as u64).max(1);
        let mut seen = 0;
        let bucket = self.counts.iter().position(|&c| {
            seen += c;
            seen >= rank
        })?;
        Some(match bucket {
            0 => 0.5,
            b => 2f64.powf((b as f64 - 0.5) / 16.0),
        })
    }

    fn to_wire(&self) -> Quantiles {
        Quantiles {
            count: self.total,
            p50_s: self.quantile(0.5),
            p90_s: self.quantile(0.9),
        }
    }
}

#[derive(Debug, Default)]
struct DelayCounts {
    click: DelayHistogram,
    conversion: DelayHistogram,
}

impl DelayCounts {
    fn to_wire(&self) -> ChannelDelays {
        ChannelDelays {
            share_to_click: self.click.to_wire(),
            share_to_conversion: self.conversion.to_wire(),
        }
    }
}

/// Clicks and revenue of one place.
#[derive(Debug, Default, Clone, Copy)]
struct PlaceCounts {
    clicks: u64,
    revenue_cents: u64,
}

/// Countries, and cities within them, each kind of list capped like every breakdown.
#[derive(Debug, Default)]
struct PlaceBook {
    countries: FastMap<Arc<str>, PlaceCounts>,
    cities: FastMap<Arc<str>, FastMap<Arc<str>, PlaceCounts>>,
}

impl PlaceBook {
    fn count(&mut self, place: &Place, other: &Arc<str>, f: impl Fn(&mut PlaceCounts)) {
        let country = place.country.as_deref().unwrap_or(OTHER);
        f(named(&mut self.countries, country, other));
        if let Some(city) = place.city.as_deref() {
            f(named(named(&mut self.cities, country, other), city, other));
        }
    }

    fn to_wire(&self) -> TopPlaces {
        let countries: Vec<PlaceTally> = self
            .countries
            .iter()
            .map(|(name, c)| PlaceTally {
                name: name.to_string(),
                country: None,
                clicks: c.clicks,
                revenue_cents: c.revenue_cents,
            })
            .collect();
        let cities: Vec<PlaceTally> = self
            .cities
            .iter()
            .flat_map(|(country, cities)| {
                cities.iter().map(move |(name, c)| PlaceTally {
                    name: name.to_string(),
                    country: Some(country.to_string()),
                    clicks: c.clicks,
                    revenue_cents: c.revenue_cents,
                })
            })
            .collect();
        TopPlaces {
            countries_by_clicks: top(&countries, |p| p.clicks),
            countries_by_revenue: top(&countries, |p| p.revenue_cents),
            cities_by_clicks: top(&cities, |p| p.clicks),
            cities_by_revenue: top(&cities, |p| p.revenue_cents),
        }
    }
}

/// `map`'s entry for `name`, its key allocated only the first time (this runs for every click);
/// past [`MAX_SLICES`] names, the entry of `other`, like every breakdown.
fn named<'m, V: Default>(
    map: &'m mut FastMap<Arc<str>, V>,
    name: &str,
    other: &Arc<str>,
) -> &'m mut V {
    if !map.contains_key(name) {
        let key = if map.len() >= MAX_SLICES {
            other.clone()
        } else {
            name.into()
        };
        return map.entry(key).or_default();
    }
    map.get_mut(name).expect("present, as just checked")
}

/// The first [`TOP_PLACES`] by `key` (ties by name), leaving out those at 0.
fn top(places: &[PlaceTally], key: impl Fn(&PlaceTally) -> u64) -> Vec<PlaceTally> {
    let mut ranked: Vec<&PlaceTally> = places.iter().filter(|p| key(p) > 0).collect();
    ranked.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then_with(|| (&a.name, &a.country).cmp(&(&b.name, &b.country)))
    });
    ranked.into_iter().take(TOP_PLACES).cloned().collect()
}

#[derive(Debug, Default)]
pub(super) struct AttributionAccumulator {
    cascades: FastMap<Arc<str>, CascadeCounts>,
    delays: DelayCounts,
    delays_by_channel: FastMap<Arc<str>, DelayCounts>,
    places: PlaceBook,
    places_by_channel: FastMap<Arc<str>, PlaceBook>,
    other: Option<Arc<str>>,
}

impl AttributionAccumulator {
    fn other(&mut self) -> Arc<str> {
        self.other.get_or_insert_with(|| OTHER.into()).clone()
    }

    /// The cascade `node` belongs to: its root's, made from `node` (normally the root itself,
    /// the first share of its cascade to resolve); past [`MAX_SLICES`] roots, the pooled
    /// `(other)` one.
    fn cascade(&mut self, node: &ShareNode) -> &mut CascadeCounts {
        let other = self.other();
        let pooled = !self.cascades.contains_key(&*node.root) && self.cascades.len() >= MAX_SLICES;
        let key = if pooled {
            other.clone()
        } else {
            node.root.arc()
        };
        self.cascades.entry(key).or_insert_with(|| CascadeCounts {
            channel: if pooled {
                other
            } else {
                node.via.channel.clone()
            },
            sharer_kind: node.via.sharer_kind.clone().filter(|_| !pooled),
            reach: node.reach.get().filter(|_| !pooled),
            by_generation: Vec::new(),
        })
    }

    pub(super) fn share(&mut self, node: &ShareNode) {
        let counts = self.cascade(node).at(node.generation);
        counts.shares += 1;
        counts.reach = counts.reach.saturating_add(node.reach.get().unwrap_or(0));
    }

    pub(super) fn click(&mut self, node: &ShareNode, place: Option<&Place>, ts: Timestamp) {
        self.cascade(node).at(node.generation).clicks += 1;
        self.delay(node, ts, |d| &mut d.click);
        self.place(node, place, |c| c.clicks += 1);
    }

    pub(super) fn conversion(
        &mut self,
        node: &ShareNode,
        place: Option<&Place>,
        ts: Timestamp,
        value_cents: u64,
    ) {
        let counts = self.cascade(node).at(node.generation);
        counts.conversions += 1;
        counts.revenue_cents = counts.revenue_cents.saturating_add(value_cents);
        self.delay(node, ts, |d| &mut d.conversion);
        self.place(node, place, |c| {
            c.revenue_cents = c.revenue_cents.saturating_add(value_cents);
        });
    }

    /// Records the delay from `node`'s share to `ts` in the histogram `which` picks, overall and
    /// for the share's channel.
    fn delay(
        &mut self,
        node: &ShareNode,
        ts: Timestamp,
        which: impl Fn(&mut DelayCounts) -> &mut DelayHistogram,
    ) {
        let delay = ts.0.saturating_sub(node.ts.0);
        which(&mut self.delays).record(delay);
        let other = self.other();
        let by_channel = slice(
            &mut self.delays_by_channel,
            node.via.channel.clone(),
            || other,
        );
        which(by_channel).record(delay);
    }

    fn place(&mut self, node: &ShareNode, place: Option<&Place>, f: impl Fn(&mut PlaceCounts)) {
        let Some(place) = place else { return };
        let other = self.other();
        self.places.count(place, &other, &f);
        let by_channel = slice(
            &mut self.places_by_channel,
            node.via.channel.clone(),
            || other.clone(),
        );
        by_channel.count(place, &other, &f);
    }

    /// The cascades, ranked by revenue, then clicks, then root id; at most `limit`.
    pub(super) fn cascades(&self, limit: usize) -> Vec<Cascade> {
        let mut cascades: Vec<Cascade> = self
            .cascades
            .iter()
            .map(|(root, c)| c.to_wire(root))
            .collect();
        cascades.sort_by(|a, b| {
            (b.totals.revenue_cents, b.totals.clicks)
                .cmp(&(a.totals.revenue_cents, a.totals.clicks))
                .then_with(|| a.root.cmp(&b.root))
        });
        cascades.truncate(limit);
        cascades
    }

    pub(super) fn delays(&self) -> Delays {
        Delays {
            all: self.delays.to_wire(),
            by_channel: self
                .delays_by_channel
                .iter()
                .map(|(channel, d)| (channel.to_string(), d.to_wire()))
                .collect(),
        }
    }

    pub(super) fn places(&self) -> Places {
        Places {
            all: self.places.to_wire(),
            by_channel: self
                .places_by_channel
                .iter()
                .map(|(channel, p)| (channel.to_string(), p.to_wire()))
                .collect(),
        }
    }
}

/// Virality from the campaign's counts by generation.
pub(super) fn virality(by_generation: &BTreeMap<u32, Tally>) -> Virality {
    let shares = |g: u32| by_generation.get(&g).map_or(0, |t| t.shares);
    let widest = by_generation
        .iter()
        .filter(|(_, t)| t.shares > 0)
        .max_by(|(ga, a), (gb, b)| a.shares.cmp(&b.shares).then(gb.cmp(ga)))
        .map(|(g, _)| *g);
    Virality {
        by_generation: by_generation
            .iter()
            .map(|(&g, tally)| {
                let k_factor = (shares(g) > 0).then(|| shares(g + 1) as f64 / shares(g) as f64);
                let virality = GenerationVirality {
                    tally: tally.clone(),
                    k_factor,
                };
                (g, virality)
            })
            .collect(),
        depth: by_generation.keys().next_back().copied().unwrap_or(0),
        widest_generation: widest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tree::{Name, Reach, Via};

    fn node(root: &str, generation: u32, channel: &str, ts_s: i64) -> ShareNode {
        ShareNode {
            campaign: Name::new("c".into()),
            generation,
            root: Name::new(root.into()),
            place: None,
            via: Arc::new(Via {
                channel: channel.into(),
                sharer_kind: Some(if generation == 0 { "cast" } else { "fan" }.into()),
            }),
            reach: Reach::new((generation == 0).then_some(100)),
            ts: Timestamp(ts_s * 1_000),
        }
    }

    fn place(city: &str, country: &str) -> Place {
        Place {
            lat: 0.0,
            lon: 0.0,
            city: Some(city.into()),
            country: Some(country.into()),
        }
    }

    /// Root A (Facebook) with children B and C, and D under B; a second root R (Twitter).
    /// Clicks: two on A, one on B, one on D; a $10 purchase through D, a $5 one through R.
    fn tree() -> AttributionAccumulator {
        let mut acc = AttributionAccumulator::default();
        let (a, b, c, d) = (
            node("A", 0, "facebook", 0),
            node("A", 1, "twitter", 20),
            node("A", 1, "facebook", 30),
            node("A", 2, "facebook", 50),
        );
        let r = node("R", 0, "twitter", 0);
        for share in [&a, &b, &c, &d, &r] {
            acc.share(share);
        }
        let la = place("Los Angeles", "US");
        acc.click(&a, Some(&la), Timestamp(10_000));
        acc.click(&a, Some(&la), Timestamp(10_000));
        acc.click(&b, Some(&place("Berlin", "DE")), Timestamp(120_000));
        let tokyo = place("Tokyo", "JP");
        acc.click(&d, Some(&tokyo), Timestamp(3_650_000));
        acc.conversion(&d, Some(&tokyo), Timestamp(7_250_000), 1_000);
        acc.conversion(&r, None, Timestamp(60_000), 500);
        acc
    }

    #[test]
    fn a_conversion_is_credited_to_its_root_at_its_share_s_generation() {
        let cascades = tree().cascades(10);
        let roots: Vec<&str> = cascades.iter().map(|c| c.root.as_str()).collect();
        assert_eq!(roots, ["A", "R"], "ranked by revenue");
        let a = &cascades[0];
        assert_eq!(
            (a.channel.as_str(), a.sharer_kind.as_deref()),
            ("facebook", Some("cast"))
        );
        assert_eq!(
            (
                a.totals.shares,
                a.totals.clicks,
                a.totals.conversions,
                a.totals.revenue_cents
            ),
            (4, 4, 1, 1_000)
        );
        assert_eq!(a.depth, 2);
        let by_generation: Vec<(u64, u64, u64)> = a
            .by_generation
            .values()
            .map(|t| (t.shares, t.clicks, t.revenue_cents))
            .collect();
        assert_eq!(by_generation, [(1, 2, 0), (2, 1, 0), (1, 1, 1_000)]);
        assert_eq!(cascades[1].totals.revenue_cents, 500);
        assert_eq!(tree().cascades(1).len(), 1, "limited");
    }

    #[test]
    fn virality_is_child_shares_per_share_of_each_generation() {
        let tally = |shares| Tally {
            shares,
            ..Tally::default()
        };
        let counts = BTreeMap::from([(0, tally(2)), (1, tally(2)), (2, tally(1))]);
        let virality = virality(&counts);
        let k: Vec<Option<f64>> = virality
            .by_generation
            .values()
            .map(|g| g.k_factor)
            .collect();
        assert_eq!(k, [Some(1.0), Some(0.5), Some(0.0)]);
        assert_eq!(virality.depth, 2);
        assert_eq!(
            virality.widest_generation,
            Some(0),
            "a tie goes to the earlier"
        );
    }

    #[test]
    fn delays_are_quantiles_within_five_percent() {
        let delays = tree().delays();
        let clicks = &delays.all.share_to_click;
        assert_eq!(clicks.count, 4);
        let near =
            |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() / want <= 0.05);
        assert!(near(clicks.p50_s, 10.0), "{clicks:?}");
        assert!(near(clicks.p90_s, 3_600.0), "{clicks:?}");
        let twitter = &delays.by_channel["twitter"];
        assert!(near(twitter.share_to_click.p50_s, 100.0), "{twitter:?}");
        assert!(near(twitter.share_to_conversion.p50_s, 60.0), "{twitter:?}");
        assert_eq!(delays.all.share_to_conversion.count, 2);
    }

    #[test]
    fn places_rank_by_clicks_and_by_revenue() {
        let places = tree().places();
        let names =
            |list: &[PlaceTally]| -> Vec<String> { list.iter().map(|p| p.name.clone()).collect() };
        assert_eq!(names(&places.all.countries_by_clicks), ["US", "DE", "JP"]);
        assert_eq!(names(&places.all.countries_by_revenue), ["JP"]);
        assert_eq!(
            names(&places.all.cities_by_clicks),
            ["Los Angeles", "Berlin", "Tokyo"]
        );
        assert_eq!(
            places.all.cities_by_clicks[0].country.as_deref(),
            Some("US")
        );
        assert_eq!(
            names(&places.by_channel["twitter"].cities_by_clicks),
            ["Berlin"]
        );
    }
}
