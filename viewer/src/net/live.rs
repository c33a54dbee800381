//! `--live ws://host:port[,ws://…]`: the server's live feed on a thread of its own, reconnecting
//! with backoff. With a campaign, its counters are fetched first so the HUD starts from the
//! totals, and a reconnect resumes after the last arc received (`since`, `epoch`): nothing missed,
//! nothing counted twice. With several addresses (the nodes of a cluster), a lost connection moves
//! to the next one at once; only after every one failed in turn does it wait.

use std::sync::mpsc::SyncSender;

use super::{ConnectionState, Endpoint, NetEvent, backoff::Backoff, position::Position, socket};

pub fn spawn_live(
    endpoints: Vec<Endpoint>,
    campaign: Option<String>,
    events: SyncSender<NetEvent>,
) {
    let mut position = Position::live(campaign.clone());
    let spawned = std::thread::Builder::new()
        .name("live feed".into())
        .spawn(move || {
            let mut backoff = Backoff::default();
            let (mut next, mut failed_in_a_row) = (0, 0);
            loop {
                let Some(endpoint) = endpoints.get(next % endpoints.len().max(1)) else {
                    return;
                };
                if events
                    .send(NetEvent::State(ConnectionState::Connecting))
                    .is_err()
                {
                    return;
                }
                if position.resumes() {
                    // The HUD keeps its counters: the resumed arcs continue them.
                    if events.send(NetEvent::Resuming).is_err() {
                        return;
                    }
                } else if let Some(campaign) = &campaign {
                    match endpoint.stats(campaign) {
                        Ok(stats) => {
                            if events.send(NetEvent::Stats(Box::new(stats))).is_err() {
                                return;
                            }
                        }
                        Err(e) => bevy::log::warn!("campaign counters unavailable: {e}"),
                    }
                }
                let connected = || {
                    backoff.reset();
                    failed_in_a_row = 0;
                    let _ = events.send(NetEvent::State(ConnectionState::Connected));
                };
                let mut query: Vec<(&str, String)> =
                    campaign.iter().map(|c| ("campaign", c.clone())).collect();
                // Arcs in the compact binary encoding: a fifth of the bytes of JSON.
                query.push(("encoding", "compact".into()));
                query.extend(position.resume_query());
                let url = endpoint.websocket("/v1/live", &query);
                match socket::session(
                    &endpoint.authority,
                    &url,
                    &events,
                    None,
                    &mut position,
                    connected,
                ) {
                    socket::Ended::AppGone => return,
                    socket::Ended::Lost(error) => {
                        (next, failed_in_a_row) = (next + 1, failed_in_a_row + 1);
                        if failed_in_a_row % endpoints.len() != 0 {
                            bevy::log::warn!("live feed: {error}; trying the next address");
                            continue;
                        }
                        let retry_in = backoff.next_wait();
                        bevy::log::warn!("live feed: {error}; retrying in {retry_in:?}");
                        let state = ConnectionState::Retrying { error, retry_in };
                        if events.send(NetEvent::State(state)).is_err() {
                            return;
                        }
                        std::thread::sleep(retry_in);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        bevy::log::error!("cannot start the network thread: {e}");
    }
}
