//! Story mode (`--story`, S): for a presenter on stage. The camera follows the campaign's biggest
//! cascade of the moment, flying to where its post landed and then out along its newest, deepest
//! generation (`director.rs`); captions say what just happened, from the data itself: a cast
//! post and its reach, a new generation reached, a revenue milestone (`captions.rs`).

mod captions;
mod director;

#[cfg(test)]
pub(crate) use captions::Captions;

use bevy::prelude::*;

use crate::AppSystems;

/// Whether story mode is on.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Story {
    pub on: bool,
}

pub fn plugin(on: bool) -> impl Fn(&mut App) {
    move |app: &mut App| {
        app.insert_resource(Story { on })
            .add_systems(Update, toggle.in_set(AppSystems::Input))
            .add_plugins((director::plugin, captions::plugin));
    }
}

fn toggle(keys: Option<Res<ButtonInput<KeyCode>>>, mut story: ResMut<Story>) {
    if keys.is_some_and(|k| k.just_pressed(KeyCode::KeyS)) {
        story.on = !story.on;
    }
}
