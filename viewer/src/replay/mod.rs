//! Replays: the playback clock every replay source shares, the commands that steer it (keys, the
//! timeline), and the file player that runs a recording with no server.

pub mod arc_file;
mod file;
mod keys;
mod packed;

use bevy::prelude::*;
use viralglobe_protocol::replay::{MAX_SPEED, MIN_SPEED};

pub use file::FileReplay;

/// The demo campaign's recording, the one the server embeds: `--demo` plays it with no server.
pub const DEMO_RECORDING: &[u8] = include_bytes!("../../../demo-data/bones-brigade.ndjson.zst");

/// Where a replay stands. Present only when the source is a replay.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct Playback {
    /// The replayed span, epoch milliseconds.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The playhead, epoch milliseconds (fractional: slow replays move less than 1 ms a frame).
    pub ts_ms: f64,
    /// Campaign seconds per second.
    pub speed: f64,
    pub playing: bool,
    pub looping: bool,
    /// Everything up to `to_ms` has played.
    pub at_end: bool,
}

impl Playback {
    /// Where the playhead is across the span, 0 to 1.
    pub fn progress(&self) -> f32 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        ((self.ts_ms - self.from_ms as f64) / span).clamp(0.0, 1.0) as f32
    }
}

/// What a presenter asks of a replay.
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub enum ReplayCommand {
    TogglePause,
    Faster,
    Slower,
    /// Jump to a campaign time, epoch milliseconds.
    Seek(i64),
    /// Jump by a fraction of the span (negative: back).
    SeekBy(f64),
    Restart,
    ToggleLoop,
}

/// Replay speeds the keys step through, campaign seconds per second (1 day = 86,400).
pub const SPEED_STEPS: [f64; 22] = [
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1_800.0,
    3_600.0,
    7_200.0,
    21_600.0,
    43_200.0,
    86_400.0,
    172_800.0,
    432_000.0,
    1_000_000.0,
    10_000_000.0,
];

/// The next speed step above (`faster`) or below the current speed.
pub fn step_speed(speed: f64, faster: bool) -> f64 {
    let next = if faster {
        SPEED_STEPS.iter().copied().find(|s| *s > speed * 1.0001)
    } else {
        SPEED_STEPS
            .iter()
            .rev()
            .copied()
            .find(|s| *s < speed / 1.0001)
    };
    next.unwrap_or(speed).clamp(MIN_SPEED, MAX_SPEED)
}

/// The target of a command that moves the playhead, if it does.
pub fn seek_target(playback: &Playback, command: ReplayCommand) -> Option<i64> {
    let span = (playback.to_ms - playback.from_ms) as f64;
    let target = match command {
        ReplayCommand::Seek(ts) => ts,
        ReplayCommand::SeekBy(fraction) => (playback.ts_ms + fraction * span) as i64,
        ReplayCommand::Restart => playback.from_ms,
        _ => return None,
    };
    Some(target.clamp(playback.from_ms, playback.to_ms))
}

pub(super) fn plugin(app: &mut App) {
    app.add_message::<ReplayCommand>()
        .add_plugins((keys::plugin, file::plugin))
        .add_systems(
            Update,
            freeze_arcs_while_paused.in_set(crate::AppSystems::Apply),
        );
}

fn freeze_arcs_while_paused(
    playback: Option<Res<Playback>>,
    mut clock: ResMut<crate::arcs::DisplayClock>,
) {
    clock.frozen = playback.is_some_and(|p| !p.playing);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_steps_cover_a_tenth_to_ten_million() {
        assert_eq!(step_speed(1.0, true), 2.0);
        assert_eq!(step_speed(1.0, false), 0.5);
        assert_eq!(step_speed(0.1, false), 0.1);
        assert_eq!(step_speed(1_000.0, true), 1_800.0);
        assert_eq!(step_speed(10_000_000.0, true), 10_000_000.0);
    }
}
