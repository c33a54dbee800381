//! The keys, on H or F1.

use bevy::prelude::*;

use super::{PANEL, TEXT, font};
use crate::AppSystems;

#[derive(Component)]
struct Help;

pub const KEYS: &str = "\
Space        pause / play the replay
Up / Down    faster / slower (0.1x to 10,000,000x)
Left/Right   seek back / forward 2% of the campaign
click        seek on the timeline
R            restart from the beginning
L            loop on / off
drag         turn the globe
scroll       zoom
F            follow the action on / off
P            presenter view
S            story mode: follow the biggest cascade, with captions
PgDn / PgUp  story mode: the next moment / back in a replay of a file,
             the next cascade / back otherwise (presentation remotes)
B            blank the screen / back
H, F1        this help";

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, toggle.in_set(AppSystems::Input));
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        Name::new("help"),
        Help,
        Node {
            position_type: PositionType::Absolute,
            left: Val::Percent(30.0),
            top: Val::Percent(30.0),
            padding: UiRect::all(Val::VMin(2.0)),
            ..default()
        },
        BackgroundColor(PANEL),
        Visibility::Hidden,
        children![(Text::new(KEYS), font(2.0), TextColor(TEXT))],
    ));
}

fn toggle(keys: Option<Res<ButtonInput<KeyCode>>>, mut help: Query<&mut Visibility, With<Help>>) {
    let Some(keys) = keys else { return };
    if keys.any_just_pressed([KeyCode::KeyH, KeyCode::F1]) {
        for mut visibility in &mut help {
            visibility.toggle_visible_hidden();
        }
    }
}
