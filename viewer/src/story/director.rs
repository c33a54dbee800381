//! The story camera: which cascade to follow and where to look. Each cascade (a campaign post
//! and everything that came from it) has an activity that every arc of it raises and that halves
//! every few seconds; the camera follows the most active, stays with it a while, and hands over
//! only to one clearly busier. It shows the post's place first, then the cascade's frontier: the
//! latest arc of its deepest generation.

use std::collections::HashMap;

use bevy::prelude::*;
use viralglobe_protocol::{ArcEvent, ArcKind, Place};

use super::Story;
use crate::{
    AppSystems,
    camera::{GlobeCamera, Orbit},
    feed::{FeedReset, NewArcs},
};

/// Cascades watched at once; the quietest goes when a new one needs room.
const MAX_CASCADES: usize = 1_024;
/// Seconds for a cascade's activity to halve.
const HALF_LIFE_SECS: f32 = 5.0;
/// Seconds the camera stays with a cascade before another may take over.
const DWELL_SECS: f32 = 8.0;
/// How much busier another cascade must be to take over.
const TAKEOVER: f32 = 1.5;
/// Seconds spent on a new cascade's post before following its frontier.
const POST_SECS: f32 = 2.5;
/// The story camera's distance, in globe radii: closer than the default view.
const DISTANCE: f32 = 2.4;
/// Cascades PageUp can go back through.
const MAX_HISTORY: usize = 32;

#[derive(Debug, Clone, Default)]
struct Cascade {
    activity: f32,
    post: Option<(f32, f32)>,
    frontier: Option<(f32, f32)>,
    deepest: u32,
}

/// What the story camera knows and follows.
#[derive(Resource, Debug, Default)]
pub struct Director {
    cascades: HashMap<String, Cascade>,
    focus: Option<String>,
    /// Seconds since the focus was chosen.
    focused_for: f32,
    /// The cascades followed before, the latest last (PageUp).
    history: Vec<String>,
}

fn spot(place: &Place) -> (f32, f32) {
    (place.lat as f32, place.lon as f32)
}

impl Director {
    pub fn observe(&mut self, arc: &ArcEvent) {
        if !self.cascades.contains_key(&arc.root) && self.cascades.len() >= MAX_CASCADES {
            self.forget_quietest();
        }
        let cascade = self.cascades.entry(arc.root.clone()).or_default();
        cascade.activity += 1.0;
        if arc.kind == ArcKind::Share && arc.generation == 0 {
            cascade.post = Some(spot(&arc.to));
        }
        if arc.generation >= cascade.deepest {
            cascade.deepest = arc.generation;
            cascade.frontier = Some(spot(&arc.to));
        }
    }

    fn forget_quietest(&mut self) {
        let quietest = self
            .cascades
            .iter()
            .filter(|(root, _)| Some(*root) != self.focus.as_ref())
            .min_by(|a, b| a.1.activity.total_cmp(&b.1.activity))
            .map(|(root, _)| root.clone());
        if let Some(root) = quietest {
            self.cascades.remove(&root);
        }
    }

    /// Lets `secs` pass: activity decays, and the focus is chosen again.
    pub fn advance(&mut self, secs: f32) {
        let keep = 0.5f32.powf(secs / HALF_LIFE_SECS);
        for cascade in self.cascades.values_mut() {
            cascade.activity *= keep;
        }
        let focus = self.focus.clone();
        self.cascades
            .retain(|root, c| c.activity > 0.01 || Some(root) == focus.as_ref());
        self.focused_for += secs;
        let busiest = self
            .cascades
            .iter()
            .max_by(|a, b| a.1.activity.total_cmp(&b.1.activity))
            .map(|(root, c)| (root.clone(), c.activity));
        let current = self
            .focus
            .as_ref()
            .and_then(|f| self.cascades.get(f))
            .map_or(0.0, |c| c.activity);
        if let Some((root, activity)) = busiest {
            let settled = self.focused_for >= DWELL_SECS || current < 0.05;
            if self.focus.is_none() || (settled && activity > current * TAKEOVER) {
                if self.focus.as_ref() != Some(&root) {
                    self.focused_for = 0.0;
                }
                self.focus = Some(root);
            }
        }
    }

    /// The presenter's PageDown: on to the next busiest cascade after the one followed (round
    /// again after the quietest), kept for a dwell like any new focus.
    pub fn step_next(&mut self) {
        let mut ranked: Vec<(&String, f32)> = self
            .cascades
            .iter()
            .map(|(root, c)| (root, c.activity))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let at = self
            .focus
            .as_ref()
            .and_then(|f| ranked.iter().position(|(root, _)| *root == f));
        let next = match at {
            Some(at) => ranked[(at + 1) % ranked.len()].0.clone(),
            None => match ranked.first() {
                Some((root, _)) => (*root).clone(),
                None => return,
            },
        };
        if let Some(focus) = self.focus.take()
            && focus != next
        {
            if self.history.len() == MAX_HISTORY {
                self.history.remove(0);
            }
            self.history.push(focus);
        }
        self.focus = Some(next);
        self.focused_for = 0.0;
    }

    /// The presenter's PageUp: back to the cascade followed before, if it is still watched.
    pub fn step_back(&mut self) {
        while let Some(root) = self.history.pop() {
            if self.cascades.contains_key(&root) {
                self.focus = Some(root);
                self.focused_for = 0.0;
                return;
            }
        }
    }

    #[cfg(test)]
    fn focus(&self) -> Option<&str> {
        self.focus.as_deref()
    }

    /// Where to look: the followed cascade's post at first, then its frontier.
    pub fn target(&self) -> Option<(f32, f32)> {
        let cascade = self.cascades.get(self.focus.as_ref()?)?;
        if self.focused_for < POST_SECS {
            cascade.post.or(cascade.frontier)
        } else {
            cascade.frontier.or(cascade.post)
        }
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Director>()
        .add_systems(Update, step.in_set(AppSystems::Input))
        .add_systems(Update, direct.in_set(AppSystems::Apply));
}

/// PageDown and PageUp, what presentation remotes send: the next cascade, or back.
fn step(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    story: Res<Story>,
    mut director: ResMut<Director>,
) {
    let Some(keys) = keys.filter(|_| story.on) else {
        return;
    };
    if keys.just_pressed(KeyCode::PageDown) {
        director.step_next();
    }
    if keys.just_pressed(KeyCode::PageUp) {
        director.step_back();
    }
}

fn direct(
    mut director: ResMut<Director>,
    mut resets: MessageReader<FeedReset>,
    mut arcs: MessageReader<NewArcs>,
    story: Res<Story>,
    time: Res<Time>,
    mut camera: Query<&mut GlobeCamera>,
) {
    if resets.read().last().is_some() {
        director.clear();
    }
    for arc in arcs.read().flat_map(|batch| &batch.0) {
        director.observe(arc);
    }
    director.advance(time.delta_secs());
    let Ok(mut camera) = camera.single_mut() else {
        return;
    };
    camera.directed = story.on;
    if story.on
        && let Some((lat, lon)) = director.target()
    {
        camera.target = Orbit {
            lat: lat.clamp(-60.0, 70.0),
            lon,
            distance: DISTANCE,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::arc;

    fn in_cascade(seq: u64, root: &str, kind: ArcKind, generation: u32, lat: f64) -> ArcEvent {
        let mut a = arc(seq, kind, generation);
        a.root = root.into();
        a.to.lat = lat;
        a
    }

    #[test]
    fn page_down_steps_through_the_cascades_and_page_up_goes_back() {
        let mut director = Director::default();
        for (seq, root, n) in [(1, "big", 30), (100, "middle", 20), (200, "small", 10)] {
            for i in 0..n {
                director.observe(&in_cascade(seq + i, root, ArcKind::Click, 1, 10.0));
            }
        }
        director.advance(0.1);
        assert_eq!(director.focus(), Some("big"));
        director.step_next();
        assert_eq!(director.focus(), Some("middle"));
        director.step_next();
        assert_eq!(director.focus(), Some("small"));
        // Kept for a dwell, although busier ones are there.
        director.advance(1.0);
        assert_eq!(director.focus(), Some("small"));
        director.step_next();
        assert_eq!(director.focus(), Some("big"), "round again");
        director.step_back();
        assert_eq!(director.focus(), Some("small"));
        director.step_back();
        assert_eq!(director.focus(), Some("middle"));
    }

    #[test]
    fn follows_the_busiest_cascade_from_its_post_to_its_frontier() {
        let mut director = Director::default();
        // A quiet cascade, then a busy one: its post at 10°N, generations out to 40°N.
        director.observe(&in_cascade(1, "quiet", ArcKind::Share, 0, -20.0));
        director.advance(0.1);
        assert_eq!(director.focus(), Some("quiet"), "anything beats nothing");
        director.observe(&in_cascade(2, "busy", ArcKind::Share, 0, 10.0));
        for seq in 3..30 {
            let generation = (seq / 10) as u32;
            let lat = 10.0 + 10.0 * generation as f64;
            director.observe(&in_cascade(seq, "busy", ArcKind::Click, generation, lat));
        }
        director.advance(0.1);
        assert_eq!(director.focus(), Some("quiet"), "the camera dwells a while");
        director.advance(DWELL_SECS);
        assert_eq!(director.focus(), Some("busy"), "then the busier takes over");
        assert_eq!(director.target(), Some((10.0, -0.13)), "its post first");
        director.advance(POST_SECS);
        assert_eq!(
            director.target(),
            Some((30.0, -0.13)),
            "then its deepest arc"
        );
    }

    #[test]
    fn a_slightly_busier_cascade_does_not_take_over() {
        let mut director = Director::default();
        for seq in 0..10 {
            director.observe(&in_cascade(seq, "a", ArcKind::Click, 0, 0.0));
        }
        director.advance(0.1);
        director.advance(DWELL_SECS);
        // a has decayed to about 3.3; b at 4 is busier, but not 1.5 times.
        for seq in 10..14 {
            director.observe(&in_cascade(seq, "b", ArcKind::Click, 0, 0.0));
        }
        director.advance(0.01);
        assert_eq!(director.focus(), Some("a"));
        for seq in 14..24 {
            director.observe(&in_cascade(seq, "b", ArcKind::Click, 0, 0.0));
        }
        director.advance(0.01);
        assert_eq!(director.focus(), Some("b"));
    }

    #[test]
    fn cascades_watched_are_bounded() {
        let mut director = Director::default();
        for seq in 0..(MAX_CASCADES as u64 + 500) {
            director.observe(&in_cascade(seq, &format!("r{seq}"), ArcKind::Share, 0, 0.0));
        }
        assert!(director.cascades.len() <= MAX_CASCADES);
    }
}
