//! `GET /v1/campaigns/{id}/replay`: one client's replay of a recorded campaign, paced by the
//! events' own timestamps times a speed it can change, pause, seek and loop.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use bytestring::ByteString;
use serde::Deserialize;
use viralglobe_protocol::{
    ArcEvent, LiveFilter, ReplayClock, ReplayControl, ServerMessage, Timestamp, replay::check_speed,
};

use super::{ReplayError, cursor::Cursor, cursor::Progress, parse_time};
use crate::{
    engine::Engine,
    hello::hello,
    hub::Offset,
    reading::Reading,
    recording::index::SharedIndex,
    ws::{self, Ended, Outbox, Source},
};

/// How often the playhead moves; arcs due within one step go out in one frame.
const STEP: Duration = Duration::from_millis(40);
/// How often the clock is sent unasked.
const CLOCK_EVERY: Duration = Duration::from_secs(1);
/// Most arcs read per step: a client that cannot take more slows the replay, never loses arcs.
const ARCS_PER_STEP: usize = 5_000;
const ARCS_PER_FRAME: usize = 1_000;

#[derive(Debug, Deserialize)]
pub(crate) struct ReplayQuery {
    speed: Option<f64>,
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "loop")]
    looping: Option<bool>,
    paused: Option<bool>,
}

pub(crate) async fn replay(
    req: HttpRequest,
    reading: Reading,
    query: web::Query<ReplayQuery>,
    library: web::Data<super::Library>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, actix_web::Error> {
    let query = query.into_inner();
    let resume = reading.resume()?;
    let filter = reading.filter;
    let campaign = filter.campaign.clone().unwrap_or_default();
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
    let mut first = vec![hello(&engine, &filter, |_| Some(offset.clone()))];
    if reset {
        first.push(ServerMessage::Reset {
            campaign: campaign.clone(),
            epoch,
        });
    }
    let mut step = tokio::time::interval(STEP);
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        first,
        step,
        clock_every: tokio::time::interval(CLOCK_EVERY),
    };
    let campaign = replay.campaign.clone();
    ws::start("replay", &req, Some(&campaign), replay)
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
    /// `hello`, and a reset for a client resuming from another epoch.
    first: Vec<ServerMessage>,
    step: tokio::time::Interval,
    clock_every: tokio::time::Interval,
}

/// What moves a replay on.
enum Tick {
    /// The playhead moved: send the arcs now due.
    Step,
    /// Time to tell the clock unasked.
    Clock,
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

impl Source for Replay {
    type Wake = Tick;

    async fn open(&mut self, out: &mut Outbox) -> Result<(), Ended> {
        for message in std::mem::take(&mut self.first) {
            out.message(&message).await?;
        }
        Ok(())
    }

    async fn wait(&mut self) -> Tick {
        tokio::select! {
            _ = self.step.tick() => Tick::Step,
            _ = self.clock_every.tick() => Tick::Clock,
        }
    }

    async fn act(&mut self, tick: Tick, out: &mut Outbox) -> Result<(), Ended> {
        match tick {
            Tick::Step => match self.step().await {
                Ok(arcs) => {
                    for chunk in arcs.chunks(ARCS_PER_FRAME) {
                        let arcs = chunk.to_vec();
                        out.message(&ServerMessage::Arcs { arcs }).await?;
                    }
                    Ok(())
                }
                Err(error) => {
                    tracing::error!(%error, "replay stopped");
                    let message = error.to_string();
                    let _ = out.message(&ServerMessage::Error { message }).await;
                    Err(Ended::ReadFailed)
                }
            },
            Tick::Clock => out.message(&self.clock()).await,
        }
    }

    async fn heard(&mut self, text: ByteString, out: &mut Outbox) -> Result<(), Ended> {
        let answer = match self.control(&text).await {
            Ok(()) => self.clock(),
            Err(message) => ServerMessage::Error { message },
        };
        out.message(&answer).await
    }
}
