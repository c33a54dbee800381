//! The replay timeline: activity over the whole campaign as bars, the playhead, click to seek.

use bevy::{prelude::*, ui::RelativeCursorPosition};
use viralglobe_protocol::{ArcEvent, Timeline, TimelineBucket};

use super::PANEL;
use crate::{
    AppSystems,
    replay::{Playback, ReplayCommand},
    tally::Tally,
};

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
    /// `count` buckets over the span of `arcs` (sorted by time).
    pub fn of_arcs(arcs: &[ArcEvent], count: usize) -> Self {
        let from = arcs.first().map_or(0, |a| a.ts.0);
        let to = arcs.last().map_or(0, |a| a.ts.0);
        let bucket_ms = ((to - from) / count as i64 + 1).max(1);
        let mut buckets = vec![TimelineBucket::default(); count];
        for arc in arcs {
            let bucket = &mut buckets[(((arc.ts.0 - from) / bucket_ms) as usize).min(count - 1)];
            bucket.count(arc.kind, arc.goal.as_deref(), arc.value_cents.unwrap_or(0));
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
    fn heights(&self) -> Vec<f32> {
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

#[derive(Component)]
struct Track;
#[derive(Component)]
struct Bar;
#[derive(Component)]
struct Playhead;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, seek_on_click.in_set(AppSystems::Input))
        .add_systems(
            Update,
            (
                draw_bars.run_if(resource_exists_and_changed::<ActivityTimeline>),
                move_playhead,
            )
                .in_set(AppSystems::Present),
        );
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        Name::new("timeline"),
        Track,
        Node {
            position_type: PositionType::Absolute,
            left: Val::Percent(28.0),
            right: Val::Percent(3.0),
            bottom: Val::VMin(2.0),
            height: Val::VMin(7.0),
            align_items: AlignItems::FlexEnd,
            padding: UiRect::horizontal(Val::VMin(0.6)),
            ..default()
        },
        BackgroundColor(PANEL),
        RelativeCursorPosition::default(),
        Visibility::Hidden,
        children![(
            Playhead,
            Node {
                position_type: PositionType::Absolute,
                width: Val::VMin(0.3),
                top: Val::Px(0.0),
                bottom: Val::Px(0.0),
                ..default()
            },
            BackgroundColor(Color::srgb(1.0, 0.85, 0.3)),
        )],
    ));
}

fn draw_bars(
    mut commands: Commands,
    timeline: Res<ActivityTimeline>,
    track: Query<Entity, With<Track>>,
    bars: Query<Entity, With<Bar>>,
) {
    let Ok(track) = track.single() else { return };
    bars.iter().for_each(|bar| commands.entity(bar).despawn());
    let heights = timeline.heights();
    let width = 100.0 / heights.len().max(1) as f32;
    commands.entity(track).with_children(|track| {
        for height in heights {
            track.spawn((
                Bar,
                Node {
                    width: Val::Percent(width),
                    height: Val::Percent(4.0 + 90.0 * height),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.2, 0.7, 1.0, 0.35 + 0.5 * height)),
            ));
        }
    });
}

fn move_playhead(
    playback: Option<Res<Playback>>,
    mut track: Query<&mut Visibility, With<Track>>,
    mut playhead: Query<&mut Node, With<Playhead>>,
) {
    for mut visibility in &mut track {
        let shown = if playback.is_some() {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        visibility.set_if_neq(shown);
    }
    if let Some(playback) = playback
        && let Ok(mut node) = playhead.single_mut()
    {
        node.left = Val::Percent(playback.progress() * 100.0);
    }
}

fn seek_on_click(
    mouse: Option<Res<ButtonInput<MouseButton>>>,
    track: Query<&RelativeCursorPosition, With<Track>>,
    playback: Option<Res<Playback>>,
    mut commands: MessageWriter<ReplayCommand>,
) {
    let (Some(mouse), Some(playback)) = (mouse, playback) else {
        return;
    };
    if !mouse.just_pressed(MouseButton::Left) {
        return;
    }
    if let Ok(cursor) = track.single()
        && cursor.cursor_over()
        && let Some(at) = cursor.normalized
    {
        let fraction = (at.x + 0.5).clamp(0.0, 1.0) as f64;
        let span = (playback.to_ms - playback.from_ms) as f64;
        commands.write(ReplayCommand::Seek(
            playback.from_ms + (fraction * span) as i64,
        ));
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
        let timeline = ActivityTimeline::of_arcs(&arcs, 10);
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
