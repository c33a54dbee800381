//! The replay timeline: activity over the whole campaign as bars, dates under it, the current day
//! marked and named, the playhead, click to seek.

use bevy::{prelude::*, ui::RelativeCursorPosition};

use super::{DIM_TEXT, PANEL, TEXT, font};
use crate::{
    AppSystems,
    activity::ActivityTimeline,
    replay::{Playback, ReplayCommand},
};

#[derive(Component)]
struct Track;
#[derive(Component)]
struct Bar;
#[derive(Component)]
struct Playhead;
/// The band of the day the playhead is in.
#[derive(Component)]
struct Today;
/// "day 12 of 60, Oct 27", above the track at the playhead.
#[derive(Component)]
struct TodayLabel;
/// A date under the track.
#[derive(Component)]
struct DateTick;

const DAY_MS: i64 = 86_400_000;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// "Oct 16" for a UTC time.
fn short_date(ms: i64) -> String {
    let text = viralglobe_protocol::Timestamp(ms).to_string();
    let month: usize = text[5..7].parse().unwrap_or(1);
    let day: u32 = text[8..10].parse().unwrap_or(1);
    format!("{} {day}", MONTHS[(month - 1).min(11)])
}

/// Midnight UTC at or before `ms`.
fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Dates to write under a span: UTC midnights every 1, 2, 7, 14 or 30 days (the first step
/// that gives at most `max`), each with where it falls across the span, 0 to 1.
pub(crate) fn date_ticks(from_ms: i64, to_ms: i64, max: usize) -> Vec<(f32, String)> {
    let span = (to_ms - from_ms).max(1);
    let days = span / DAY_MS + 1;
    let step = [1, 2, 7, 14, 30]
        .into_iter()
        .find(|step| days / step < max as i64)
        .unwrap_or(days / max.max(1) as i64 + 1);
    let mut tick = day_start(from_ms);
    if tick < from_ms {
        tick += DAY_MS;
    }
    let mut ticks = Vec::new();
    while tick <= to_ms {
        ticks.push((
            ((tick - from_ms) as f64 / span as f64) as f32,
            short_date(tick),
        ));
        tick += step * DAY_MS;
    }
    ticks
}

/// The day the playhead is in, counted from the campaign's first (1-based), of how many, and
/// where that day's band lies across the span (start and width, 0 to 1).
pub(crate) fn current_day(from_ms: i64, to_ms: i64, ts_ms: i64) -> (i64, i64, f32, f32) {
    let first = day_start(from_ms);
    let day = (ts_ms.clamp(from_ms, to_ms) - first).div_euclid(DAY_MS);
    let days = (to_ms - first).div_euclid(DAY_MS) + 1;
    let span = (to_ms - from_ms).max(1) as f64;
    let start = (first + day * DAY_MS).max(from_ms);
    let end = (first + (day + 1) * DAY_MS).min(to_ms);
    let at = ((start - from_ms) as f64 / span) as f32;
    let width = ((end - start).max(0) as f64 / span) as f32;
    (day + 1, days, at, width)
}

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, seek_on_click.in_set(AppSystems::Input))
        .add_systems(
            Update,
            (
                draw_bars.run_if(resource_exists_and_changed::<ActivityTimeline>),
                draw_dates,
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
        children![
            (
                Today,
                Node {
                    position_type: PositionType::Absolute,
                    top: Val::Px(0.0),
                    bottom: Val::Px(0.0),
                    ..default()
                },
                BackgroundColor(Color::srgba(1.0, 0.85, 0.3, 0.12)),
            ),
            (
                Playhead,
                Node {
                    position_type: PositionType::Absolute,
                    width: Val::VMin(0.3),
                    top: Val::Px(0.0),
                    bottom: Val::Px(0.0),
                    ..default()
                },
                BackgroundColor(Color::srgb(1.0, 0.85, 0.3)),
            ),
            (
                TodayLabel,
                Node {
                    position_type: PositionType::Absolute,
                    bottom: Val::Percent(100.0),
                    margin: UiRect::bottom(Val::VMin(0.4)),
                    ..default()
                },
                Text::new(""),
                font(1.6),
                TextColor(TEXT),
            ),
        ],
    ));
}

/// Writes the dates under the track whenever the replayed span changes.
fn draw_dates(
    mut commands: Commands,
    playback: Option<Res<Playback>>,
    track: Query<Entity, With<Track>>,
    ticks: Query<Entity, With<DateTick>>,
    mut drawn: Local<Option<(i64, i64)>>,
) {
    let span = playback.as_ref().map(|p| (p.from_ms, p.to_ms));
    if span == *drawn {
        return;
    }
    *drawn = span;
    ticks
        .iter()
        .for_each(|tick| commands.entity(tick).despawn());
    let (Some((from, to)), Ok(track)) = (span, track.single()) else {
        return;
    };
    commands.entity(track).with_children(|track| {
        for (at, label) in date_ticks(from, to, 9) {
            track.spawn((
                DateTick,
                Node {
                    position_type: PositionType::Absolute,
                    left: Val::Percent(at * 100.0),
                    top: Val::Percent(100.0),
                    margin: UiRect::top(Val::VMin(0.3)),
                    ..default()
                },
                Text::new(label),
                font(1.3),
                TextColor(DIM_TEXT),
            ));
        }
    });
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

/// The playhead's node, apart from the other nodes the same system moves.
type PlayheadOnly = (With<Playhead>, Without<Today>, Without<TodayLabel>);

fn move_playhead(
    playback: Option<Res<Playback>>,
    mut track: Query<&mut Visibility, With<Track>>,
    mut playhead: Query<&mut Node, PlayheadOnly>,
    mut today: Query<&mut Node, (With<Today>, Without<TodayLabel>)>,
    mut label: Query<(&mut Node, &mut Text), With<TodayLabel>>,
) {
    for mut visibility in &mut track {
        let shown = if playback.is_some() {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        visibility.set_if_neq(shown);
    }
    let Some(playback) = playback else { return };
    let progress = playback.progress();
    if let Ok(mut node) = playhead.single_mut() {
        node.left = Val::Percent(progress * 100.0);
    }
    let ts = playback.ts_ms as i64;
    let (day, days, at, width) = current_day(playback.from_ms, playback.to_ms, ts);
    if let Ok(mut node) = today.single_mut() {
        node.left = Val::Percent(at * 100.0);
        node.width = Val::Percent(width * 100.0);
    }
    if let Ok((mut node, mut text)) = label.single_mut() {
        // Beside the playhead, on whichever side leaves it room.
        if progress < 0.75 {
            node.left = Val::Percent(progress * 100.0);
            node.right = Val::Auto;
        } else {
            node.left = Val::Auto;
            node.right = Val::Percent((1.0 - progress) * 100.0);
        }
        let value = format!("day {day} of {days}, {}", short_date(ts));
        if text.0 != value {
            text.0 = value;
        }
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

    /// 2012-10-16 17:00 UTC, the demo's first post.
    const LAUNCH: i64 = 1_350_406_800_000;

    #[test]
    fn sixty_days_get_weekly_dates_at_utc_midnight() {
        let ticks = date_ticks(LAUNCH, LAUNCH + 60 * DAY_MS, 9);
        assert_eq!(ticks.len(), 9, "{ticks:?}");
        assert_eq!(ticks[0].1, "Oct 17");
        assert_eq!(ticks[1].1, "Oct 24");
        assert_eq!(ticks[2].1, "Oct 31");
        assert_eq!(ticks[3].1, "Nov 7");
        // Seven hours into the span: 7 h of 60 days.
        assert!((ticks[0].0 - 7.0 / (60.0 * 24.0)).abs() < 1e-4, "{ticks:?}");
        assert!(ticks.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ticks.iter().all(|(at, _)| (0.0..=1.0).contains(at)));
    }

    #[test]
    fn a_short_span_gets_every_day() {
        let ticks = date_ticks(LAUNCH, LAUNCH + 3 * DAY_MS, 9);
        let labels: Vec<_> = ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["Oct 17", "Oct 18", "Oct 19"]);
    }

    #[test]
    fn the_current_day_counts_from_the_first_and_spans_its_hours() {
        let end = LAUNCH + 60 * DAY_MS;
        // The launch day: from 17:00 to midnight, 7 of the span's hours.
        let (day, days, at, width) = current_day(LAUNCH, end, LAUNCH + 3_600_000);
        assert_eq!((day, days, at), (1, 61, 0.0));
        assert!((width - 7.0 / (60.0 * 24.0)).abs() < 1e-4);
        // Noon on the third calendar day.
        let noon = LAUNCH + 7 * 3_600_000 + DAY_MS + 12 * 3_600_000;
        let (day, _, at, width) = current_day(LAUNCH, end, noon);
        assert_eq!(day, 3);
        assert!((at - (7.0 + 24.0) / (60.0 * 24.0)).abs() < 1e-4);
        assert!((width - 1.0 / 60.0).abs() < 1e-4);
        assert_eq!(short_date(noon), "Oct 18");
    }
}
