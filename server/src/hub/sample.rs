//! A bounded rate for the subscribers of one group (`max_rate`): each tick a token bucket says
//! how many of the arcs their filter selects go out, never more than the rate in any second.
//! Shares and conversions go before clicks, and the clicks taken are spread over the tick's, so
//! the sample is faithful to where clicks land; every subscriber of the group gets the same arcs.

use std::time::Instant;

use viralglobe_protocol::ArcKind;

/// The share of the rate a group may keep unused: a tenth of a second's (at least one arc).
/// Arcs come in bursts (a batch, a broker's read): this lets a burst a tenth of a second after
/// the last take its share of the rate. The bucket fills at the other nine tenths, so no second
/// gets more than the rate.
const BURST: f64 = 0.1;

pub(super) struct Sampler {
    /// Arcs a second: the rate asked for.
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Sampler {
    pub(super) fn new(rate: u32, now: Instant) -> Self {
        let mut sampler = Self {
            rate: f64::from(rate),
            tokens: 0.0,
            last: now,
        };
        sampler.tokens = sampler.burst();
        sampler
    }

    fn burst(&self) -> f64 {
        (self.rate * BURST).max(1.0)
    }

    /// When it last chose.
    pub(super) fn last_used(&self) -> Instant {
        self.last
    }

    /// Which of the arcs of these kinds (in order) go out now: their indices, in order.
    pub(super) fn choose(&mut self, kinds: &[ArcKind], now: Instant) -> Vec<usize> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let fill = self.rate * (1.0 - BURST);
        self.tokens = (self.tokens + fill * elapsed).min(self.burst());
        let chosen = self.pick(kinds, self.tokens.floor() as usize);
        self.tokens -= chosen.len() as f64;
        chosen
    }

    /// `budget` of the arcs: all when they fit, else shares and conversions first, then clicks
    /// spread evenly.
    fn pick(&self, kinds: &[ArcKind], budget: usize) -> Vec<usize> {
        if kinds.len() <= budget {
            return (0..kinds.len()).collect();
        }
        let mut chosen: Vec<usize> = (0..kinds.len())
            .filter(|&i| kinds[i] != ArcKind::Click)
            .take(budget)
            .collect();
        let clicks: Vec<usize> = (0..kinds.len())
            .filter(|&i| kinds[i] == ArcKind::Click)
            .collect();
        let room = budget - chosen.len();
        // `room` of the clicks, evenly spaced: the first, then every len/room-th.
        chosen.extend((0..room).map(|k| clicks[k * clicks.len() / room]));
        chosen.sort_unstable();
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TICK: Duration = Duration::from_millis(10);

    /// Ten seconds of ticks of `per_tick` arcs (a share every tenth), at `rate`: the arcs sent.
    fn run(rate: u32, per_tick: usize) -> (usize, usize) {
        let start = Instant::now();
        let mut sampler = Sampler::new(rate, start);
        let kinds: Vec<ArcKind> = (0..per_tick)
            .map(|i| {
                if i % 10 == 0 {
                    ArcKind::Share
                } else {
                    ArcKind::Click
                }
            })
            .collect();
        let (mut sent, mut shares) = (0, 0);
        for tick in 1..=1_000 {
            let chosen = sampler.choose(&kinds, start + TICK * tick);
            assert!(chosen.windows(2).all(|w| w[0] < w[1]), "in order");
            shares += chosen
                .iter()
                .filter(|&&i| kinds[i] == ArcKind::Share)
                .count();
            sent += chosen.len();
        }
        (sent, shares)
    }

    #[test]
    fn sends_at_most_the_rate_and_shares_first() {
        // 2,000 arcs a second (200 shares) at 50 a second: shares alone are over the rate.
        let (sent, shares) = run(50, 20);
        assert!((450..=455).contains(&sent), "{sent} in 10 s at 50/s");
        // Each tick's shares go first; only the first tick (the burst) had room for clicks.
        assert!(shares * 10 >= sent * 9, "{shares} shares of {sent}");
        // 1,000 a second (100 shares) at 300: every share, clicks for the rest.
        let (sent, shares) = run(300, 10);
        assert!((2_700..=2_730).contains(&sent), "{sent} in 10 s at 300/s");
        assert_eq!(shares, 1_000);
    }

    /// However the arcs come, no second sees more than the rate.
    #[test]
    fn no_second_gets_more_than_the_rate() {
        let start = Instant::now();
        let mut sampler = Sampler::new(100, start);
        let kinds = vec![ArcKind::Click; 40];
        let mut sends = Vec::new();
        for tick in 0..500 {
            let at = start + TICK * tick;
            sends.extend(sampler.choose(&kinds, at).iter().map(|_| at));
        }
        for (i, &from) in sends.iter().enumerate() {
            let second = Duration::from_secs(1);
            let within = sends[i..]
                .iter()
                .take_while(|&&t| t < from + second)
                .count();
            assert!(within <= 100, "{within} arcs in a second from {i}");
        }
        assert!(sends.len() >= 455, "{} in 5 s at 100/s", sends.len());
    }

    #[test]
    fn under_the_rate_everything_goes() {
        assert_eq!(run(1_000, 5), (5_000, 1_000));
    }

    #[test]
    fn the_clicks_taken_are_spread_over_the_tick() {
        let now = Instant::now();
        let mut sampler = Sampler::new(400, now);
        let kinds = vec![ArcKind::Click; 40];
        let first = sampler.choose(&kinds, now);
        assert_eq!(first, (0..40).collect::<Vec<_>>(), "the burst takes all 40");
        // 3.6 tokens a tick (nine tenths of 400/s): 3 of the 40, spread.
        assert_eq!(sampler.choose(&kinds, now + TICK), [0, 13, 26]);
    }
}
