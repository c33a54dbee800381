//! The HUD's top band: the campaign panel on the left, the counters panel on the right, and story
//! mode's captions between them. Laid out side by side in one row, so however long a campaign's
//! name or a caption, none covers another: the caption wraps in the room the panels leave.

use bevy::prelude::*;

/// The three places in the top band, for the plugins that fill them.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopSlot {
    Left,
    Middle,
    Right,
}

pub(super) fn plugin(app: &mut App) {
    // Before the panels and captions look for their places at Startup.
    app.add_systems(PreStartup, spawn);
}

fn spawn(mut commands: Commands) {
    let side = |slot| {
        (
            slot,
            Node {
                flex_shrink: 0.0,
                ..default()
            },
        )
    };
    commands.spawn((
        Name::new("top band"),
        Node {
            position_type: PositionType::Absolute,
            top: Val::VMin(2.0),
            left: Val::VMin(2.0),
            right: Val::VMin(2.0),
            flex_direction: FlexDirection::Row,
            align_items: AlignItems::FlexStart,
            column_gap: Val::VMin(2.0),
            ..default()
        },
        children![
            side(TopSlot::Left),
            (
                TopSlot::Middle,
                Node {
                    flex_grow: 1.0,
                    flex_shrink: 1.0,
                    min_width: Val::Px(0.0),
                    justify_content: JustifyContent::Center,
                    ..default()
                },
            ),
            side(TopSlot::Right),
        ],
    ));
}

/// The entity of `slot`, once the band is there.
pub fn find(slots: &Query<(Entity, &TopSlot)>, slot: TopSlot) -> Option<Entity> {
    slots.iter().find(|(_, s)| **s == slot).map(|(e, _)| e)
}
