//! `--replay-from ws://host:port --campaign ID`: a replay the server plays, steered from here. The
//! server's clock messages set the playback; between them the playhead moves on its own. Keys and
//! the timeline send controls; a seek resets the globe at once, with the counters of everything
//! before the target taken from the server's timeline.

use std::sync::{
    Mutex,
    mpsc::{Receiver, Sender, SyncSender, channel},
};

use bevy::prelude::*;
use viralglobe_protocol::{ReplayClock, ReplayControl};

use super::{ConnectionState, Endpoint, NetEvent, backoff::Backoff, position::Position, socket};
use crate::{
    AppSystems, Source,
    activity::ActivityTimeline,
    feed::FeedReset,
    replay::{Playback, ReplayCommand, seek_target, step_speed},
};

/// Buckets asked of the server's timeline.
const TIMELINE_BUCKETS: usize = 240;

/// A clock message from the server.
#[derive(Message, Debug, Clone)]
pub struct ServerClock(pub ReplayClock);

/// Controls on their way to the network thread.
#[derive(Resource)]
pub struct Controls(Mutex<Sender<ReplayControl>>);

pub fn spawn_remote_replay(
    endpoint: Endpoint,
    campaign: String,
    speed: f64,
    events: SyncSender<NetEvent>,
) -> Controls {
    let (sender, receiver) = channel();
    let spawned = std::thread::Builder::new()
        .name("replay feed".into())
        .spawn(move || run(&endpoint, &campaign, speed, &events, &receiver));
    if let Err(e) = spawned {
        error!("cannot start the network thread: {e}");
    }
    Controls(Mutex::new(sender))
}

/// Connects, and after a lost link resumes the replay after the last arc received, at the speed
/// and in the state last asked.
fn run(
    endpoint: &Endpoint,
    campaign: &str,
    speed: f64,
    events: &SyncSender<NetEvent>,
    controls: &Receiver<ReplayControl>,
) {
    let path = format!("/v1/campaigns/{campaign}/replay");
    let mut position = Position::replay(campaign.to_owned());
    position.sent(&ReplayControl::Speed { speed });
    let mut backoff = Backoff::default();
    let mut have_timeline = false;
    loop {
        if events
            .send(NetEvent::State(ConnectionState::Connecting))
            .is_err()
        {
            return;
        }
        if !have_timeline {
            match endpoint.timeline(campaign, TIMELINE_BUCKETS) {
                Ok(timeline) => {
                    have_timeline = true;
                    if events.send(NetEvent::Timeline(timeline)).is_err() {
                        return;
                    }
                }
                Err(e) => warn!("timeline unavailable: {e}"),
            }
        }
        let connected = || {
            backoff.reset();
            let _ = events.send(NetEvent::State(ConnectionState::Connected));
        };
        let url = endpoint.websocket(&path, &position.resume_query());
        match socket::session(
            &endpoint.authority,
            &url,
            events,
            Some(controls),
            &mut position,
            connected,
        ) {
            socket::Ended::AppGone => return,
            socket::Ended::Lost(error) => {
                let retry_in = backoff.next_wait();
                let state = ConnectionState::Retrying { error, retry_in };
                if events.send(NetEvent::State(state)).is_err() {
                    return;
                }
                std::thread::sleep(retry_in);
            }
        }
    }
}

pub(super) fn plugin(app: &mut App) {
    app.add_message::<ServerClock>().add_systems(
        Update,
        (
            send_commands.in_set(AppSystems::Input),
            (follow_clock, move_playhead)
                .chain()
                .in_set(AppSystems::Feed),
        )
            .run_if(in_state(Source::Served)),
    );
}

fn send_commands(
    mut commands: MessageReader<ReplayCommand>,
    controls: Res<Controls>,
    playback: Option<ResMut<Playback>>,
    timeline: Option<Res<ActivityTimeline>>,
    mut resets: MessageWriter<FeedReset>,
) {
    let Some(mut playback) = playback else {
        commands.clear();
        return;
    };
    let Ok(sender) = controls.0.lock() else {
        return;
    };
    for &command in commands.read() {
        let control = match command {
            ReplayCommand::TogglePause if playback.playing => ReplayControl::Pause,
            ReplayCommand::TogglePause => ReplayControl::Play,
            ReplayCommand::Faster | ReplayCommand::Slower => ReplayControl::Speed {
                speed: step_speed(playback.speed, command == ReplayCommand::Faster),
            },
            ReplayCommand::ToggleLoop => ReplayControl::Loop {
                enabled: !playback.looping,
            },
            ReplayCommand::Seek(_) | ReplayCommand::SeekBy(_) | ReplayCommand::Restart => {
                let Some(target) = seek_target(&playback, command) else {
                    continue;
                };
                playback.ts_ms = target as f64;
                resets.write(FeedReset {
                    counts: timeline
                        .as_ref()
                        .map(|t| t.counts_before(target))
                        .unwrap_or_default(),
                });
                ReplayControl::Seek {
                    ts: viralglobe_protocol::Timestamp(target),
                }
            }
        };
        // Shown at once; the server's answering clock confirms it.
        match &control {
            ReplayControl::Pause => playback.playing = false,
            ReplayControl::Play => playback.playing = true,
            ReplayControl::Speed { speed } => playback.speed = *speed,
            ReplayControl::Loop { enabled } => playback.looping = *enabled,
            ReplayControl::Seek { .. } => {}
        }
        if sender.send(control).is_err() {
            break;
        }
        if command == ReplayCommand::Restart && !playback.playing {
            let _ = sender.send(ReplayControl::Play);
        }
    }
}

fn follow_clock(
    mut clocks: MessageReader<ServerClock>,
    mut commands: Commands,
    playback: Option<ResMut<Playback>>,
    mut resets: MessageWriter<FeedReset>,
) {
    let Some(ServerClock(clock)) = clocks.read().last() else {
        return;
    };
    let next = Playback {
        from_ms: clock.from.0,
        to_ms: clock.to.0,
        ts_ms: clock.ts.0 as f64,
        speed: clock.speed,
        playing: clock.playing,
        looping: clock.looping,
        at_end: clock.at_end,
    };
    match playback {
        Some(mut playback) => {
            // The server started the span again by itself (a loop): start the globe again too.
            let went_back = next.ts_ms + 1_000.0 < playback.ts_ms - playback.speed * 2_000.0;
            if went_back {
                resets.write(FeedReset::default());
            }
            *playback = next;
        }
        None => commands.insert_resource(next),
    }
}

fn move_playhead(playback: Option<ResMut<Playback>>, time: Res<Time>) {
    if let Some(mut playback) = playback
        && playback.playing
        && !playback.at_end
    {
        let ts = playback.ts_ms + time.delta_secs_f64() * playback.speed * 1_000.0;
        playback.ts_ms = ts.min(playback.to_ms as f64);
    }
}
