//! `--replay FILE`: plays a file of arcs from disk, paced by the arcs' own times times the speed.

use bevy::prelude::*;

use super::{Playback, ReplayCommand, arc_file::ArcFile, seek_target, step_speed};
use crate::{
    AppSystems,
    feed::{FeedReset, NewArcs},
    tally::Tally,
};

/// The file being played and the next arc to send.
#[derive(Resource, Debug)]
pub struct FileReplay {
    pub recording: ArcFile,
    pub next: usize,
}

impl FileReplay {
    /// The replay of `recording`, starting at `from_ms` (the first arc when `None`).
    pub fn start(recording: ArcFile, from_ms: Option<i64>, speed: f64) -> (Self, Playback) {
        let (first, last) = recording.span();
        let ts = from_ms.unwrap_or(first).clamp(first, last);
        let playback = Playback {
            from_ms: first,
            to_ms: last,
            ts_ms: ts as f64,
            speed,
            playing: true,
            looping: false,
            at_end: false,
        };
        let next = recording.position(ts);
        (Self { recording, next }, playback)
    }
}

pub(super) fn plugin(app: &mut App) {
    app.add_systems(
        Update,
        play.in_set(AppSystems::Feed)
            .run_if(in_state(crate::Source::File)),
    );
}

fn play(
    replay: Option<ResMut<FileReplay>>,
    mut playback: Option<ResMut<Playback>>,
    mut commands: MessageReader<ReplayCommand>,
    mut arcs: MessageWriter<NewArcs>,
    mut resets: MessageWriter<FeedReset>,
    time: Res<Time>,
) {
    let (Some(mut replay), Some(playback)) = (replay, playback.as_mut()) else {
        return;
    };
    for &command in commands.read() {
        match command {
            ReplayCommand::TogglePause => playback.playing = !playback.playing,
            ReplayCommand::Faster => playback.speed = step_speed(playback.speed, true),
            ReplayCommand::Slower => playback.speed = step_speed(playback.speed, false),
            ReplayCommand::ToggleLoop => playback.looping = !playback.looping,
            _ => {}
        }
        if let Some(target) = seek_target(playback, command) {
            seek(&mut replay, playback, target, &mut resets);
            if command == ReplayCommand::Restart {
                playback.playing = true;
            }
        }
    }
    if !playback.playing {
        return;
    }
    let until = playback.ts_ms + time.delta_secs_f64() * playback.speed * 1_000.0;
    let start = replay.next;
    let arcs_len = replay.recording.arcs.len();
    let end = replay
        .recording
        .arcs
        .partition_point_from(start, |ts| (ts as f64) <= until);
    if end > start {
        arcs.write(NewArcs(replay.recording.arcs.slice(start..end)));
    }
    replay.next = end;
    playback.ts_ms = until.min(playback.to_ms as f64);
    if end == arcs_len {
        if playback.looping {
            let from = playback.from_ms;
            seek(&mut replay, playback, from, &mut resets);
        } else {
            playback.playing = false;
            playback.at_end = true;
        }
    }
}

/// Moves the playhead: arcs in flight go, counters become those of everything before `target`.
fn seek(
    replay: &mut FileReplay,
    playback: &mut Playback,
    target: i64,
    resets: &mut MessageWriter<FeedReset>,
) {
    replay.next = replay.recording.position(target);
    playback.ts_ms = target as f64;
    playback.at_end = false;
    resets.write(FeedReset {
        counts: Tally::of_counted(replay.recording.arcs.counted(0..replay.next)),
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bevy::time::TimeUpdateStrategy;
    use viralglobe_protocol::ArcKind;

    use super::*;
    use crate::test_support::{Heard, arc, headless_app, listen, uncap_time};

    /// A replay of 100 clicks one second apart, stepping 1 s of display time per update.
    fn app(speed: f64) -> App {
        let mut app = headless_app();
        crate::configure_sets(&mut app);
        app.insert_state(crate::Source::File)
            .add_message::<ReplayCommand>()
            .add_plugins(plugin)
            .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs(1)));
        let recording = ArcFile {
            arcs: (0..100).map(|seq| arc(seq, ArcKind::Click, 0)).collect(),
            skipped: vec![],
        };
        let (replay, playback) = FileReplay::start(recording, None, speed);
        app.insert_resource(replay).insert_resource(playback);
        listen(&mut app);
        uncap_time(&mut app);
        app.update(); // the first update has no elapsed time
        app
    }

    fn sent(app: &mut App) -> Vec<u64> {
        std::mem::take(&mut app.world_mut().resource_mut::<Heard>().arcs)
    }

    #[test]
    fn plays_at_speed_pauses_and_stops_at_the_end() {
        let mut app = app(10.0);
        sent(&mut app);
        app.update();
        // 10 campaign seconds a second: the next ten arcs.
        let first = sent(&mut app);
        assert_eq!(first.len(), 10, "{first:?}");
        assert_eq!(first.windows(2).filter(|w| w[1] != w[0] + 1).count(), 0);

        app.world_mut().write_message(ReplayCommand::TogglePause);
        app.update();
        app.update();
        assert!(!app.world().resource::<Playback>().playing);
        let paused_at = app.world().resource::<FileReplay>().next;
        assert_eq!(paused_at, *first.last().expect("arcs") as usize + 1);
        assert!(sent(&mut app).is_empty(), "nothing plays while paused");

        app.world_mut().write_message(ReplayCommand::TogglePause);
        for _ in 0..20 {
            app.update();
        }
        let playback = app.world().resource::<Playback>();
        assert!(playback.at_end && !playback.playing);
        assert_eq!(app.world().resource::<FileReplay>().next, 100);
    }

    #[test]
    fn seeking_resets_the_globe_and_counts_what_came_before() {
        let mut app = app(1.0);
        let from = app.world().resource::<Playback>().from_ms;
        app.world_mut()
            .write_message(ReplayCommand::Seek(from + 50_000));
        app.update();
        let heard = app.world().resource::<Heard>();
        assert_eq!(heard.resets.last().expect("a reset").counts.clicks, 50);
        assert_eq!(
            app.world().resource::<FileReplay>().next,
            52,
            "50 earlier + 2 played"
        );

        app.world_mut().write_message(ReplayCommand::Restart);
        app.update();
        assert!(app.world().resource::<FileReplay>().next <= 2);
    }

    #[test]
    fn a_looping_replay_starts_again() {
        let mut app = app(1_000.0);
        app.world_mut().write_message(ReplayCommand::ToggleLoop);
        app.update();
        let playback = app.world().resource::<Playback>();
        assert!(playback.playing && playback.looping && !playback.at_end);
        assert_eq!(app.world().resource::<FileReplay>().next, 0);
    }
}
