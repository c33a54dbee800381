//! A campaign's activity over time, per bucket: what the timeline draws and where a seek takes its
//! counters from. Filled from the server's timeline or from a file's arcs.

use bevy::prelude::*;
use viralglobe_protocol::{Timeline, TimelineBucket};

use crate::tally::{Counted, Tally};

/// Activity per time bucket over the replayed span.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ActivityTimeline {
    pub from_ms: i64,
    pub bucket_ms: i64,
    pub buckets: Vec<TimelineBucket>,
}

impl From<&Timeline> for ActivityTimeline {
    fn from(timeline: &Timeline) -> Self {
        Self {
            from_ms: timeline.from.0,
            bucket_ms: timeline.bucket_ms.max(1),
            buckets: timeline.buckets.clone(),
        }
    }
}

impl ActivityTimeline {
    /// `count` buckets over `from..=to`, of `arcs`.
    pub fn of_counted<'a>(
        (from, to): (i64, i64),
        arcs: impl IntoIterator<Item = Counted<'a>>,
        count: usize,
    ) -> Self {
        let bucket_ms = ((to - from) / count as i64 + 1).max(1);
        let mut buckets = vec![TimelineBucket::default(); count];
        for arc in arcs {
            let index = ((arc.ts - from).max(0) / bucket_ms) as usize;
            buckets[index.min(count - 1)].count(arc.kind, arc.goal, arc.value_cents);
        }
        Self {
            from_ms: from,
            bucket_ms,
            buckets,
        }
    }

    /// Counters of the whole buckets before `ts_ms` (no split by channel).
    pub fn counts_before(&self, ts_ms: i64) -> Tally {
        let whole = ((ts_ms - self.from_ms).max(0) / self.bucket_ms) as usize;
        let mut sum = TimelineBucket::default();
        for bucket in self.buckets.iter().take(whole) {
            sum += *bucket;
        }
        Tally {
            counts: sum,
            ..default()
        }
    }

    /// Each bucket's height, 0 to 1, on a log scale so quiet days still show.
    pub fn heights(&self) -> Vec<f32> {
        let activity = |b: &TimelineBucket| {
            ((b.shares + b.clicks + b.signups + b.purchases + b.other_conversions) as f32).ln_1p()
        };
        let max = self
            .buckets
            .iter()
            .map(activity)
            .fold(0.0, f32::max)
            .max(1e-6);
        self.buckets.iter().map(|b| activity(b) / max).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::arc;
    use viralglobe_protocol::ArcKind;

    #[test]
    fn buckets_count_arcs_and_sum_before_a_time() {
        let arcs: Vec<_> = (0..100).map(|s| arc(s, ArcKind::Click, 0)).collect();
        let file = crate::replay::arc_file::ArcFile {
            arcs: arcs.iter().cloned().collect(),
            skipped: vec![],
        };
        let timeline = ActivityTimeline::of_counted(file.span(), file.arcs.counted(0..100), 10);
        assert_eq!(timeline.buckets.iter().map(|b| b.clicks).sum::<u64>(), 100);
        assert!(
            timeline.bucket_ms * 10 > 99_000,
            "ten buckets cover the span"
        );
        let halfway = arcs[50].ts.0;
        assert_eq!(timeline.counts_before(halfway).counts.clicks, 50);
        assert!(timeline.heights().iter().all(|h| (0.0..=1.0).contains(h)));
    }
}
