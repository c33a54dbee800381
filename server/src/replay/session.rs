//! `GET /v1/campaigns/{id}/replay`: one client's replay of a recorded campaign, paced by the
//! events' own timestamps times a speed it can change, pause, seek and loop.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::Session;
use serde::Deserialize;
use tracing::Instrument;
use viralglobe_protocol::{
    ArcEvent, LiveFilter, ReplayClock, ReplayControl, ServerMessage, Timestamp, replay::check_speed,
};

use super::{ReplayError, Resume, checked_filter, cursor::Cursor, cursor::Progress, parse_time};
use crate::{
    auth::Access,
    engine::Engine,
    hello::hello,
    hub::Offset,
    recording::index::SharedIndex,
    ws::{self, Ended, HEARTBEAT, Inbound, keep_alive, receive, send},
};

/// How often the playhead moves; arcs due within one step go out in one frame.
const STEP: Duration = Duration::from_millis(40);
/// How often the clock is sent unasked.
const CLOCK_EVERY: Duration = Duration::from_secs(1);
/// Most arcs read per step: a client that cannot take more slows the replay, never loses arcs.
const ARCS_PER_STEP: usize = 5_000;
const ARCS_PER_FRAME: usize = 1_000;

#[derive(Debug, Deserialize)]
pub struct ReplayQuery {
    speed: Option<f64>,
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "loop")]
    looping: Option<bool>,
    paused: Option<bool>,
    kind: Option<String>,
    channel: Option<String>,
    generation: Option<String>,
    token: Option<String>,
    since: Option<String>,
    epoch: Option<String>,
}

pub async fn replay(
    req: HttpRequest,
    body: web::Payload,
    campaign: web::Path<String>,
    query: web::Query<ReplayQuery>,
    access: web::Data<Access>,
    library: web::Data<super::Library>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, actix_web::Error> {
    let campaign = campaign.into_inner();
    let query = query.into_inner();
    let filter = checked_filter(
        &req,
        &access,
        &campaign,
        [
            query.kind.as_deref(),
            query.channel.as_deref(),
            query.generation.as_deref(),
        ],
        query.token.as_deref(),
    )?;
    let bad = |field, message| ReplayError::BadQuery { field, message };
    let speed = check_speed(query.speed.unwrap_or(1.0)).map_err(|m| bad("speed", m))?;
    let from = query
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?;
    let to = query
        .to
        .as_deref()
        .map(|v| parse_time("to", v))
        .transpose()?;

    let resume = Resume::parse(query.since.as_deref(), query.epoch.as_deref())?;

    let name = campaign.clone();
    let opener = library.clone().into_inner();
    let index = web::block(move || opener.open(&name)).await??;
    let epoch = library.epoch(&campaign).unwrap_or_default();
    let first = index.span().map_or(0, |(first, _)| first);
    let from = from.unwrap_or(first);
    if to.is_some_and(|to| to < from) {
        return Err(bad("to", "`to` is before `from`".into()).into());
    }
    // Resuming in the recording's epoch continues after `since`; from another epoch, the client
    // is told its line started over and the replay starts at `from`.
    let since = resume
        .as_ref()
        .filter(|r| r.epoch == epoch)
        .map(|r| r.since);
    let reset = resume.is_some() && since.is_none();
    let seek_index = index.clone();
    let cursor = web::block(move || match since {
        Some(since) => Cursor::seek_seq(&seek_index, since),
        None => Cursor::seek(&seek_index, from),
    })
    .await?
    .map_err(|source| ReplayError::Read {
        campaign: campaign.clone(),
        source,
    })?;
    let start = match since {
        Some(_) => cursor.clock().clamp(from, i64::MAX),
        None => from,
    };

    let offset = Offset {
        epoch: epoch.as_str().into(),
        seq: index.arcs(),
    };
    let mut first_messages = vec![hello(&engine, &filter, |_| Some(offset.clone()))];
    if reset {
        first_messages.push(ServerMessage::Reset {
            campaign: campaign.clone(),
            epoch,
        });
    }
    let span = ws::session_span("replay", &req, Some(&campaign));
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let replay = Replay {
        campaign,
        index,
        cursor: Some(cursor),
        filter,
        from,
        to,
        looping: query.looping.unwrap_or(false),
        speed,
        playing: !query.paused.unwrap_or(false),
        anchor_ts: start,
        anchor_wall: Instant::now(),
        at_end: false,
        sent_until: start,
    };
    actix_web::rt::spawn(run_session(session, stream, replay, first_messages).instrument(span));
    Ok(response)
}

struct Replay {
    campaign: String,
    index: SharedIndex,
    /// Out of the replay only while a blocking read holds it.
    cursor: Option<Cursor>,
    filter: LiveFilter,
    from: i64,
    to: Option<i64>,
    looping: bool,
    speed: f64,
    playing: bool,
    /// The playhead was at `anchor_ts` at `anchor_wall`, and has moved at `speed` since if playing.
    anchor_ts: i64,
    anchor_wall: Instant,
    at_end: bool,
    /// Every arc up to this campaign time has been sent (the last step's reach).
    sent_until: i64,
}

impl Replay {
    /// The last campaign time there is to play: `to`, or the latest event recorded so far.
    fn end(&self) -> i64 {
        self.to
            .unwrap_or_else(|| self.index.span().map_or(self.from, |(_, last)| last))
    }

    fn playhead(&self) -> i64 {
        let moved = if self.playing {
            (self.anchor_wall.elapsed().as_secs_f64() * self.speed * 1_000.0) as i64
        } else {
            0
        };
        self.anchor_ts.saturating_add(moved).min(self.end())
    }

    fn rebase(&mut self, ts: i64) {
        self.anchor_ts = ts;
        self.anchor_wall = Instant::now();
    }

    fn clock(&self) -> ServerMessage {
        ServerMessage::Clock(ReplayClock {
            campaign: self.campaign.clone(),
            ts: Timestamp(self.playhead()),
            speed: self.speed,
            playing: self.playing,
            looping: self.looping,
            from: Timestamp(self.from),
            to: Timestamp(self.end()),
            at_end: self.at_end,
        })
    }

    /// Reads the arcs due by the playhead, off the async threads.
    async fn step(&mut self) -> Result<Vec<ArcEvent>, ReplayError> {
        let Some(mut cursor) = self.cursor.take() else {
            return Ok(Vec::new());
        };
        // Caught up with a campaign still recording: new events play as soon as they land.
        let live = self.at_end && self.playing && !self.looping && self.to.is_none();
        let until = if live { i64::MAX } else { self.playhead() };
        let (index, filter) = (self.index.clone(), self.filter.clone());
        let (cursor, outcome) = web::block(move || {
            let mut arcs = Vec::new();
            let progress =
                cursor.advance_growing(&index, until, u64::MAX, &filter, ARCS_PER_STEP, &mut arcs);
            (cursor, progress.map(|p| (p, arcs)))
        })
        .await
        .map_err(|e| self.read_error(std::io::Error::other(e.to_string())))?;
        let clock = cursor.clock();
        self.cursor = Some(cursor);
        let (progress, arcs) = outcome.map_err(|e| self.read_error(e))?;
        if live && !arcs.is_empty() {
            self.rebase(clock);
        }
        self.sent_until = if live || progress == Progress::Limited {
            clock
        } else {
            until
        };
        if progress == Progress::Limited {
            // The client (or the disk) is slower than the clock: hold the clock back to the
            // reading position rather than skip arcs.
            self.at_end = false;
            self.rebase(clock);
        } else {
            let past_end = self.playhead() >= self.end();
            self.at_end = past_end && (progress == Progress::End || self.to.is_some());
            if self.at_end && self.looping {
                self.seek(self.from).await?;
            }
        }
        Ok(arcs)
    }

    async fn seek(&mut self, ts: i64) -> Result<(), ReplayError> {
        let ts = ts.clamp(self.from, self.end().max(self.from));
        let index = self.index.clone();
        let cursor = web::block(move || Cursor::seek(&index, ts))
            .await
            .map_err(|e| self.read_error(std::io::Error::other(e.to_string())))?
            .map_err(|e| self.read_error(e))?;
        self.cursor = Some(cursor);
        self.at_end = false;
        self.sent_until = ts;
        self.rebase(ts);
        Ok(())
    }

    fn read_error(&self, source: std::io::Error) -> ReplayError {
        ReplayError::Read {
            campaign: self.campaign.clone(),
            source,
        }
    }

    /// Follows one control message; an error names what was wrong with it.
    async fn control(&mut self, text: &str) -> Result<(), String> {
        match ReplayControl::parse(text)? {
            ReplayControl::Pause => {
                // Pause where the arcs stopped, not where the wall clock got to since the last
                // step: nothing more is due, so the clock holds still.
                self.rebase(self.playhead().min(self.sent_until));
                self.playing = false;
            }
            ReplayControl::Play => {
                self.rebase(self.playhead());
                self.playing = true;
            }
            ReplayControl::Speed { speed } => {
                self.rebase(self.playhead());
                self.speed = speed;
            }
            ReplayControl::Seek { ts } => self.seek(ts.0).await.map_err(|e| e.to_string())?,
            ReplayControl::Loop { enabled } => self.looping = enabled,
        }
        Ok(())
    }
}

fn encode(message: &ServerMessage) -> String {
    serde_json::to_string(message).expect("server messages serialize")
}

async fn run_session(
    mut session: Session,
    stream: actix_ws::MessageStream,
    mut replay: Replay,
    first: Vec<ServerMessage>,
) {
    let started = Instant::now();
    tracing::debug!("websocket connected");
    let ended = serve(&mut session, stream, &mut replay, first).await;
    ws::log_end(ended, started);
    ws::close(session).await;
}

async fn serve(
    session: &mut Session,
    stream: actix_ws::MessageStream,
    replay: &mut Replay,
    first: Vec<ServerMessage>,
) -> Ended {
    let mut stream = stream.max_frame_size(64 * 1024);
    let mut step = tokio::time::interval(STEP);
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clock = tokio::time::interval(CLOCK_EVERY);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    for message in &first {
        if !send(session, encode(message)).await {
            return Ended::SendFailed;
        }
    }
    loop {
        tokio::select! {
            _ = step.tick() => {
                match replay.step().await {
                    Ok(arcs) => {
                        for chunk in arcs.chunks(ARCS_PER_FRAME) {
                            let frame = ServerMessage::Arcs { arcs: chunk.to_vec() };
                            if !send(session, encode(&frame)).await {
                                return Ended::SendFailed;
                            }
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "replay stopped");
                        let message = ServerMessage::Error { message: error.to_string() };
                        let _ = send(session, encode(&message)).await;
                        return Ended::ReadFailed;
                    }
                }
            }
            _ = clock.tick() => {
                if !send(session, encode(&replay.clock())).await {
                    return Ended::SendFailed;
                }
            }
            msg = stream.recv() => {
                last_heard = Instant::now();
                match receive(session, msg).await {
                    Inbound::Text(text) => {
                        let answer = match replay.control(&text).await {
                            Ok(()) => replay.clock(),
                            Err(message) => ServerMessage::Error { message },
                        };
                        if !send(session, encode(&answer)).await {
                            return Ended::SendFailed;
                        }
                    }
                    Inbound::Handled(true) => {}
                    Inbound::Handled(false) => return Ended::ClientClosed,
                }
            }
            _ = heartbeat.tick() => {
                if !keep_alive(session, last_heard).await {
                    return Ended::ClientSilent;
                }
            }
        }
    }
}
