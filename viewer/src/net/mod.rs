//! The network: a thread per connection to the server (the live feed or a served replay), never
//! the render thread. It feeds a bounded channel that one system drains each frame, so a frame
//! never waits on the network and a burst cannot grow memory without bound.

mod backoff;
pub mod endpoint;
mod live;
mod position;
mod remote_replay;
mod socket;

use std::{
    sync::{
        Mutex,
        mpsc::{Receiver, SyncSender, TryRecvError, sync_channel},
    },
    time::Duration,
};

use bevy::prelude::*;
use viralglobe_protocol::{CampaignStats, ServerMessage, Timeline};

use crate::{
    AppSystems,
    feed::{FeedReset, NewArcs},
    tally::Tally,
};
pub use endpoint::Endpoint;
pub use live::spawn_live;
pub use remote_replay::spawn_remote_replay;

/// Messages the channel holds before the network thread waits (each may carry a batch of arcs).
const CHANNEL_CAPACITY: usize = 256;
/// Messages drained per frame at most: a backlog spreads over frames instead of stalling one.
const MESSAGES_PER_FRAME: usize = 64;

/// What the network thread tells the app.
// Each event is moved once through the channel; boxing the server's messages would add an
// allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum NetEvent {
    State(ConnectionState),
    Server(ServerMessage),
    /// The campaign's counters when the live feed connects.
    Stats(Box<CampaignStats>),
    /// The connection resumes where the last one ended: the counters stand.
    Resuming,
    Timeline(Timeline),
}

#[derive(Resource, Debug, Clone, PartialEq, Default)]
pub enum ConnectionState {
    #[default]
    Connecting,
    Connected,
    /// The last attempt failed or the link dropped; the next attempt is `retry_in` away.
    Retrying {
        error: String,
        retry_in: Duration,
    },
}

/// The receiving end of the network thread's channel.
#[derive(Resource)]
pub struct Inbox(Mutex<Receiver<NetEvent>>);

/// Arcs the server dropped for this viewer because it read too slowly, and the last problem it
/// reported.
#[derive(Resource, Debug, Default)]
pub struct LinkHealth {
    pub dropped_arcs: u64,
    pub last_error: Option<String>,
}

/// The campaign the feed shows, as the server names it.
#[derive(Resource, Debug, Default, Clone)]
pub struct CampaignName(pub String);

/// A new channel: the sender for the network thread, the inbox resource for the app.
pub fn channel() -> (SyncSender<NetEvent>, Inbox) {
    let (sender, receiver) = sync_channel(CHANNEL_CAPACITY);
    (sender, Inbox(Mutex::new(receiver)))
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<LinkHealth>()
        .init_resource::<CampaignName>()
        .add_systems(
            Update,
            drain
                .in_set(AppSystems::Feed)
                .run_if(not(in_state(crate::Source::File))),
        )
        .add_plugins(remote_replay::plugin);
}

/// Per-campaign `seq` seen last: a `seq` going back means the campaign started over (the demo
/// loops).
#[derive(Default)]
struct LastSeq(Option<u64>);

/// Whether the counters came from the campaign's stats since the last connection attempt; if not,
/// the live feed's `hello` sets them.
#[derive(Default)]
struct Seeded(bool);

#[allow(clippy::too_many_arguments)]
fn drain(
    inbox: Option<Res<Inbox>>,
    mut commands: Commands,
    mut arcs: MessageWriter<NewArcs>,
    mut resets: MessageWriter<FeedReset>,
    mut health: ResMut<LinkHealth>,
    mut name: ResMut<CampaignName>,
    mut last_seq: Local<LastSeq>,
    mut seeded: Local<Seeded>,
    source: Res<State<crate::Source>>,
    mut clocks: MessageWriter<remote_replay::ServerClock>,
) {
    let Some(inbox) = inbox else { return };
    let Ok(receiver) = inbox.0.lock() else { return };
    for _ in 0..MESSAGES_PER_FRAME {
        let event = match receiver.try_recv() {
            Ok(event) => event,
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                commands.insert_resource(ConnectionState::Retrying {
                    error: "network thread stopped".into(),
                    retry_in: Duration::MAX,
                });
                break;
            }
        };
        match event {
            NetEvent::State(state) => {
                match state {
                    ConnectionState::Connected => last_seq.0 = None,
                    ConnectionState::Connecting => seeded.0 = false,
                    ConnectionState::Retrying { .. } => {}
                }
                commands.insert_resource(state);
            }
            NetEvent::Stats(stats) => {
                seeded.0 = true;
                commands.insert_resource(crate::attribution::Attribution::of_stats(&stats));
                name.0.clone_from(&stats.summary.id);
                resets.write(FeedReset {
                    counts: Tally::of_stats(&stats),
                });
            }
            NetEvent::Resuming => seeded.0 = true,
            NetEvent::Timeline(timeline) => {
                commands.insert_resource(crate::activity::ActivityTimeline::from(&timeline));
            }
            NetEvent::Server(message) => match message {
                ServerMessage::Hello { campaigns, .. } => {
                    if let [only] = campaigns.as_slice() {
                        name.0.clone_from(&only.id);
                    }
                    // A replay's hello carries the campaign's totals, not where the replay is.
                    if !seeded.0 && *source.get() == crate::Source::Live {
                        resets.write(FeedReset {
                            counts: Tally::of_summaries(&campaigns),
                        });
                    }
                }
                ServerMessage::Arc(arc) => {
                    if last_seq.0.is_some_and(|seq| arc.seq < seq) {
                        resets.write(FeedReset::default());
                    }
                    last_seq.0 = Some(arc.seq);
                    arcs.write(NewArcs(vec![arc]));
                }
                ServerMessage::Arcs { arcs: batch } => {
                    if let Some(first) = batch.first()
                        && last_seq.0.is_some_and(|seq| first.seq < seq)
                    {
                        resets.write(FeedReset::default());
                    }
                    last_seq.0 = batch.last().map(|a| a.seq).or(last_seq.0);
                    arcs.write(NewArcs(batch));
                }
                ServerMessage::Lagged { dropped_arcs } => health.dropped_arcs += dropped_arcs,
                // Only feeds opened with `max_rate` are sampled; the viewer asks for every arc.
                ServerMessage::Skipped(_) => {}
                // The campaign's arc line started over (a demo loop): so do the counters. A new
                // campaign beside the one shown changes nothing.
                ServerMessage::Reset { campaign, .. } if campaign == name.0 => {
                    last_seq.0 = None;
                    resets.write(FeedReset::default());
                }
                ServerMessage::Reset { .. } => {}
                ServerMessage::Clock(clock) => {
                    clocks.write(remote_replay::ServerClock(clock));
                }
                ServerMessage::Error { message } => {
                    warn!("server: {message}");
                    health.last_error = Some(message);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use viralglobe_protocol::{ArcKind, ServerMessage};

    use super::*;
    use crate::test_support::{Heard, arc, headless_app, listen};

    fn app() -> (App, SyncSender<NetEvent>) {
        let mut app = headless_app();
        crate::configure_sets(&mut app);
        app.add_message::<crate::replay::ReplayCommand>()
            .add_plugins(plugin);
        let (sender, inbox) = channel();
        app.insert_resource(inbox);
        listen(&mut app);
        (app, sender)
    }

    fn arcs_this_frame(app: &mut App) -> usize {
        std::mem::take(&mut app.world_mut().resource_mut::<Heard>().arcs).len()
    }

    #[test]
    fn decoded_messages_become_arcs_state_and_health() {
        let (mut app, sender) = app();
        let text = r#"{"type":"arcs","arcs":[]}"#;
        let decoded: ServerMessage = serde_json::from_str(text).expect("protocol decodes");
        sender.send(NetEvent::Server(decoded)).expect("send");
        sender
            .send(NetEvent::State(ConnectionState::Connected))
            .expect("send");
        let batch = vec![arc(1, ArcKind::Click, 0), arc(2, ArcKind::Share, 1)];
        sender
            .send(NetEvent::Server(ServerMessage::Arcs { arcs: batch }))
            .expect("send");
        sender
            .send(NetEvent::Server(ServerMessage::Lagged { dropped_arcs: 7 }))
            .expect("send");
        app.update();
        assert_eq!(arcs_this_frame(&mut app), 2);
        assert_eq!(
            *app.world().resource::<ConnectionState>(),
            ConnectionState::Connected
        );
        assert_eq!(app.world().resource::<LinkHealth>().dropped_arcs, 7);
    }

    #[test]
    fn a_backlog_drains_over_several_frames_and_a_restart_resets() {
        let (mut app, sender) = app();
        std::thread::spawn(move || {
            for seq in (0..150).chain([3]) {
                let message = ServerMessage::Arc(arc(seq, ArcKind::Click, 0));
                if sender.send(NetEvent::Server(message)).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        app.update();
        assert_eq!(arcs_this_frame(&mut app), MESSAGES_PER_FRAME);
        let mut total = MESSAGES_PER_FRAME;
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(20));
            app.update();
            total += arcs_this_frame(&mut app);
        }
        assert_eq!(total, 151);
        assert_eq!(
            app.world().resource::<Heard>().resets.len(),
            1,
            "seq went back once"
        );
    }

    #[test]
    fn a_thread_that_cannot_connect_reports_retrying() {
        let (mut app, sender) = app();
        // Nothing listens on port 9 of loopback (discard is not served here).
        let endpoint = Endpoint::parse("ws://127.0.0.1:9", None).expect("valid");
        spawn_live(vec![endpoint], None, sender);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            app.update();
            if let Some(ConnectionState::Retrying { error, retry_in }) =
                app.world().get_resource::<ConnectionState>()
            {
                assert!(error.contains("127.0.0.1:9"), "{error}");
                assert!(*retry_in >= Duration::from_millis(500));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reported the failure"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A stand-in server: answers the counters request with 404, and each websocket with what
    /// `script` says for that connection; hands back the URL each websocket asked for.
    fn fake_server(script: Vec<Vec<ServerMessage>>) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let (urls, heard) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut start = [0u8; 64];
                let n = stream.peek(&mut start).unwrap_or(0);
                if !start[..n].starts_with(b"GET /v1/live") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
                let mut url = String::new();
                // tungstenite's callback type; its error is its own HTTP response.
                #[allow(clippy::result_large_err)]
                let callback = |request: &tungstenite::handshake::server::Request, response| {
                    url = request.uri().to_string();
                    Ok(response)
                };
                let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
                    return;
                };
                let _ = urls.send(url);
                let Some(messages) = script.next() else {
                    return;
                };
                for message in messages {
                    let text = serde_json::to_string(&message).expect("encodes");
                    let _ = ws.send(tungstenite::Message::text(text));
                }
                if script.len() == 0 {
                    // The last connection stays open for the rest of the test.
                    std::thread::sleep(Duration::from_secs(30));
                }
                let _ = ws.close(None);
            }
        });
        (format!("ws://{address}"), heard)
    }

    #[test]
    fn a_lost_live_feed_resumes_after_the_last_arc_it_received() {
        let (mut app, sender) = app();
        let hello = |seq| ServerMessage::Hello {
            protocol: 1,
            server: "fake".into(),
            filter: viralglobe_protocol::LiveFilter::default(),
            campaigns: vec![viralglobe_protocol::CampaignSummary {
                id: "test".into(),
                epoch: Some("e1".into()),
                seq,
                ..Default::default()
            }],
            max_rate: None,
        };
        let arcs = |seqs: std::ops::RangeInclusive<u64>| ServerMessage::Arcs {
            arcs: seqs.map(|s| arc(s, ArcKind::Click, 0)).collect(),
        };
        let (url, urls) = fake_server(vec![
            vec![hello(10), arcs(11..=13)],
            vec![hello(15), arcs(14..=15)],
        ]);
        // A first address where nothing listens: the thread moves on to the next at once.
        let dead = Endpoint::parse("ws://127.0.0.1:9", None).expect("valid");
        let endpoint = Endpoint::parse(&url, None).expect("valid");
        spawn_live(vec![dead, endpoint], Some("test".into()), sender);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while app.world().resource::<Heard>().arcs.len() < 5 && std::time::Instant::now() < deadline
        {
            app.update();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(app.world().resource::<Heard>().arcs, [11, 12, 13, 14, 15]);
        let first = urls.recv_timeout(Duration::from_secs(1)).expect("first");
        let second = urls.recv_timeout(Duration::from_secs(1)).expect("second");
        assert_eq!(first, "/v1/live?campaign=test&encoding=compact");
        assert_eq!(
            second,
            "/v1/live?campaign=test&encoding=compact&since=13&epoch=e1"
        );
    }
}
