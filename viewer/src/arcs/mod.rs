//! Arcs on the globe: launched from the feed, animated entirely in the shader.

mod material;
pub mod palette;
mod ring;

use bevy::{
    asset::{RenderAssetUsages, embedded_asset},
    camera::visibility::NoFrustumCulling,
    prelude::*,
    render::storage::ShaderBuffer,
};

use crate::{
    AppSystems,
    feed::{FeedReset, NewArcs},
};
pub use material::ArcMaterial;
pub use ring::{ArcRing, CAPACITY, LIFETIME_SECS};
use viralglobe_protocol::{ArcEvent, ArcKind};

use ring::{CHUNKS, FLIGHT_SECS, PULSE_SECS, SLOT_FLOATS, SLOTS_PER_CHUNK, TRAIL};

/// Most arcs launched in one frame; above it an even sample of the frame's arcs is drawn (all are
/// counted). At 60 frames a second that is 150,000 arcs a second.
pub const MAX_LAUNCHES_PER_FRAME: usize = 2_500;

/// At most this many arcs are in flight at once (`--max-arcs`), so the peak stays legible and
/// fast. The room is handed out evenly over an arc's lifetime (a burst does not fill it for the
/// next five seconds); shares and conversions take a frame's room first, its clicks are sampled
/// evenly into what is left. The counters never depend on it.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArcBudget(pub usize);

impl Default for ArcBudget {
    fn default() -> Self {
        Self(DEFAULT_BUDGET)
    }
}

/// Chosen by looking at the demo's peak at 1080p: enough for the cascades to read as cascades.
pub const DEFAULT_BUDGET: usize = 4_000;

/// The cascade in the spotlight, by its root share (story mode's, the one the camera follows):
/// its arcs take the budget's room first, and other cascades' arcs are drawn dimmer.
#[derive(Resource, Debug, Default, Clone, PartialEq, Eq)]
pub struct Spotlight(pub Option<String>);

/// How bright arcs outside the spotlight are drawn.
const OUT_OF_SPOTLIGHT: f32 = 0.3;

/// The animation clock, in seconds: it runs while the feed plays and stops while a replay is
/// paused, so paused arcs hold still.
#[derive(Resource, Debug, Default)]
pub struct DisplayClock {
    pub now: f32,
    pub frozen: bool,
}

/// Arcs animating now, for the HUD and the benchmarks.
#[derive(Resource, Debug, Default)]
pub struct ArcsInFlight(pub usize);

#[derive(Component)]
struct ArcChunk {
    index: usize,
    material: Handle<ArcMaterial>,
    slots: Handle<ShaderBuffer>,
}

pub(super) fn plugin(app: &mut App) {
    embedded_asset!(app, "arcs.wgsl");
    app.add_plugins(MaterialPlugin::<ArcMaterial>::default());
    register(app);
}

/// Everything but the render plugin: what a headless test needs.
pub(crate) fn register(app: &mut App) {
    app.init_resource::<ArcRing>()
        .init_resource::<ArcBudget>()
        .init_resource::<Spotlight>()
        .init_resource::<DisplayClock>()
        .init_resource::<ArcsInFlight>()
        .init_resource::<Assets<ArcMaterial>>()
        .init_resource::<Assets<ShaderBuffer>>()
        .init_resource::<Assets<Mesh>>()
        .add_systems(Startup, spawn_chunks)
        .add_systems(Update, advance_clock.in_set(AppSystems::Tick))
        .add_systems(
            Update,
            (reset_arcs, launch_arcs, upload_chunks)
                .chain()
                .in_set(AppSystems::Apply),
        );
}

fn spawn_chunks(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<ArcMaterial>>,
    mut buffers: ResMut<Assets<ShaderBuffer>>,
) {
    let mesh = meshes.add(material::chunk_mesh());
    for index in 0..CHUNKS {
        let slots = buffers.add(ShaderBuffer::new(
            &vec![0; SLOTS_PER_CHUNK * SLOT_FLOATS * 4],
            RenderAssetUsages::RENDER_WORLD,
        ));
        let material = materials.add(ArcMaterial {
            clock: Vec4::new(0.0, FLIGHT_SECS, TRAIL, PULSE_SECS),
            slots: slots.clone(),
        });
        commands.spawn((
            Name::new(format!("arc chunk {index}")),
            Mesh3d(mesh.clone()),
            MeshMaterial3d(material.clone()),
            ArcChunk {
                index,
                material,
                slots,
            },
            Transform::default(),
            Visibility::Hidden,
            // The mesh's vertices are slot numbers, not positions: its bounds mean nothing.
            NoFrustumCulling,
        ));
    }
}

fn advance_clock(time: Res<Time>, mut clock: ResMut<DisplayClock>) {
    if !clock.frozen {
        clock.now += time.delta_secs();
    }
}

fn reset_arcs(mut resets: MessageReader<FeedReset>, mut ring: ResMut<ArcRing>) {
    if resets.read().count() > 0 {
        ring.clear();
    }
}

/// The budget handed out over time: launches are owed back at the budget's share of a lifetime
/// per second, and at most a quarter of the budget may be owed, so a burst (a seek, the start of
/// an export) does not take all the room for the next five seconds, and a quiet globe draws the
/// next arc at once.
#[derive(Default)]
struct Allowance {
    /// The display time of the last frame.
    at: f32,
    owed: f32,
}

fn launch_arcs(
    mut batches: MessageReader<NewArcs>,
    mut ring: ResMut<ArcRing>,
    clock: Res<DisplayClock>,
    budget: Res<ArcBudget>,
    spotlight: Res<Spotlight>,
    mut allowance: Local<Allowance>,
) {
    let budget = budget.0 as f32;
    let elapsed = (clock.now - allowance.at).max(0.0);
    allowance.at = clock.now;
    allowance.owed = (allowance.owed - budget * elapsed / LIFETIME_SECS).max(0.0);
    let burst = (budget / 4.0).max(1.0);
    let lit = |arc: &ArcEvent| spotlight.0.as_ref().is_none_or(|root| *root == arc.root);
    // Who takes the room first: the spotlight's arcs, then shares and conversions, then clicks.
    let mut tiers: [Vec<&ArcEvent>; 3] = Default::default();
    for arc in batches.read().flat_map(|b| &b.0) {
        let tier = if spotlight.0.is_some() && lit(arc) {
            0
        } else if arc.kind != ArcKind::Click {
            1
        } else {
            2
        };
        tiers[tier].push(arc);
    }
    let mut room = (budget as usize)
        .saturating_sub(ring.in_flight(clock.now))
        .min((burst - allowance.owed).max(0.0) as usize)
        .min(MAX_LAUNCHES_PER_FRAME);
    for arcs in tiers {
        let chosen = evenly(&arcs, room);
        room -= chosen.len();
        allowance.owed += chosen.len() as f32;
        for arc in chosen {
            let brightness = if lit(arc) { 1.0 } else { OUT_OF_SPOTLIGHT };
            ring.launch(arc, clock.now, brightness);
        }
    }
}

/// `room` of `arcs` spread evenly over them, or all of them when they fit.
fn evenly<'a>(arcs: &[&'a ArcEvent], room: usize) -> Vec<&'a ArcEvent> {
    let n = arcs.len();
    if n <= room {
        return arcs.to_vec();
    }
    (0..room).map(|i| arcs[i * n / room]).collect()
}

fn upload_chunks(
    mut ring: ResMut<ArcRing>,
    clock: Res<DisplayClock>,
    mut in_flight: ResMut<ArcsInFlight>,
    mut chunks: Query<(&ArcChunk, &mut Visibility)>,
    mut materials: ResMut<Assets<ArcMaterial>>,
    mut buffers: ResMut<Assets<ShaderBuffer>>,
) {
    in_flight.0 = ring.in_flight(clock.now);
    for (chunk, mut visibility) in &mut chunks {
        if let Some(bytes) = ring.take_dirty(chunk.index)
            && let Some(mut buffer) = buffers.get_mut(&chunk.slots)
        {
            buffer.data = Some(bytes);
        }
        let busy = ring.chunk_busy(chunk.index, clock.now);
        visibility.set_if_neq(if busy {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        });
        if busy && let Some(mut material) = materials.get_mut(&chunk.material) {
            material.clock.x = clock.now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{arc, headless_app};
    use viralglobe_protocol::ArcKind;

    fn app() -> App {
        let mut app = headless_app();
        crate::configure_sets(&mut app);
        register(&mut app);
        app
    }

    fn visible_chunks(app: &mut App) -> usize {
        let mut query = app.world_mut().query::<(&ArcChunk, &Visibility)>();
        query
            .iter(app.world())
            .filter(|(_, v)| **v != Visibility::Hidden)
            .count()
    }

    #[test]
    fn an_arc_lives_its_lifetime_then_its_chunk_stops_drawing() {
        let mut app = app();
        app.update();
        assert_eq!(visible_chunks(&mut app), 0);
        app.world_mut()
            .write_message(NewArcs(vec![arc(1, ArcKind::Click, 0)]));
        app.update();
        assert_eq!(app.world().resource::<ArcsInFlight>().0, 1);
        assert_eq!(visible_chunks(&mut app), 1);

        app.world_mut().resource_mut::<DisplayClock>().now += ring::LIFETIME_SECS + 0.1;
        app.update();
        assert_eq!(app.world().resource::<ArcsInFlight>().0, 0);
        assert_eq!(visible_chunks(&mut app), 0);
    }

    #[test]
    fn the_budget_keeps_shares_and_conversions_and_samples_clicks() {
        let mut app = app();
        // Room for 100 at once (a quarter), 400 in flight.
        app.insert_resource(ArcBudget(400));
        app.update();
        let mut arcs: Vec<ArcEvent> = (0..500).map(|seq| arc(seq, ArcKind::Click, 1)).collect();
        arcs.extend((500..530).map(|seq| arc(seq, ArcKind::Share, 1)));
        arcs.extend((530..550).map(|seq| arc(seq, ArcKind::Conversion, 1)));
        app.world_mut().write_message(NewArcs(arcs));
        app.update();
        assert_eq!(app.world().resource::<ArcsInFlight>().0, 100);
        // Widths tell kinds apart: shares 2, conversions 1.4, clicks 1.
        let widths = app.world().resource::<ArcRing>().widths();
        assert_eq!(widths.iter().filter(|w| **w == 2.0).count(), 30);
        assert_eq!(widths.iter().filter(|w| **w == 1.4).count(), 20);
        assert_eq!(widths.iter().filter(|w| **w == 1.0).count(), 50);

        // A second later, the budget's share of a lifetime more: 400 / 4.86 s.
        app.world_mut().resource_mut::<DisplayClock>().now += 1.0;
        let clicks = (600..800).map(|seq| arc(seq, ArcKind::Click, 1)).collect();
        app.world_mut().write_message(NewArcs(clicks));
        app.update();
        let expected = 100 + (400.0 / ring::LIFETIME_SECS) as usize;
        assert_eq!(app.world().resource::<ArcsInFlight>().0, expected);
    }

    #[test]
    fn the_spotlight_s_cascade_goes_first_and_the_others_are_dimmed() {
        let mut app = app();
        // Room for 25 at once.
        app.insert_resource(ArcBudget(100))
            .insert_resource(Spotlight(Some("followed".into())));
        app.update();
        let in_cascade = |seq, root: &str, kind| {
            let mut arc = arc(seq, kind, 1);
            arc.root = root.into();
            arc
        };
        let mut arcs: Vec<ArcEvent> = (0..40)
            .map(|seq| in_cascade(seq, "other", ArcKind::Share))
            .collect();
        arcs.extend((40..60).map(|seq| in_cascade(seq, "followed", ArcKind::Click)));
        app.world_mut().write_message(NewArcs(arcs));
        app.update();
        let ring = app.world().resource::<ArcRing>();
        // All 20 of the followed cascade's clicks, then 5 of the other's shares.
        let widths = ring.widths();
        assert_eq!(widths.iter().filter(|w| **w == 1.0).count(), 20);
        assert_eq!(widths.iter().filter(|w| **w == 2.0).count(), 5);
        let brightness = |[r, g, b]: [f32; 3]| r + g + b;
        let click =
            brightness(palette::of(&in_cascade(0, "x", ArcKind::Click)).to_f32_array_no_alpha());
        let share =
            brightness(palette::of(&in_cascade(0, "x", ArcKind::Share)).to_f32_array_no_alpha());
        for (color, width) in ring.colors().into_iter().zip(widths) {
            let (full, scale) = if width == 1.0 {
                (click, 1.0)
            } else {
                (share, OUT_OF_SPOTLIGHT)
            };
            assert!(
                (brightness(color) - full * scale).abs() < 1e-4,
                "{color:?} {width}"
            );
        }
    }

    #[test]
    fn a_flood_is_sampled_and_a_reset_clears_the_globe() {
        let mut app = app();
        app.insert_resource(ArcBudget(CAPACITY));
        app.update();
        let flood = (0..10 * MAX_LAUNCHES_PER_FRAME as u64)
            .map(|seq| arc(seq, ArcKind::Click, 0))
            .collect();
        app.world_mut().write_message(NewArcs(flood));
        app.update();
        assert_eq!(
            app.world().resource::<ArcsInFlight>().0,
            MAX_LAUNCHES_PER_FRAME
        );

        app.world_mut().write_message(FeedReset::default());
        app.update();
        assert_eq!(app.world().resource::<ArcsInFlight>().0, 0);
    }
}
