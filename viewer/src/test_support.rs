//! Arcs and apps for the unit tests.

use bevy::prelude::*;
use viralglobe_protocol::{ArcEvent, ArcKind, Place, Timestamp};

/// A `kind` arc from Los Angeles to London, `seq` seconds into 2012-10-16T17:00Z.
pub fn arc(seq: u64, kind: ArcKind, generation: u32) -> ArcEvent {
    ArcEvent {
        seq,
        kind,
        goal: None,
        campaign: "test".into(),
        share: "s1".into(),
        root: "s1".into(),
        generation,
        channel: "facebook".into(),
        sharer_kind: None,
        value_cents: None,
        reach: None,
        ts: Timestamp(1_350_406_800_000 + seq as i64 * 1_000),
        from: Some(Place {
            lat: 34.05,
            lon: -118.24,
            city: Some("Los Angeles".into()),
            country: Some("US".into()),
        }),
        to: Place {
            lat: 51.51,
            lon: -0.13,
            city: Some("London".into()),
            country: Some("GB".into()),
        },
    }
}

/// A headless app with the feed's messages, ready for one plugin under test.
pub fn headless_app() -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        bevy::state::app::StatesPlugin,
        crate::feed::plugin,
    ));
    app.init_state::<crate::Source>();
    app
}

/// Everything the feed said during a test, in order: arcs by `seq`, and resets.
#[derive(Resource, Default)]
pub struct Heard {
    pub arcs: Vec<u64>,
    pub resets: Vec<crate::tally::Tally>,
}

/// Records what the feed says into [`Heard`].
pub fn listen(app: &mut App) {
    app.init_resource::<Heard>().add_systems(
        Last,
        |mut arcs: MessageReader<crate::feed::NewArcs>,
         mut resets: MessageReader<crate::feed::FeedReset>,
         mut heard: ResMut<Heard>| {
            let seqs: Vec<u64> = arcs
                .read()
                .flat_map(|b| b.0.iter().map(|a| a.seq))
                .collect();
            heard.arcs.extend(seqs);
            let counts: Vec<_> = resets.read().map(|r| r.counts.clone()).collect();
            heard.resets.extend(counts);
        },
    );
}

/// Lets manual time steps longer than Bevy's 250 ms cap through.
pub fn uncap_time(app: &mut App) {
    app.world_mut()
        .resource_mut::<Time<Virtual>>()
        .set_max_delta(std::time::Duration::from_secs(10));
}

/// The whole viewer for `args` (as on its command line), with Bevy's plugins but a renderer that
/// has no backend and no window: the camera draws into an image of `size`, which the UI lays out
/// for. Time moves 100 ms an update; Startup has run.
pub fn whole_viewer(args: &[&str], size: UVec2) -> App {
    use bevy::{
        camera::RenderTarget,
        log::LogPlugin,
        render::{
            RenderPlugin,
            render_resource::TextureFormat,
            settings::{RenderCreation, WgpuSettings},
        },
        time::TimeUpdateStrategy,
        window::ExitCondition,
        winit::WinitPlugin,
    };
    use clap::Parser;

    let cli = crate::Cli::parse_from([&["viralglobe-viewer"], args].concat());
    let file = crate::open_file(&cli).expect("the recording");
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .set(RenderPlugin {
                render_creation: RenderCreation::Automatic(Box::new(WgpuSettings {
                    backends: None,
                    ..default()
                })),
                ..default()
            })
            .disable::<WinitPlugin>()
            .disable::<LogPlugin>(),
    );
    crate::add_viewer(&mut app, &cli, file).expect("the viewer");
    app.insert_resource(TimeUpdateStrategy::ManualDuration(
        std::time::Duration::from_millis(100),
    ));
    app.update();
    let image = Image::new_target_texture(size.x, size.y, TextureFormat::Rgba8UnormSrgb, None);
    let image = app.world_mut().resource_mut::<Assets<Image>>().add(image);
    let camera = app
        .world_mut()
        .query_filtered::<Entity, With<Camera3d>>()
        .single(app.world())
        .expect("one camera");
    app.world_mut()
        .entity_mut(camera)
        .insert(RenderTarget::Image(image.into()));
    app
}
