//! Replay keys: Space pause/play, ↑/↓ speed, ←/→ seek 2% of the span, R restart, L loop.

use bevy::prelude::*;

use super::ReplayCommand;
use crate::AppSystems;

pub const KEYS: [(KeyCode, ReplayCommand); 7] = [
    (KeyCode::Space, ReplayCommand::TogglePause),
    (KeyCode::ArrowUp, ReplayCommand::Faster),
    (KeyCode::ArrowDown, ReplayCommand::Slower),
    (KeyCode::ArrowRight, ReplayCommand::SeekBy(0.02)),
    (KeyCode::ArrowLeft, ReplayCommand::SeekBy(-0.02)),
    (KeyCode::KeyR, ReplayCommand::Restart),
    (KeyCode::KeyL, ReplayCommand::ToggleLoop),
];

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Update, read_keys.in_set(AppSystems::Input));
}

fn read_keys(keys: Option<Res<ButtonInput<KeyCode>>>, mut commands: MessageWriter<ReplayCommand>) {
    let Some(keys) = keys else { return };
    for (key, command) in KEYS {
        if keys.just_pressed(key) {
            commands.write(command);
        }
    }
}
