//! The replay timeline: activity over the whole campaign as bars, the playhead, click to seek.

use bevy::{prelude::*, ui::RelativeCursorPosition};

use super::PANEL;
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
