//! `GET /v1/live`: the websocket of one subscriber.
//!
//! A subscriber that resumes (`campaign`, `since`, `epoch`) is registered with the hub first,
//! which hands it the campaign's offset at that instant; the arcs after `since` up to that offset
//! come from the recording, the rest from the hub's queue with anything at or below the offset
//! trimmed. Such a subscriber is never told `lagged`: what its queue dropped is read from the
//! recording instead.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use bytestring::ByteString;
use serde::Deserialize;
use viralglobe_protocol::{Encoding, LiveFilter, ServerMessage, compact};

use super::catch_up;
use crate::{
    engine::Engine,
    hello::hello,
    hub::{Frame, FrameKind, Frames, Hub, Offset},
    reading::{ReadError, Reading, Resume},
    replay::Library,
    ws::{self, Ended, Outbox, Source},
};

#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    encoding: Option<String>,
    max_rate: Option<String>,
}

/// The feed's `max_rate` (arcs a second; absent: every arc).
fn max_rate(query: &LiveQuery) -> Result<Option<u32>, ReadError> {
    viralglobe_protocol::live::parse_max_rate(query.max_rate.as_deref())
        .map_err(|e| ReadError::bad(e.field, e.message))
}

/// `GET /v1/live`: a websocket.
pub(crate) async fn live(
    req: HttpRequest,
    reading: Reading,
    query: web::Query<LiveQuery>,
    hub: web::Data<Hub>,
    library: web::Data<Library>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, actix_web::Error> {
    let encoding = Encoding::from_query(query.encoding.as_deref())
        .map_err(|e| ReadError::bad(e.field, e.message))?;
    let max_rate = max_rate(&query)?;
    let resume = reading.resume()?;
    let feed = subscribe(
        reading.filter,
        (encoding, max_rate),
        resume,
        hub,
        library,
        &engine,
    );
    let campaign = feed.filter.campaign.clone();
    ws::start("live", &req, campaign.as_deref(), feed)
}

/// `GET /v1/live/events`: the same feed as server-sent events, JSON only, for clients that
/// cannot open a websocket (a proxy that breaks them, say). A browser's `EventSource` resumes
/// by itself: it sends the id of the last event it got (`epoch:seq`) as `Last-Event-ID`.
pub(crate) async fn live_events(
    req: HttpRequest,
    reading: Reading,
    query: web::Query<LiveQuery>,
    hub: web::Data<Hub>,
    library: web::Data<Library>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, actix_web::Error> {
    let max_rate = max_rate(&query)?;
    let resume = reading.resume_events(&req)?;
    let feed = subscribe(
        reading.filter,
        (Encoding::Json, max_rate),
        resume,
        hub,
        library,
        &engine,
    );
    let campaign = feed.filter.campaign.clone();
    ws::start_events("live-events", &req, campaign.as_deref(), feed)
}

/// Registers a subscriber with the hub (in an encoding, at most `max_rate` arcs a second) and
/// makes its feed: `hello` and where it stands.
fn subscribe(
    filter: LiveFilter,
    (encoding, max_rate): (Encoding, Option<u32>),
    resume: Option<Resume>,
    hub: web::Data<Hub>,
    library: web::Data<Library>,
    engine: &Engine,
) -> Feed {
    let (frames, offset, line) = hub.subscribe_counted(filter.clone(), encoding, max_rate);
    // The hello gives the campaign's offset at the subscription: its queue holds exactly what
    // follows, and a new subscriber is sent nothing at or before it (arcs published in the tick
    // it joined in are in the queue too: trimmed, as for a resume).
    let mut hello = hello(engine, &filter, |c| match &offset {
        Some(o) if filter.campaign.as_deref() == Some(c) => Some(o.clone()),
        _ => hub.offset(c),
    });
    // A line that replays a recording (the demo's loop) has shown only part of it so far.
    if let (Some(line), ServerMessage::Hello { campaigns, .. }) = (&line, &mut hello) {
        campaigns
            .iter_mut()
            .filter(|c| filter.campaign.as_deref() == Some(c.id.as_str()))
            .for_each(|c| crate::hello::count_line(c, line));
    }
    if let ServerMessage::Hello { max_rate: rate, .. } = &mut hello {
        *rate = max_rate;
    }
    let start = match (&resume, &offset) {
        (None, Some(o)) => o.seq,
        _ => 0,
    };
    Feed {
        hub: hub.into_inner(),
        library: library.into_inner(),
        filter,
        resuming: resume.is_some(),
        epoch: offset.as_ref().map(|o| o.epoch.to_string()),
        floor: start,
        sent: start,
        delivery: metrics::histogram!("viralglobe_live_delivery_seconds"),
        arc_frames: 0,
        behind: 0,
        encoding,
        frames,
        opening: Some((hello, resume, offset)),
    }
}

/// A subscriber's frames of arcs whose delivery time is sampled: one in this many (the first
/// included).
const DELIVERY_SAMPLE: u64 = 8;

/// One subscriber's place in its campaign's arc line.
struct Feed {
    hub: Arc<Hub>,
    library: Arc<Library>,
    filter: LiveFilter,
    resuming: bool,
    /// The epoch the subscriber is in.
    epoch: Option<String>,
    /// Arcs up to this `seq` were sent from the recording: trimmed from live frames.
    floor: u64,
    /// The last `seq` sent.
    sent: u64,
    /// From an arc's publication to its frame's hand-over to the socket, for one frame in
    /// [`DELIVERY_SAMPLE`].
    delivery: metrics::Histogram,
    /// Frames of arcs forwarded.
    arc_frames: u64,
    /// Arcs in frames dropped for waiting too long in the queue, not yet told.
    behind: u64,
    encoding: Encoding,
    /// The subscriber's queue at the hub.
    frames: Frames,
    /// Until the session opens: `hello`, and where a resuming subscriber resumes in the offset
    /// it subscribed at.
    opening: Option<(ServerMessage, Option<Resume>, Option<Offset>)>,
}

impl Feed {
    fn campaign(&self) -> &str {
        self.filter.campaign.as_deref().unwrap_or_default()
    }

    /// Sends a reset to epoch `epoch`.
    async fn reset(&mut self, out: &mut Outbox, epoch: &str) -> Result<(), Ended> {
        let reset = ServerMessage::Reset {
            campaign: self.campaign().to_owned(),
            epoch: epoch.to_owned(),
        };
        self.epoch = Some(epoch.to_owned());
        (self.floor, self.sent) = (0, 0);
        out.message(&reset).await
    }

    /// Brings the subscriber from `since` up to the campaign's `offset` from the recording.
    async fn catch_up(
        &mut self,
        out: &mut Outbox,
        since: u64,
        offset: &Offset,
    ) -> Result<(), Ended> {
        let library = self.library.clone();
        // Boxed: a rare path with a large future, kept out of every session's task.
        let recorded =
            catch_up::send_recorded(out, library, &self.filter, self.encoding, since, offset.seq);
        match Box::pin(recorded).await {
            Ok(sent) => {
                self.floor = offset.seq;
                self.sent = self.sent.max(offset.seq);
                sent
            }
            Err(error) => {
                tracing::error!(%error, campaign = self.campaign(), "cannot read the recording to catch up");
                let message = ServerMessage::Error {
                    message: format!("cannot catch up: {error}"),
                };
                let _ = out.message(&message).await;
                Err(Ended::ReadFailed)
            }
        }
    }

    /// A resuming subscriber's first step: a reset if its epoch is not the campaign's, then the
    /// recorded arcs after `since`.
    async fn resume(
        &mut self,
        out: &mut Outbox,
        resume: Resume,
        offset: Offset,
    ) -> Result<(), Ended> {
        let mut since = resume.since;
        if *offset.epoch != resume.epoch || since > offset.seq {
            self.reset(out, &offset.epoch).await?;
            since = 0;
        }
        self.sent = since;
        self.catch_up(out, since, &offset).await
    }

    /// Forwards one frame from the hub, trimmed of what the recording already gave. Arcs that
    /// waited longer than the hub's `max_lag` are dropped instead: the subscriber is told
    /// `lagged` (or, resuming, given them from the recording) before the next fresh frame.
    async fn forward(&mut self, out: &mut Outbox, frame: Arc<Frame>) -> Result<(), Ended> {
        if frame.seqs.is_some() {
            if frame.published.elapsed() > self.hub.max_lag() {
                self.behind += frame.arcs;
                metrics::counter!("viralglobe_live_dropped_arcs_total").increment(frame.arcs);
                return Ok(());
            }
            if self.behind > 0 {
                self.tell_behind(out).await?;
            }
        }
        if frame.kind == FrameKind::Reset {
            if let Ok(ServerMessage::Reset { epoch, .. }) = serde_json::from_str(&frame.text) {
                out.set_epoch(&epoch);
                self.epoch = Some(epoch);
            }
            (self.floor, self.sent) = (0, 0);
            return out.text(frame.text.clone()).await;
        }
        let Some((first, last)) = frame.seqs else {
            if frame.kind == FrameKind::Lagged && self.resuming && self.filter.campaign.is_some() {
                // `lagged`: what the queue dropped is in the recording.
                return Box::pin(self.refill(out)).await;
            }
            return out.text(frame.text.clone()).await;
        };
        if last <= self.floor {
            return Ok(());
        }
        self.sent = last;
        if first > self.floor {
            return send_frame(out, &frame).await;
        }
        // Partly sent from the recording already: the rest of it.
        let mut arcs = match &frame.binary {
            Some(bytes) => match compact::decode(bytes) {
                Ok(arcs) => arcs,
                Err(_) => return send_frame(out, &frame).await,
            },
            None => match serde_json::from_str(&frame.text) {
                Ok(ServerMessage::Arcs { arcs }) => arcs,
                _ => return send_frame(out, &frame).await,
            },
        };
        arcs.retain(|a| a.seq > self.floor);
        out.arcs(arcs, self.encoding).await
    }

    /// After frames were dropped for waiting too long: `lagged`, or the recording's arcs.
    async fn tell_behind(&mut self, out: &mut Outbox) -> Result<(), Ended> {
        let dropped_arcs = std::mem::take(&mut self.behind);
        if self.resuming && self.filter.campaign.is_some() {
            return Box::pin(self.refill(out)).await;
        }
        out.message(&ServerMessage::Lagged { dropped_arcs }).await
    }

    /// After the hub dropped frames for this subscriber: the missing arcs from the recording, up
    /// to where the campaign stands now.
    async fn refill(&mut self, out: &mut Outbox) -> Result<(), Ended> {
        let Some(now) = self.hub.offset(self.campaign()) else {
            return Ok(());
        };
        let mut since = self.sent;
        if self.epoch.as_deref() != Some(&*now.epoch) {
            self.reset(out, &now.epoch).await?;
            since = 0;
        }
        self.catch_up(out, since, &now).await
    }
}

impl Feed {
    /// Forwards one frame of the queue.
    async fn take(&mut self, frame: Arc<Frame>, out: &mut Outbox) -> Result<(), Ended> {
        let published = frame.seqs.map(|_| frame.published);
        self.forward(out, frame).await?;
        // Sampled: a clock read and a histogram sample per frame per subscriber were a tenth of
        // the server's time at 10,000 subscribers.
        if let Some(published) = published {
            if self.arc_frames.is_multiple_of(DELIVERY_SAMPLE) {
                self.delivery.record(published.elapsed());
            }
            self.arc_frames += 1;
        }
        Ok(())
    }
}

/// The most frames of a subscriber's queue sent in one write.
const BATCH_FRAMES: usize = 32;

/// A frame from the hub, as text or binary.
async fn send_frame(out: &mut Outbox, frame: &Frame) -> Result<(), Ended> {
    let last = frame.seqs.map(|(_, last)| last);
    out.frame(&frame.text, frame.binary.as_ref(), last).await
}

impl Source for Feed {
    type Wake = Option<Arc<Frame>>;

    async fn open(&mut self, out: &mut Outbox) -> Result<(), Ended> {
        let Some((hello, resume, offset)) = self.opening.take() else {
            return Ok(());
        };
        tracing::debug!(resuming = self.resuming, "subscribed");
        if let Some(epoch) = &self.epoch {
            out.set_epoch(epoch);
        }
        out.message(&hello).await?;
        // Boxed, as the rare paths of `forward`: their futures are large, and every session's
        // task would carry their size for its whole life.
        if let (Some(resume), Some(offset)) = (resume, offset) {
            Box::pin(self.resume(out, resume, offset)).await?;
        }
        Ok(())
    }

    async fn wait(&mut self) -> Option<Arc<Frame>> {
        self.frames.recv().await
    }

    async fn act(&mut self, frame: Option<Arc<Frame>>, out: &mut Outbox) -> Result<(), Ended> {
        let frame = frame.ok_or(Ended::ServerStopping)?;
        // What else waits in the queue goes out in the same write.
        out.hold();
        self.take(frame, out).await?;
        for _ in 1..BATCH_FRAMES {
            let Ok(frame) = self.frames.try_recv() else {
                break;
            };
            self.take(frame, out).await?;
        }
        // Dropped frames with nothing fresh behind them: said now, not at the next.
        if self.behind > 0 && self.frames.is_empty() {
            self.tell_behind(out).await?;
        }
        out.flush().await
    }

    /// Subscribers have nothing to say; their text is ignored.
    async fn heard(&mut self, _: ByteString, _: &mut Outbox) -> Result<(), Ended> {
        Ok(())
    }
}
