//! `--frames DIR` and `--video FILE`: renders offscreen at a fixed frame rate to numbered PNG
//! frames, or through ffmpeg into an MP4, saying how far it got every few seconds, then exits.
//! Every frame advances the clocks by exactly 1/fps, so an export looks the same however slowly
//! the machine renders (software Vulkan included).

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;

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
/// How often a long export says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where exported frames go.
pub enum Output {
    Png(PathBuf),
    Video(Arc<Mutex<Video>>),
}

impl Output {
    /// Starts ffmpeg encoding raw frames from its standard input into `path`.
    pub fn video(path: &Path, (width, height): (u32, u32), fps: u32) -> anyhow::Result<Self> {
        let mut child = Command::new("ffmpeg")
            .args([
                "-loglevel",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
            ])
            .args([
                "-s",
                &format!("{width}x{height}"),
                "-r",
                &fps.to_string(),
                "-i",
                "-",
            ])
            // H.264 in yuv420p, which every player takes, needs even sizes.
            .args([
                "-vf",
                "scale=trunc(iw/2)*2:trunc(ih/2)*2",
                "-c:v",
                "libx264",
            ])
            .args(["-pix_fmt", "yuv420p", "-movflags", "+faststart"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context(
                "--video needs ffmpeg (apt install ffmpeg); without it, --frames DIR writes PNG \
                 frames",
            )?;
        Ok(Self::Video(Arc::new(Mutex::new(Video {
            stdin: child.stdin.take(),
            child,
            next: 1,
            waiting: BTreeMap::new(),
            path: path.to_owned(),
        }))))
    }

    fn describe(&self) -> String {
        match self {
            Self::Png(dir) => dir.display().to_string(),
            Self::Video(video) => lock(video).path.display().to_string(),
        }
    }
}

/// ffmpeg, fed frames in their order (screenshots may come back out of it).
pub struct Video {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The number of the next frame to feed.
    next: u32,
    waiting: BTreeMap<u32, Vec<u8>>,
    path: PathBuf,
}

fn lock(video: &Mutex<Video>) -> std::sync::MutexGuard<'_, Video> {
    video.lock().unwrap_or_else(|p| p.into_inner())
}

impl Video {
    /// Takes frame `n` (RGB, 1-based) and feeds ffmpeg every frame now in order.
    fn frame(&mut self, n: u32, rgb: Vec<u8>) -> Result<(), String> {
        self.waiting.insert(n, rgb);
        let Some(stdin) = self.stdin.as_mut() else {
            return Err("ffmpeg's input is closed".into());
        };
        while let Some(rgb) = self.waiting.remove(&self.next) {
            stdin
                .write_all(&rgb)
                .map_err(|e| format!("ffmpeg stopped taking frames: {e}"))?;
            self.next += 1;
        }
        Ok(())
    }

    /// Ends the input and waits for ffmpeg to write the file.
    fn finish(&mut self) -> Result<(), String> {
        self.stdin = None;
        match self.child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("ffmpeg failed ({status})")),
            Err(e) => Err(format!("ffmpeg: {e}")),
        }
    }
}

#[derive(Resource)]
struct FrameExport {
    output: Output,
    size: (u32, u32),
    total: u32,
    requested: u32,
    warmup: u32,
    waited: u32,
    saved: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
    target: Option<Handle<Image>>,
    timing: FrameTiming,
    started: Instant,
    reported: Instant,
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

pub fn plugin(output: Output, size: (u32, u32), fps: u32, total: u32) -> impl Fn(&mut App) {
    // A plugin may be built more than once in principle; this one owns ffmpeg, so only once.
    let output = Mutex::new(Some(output));
    move |app: &mut App| {
        let Some(output) = output.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / fps as f64,
        )))
        .insert_resource(FrameExport {
            output,
            size,
            total,
            requested: 0,
            warmup: WARMUP_FRAMES,
            waited: 0,
            saved: Arc::default(),
            failed: Arc::default(),
            target: None,
            timing: FrameTiming::default(),
            started: Instant::now(),
            reported: Instant::now(),
        })
        .add_systems(PostStartup, render_offscreen)
        .add_systems(Last, capture);
    }
}

/// Where one captured frame goes.
enum Sink {
    Png(PathBuf),
    Video(Arc<Mutex<Video>>),
}

/// "frame 120 of 300 (40%), 850 ms a frame, about 2 min 33 s left".
fn progress(done: u32, total: u32, elapsed: Duration) -> String {
    let per_frame = elapsed / done.max(1);
    let left = per_frame * total.saturating_sub(done);
    let left = match left.as_secs() {
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    };
    format!(
        "frame {done} of {total} ({}%), {} ms a frame, about {left} left",
        done * 100 / total.max(1),
        per_frame.as_millis()
    )
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
        if export.reported.elapsed() >= PROGRESS_EVERY {
            export.reported = Instant::now();
            info!(
                "{}",
                progress(export.requested, export.total, export.started.elapsed())
            );
        }
        let n = export.requested;
        let (saved, failed) = (export.saved.clone(), export.failed.clone());
        let sink = match &export.output {
            Output::Png(dir) => Sink::Png(dir.join(format!("frame-{n:05}.png"))),
            Output::Video(video) => Sink::Video(video.clone()),
        };
        commands.spawn(Screenshot::image(target)).observe(
            move |captured: On<ScreenshotCaptured>| {
                let written = captured
                    .image
                    .clone()
                    .try_into_dynamic()
                    .map_err(|e| e.to_string())
                    .and_then(|image| {
                        let rgb = image.to_rgb8();
                        match &sink {
                            Sink::Png(path) => rgb.save(path).map_err(|e| e.to_string()),
                            Sink::Video(video) => lock(video).frame(n, rgb.into_raw()),
                        }
                    });
                match written {
                    Ok(()) => saved.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        error!("frame {n}: {e}");
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
        let finished = match &export.output {
            Output::Png(_) => Ok(()),
            Output::Video(video) => lock(video).finish(),
        };
        if let Err(e) = &finished {
            error!("{e}");
        }
        info!(
            "{saved} frames written to {}: {timing}",
            export.output.describe()
        );
        exit.write(if failed == 0 && finished.is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_and_how_long_is_left() {
        assert_eq!(
            progress(120, 300, Duration::from_millis(102_000)),
            "frame 120 of 300 (40%), 850 ms a frame, about 2 min 33 s left"
        );
        assert_eq!(
            progress(9, 10, Duration::from_secs(9)),
            "frame 9 of 10 (90%), 1000 ms a frame, about 1 s left"
        );
    }
}
