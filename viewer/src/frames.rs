//! `--frames DIR`: renders offscreen to numbered PNG frames at a fixed frame rate, then exits.
//! Every frame advances the clocks by exactly 1/fps, so an export looks the same however slowly
//! the machine renders (software Vulkan included).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use bevy::{
    camera::RenderTarget,
    prelude::*,
    render::{
        render_resource::{TextureFormat, TextureUsages},
        view::screenshot::{Screenshot, ScreenshotCaptured},
    },
    time::TimeUpdateStrategy,
};

use crate::{arcs::ArcsInFlight, camera::GlobeCamera, replay::Playback};

/// Frames rendered before the first one saved: shaders and the map reach the GPU.
const WARMUP_FRAMES: u32 = 10;
/// Frames to wait for the last screenshots before giving up.
const DRAIN_FRAMES: u32 = 600;

#[derive(Resource)]
struct FrameExport {
    dir: PathBuf,
    size: (u32, u32),
    total: u32,
    requested: u32,
    warmup: u32,
    waited: u32,
    saved: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
    target: Option<Handle<Image>>,
    timing: FrameTiming,
}

/// Wall time per exported frame, and the most arcs in flight: what the export reports at the end.
#[derive(Default)]
struct FrameTiming {
    last: Option<Instant>,
    frames: Vec<Duration>,
    most_in_flight: usize,
}

impl FrameTiming {
    fn tick(&mut self, in_flight: usize) {
        let now = Instant::now();
        if let Some(last) = self.last.replace(now) {
            self.frames.push(now - last);
        }
        self.most_in_flight = self.most_in_flight.max(in_flight);
    }

    fn summary(&mut self) -> String {
        self.frames.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
        let n = self.frames.len().max(1);
        let mean = self.frames.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
        let p95 = self.frames.get(n * 95 / 100).map_or(0.0, |d| ms(*d));
        format!(
            "{mean:.1} ms a frame on average, p95 {p95:.1} ms, up to {} arcs in flight",
            self.most_in_flight
        )
    }
}

pub fn plugin(dir: PathBuf, size: (u32, u32), fps: u32, total: u32) -> impl Fn(&mut App) {
    move |app: &mut App| {
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / fps as f64,
        )))
        .insert_resource(FrameExport {
            dir: dir.clone(),
            size,
            total,
            requested: 0,
            warmup: WARMUP_FRAMES,
            waited: 0,
            saved: Arc::default(),
            failed: Arc::default(),
            target: None,
            timing: FrameTiming::default(),
        })
        .add_systems(PostStartup, render_offscreen)
        .add_systems(Last, capture);
    }
}

fn render_offscreen(
    mut commands: Commands,
    mut export: ResMut<FrameExport>,
    mut images: ResMut<Assets<Image>>,
    camera: Query<Entity, With<GlobeCamera>>,
) {
    let (width, height) = export.size;
    let mut image = Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let target = images.add(image);
    for camera in &camera {
        commands
            .entity(camera)
            .insert(RenderTarget::Image(target.clone().into()));
    }
    export.target = Some(target);
}

fn capture(
    mut commands: Commands,
    mut export: ResMut<FrameExport>,
    playback: Option<ResMut<Playback>>,
    in_flight: Res<ArcsInFlight>,
    mut exit: MessageWriter<AppExit>,
) {
    if export.warmup > 0 {
        export.warmup -= 1;
        if export.warmup == 0
            && let Some(mut playback) = playback
        {
            playback.playing = true;
        }
        return;
    }
    let Some(target) = export.target.clone() else {
        return;
    };
    if export.requested < export.total {
        export.timing.tick(in_flight.0);
        export.requested += 1;
        let path = export
            .dir
            .join(format!("frame-{:05}.png", export.requested));
        let (saved, failed) = (export.saved.clone(), export.failed.clone());
        commands.spawn(Screenshot::image(target)).observe(
            move |captured: On<ScreenshotCaptured>| {
                let written = captured
                    .image
                    .clone()
                    .try_into_dynamic()
                    .map_err(|e| e.to_string())
                    .and_then(|image| image.to_rgb8().save(&path).map_err(|e| e.to_string()));
                match written {
                    Ok(()) => saved.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        error!("cannot write {}: {e}", path.display());
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            },
        );
        return;
    }
    let (saved, failed) = (
        export.saved.load(Ordering::SeqCst),
        export.failed.load(Ordering::SeqCst),
    );
    if saved + failed == export.total {
        let timing = export.timing.summary();
        info!(
            "{saved} frames written to {}: {timing}",
            export.dir.display()
        );
        exit.write(if failed == 0 {
            AppExit::Success
        } else {
            AppExit::error()
        });
    } else {
        export.waited += 1;
        if export.waited > DRAIN_FRAMES {
            error!("only {saved} of {} frames were captured", export.total);
            exit.write(AppExit::error());
        }
    }
}
