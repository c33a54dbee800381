//! The story camera: which cascade to follow and where to look. Each cascade (a campaign post
//! and everything that came from it) has an activity that every arc of it raises and that halves
//! every few seconds; the camera follows the most active, stays with it a while, and hands over
//! only to one clearly busier. It shows the post's place first, then frames the whole cascade:
//! its post and the newest arcs of its deepest generation (where they start and land), from far
//! enough that all of them sit in the middle of the view (out of the caption band and the HUD's corners). The cascade
//! followed is in the spotlight: other cascades' arcs are drawn dimmer.

use std::collections::{HashMap, VecDeque};

use bevy::prelude::*;
use viralglobe_protocol::{ArcEvent, ArcKind, Place};

use super::{Story, captions::Moments};
use crate::{
    AppSystems,
    arcs::Spotlight,
    camera::{GlobeCamera, Orbit},
    feed::{FeedReset, NewArcs},
    geo::{lat_lon, to_unit},
    replay::{FileReplay, Playback, ReplayCommand},
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
/// The story camera's closest distance, in globe radii (closer than the default view), and its
/// farthest, for a cascade spread over half the globe.
const CLOSEST: f32 = 2.4;
const FARTHEST: f32 = 4.6;
/// How far from the view's centre, in degrees, the framed places may be: about half of the
/// camera's vertical half-angle (22.5°), so they keep to the middle of the screen, clear of the
/// caption band at the top and the panels in the corners.
const FRAME_HALF_ANGLE_DEG: f32 = 12.5;
/// The places of a cascade's deepest generation kept for framing: its newest arcs' starts and
/// landings.
const MAX_FRONTIER: usize = 128;
/// Cascades PageUp can go back through.
const MAX_HISTORY: usize = 32;

#[derive(Debug, Clone, Default)]
struct Cascade {
    activity: f32,
    post: Option<Vec3>,
    /// Where the deepest generation's newest arcs start and land, the newest landing last.
    frontier: VecDeque<Vec3>,
    /// The sum of those places over time, fading as activity does: its direction is the
    /// frontier's middle, steady while arcs land all over.
    reach: Vec3,
    deepest: u32,
}

/// Where the story camera looks from: above `lat`, `lon`, `distance` globe radii from the centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Framing {
    pub lat: f32,
    pub lon: f32,
    pub distance: f32,
}

/// The view centred between `post` and the frontier's `middle` (either alone when the other is
/// unknown), as far out as needed to show the post and most of the `frontier` (all but its
/// farthest fifth, so a stray arc does not throw the camera back).
fn frame(post: Option<Vec3>, middle: Option<Vec3>, frontier: &VecDeque<Vec3>) -> Option<Framing> {
    let centre = match (post, middle) {
        (Some(post), Some(middle)) => (post + middle).try_normalize().unwrap_or(middle),
        (post, middle) => post.or(middle)?,
    };
    let mut angles: Vec<f32> = frontier.iter().map(|p| centre.angle_between(*p)).collect();
    angles.sort_by(f32::total_cmp);
    let most = match angles.len() {
        0 => 0.0,
        n => angles[(n * 4).div_ceil(5) - 1],
    };
    let widest = post
        .map_or(most, |post| most.max(centre.angle_between(post)))
        // Past this, places are on the limb from anywhere: frame what can be seen.
        .min(75f32.to_radians());
    // A place `widest` from the centre, seen from `distance`, is atan(sin w / (distance - cos w))
    // off the view's axis.
    let distance = widest.cos() + widest.sin() / FRAME_HALF_ANGLE_DEG.to_radians().tan();
    let (lat, lon) = lat_lon(centre);
    Some(Framing {
        lat,
        lon,
        distance: distance.clamp(CLOSEST, FARTHEST),
    })
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

fn spot(place: &Place) -> Vec3 {
    to_unit(place.lat, place.lon)
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
        if arc.generation > cascade.deepest {
            cascade.deepest = arc.generation;
            cascade.frontier.clear();
            cascade.reach = Vec3::ZERO;
        }
        if arc.generation == cascade.deepest {
            // Its start too: a post made before the viewer joined is known only by its arcs.
            for place in arc.from.iter().chain([&arc.to]) {
                if cascade.frontier.len() == MAX_FRONTIER {
                    cascade.frontier.pop_front();
                }
                cascade.frontier.push_back(spot(place));
                cascade.reach += spot(place);
            }
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
            cascade.reach *= keep;
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

    /// Where to look from: close over the followed cascade's post at first (when it was seen),
    /// then framing the post and its deepest generation's newest arcs.
    pub fn target(&self) -> Option<Framing> {
        let cascade = self.cascades.get(self.focus.as_ref()?)?;
        let middle = cascade.reach.try_normalize();
        if self.focused_for < POST_SECS && cascade.post.is_some() {
            return frame(cascade.post, None, &VecDeque::new());
        }
        frame(cascade.post, middle, &cascade.frontier)
    }

    /// The cascade followed, by its root share.
    pub fn focus(&self) -> Option<&str> {
        self.focus.as_deref()
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

/// Display seconds a step of the clicker lands before its moment, so the globe fills first.
const LEAD_SECS: f64 = 1.0;

/// PageDown and PageUp, what presentation remotes send. Replaying a file: on to the next story
/// moment (a generation reached, a revenue milestone; `Moments::times`) or back to the one
/// before, a second of display time ahead of it. Otherwise: the next cascade, or back.
fn step(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    story: Res<Story>,
    mut director: ResMut<Director>,
    replay: Option<Res<FileReplay>>,
    playback: Option<Res<Playback>>,
    mut commands: MessageWriter<ReplayCommand>,
    mut moments: Local<Option<Vec<i64>>>,
) {
    let Some(keys) = keys.filter(|_| story.on) else {
        return;
    };
    let (next, back) = (
        keys.just_pressed(KeyCode::PageDown),
        keys.just_pressed(KeyCode::PageUp),
    );
    if !next && !back {
        return;
    }
    if let (Some(replay), Some(playback)) = (replay, playback) {
        // Found once, on the first press: one pass over the recording's packed arcs.
        let moments = moments.get_or_insert_with(|| {
            let arcs = &replay.recording.arcs;
            Moments::times(
                arcs.counted(0..arcs.len())
                    .map(|arc| (arc.ts, arc.generation, arc.value_cents)),
            )
        });
        if let Some(at) = moment_to_step_to(moments, playback.ts_ms, playback.speed, next) {
            commands.write(ReplayCommand::Seek(at));
        }
        return;
    }
    if next {
        director.step_next();
    }
    if back {
        director.step_back();
    }
}

/// Where a step lands from playhead `now` at `speed`: `LEAD_SECS` before the first moment after
/// what the playhead is about to show (`forward`), or before the last one it showed over a lead ago.
fn moment_to_step_to(moments: &[i64], now: f64, speed: f64, forward: bool) -> Option<i64> {
    let lead = LEAD_SECS * speed * 1_000.0;
    let moment = if forward {
        moments.iter().find(|&&t| t as f64 > now + lead)
    } else {
        moments.iter().rev().find(|&&t| (t as f64) < now - lead)
    };
    moment.map(|&t| (t as f64 - lead) as i64)
}

fn direct(
    mut director: ResMut<Director>,
    mut resets: MessageReader<FeedReset>,
    mut arcs: MessageReader<NewArcs>,
    story: Res<Story>,
    time: Res<Time>,
    mut camera: Query<&mut GlobeCamera>,
    mut spotlight: ResMut<Spotlight>,
) {
    if resets.read().last().is_some() {
        director.clear();
    }
    for arc in arcs.read().flat_map(|batch| &batch.0) {
        director.observe(arc);
    }
    director.advance(time.delta_secs());
    let focus = director.focus().filter(|_| story.on);
    if spotlight.0.as_deref() != focus {
        spotlight.0 = focus.map(str::to_owned);
    }
    let Ok(mut camera) = camera.single_mut() else {
        return;
    };
    camera.directed = story.on;
    if story.on
        && let Some(framing) = director.target()
    {
        camera.target = Orbit {
            lat: framing.lat.clamp(-60.0, 70.0),
            lon: framing.lon,
            distance: framing.distance,
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
        a.from = None;
        a
    }

    #[test]
    fn in_a_replay_the_clicker_steps_to_the_moments_a_second_ahead() {
        // At 60x a second of display is 60 s of campaign; moments at 100, 200 and 300 s.
        let moments = [100_000, 200_000, 300_000];
        let step = |now: f64, forward| moment_to_step_to(&moments, now, 60.0, forward);
        assert_eq!(step(0.0, true), Some(40_000));
        // Just stepped there: on to the next, or back to none before.
        assert_eq!(step(40_000.0, true), Some(140_000));
        assert_eq!(step(40_000.0, false), None);
        // Past the second moment by more than a lead, back replays it.
        assert_eq!(step(270_000.0, false), Some(140_000));
        assert_eq!(step(200_000.0, true), Some(240_000));
        // A moment less than a lead ahead is about to show: nothing after it.
        assert_eq!(step(250_000.0, true), None);
    }

    /// The clicker in the whole viewer replaying the demo's peak: PageDown jumps ahead to a
    /// second before the next moment, whose caption follows as it plays; PageUp goes back.
    #[test]
    fn the_clicker_steps_through_the_demo_replay_s_moments() {
        use bevy::input::{
            ButtonState,
            keyboard::{Key, KeyboardInput, NativeKey},
        };

        let mut app = crate::test_support::whole_viewer(
            &[
                "--demo",
                "--story",
                "--from",
                "2012-10-17T14:00:00Z",
                "--speed",
                "600",
            ],
            UVec2::new(1280, 720),
        );
        // As a remote's key reaches the app: a keyboard message, pressed then released.
        let press = |app: &mut App, key_code| {
            for state in [ButtonState::Pressed, ButtonState::Released] {
                app.world_mut().write_message(KeyboardInput {
                    key_code,
                    logical_key: Key::Unidentified(NativeKey::Unidentified),
                    state,
                    text: None,
                    repeat: false,
                    window: Entity::PLACEHOLDER,
                });
                app.update();
            }
        };
        let playhead = |app: &App| app.world().resource::<Playback>().ts_ms;
        let before = playhead(&app);
        press(&mut app, KeyCode::PageDown);
        // Two updates play 120 s at 600x; the jump goes further.
        let landed = playhead(&app);
        assert!(landed > before + 121_000.0, "{before} to {landed}");
        let mut shown = None;
        for _ in 0..30 {
            app.update();
            if let Some((text, _)) = &app.world().resource::<super::super::Captions>().showing {
                shown = Some(text.clone());
                break;
            }
        }
        assert!(shown.is_some(), "no caption after the jump to {landed}");
        press(&mut app, KeyCode::PageUp);
        assert!(
            playhead(&app) < landed,
            "back from {landed} to {}",
            playhead(&app)
        );
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
        let post = director.target().expect("a target");
        assert!((post.lat - 10.0).abs() < 0.01 && (post.lon + 0.13).abs() < 0.01);
        assert_eq!(post.distance, CLOSEST, "close over its post first");
        director.advance(POST_SECS);
        let whole = director.target().expect("a target");
        assert!(
            (whole.lat - 20.0).abs() < 0.5,
            "then between the post (10°N) and its deepest generation (30°N): {whole:?}"
        );
    }

    /// How far off the view's axis, in degrees, a place is seen from `framing`.
    fn off_axis(framing: Framing, (lat, lon): (f32, f32)) -> f32 {
        let eye = to_unit(framing.lat as f64, framing.lon as f64) * framing.distance;
        let place = to_unit(lat as f64, lon as f64);
        (-eye).angle_between(place - eye).to_degrees()
    }

    #[test]
    fn the_camera_draws_back_to_frame_a_cascade_spread_over_continents() {
        let mut director = Director::default();
        let los_angeles = (34.05, -118.24);
        let mut post = in_cascade(1, "wide", ArcKind::Share, 0, los_angeles.0 as f64);
        post.to.lon = los_angeles.1 as f64;
        director.observe(&post);
        // Generation 2 lands in New York, London and Sao Paulo.
        let landings = [(40.7, -74.0), (51.5, -0.13), (-23.5, -46.6)];
        for (seq, &(lat, lon)) in landings.iter().enumerate() {
            let mut arc = in_cascade(2 + seq as u64, "wide", ArcKind::Click, 2, lat as f64);
            arc.to.lon = lon as f64;
            director.observe(&arc);
        }
        director.advance(0.1);
        director.advance(POST_SECS);
        let framing = director.target().expect("a target");
        assert!(framing.distance > CLOSEST, "drawn back: {framing:?}");
        for place in landings.into_iter().chain([los_angeles]) {
            let off = off_axis(framing, place);
            assert!(
                off <= FRAME_HALF_ANGLE_DEG + 0.01,
                "{place:?} is {off:.1}° off the axis of {framing:?}"
            );
        }
        // A deeper generation starts the frontier again: only its landings and the post count.
        let mut deeper = in_cascade(10, "wide", ArcKind::Click, 3, 36.0);
        deeper.to.lon = -115.0;
        director.observe(&deeper);
        let near = director.target().expect("a target");
        assert_eq!(
            near.distance, CLOSEST,
            "post and one landing nearby: {near:?}"
        );
    }

    #[test]
    fn a_cascade_posted_before_the_viewer_joined_is_framed_by_its_arcs() {
        let mut director = Director::default();
        // No post seen: generation 3, from Chicago to London and Paris.
        let chicago = (41.9, -87.6);
        for (seq, lat, lon) in [(1, 51.5, -0.13), (2, 48.9, 2.35)] {
            let mut arc = in_cascade(seq, "old", ArcKind::Click, 3, lat);
            arc.to.lon = lon;
            arc.from = Some(viralglobe_protocol::Place {
                lat: chicago.0 as f64,
                lon: chicago.1 as f64,
                city: None,
                country: None,
            });
            director.observe(&arc);
        }
        director.advance(0.1);
        director.advance(POST_SECS);
        let framing = director.target().expect("a target");
        for place in [chicago, (51.5, -0.13), (48.9, 2.35)] {
            let off = off_axis(framing, place);
            assert!(
                off <= FRAME_HALF_ANGLE_DEG + 0.01,
                "{place:?} is {off:.1}° off"
            );
        }
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
