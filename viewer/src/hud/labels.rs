//! Place names where the action is: the busiest destinations of the last few seconds that face the
//! camera.

use std::collections::HashMap;

use bevy::prelude::*;

use super::{TEXT, font};
use crate::{AppSystems, feed::NewArcs, geo::to_unit};

/// Names shown at once.
const LABELS: usize = 6;
/// Seconds over which a city's activity fades by e (at 1/e after this long).
const MEMORY_SECS: f32 = 8.0;

#[derive(Resource, Debug, Default)]
pub struct CityActivity {
    cities: HashMap<String, (Vec3, f32)>,
}

impl CityActivity {
    fn note(&mut self, name: &str, at: Vec3) {
        match self.cities.get_mut(name) {
            Some((_, score)) => *score += 1.0,
            None => {
                self.cities.insert(name.to_owned(), (at, 1.0));
            }
        }
    }

    /// The busiest cities, busiest first.
    pub fn busiest(&self, n: usize, facing: impl Fn(Vec3) -> bool) -> Vec<(&str, Vec3)> {
        let mut cities: Vec<_> = self
            .cities
            .iter()
            .filter(|(_, (at, score))| *score > 0.5 && facing(*at))
            .collect();
        cities.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        cities
            .into_iter()
            .take(n)
            .map(|(name, (at, _))| (name.as_str(), *at))
            .collect()
    }
}

#[derive(Component)]
struct PlaceLabel;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<CityActivity>()
        .add_systems(Startup, spawn)
        .add_systems(Update, note_arrivals.in_set(AppSystems::Apply))
        .add_systems(Update, place.in_set(AppSystems::Present));
}

fn spawn(mut commands: Commands) {
    for _ in 0..LABELS {
        commands.spawn((
            PlaceLabel,
            Text::new(""),
            font(1.7),
            TextColor(TEXT.with_alpha(0.85)),
            Node {
                position_type: PositionType::Absolute,
                ..default()
            },
            Visibility::Hidden,
        ));
    }
}

fn note_arrivals(
    mut arcs: MessageReader<NewArcs>,
    mut activity: ResMut<CityActivity>,
    time: Res<Time>,
) {
    let fade = (-time.delta_secs() / MEMORY_SECS).exp();
    activity.cities.retain(|_, (_, score)| {
        *score *= fade;
        *score > 0.05
    });
    for arc in arcs.read().flat_map(|batch| &batch.0) {
        if let Some(city) = &arc.to.city {
            activity.note(city, to_unit(arc.to.lat, arc.to.lon));
        }
    }
}

fn place(
    activity: Res<CityActivity>,
    camera: Query<(&Camera, &GlobalTransform)>,
    mut labels: Query<(&mut Text, &mut Node, &mut Visibility), With<PlaceLabel>>,
) {
    let Ok((camera, camera_at)) = camera.single() else {
        return;
    };
    let eye = camera_at.translation();
    // A point faces the camera when it is on the near side of the globe, away from the rim.
    let facing = |at: Vec3| at.dot((eye - at).normalize_or_zero()) > 0.3;
    let busiest = activity.busiest(LABELS, facing);
    for (i, (mut text, mut node, mut visibility)) in labels.iter_mut().enumerate() {
        let spot = busiest.get(i).and_then(|(name, at)| {
            Some((name, camera.world_to_viewport(camera_at, *at * 1.01).ok()?))
        });
        match spot {
            Some((name, xy)) => {
                if text.0 != *name {
                    text.0 = (*name).to_owned();
                }
                node.left = Val::Px(xy.x + 6.0);
                node.top = Val::Px(xy.y - 8.0);
                visibility.set_if_neq(Visibility::Inherited);
            }
            None => {
                visibility.set_if_neq(Visibility::Hidden);
            }
        }
    }
}
