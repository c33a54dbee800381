//! What the colours mean.

use bevy::prelude::*;

use super::{DIM_TEXT, PANEL, TEXT, font};
use crate::{arcs::palette, globe::density};

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn);
}

fn spawn(mut commands: Commands) {
    commands
        .spawn((
            Name::new("legend"),
            Node {
                position_type: PositionType::Absolute,
                left: Val::VMin(2.0),
                bottom: Val::VMin(2.0),
                flex_direction: FlexDirection::Column,
                row_gap: Val::VMin(0.5),
                padding: UiRect::all(Val::VMin(1.2)),
                ..default()
            },
            BackgroundColor(PANEL),
        ))
        .with_children(|legend| {
            legend.spawn((Text::new("arcs"), font(1.5), TextColor(DIM_TEXT)));
            // The arcs' colours, then the density layer's dots (`globe/density.rs`).
            let entries = palette::legend()
                .into_iter()
                .map(|(color, label)| (Color::from(color), label))
                .chain([(
                    density::LIGHT_COLOR,
                    "lights: where arcs landed lately".to_owned(),
                )]);
            for (color, label) in entries {
                legend
                    .spawn(Node {
                        column_gap: Val::VMin(0.8),
                        align_items: AlignItems::Center,
                        ..default()
                    })
                    .with_children(|row| {
                        row.spawn((
                            Node {
                                width: Val::VMin(1.6),
                                height: Val::VMin(0.5),
                                ..default()
                            },
                            BackgroundColor(color),
                        ));
                        row.spawn((Text::new(label), font(1.5), TextColor(TEXT)));
                    });
            }
        });
}
