//! Place names where the action is: the busiest destinations of the last few seconds that face the
//! camera, placed so that no two overlap (beside their city on either side, or above or below it;
//! a name that fits nowhere is left out rather than drawn over another). A city closer to a busier
//! named one than that name is wide goes under the busier name (no "Brooklyn" beside "New York").

use std::collections::HashMap;

use bevy::prelude::*;

use super::{TEXT, font};
use crate::{AppSystems, feed::NewArcs, geo::to_unit};

/// Names shown at once, at most.
const LABELS: usize = 6;
/// Cities considered for them, busiest first.
const CANDIDATES: usize = 16;
/// The labels' font size, in hundredths of the window's smaller side.
const FONT_VMIN: f32 = 1.7;
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
            font(FONT_VMIN),
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
    camera: Query<(&Camera, &Transform)>,
    mut labels: Query<(&mut Text, &mut Node, &mut Visibility), With<PlaceLabel>>,
) {
    let Ok((camera, camera_at)) = camera.single() else {
        return;
    };
    // Where the camera is this frame: its GlobalTransform is propagated only after Update, and
    // reading it put every name where its city was a frame ago — far off in a rendered video,
    // whose story camera moves minutes of campaign time between frames. The camera has no parent.
    let camera_at = GlobalTransform::from(*camera_at);
    let eye = camera_at.translation();
    // A point faces the camera when it is on the near side of the globe, away from the rim.
    let facing = |at: Vec3| at.dot((eye - at).normalize_or_zero()) > 0.3;
    let anchors: Vec<(&str, Vec2)> = activity
        .busiest(CANDIDATES, facing)
        .into_iter()
        .filter_map(|(name, at)| {
            Some((name, camera.world_to_viewport(&camera_at, at * 1.01).ok()?))
        })
        .collect();
    let font_px = camera
        .logical_viewport_size()
        .map_or(12.0, |size| size.min_element() * FONT_VMIN / 100.0);
    let placed = place_without_overlap(&anchors, font_px, LABELS);
    for (i, (mut text, mut node, mut visibility)) in labels.iter_mut().enumerate() {
        match placed.get(i) {
            Some((name, rect)) => {
                if text.0 != *name {
                    text.0 = (*name).to_owned();
                }
                node.left = Val::Px(rect.min.x);
                node.top = Val::Px(rect.min.y);
                visibility.set_if_neq(Visibility::Inherited);
            }
            None => {
                visibility.set_if_neq(Visibility::Hidden);
            }
        }
    }
}

/// Boxes for as many of `anchors` (busiest first) as fit, at most `max`: each name's box, sized
/// from its length, goes right of its city, else left, above or below, wherever it overlaps no
/// box placed before it (nor any city dot of a placed name). A city within a placed name's width
/// of that name's city is merged into it: not named.
fn place_without_overlap<'a>(
    anchors: &[(&'a str, Vec2)],
    font_px: f32,
    max: usize,
) -> Vec<(&'a str, Rect)> {
    let mut placed: Vec<(&str, Rect)> = Vec::new();
    let mut named: Vec<(Vec2, f32)> = Vec::new();
    for &(name, at) in anchors {
        if placed.len() == max {
            break;
        }
        if named.iter().any(|(city, width)| city.distance(at) < *width) {
            continue;
        }
        let size = Vec2::new(name.chars().count() as f32 * font_px * 0.62, font_px * 1.3);
        let gap = font_px * 0.4;
        let spots = [
            Vec2::new(at.x + gap, at.y - size.y / 2.0),
            Vec2::new(at.x - gap - size.x, at.y - size.y / 2.0),
            // Above and below, clear of names beside the same point.
            Vec2::new(at.x - size.x / 2.0, at.y - size.y * 1.5 - gap),
            Vec2::new(at.x - size.x / 2.0, at.y + size.y / 2.0 + gap),
        ];
        let free = |rect: &Rect| {
            placed
                .iter()
                .all(|(_, other)| rect.intersect(*other).is_empty())
        };
        if let Some(rect) = spots
            .into_iter()
            .map(|min| Rect::from_corners(min, min + size))
            .find(free)
        {
            placed.push((name, rect));
            named.push((at, size.x));
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy frame: the West Coast's cities crowd each other (Los Angeles and San Diego, Seattle
    /// and Portland, San Francisco and San Jose a few pixels apart). The busiest is always named,
    /// a city closer to a named one than its name is wide goes under it, and no two names
    /// overlap.
    #[test]
    fn labels_in_a_busy_frame_merge_and_never_overlap() {
        let anchors = [
            ("Los Angeles", Vec2::new(300.0, 400.0)),
            ("San Diego", Vec2::new(306.0, 410.0)),
            ("San Francisco", Vec2::new(280.0, 330.0)),
            ("San Jose", Vec2::new(285.0, 338.0)),
            ("Seattle", Vec2::new(290.0, 200.0)),
            ("Portland", Vec2::new(288.0, 214.0)),
            ("Las Vegas", Vec2::new(330.0, 380.0)),
            ("Phoenix", Vec2::new(360.0, 420.0)),
            ("Sacramento", Vec2::new(290.0, 322.0)),
            ("Denver", Vec2::new(420.0, 330.0)),
            ("New York", Vec2::new(700.0, 300.0)),
            ("Brooklyn", Vec2::new(703.0, 306.0)),
        ];
        let placed = place_without_overlap(&anchors, 16.0, 6);
        let names: Vec<&str> = placed.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["Los Angeles", "Seattle", "Denver", "New York"]);
        let at = |name: &str| anchors.iter().find(|(n, _)| *n == name).expect("a city").1;
        for (i, (a, ra)) in placed.iter().enumerate() {
            for (b, rb) in &placed[i + 1..] {
                assert!(ra.intersect(*rb).is_empty(), "{a} overlaps {b}");
                assert!(
                    at(a).distance(at(b)) >= ra.width(),
                    "{b} within {a}'s width"
                );
            }
        }
        // Far apart, every name fits, up to the most shown.
        let spread: Vec<(&str, Vec2)> = (0..8)
            .map(|i| ("Here", Vec2::new(100.0 + 200.0 * i as f32, 100.0)))
            .collect();
        assert_eq!(place_without_overlap(&spread, 16.0, 6).len(), 6);
        // Everything on one spot: one name.
        let pile: Vec<(&str, Vec2)> = (0..8).map(|_| ("Here", Vec2::new(100.0, 100.0))).collect();
        assert_eq!(place_without_overlap(&pile, 16.0, 6).len(), 1);
    }
}
