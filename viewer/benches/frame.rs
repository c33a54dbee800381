//! CPU time of a frame's arc work (launch, upload of written chunks, visibility, clock) in the
//! steady state with 10,000 and 100,000 arcs in flight, headless:
//! `cargo bench --workspace --profile dev --bench frame` (the profile and features CI builds Bevy
//! with; a release build of Bevy takes the better part of an hour on 2 cores). Rendering is the
//! GPU's and is not in these numbers; `--frames` exports log wall time per rendered frame.

use std::time::{Duration, Instant};

use viralglobe_protocol::{ArcEvent, ArcKind, Place, Timestamp};
use viralglobe_viewer::bench;

fn arc(seq: u64) -> ArcEvent {
    let spread = (seq % 360) as f64;
    ArcEvent {
        seq,
        kind: ArcKind::Click,
        goal: None,
        campaign: "bench".into(),
        share: "s1".into(),
        root: "s1".into(),
        generation: (seq % 5) as u32,
        channel: "facebook".into(),
        sharer_kind: None,
        value_cents: None,
        reach: None,
        ts: Timestamp(seq as i64),
        from: Some(Place {
            lat: 34.05,
            lon: -118.24,
            city: None,
            country: None,
        }),
        to: Place {
            lat: (spread / 4.0) - 45.0,
            lon: spread - 180.0,
            city: None,
            country: None,
        },
    }
}

const FPS: f32 = 60.0;

/// Mean and p95 CPU time of a 60 fps frame in the steady state where `target` arcs are in flight:
/// as many arrive each frame as land.
fn measure(target: usize) -> (Duration, Duration, usize, usize) {
    let per_frame = (target as f32 / (bench::LIFETIME_SECS * FPS)).ceil() as usize;
    let mut app = bench::arcs_app();
    let mut seq = 0;
    let mut frame = |app: &mut bevy::prelude::App| {
        let arrivals = (seq..seq + per_frame as u64).map(arc).collect();
        seq += per_frame as u64;
        let start = Instant::now();
        bench::frame(app, arrivals, 1.0 / FPS);
        start.elapsed()
    };
    let warmup = (bench::LIFETIME_SECS * FPS) as usize + 10;
    for _ in 0..warmup {
        frame(&mut app);
    }
    let mut frames: Vec<Duration> = (0..600).map(|_| frame(&mut app)).collect();
    frames.sort();
    let mean = frames.iter().sum::<Duration>() / frames.len() as u32;
    (
        mean,
        frames[frames.len() * 95 / 100],
        bench::in_flight(&app),
        per_frame,
    )
}

/// Prints table rows in the benchmark suite's shape (`bash bench/run.sh`).
fn main() {
    let mut first_mean = None;
    for target in [10_000, 100_000] {
        let (mean, p95, flying, per_frame) = measure(target);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let figure = format!(
            "viewer CPU per frame (headless, dev profile), {flying} arcs in flight, {per_frame} new a frame at 60 fps"
        );
        let measured = format!("mean {:.3} ms, p95 {:.3} ms", ms(mean), ms(p95));
        match first_mean {
            None => {
                println!("| {figure} | {measured} | — | — |");
                first_mean = Some(mean);
            }
            Some(first) => {
                let growth = mean.as_secs_f64() / first.as_secs_f64();
                let met = if growth < 10.0 { "yes" } else { "**no**" };
                println!(
                    "| {figure} | {measured}: {growth:.1}× the time for 10× the arcs | grows sub-linearly | {met} |"
                );
            }
        }
    }
}
