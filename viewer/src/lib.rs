//! The Viral Globe viewer: a Bevy 3D globe that shows a campaign spreading, for a presenter's
//! screen or a video.
//!
//! Feature folders, one plugin each: `globe` (Earth and atmosphere), `arcs` (arcs animated in a
//! shader), `camera`, `hud`, `net` (live feed and served replays, off the render thread),
//! `replay` (the playback clock, its keys, the file player), `story` (the presenter's story
//! mode: a camera that follows cascades, captions), plus `frames` (PNG frames, video). Sources
//! hand the rest arcs through the messages in `feed`. System order is set here, once.

mod activity;
mod arcs;
mod attribution;
mod camera;
pub mod cli;
mod feed;
mod frames;
mod geo;
mod globe;
mod hud;
mod net;
mod replay;
mod story;
mod tally;
#[cfg(test)]
mod test_support;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use bevy::{
    app::ScheduleRunnerPlugin,
    prelude::*,
    render::RenderPlugin,
    window::{ExitCondition, MonitorSelection, WindowMode},
    winit::WinitPlugin,
};

pub use cli::Cli;

/// The order of a frame: read input, take in the feed, apply it, move the camera, then draw the
/// HUD (whose labels are placed with the camera where it is this frame).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSystems {
    Tick,
    Input,
    Feed,
    Apply,
    Camera,
    Present,
}

pub fn configure_sets(app: &mut App) {
    app.configure_sets(
        Update,
        (
            AppSystems::Tick,
            AppSystems::Input,
            AppSystems::Feed,
            AppSystems::Apply,
            AppSystems::Camera,
            AppSystems::Present,
        )
            .chain(),
    );
}

/// Where the arcs come from: the app's mode, set once at start. Each source's systems run only
/// in its state.
#[derive(States, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Source {
    #[default]
    Live,
    File,
    Served,
}

impl Source {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Live => "LIVE",
            Self::File => "REPLAY",
            Self::Served => "REPLAY (server)",
        }
    }
}

/// Timeline buckets for a file replay.
const TIMELINE_BUCKETS: usize = 240;

/// Builds the viewer for `cli` and runs it until the window closes or the frames are written.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // A file to play is read first: a mistake is said before any window or GPU is set up.
    let file = open_file(&cli)?;
    let mut app = App::new();
    let writing_frames = cli.exporting();
    let window = (!writing_frames).then(|| Window {
        title: "Viral Globe".into(),
        resolution: cli.size.into(),
        mode: if cli.fullscreen {
            WindowMode::BorderlessFullscreen(MonitorSelection::Primary)
        } else {
            WindowMode::Windowed
        },
        ..default()
    });
    let defaults = DefaultPlugins
        .set(WindowPlugin {
            primary_window: window,
            exit_condition: if writing_frames {
                ExitCondition::DontExit
            } else {
                ExitCondition::OnPrimaryClosed
            },
            ..default()
        })
        .set(RenderPlugin {
            // Frames must not be skipped while shaders compile.
            synchronous_pipeline_compilation: writing_frames,
            ..default()
        });
    if writing_frames {
        app.add_plugins((
            defaults.disable::<WinitPlugin>(),
            ScheduleRunnerPlugin::run_loop(Duration::ZERO),
        ));
    } else {
        app.add_plugins(defaults);
    }
    add_viewer(&mut app, &cli, file)?;
    let output = match (&cli.frames, &cli.video) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(frames::Output::Png(dir.clone()))
        }
        (None, Some(path)) => Some(frames::Output::video(path, cli.size, cli.fps)?),
        (None, None) => None,
    };
    if let Some(output) = output {
        app.add_plugins(frames::plugin(output, cli.size, cli.fps, cli.frame_count()));
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => anyhow::bail!("the viewer stopped with an error ({code})"),
    }
}

/// The viewer's plugins, in their order, on an app that has Bevy's, and the source `cli` names.
fn add_viewer(
    app: &mut App,
    cli: &Cli,
    file: Option<(replay::arc_file::ArcFile, PathBuf)>,
) -> anyhow::Result<()> {
    configure_sets(app);
    app.add_plugins((
        feed::plugin,
        globe::plugin,
        arcs::plugin,
        camera::plugin,
        hud::plugin,
        net::plugin,
        replay::plugin,
        story::plugin(cli.story),
    ));
    if let Some(url) = &cli.qr {
        app.insert_resource(hud::QrLink(url.clone()));
    }
    app.insert_resource(arcs::ArcBudget(cli.max_arcs as usize));
    connect(app, cli, file)
}

/// Where the viewer looks for a server when given no source.
const DEFAULT_SERVER: &str = "127.0.0.1:8080";

/// Whether, given no source at all, the viewer plays its demo: when nothing answers at the
/// default address (`answers` says).
fn plays_demo_for_lack_of_a_server(cli: &Cli, answers: impl FnOnce(&str) -> bool) -> bool {
    let no_source = cli.live.is_empty() && cli.replay.is_none() && cli.replay_from.is_none();
    cli.demo || (no_source && !answers(DEFAULT_SERVER))
}

fn server_answers(address: &str) -> bool {
    address.parse().is_ok_and(|address| {
        std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
    })
}

/// The arcs of `--replay FILE` or `--demo` (also played when no source is given and no server
/// answers), and the name to report problems under.
fn open_file(cli: &Cli) -> anyhow::Result<Option<(replay::arc_file::ArcFile, PathBuf)>> {
    let demo = plays_demo_for_lack_of_a_server(cli, server_answers);
    if demo && !cli.demo {
        // Before the app (and its log) exists: straight to stderr.
        eprintln!(
            "viralglobe-viewer: no server answers at {DEFAULT_SERVER}: playing the demo built in. \
             For a live globe, start one (`viralglobe-server demo`) or name one with --live."
        );
    }
    Ok(match (&cli.replay, demo) {
        (Some(path), _) => Some((replay::arc_file::ArcFile::load(path)?, path.clone())),
        (None, true) => {
            let name = PathBuf::from("the demo");
            let demo = replay::arc_file::ArcFile::read(replay::DEMO_RECORDING, &name)?;
            Some((demo, name))
        }
        (None, false) => None,
    })
}

/// Starts the source the command line asks for: the file already read, or the network.
fn connect(
    app: &mut App,
    cli: &Cli,
    file: Option<(replay::arc_file::ArcFile, PathBuf)>,
) -> anyhow::Result<()> {
    let token = cli.token.clone();
    if let Some((recording, path)) = file {
        for problem in recording.skipped.iter().take(5) {
            warn!("{}: skipped {problem}", path.display());
        }
        if recording.skipped.len() > 5 {
            warn!(
                "{}: {} lines skipped in all",
                path.display(),
                recording.skipped.len()
            );
        }
        let name = recording.arcs.get(0).campaign;
        let all = recording.arcs.counted(0..recording.arcs.len());
        let timeline =
            activity::ActivityTimeline::of_counted(recording.span(), all, TIMELINE_BUCKETS);
        let (player, mut playback) =
            replay::FileReplay::start(recording, cli.from, cli.replay_speed());
        let counts_so_far = tally::Tally::of_counted(player.recording.arcs.counted(0..player.next));
        // Writing frames starts the clock after the warm-up frames.
        playback.playing = !cli.exporting();
        app.insert_state(Source::File)
            .insert_resource(net::CampaignName(name))
            .insert_resource(timeline)
            .insert_resource(counts_so_far)
            .insert_resource(player)
            .insert_resource(playback);
    } else if let Some(url) = &cli.replay_from {
        let endpoint = net::Endpoint::parse(url, token)?;
        let campaign = cli
            .campaign
            .clone()
            .context("--replay-from needs --campaign")?;
        let (sender, inbox) = net::channel();
        let controls =
            net::spawn_remote_replay(endpoint, campaign.clone(), cli.replay_speed(), sender);
        app.insert_state(Source::Served)
            .insert_resource(net::CampaignName(campaign))
            .insert_resource(inbox)
            .insert_resource(controls)
            .insert_resource(net::ConnectionState::Connecting);
    } else {
        let urls = match cli.live.as_slice() {
            [] => vec![format!("ws://{DEFAULT_SERVER}")],
            urls => urls.to_vec(),
        };
        let endpoints = urls
            .iter()
            .map(|url| net::Endpoint::parse(url, token.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (sender, inbox) = net::channel();
        net::spawn_live(endpoints, cli.campaign.clone(), sender);
        app.insert_state(Source::Live)
            .insert_resource(net::CampaignName(cli.campaign.clone().unwrap_or_default()))
            .insert_resource(inbox)
            .insert_resource(net::ConnectionState::Connecting);
    }
    Ok(())
}

/// For the benchmarks: the arcs' CPU side as a headless app.
pub mod bench {
    use bevy::prelude::*;
    use viralglobe_protocol::ArcEvent;

    pub use crate::arcs::LIFETIME_SECS;

    /// A headless app with the feed and the arcs (no rendering). The animation clock only moves
    /// in [`frame`], so timings do not depend on how long a frame took.
    pub fn arcs_app() -> App {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, crate::feed::plugin));
        crate::configure_sets(&mut app);
        crate::arcs::register(&mut app);
        // The machinery's cost with every arc drawn: no budget.
        app.insert_resource(crate::arcs::ArcBudget(crate::arcs::CAPACITY));
        app.update();
        app.world_mut()
            .resource_mut::<crate::arcs::DisplayClock>()
            .frozen = true;
        app
    }

    /// Runs one frame `dt` seconds after the last, in which `arcs` arrive.
    pub fn frame(app: &mut App, arcs: Vec<ArcEvent>, dt: f32) {
        app.world_mut()
            .resource_mut::<crate::arcs::DisplayClock>()
            .now += dt;
        app.world_mut().write_message(crate::feed::NewArcs(arcs));
        app.update();
    }

    pub fn in_flight(app: &App) -> usize {
        app.world().resource::<crate::arcs::ArcsInFlight>().0
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn with_no_source_and_no_server_the_demo_plays() {
        let parse = |args: &[&str]| Cli::parse_from([&["viralglobe-viewer"], args].concat());
        let none = parse(&[]);
        assert!(plays_demo_for_lack_of_a_server(&none, |_| false));
        assert!(!plays_demo_for_lack_of_a_server(&none, |_| true));
        let live = parse(&["--live", "ws://h:1"]);
        assert!(!plays_demo_for_lack_of_a_server(&live, |_| panic!(
            "no probe when told"
        )));
        assert!(plays_demo_for_lack_of_a_server(&parse(&["--demo"]), |_| {
            true
        }));
    }
}
