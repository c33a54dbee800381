//! The published figures of the Bones Brigade launch, checked against a campaign's statistics:
//! by the demo's generator (`cargo xtask demo-generate`) and by the tests of the served demo.

use std::fmt;

use viralglobe_protocol::{CampaignStats, Tally};

/// How close a measured figure must be to pass.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// Within this absolute difference of the published value.
    Within(f64),
    /// Between the two bounds ("roughly even", "more than 2x").
    Between(f64, f64),
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: &'static str,
    pub published: f64,
    pub measured: f64,
    pub check: Check,
}

impl Figure {
    pub fn holds(&self) -> bool {
        match self.check {
            Check::Within(d) => (self.measured - self.published).abs() <= d,
            Check::Between(lo, hi) => (lo..=hi).contains(&self.measured),
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.holds() { "ok  " } else { "MISS" };
        write!(
            f,
            "{mark} {:<52} published {:>8.3}  measured {:>8.3}",
            self.name, self.published, self.measured
        )
    }
}

const DOLLAR: Check = Check::Within(0.05);
const POINT: Check = Check::Within(1.0);
const ECTR_POINT: Check = Check::Within(0.1);

fn pct(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        100.0 * part / whole
    }
}

/// Every row of the published table, with what `stats` measures for it.
pub fn published(stats: &CampaignStats) -> Vec<Figure> {
    let empty = Tally::default();
    let kind = |k: &str| stats.by_sharer_kind.get(k).unwrap_or(&empty);
    let slice = |k: &str, ch: &str| {
        stats
            .by_sharer_kind_channel
            .get(k)
            .and_then(|m| m.get(ch))
            .unwrap_or(&empty)
    };
    let vpv = |t: &Tally| t.value_per_visit.unwrap_or(0.0);
    let ectr = |t: &Tally| 100.0 * t.ectr.unwrap_or(0.0);
    let per_share = |t: &Tally| t.clicks_per_share.unwrap_or(0.0);
    let (fan, cast) = (kind("fan"), kind("cast"));
    let (fan_fb, fan_tw) = (slice("fan", "facebook"), slice("fan", "twitter"));
    let (cast_fb, cast_tw) = (slice("cast", "facebook"), slice("cast", "twitter"));
    let twitter = stats.by_channel.get("twitter").unwrap_or(&empty);
    // Published as Twitter 82.0% / Facebook 18.0% of the cast's share-driven revenue: all of it.
    let cast_revenue = cast.revenue_cents as f64;
    let figure = |name, published, measured, check| Figure {
        name,
        published,
        measured,
        check,
    };
    vec![
        figure(
            "average value per visit, all sharing ($)",
            1.59,
            vpv(&stats.totals),
            DOLLAR,
        ),
        figure(
            "value per visit from the cast's shares ($)",
            2.11,
            vpv(cast),
            DOLLAR,
        ),
        figure(
            "value per visit from fans' shares ($)",
            1.21,
            vpv(fan),
            DOLLAR,
        ),
        figure(
            "fans' shares going to Facebook (%)",
            87.8,
            pct(fan_fb.shares as f64, fan.shares as f64),
            POINT,
        ),
        figure(
            "fans' shares going to Twitter (%)",
            12.2,
            pct(fan_tw.shares as f64, fan.shares as f64),
            POINT,
        ),
        figure(
            "fans' value per visit, Facebook ($)",
            1.29,
            vpv(fan_fb),
            DOLLAR,
        ),
        figure(
            "fans' value per visit, Twitter ($)",
            0.60,
            vpv(fan_tw),
            DOLLAR,
        ),
        figure(
            "cast's shares, Facebook per Twitter (roughly even)",
            1.0,
            cast_fb.shares as f64 / cast_tw.shares.max(1) as f64,
            Check::Between(0.67, 1.5),
        ),
        figure(
            "cast's share-driven revenue from Twitter (%)",
            82.0,
            pct(cast_tw.revenue_cents as f64, cast_revenue),
            POINT,
        ),
        figure(
            "cast's share-driven revenue from Facebook (%)",
            18.0,
            pct(cast_fb.revenue_cents as f64, cast_revenue),
            POINT,
        ),
        figure(
            "cast's value per visit, Facebook ($)",
            1.93,
            vpv(cast_fb),
            DOLLAR,
        ),
        figure(
            "cast's value per visit, Twitter ($)",
            2.07,
            vpv(cast_tw),
            DOLLAR,
        ),
        figure("cast's eCTR, Facebook (%)", 1.10, ectr(cast_fb), ECTR_POINT),
        figure("cast's eCTR, Twitter (%)", 2.82, ectr(cast_tw), ECTR_POINT),
        figure(
            "cast's visits per share, Twitter over Facebook (more than 2x)",
            2.0,
            per_share(cast_tw) / per_share(cast_fb).max(f64::MIN_POSITIVE),
            Check::Between(2.0, f64::INFINITY),
        ),
        figure(
            "Twitter's part of all share-driven traffic (%)",
            40.3,
            pct(twitter.clicks as f64, stats.totals.clicks as f64),
            POINT,
        ),
        figure(
            "Twitter's part of all share-driven revenue (%)",
            47.3,
            pct(
                twitter.revenue_cents as f64,
                stats.totals.revenue_cents as f64,
            ),
            POINT,
        ),
        figure(
            "share-driven sales, 6 figures ($)",
            100_000.0,
            stats.totals.revenue_cents as f64 / 100.0,
            Check::Between(100_000.0, 999_999.99),
        ),
        figure(
            "mailing-list sign-ups (more than 46,000)",
            46_000.0,
            stats
                .by_goal
                .get("signup")
                .map_or(0.0, |g| g.conversions as f64),
            Check::Between(46_000.0, f64::INFINITY),
        ),
    ]
}
