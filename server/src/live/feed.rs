//! `GET /v1/live`: the websocket of one subscriber.
//!
//! A subscriber that resumes (`campaign`, `since`, `epoch`) is registered with the hub first,
//! which hands it the campaign's offset at that instant; the arcs after `since` up to that offset
//! come from the recording, the rest from the hub's queue with anything at or below the offset
//! trimmed. Such a subscriber is never told `lagged`: what its queue dropped is read from the
//! recording instead.

use std::{sync::Arc, time::Instant};

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::StatusCode, web};
use actix_ws::Session;
use serde::Deserialize;
use tracing::Instrument;
use viralglobe_protocol::{ArcEvent, Encoding, LiveFilter, ServerMessage, compact};

use super::catch_up;
use crate::{
    auth::Access,
    engine::Engine,
    error::json_error,
    hello::hello,
    hub::{Frame, Frames, Hub, Offset},
    replay::{Library, ReplayError, Resume},
    ws::{self, Ended, HEARTBEAT, Inbound, keep_alive, receive, send, send_binary},
};

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    campaign: Option<String>,
    kind: Option<String>,
    channel: Option<String>,
    generation: Option<String>,
    encoding: Option<String>,
    token: Option<String>,
    since: Option<String>,
    epoch: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("query parameter `{field}`: {message}")]
    BadQuery {
        field: &'static str,
        message: String,
    },
}

impl ResponseError for LiveError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadQuery { .. } => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), self)
    }
}

impl From<ReplayError> for LiveError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::BadQuery { field, message } => Self::BadQuery { field, message },
            other => Self::BadQuery {
                field: "since",
                message: other.to_string(),
            },
        }
    }
}

pub async fn live(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<LiveQuery>,
    access: web::Data<Access>,
    hub: web::Data<Hub>,
    library: web::Data<Library>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, actix_web::Error> {
    let LiveQuery {
        campaign,
        kind,
        channel,
        generation,
        encoding,
        token,
        since,
        epoch,
    } = query.into_inner();
    access.check_read(&req, token.as_deref())?;
    let filter = LiveFilter::from_query(
        campaign,
        kind.as_deref(),
        channel.as_deref(),
        generation.as_deref(),
    )
    .map_err(|e| LiveError::BadQuery {
        field: e.field,
        message: e.message,
    })?;
    let encoding = Encoding::from_query(encoding.as_deref()).map_err(|e| LiveError::BadQuery {
        field: e.field,
        message: e.message,
    })?;
    let resume = Resume::parse(since.as_deref(), epoch.as_deref()).map_err(LiveError::from)?;
    if resume.is_some() && filter.campaign.is_none() {
        return Err(LiveError::BadQuery {
            field: "campaign",
            message: "resuming with `since` needs the `campaign` it counts in".into(),
        }
        .into());
    }

    let span = ws::session_span("live", &req, filter.campaign.as_deref());
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let (frames, offset, line) = hub.subscribe_counted(filter.clone(), encoding);
    // The hello gives the campaign's offset at the subscription: its queue holds exactly what
    // follows, and a new subscriber is sent nothing at or before it (arcs published in the tick
    // it joined in are in the queue too: trimmed, as for a resume).
    let mut hello = hello(&engine, &filter, |c| match &offset {
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
    let start = match (&resume, &offset) {
        (None, Some(o)) => o.seq,
        _ => 0,
    };
    let feed = Feed {
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
    };
    let session = run_session(session, stream, frames, hello, feed, resume, offset);
    actix_web::rt::spawn(session.instrument(span));
    Ok(response)
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
}

impl Feed {
    fn campaign(&self) -> &str {
        self.filter.campaign.as_deref().unwrap_or_default()
    }

    /// Sends a reset to epoch `epoch`.
    async fn reset(&mut self, session: &mut Session, epoch: &str) -> bool {
        let reset = ServerMessage::Reset {
            campaign: self.campaign().to_owned(),
            epoch: epoch.to_owned(),
        };
        self.epoch = Some(epoch.to_owned());
        (self.floor, self.sent) = (0, 0);
        send(session, encode(&reset)).await
    }

    /// Brings the subscriber from `since` up to the campaign's `offset` from the recording.
    async fn catch_up(&mut self, session: &mut Session, since: u64, offset: &Offset) -> bool {
        let library = self.library.clone();
        // Boxed: a rare path with a large future, kept out of every session's task.
        let recorded = catch_up::send_recorded(
            session,
            library,
            &self.filter,
            self.encoding,
            since,
            offset.seq,
        );
        match Box::pin(recorded).await {
            Ok(open) => {
                self.floor = offset.seq;
                self.sent = self.sent.max(offset.seq);
                open
            }
            Err(error) => {
                tracing::error!(%error, campaign = self.campaign(), "cannot read the recording to catch up");
                let message = ServerMessage::Error {
                    message: format!("cannot catch up: {error}"),
                };
                let _ = send(session, encode(&message)).await;
                false
            }
        }
    }

    /// A resuming subscriber's first step: a reset if its epoch is not the campaign's, then the
    /// recorded arcs after `since`.
    async fn resume(&mut self, session: &mut Session, resume: Resume, offset: Offset) -> bool {
        let mut since = resume.since;
        if *offset.epoch != resume.epoch || since > offset.seq {
            if !self.reset(session, &offset.epoch).await {
                return false;
            }
            since = 0;
        }
        self.sent = since;
        self.catch_up(session, since, &offset).await
    }

    /// Forwards one frame from the hub, trimmed of what the recording already gave. Arcs that
    /// waited longer than the hub's `max_lag` are dropped instead: the subscriber is told
    /// `lagged` (or, resuming, given them from the recording) before the next fresh frame.
    async fn forward(&mut self, session: &mut Session, frame: Arc<Frame>) -> bool {
        if frame.seqs.is_some() {
            if frame.published.elapsed() > self.hub.max_lag() {
                self.behind += frame.arcs;
                metrics::counter!("viralglobe_live_dropped_arcs_total").increment(frame.arcs);
                return true;
            }
            if self.behind > 0 && !self.tell_behind(session).await {
                return false;
            }
        }
        if frame.reset {
            if let Ok(ServerMessage::Reset { epoch, .. }) = serde_json::from_str(&frame.text) {
                self.epoch = Some(epoch);
            }
            (self.floor, self.sent) = (0, 0);
            return send(session, frame.text.clone()).await;
        }
        let Some((first, last)) = frame.seqs else {
            if self.resuming && self.filter.campaign.is_some() {
                // `lagged`: what the queue dropped is in the recording.
                return Box::pin(self.refill(session)).await;
            }
            return send(session, frame.text.clone()).await;
        };
        if last <= self.floor {
            return true;
        }
        self.sent = last;
        if first > self.floor {
            return send_frame(session, &frame).await;
        }
        // Partly sent from the recording already: the rest of it.
        let mut arcs = match &frame.binary {
            Some(bytes) => match compact::decode(bytes) {
                Ok(arcs) => arcs,
                Err(_) => return send_frame(session, &frame).await,
            },
            None => match serde_json::from_str(&frame.text) {
                Ok(ServerMessage::Arcs { arcs }) => arcs,
                _ => return send_frame(session, &frame).await,
            },
        };
        arcs.retain(|a| a.seq > self.floor);
        send_arcs(session, arcs, self.encoding).await
    }

    /// After frames were dropped for waiting too long: `lagged`, or the recording's arcs.
    async fn tell_behind(&mut self, session: &mut Session) -> bool {
        let dropped_arcs = std::mem::take(&mut self.behind);
        if self.resuming && self.filter.campaign.is_some() {
            return Box::pin(self.refill(session)).await;
        }
        send(session, encode(&ServerMessage::Lagged { dropped_arcs })).await
    }

    /// After the hub dropped frames for this subscriber: the missing arcs from the recording, up
    /// to where the campaign stands now.
    async fn refill(&mut self, session: &mut Session) -> bool {
        let Some(now) = self.hub.offset(self.campaign()) else {
            return true;
        };
        let mut since = self.sent;
        if self.epoch.as_deref() != Some(&*now.epoch) {
            if !self.reset(session, &now.epoch).await {
                return false;
            }
            since = 0;
        }
        self.catch_up(session, since, &now).await
    }
}

fn encode(message: &ServerMessage) -> String {
    serde_json::to_string(message).expect("server messages serialize")
}

/// A frame from the hub, as text or binary.
async fn send_frame(session: &mut Session, frame: &Frame) -> bool {
    match &frame.binary {
        Some(bytes) => send_binary(session, bytes.clone()).await,
        None => send(session, frame.text.clone()).await,
    }
}

/// Arcs in one message of the subscriber's encoding.
pub(super) async fn send_arcs(
    session: &mut Session,
    arcs: Vec<ArcEvent>,
    encoding: Encoding,
) -> bool {
    match encoding {
        Encoding::Json => send(session, encode(&ServerMessage::Arcs { arcs })).await,
        Encoding::Compact => {
            let bytes = compact::encode(&arcs.iter().collect::<Vec<_>>());
            send_binary(session, bytes.into()).await
        }
    }
}

async fn run_session(
    mut session: Session,
    stream: actix_ws::MessageStream,
    mut frames: Frames,
    hello: ServerMessage,
    mut feed: Feed,
    resume: Option<Resume>,
    offset: Option<Offset>,
) {
    let started = Instant::now();
    tracing::debug!(resuming = feed.resuming, "websocket connected");
    let ended = serve(
        &mut session,
        stream,
        &mut frames,
        hello,
        &mut feed,
        resume,
        offset,
    )
    .await;
    ws::log_end(ended, started);
    ws::close(session).await;
}

async fn serve(
    session: &mut Session,
    stream: actix_ws::MessageStream,
    frames: &mut Frames,
    hello: ServerMessage,
    feed: &mut Feed,
    resume: Option<Resume>,
    offset: Option<Offset>,
) -> Ended {
    let mut stream = stream.max_frame_size(64 * 1024);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    if !send(session, encode(&hello)).await {
        return Ended::SendFailed;
    }
    // Boxed, as the rare paths below: their futures are large, and every session's task would
    // carry their size for its whole life.
    if let (Some(resume), Some(offset)) = (resume, offset)
        && !Box::pin(feed.resume(session, resume, offset)).await
    {
        return Ended::SendFailed;
    }
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => {
                    let published = frame.seqs.map(|_| frame.published);
                    if !feed.forward(session, frame).await {
                        return Ended::SendFailed;
                    }
                    // Dropped frames with nothing fresh behind them: said now, not at the next.
                    if feed.behind > 0 && frames.is_empty() && !feed.tell_behind(session).await {
                        return Ended::SendFailed;
                    }
                    // Sampled: a clock read and a histogram sample per frame per subscriber
                    // were a tenth of the server's time at 10,000 subscribers.
                    if let Some(published) = published {
                        if feed.arc_frames.is_multiple_of(DELIVERY_SAMPLE) {
                            feed.delivery.record(published.elapsed());
                        }
                        feed.arc_frames += 1;
                    }
                }
                None => return Ended::ServerStopping,
            },
            msg = stream.recv() => {
                last_heard = Instant::now();
                // Subscribers have nothing to say; their text is ignored.
                if let Inbound::Handled(false) = receive(session, msg).await {
                    return Ended::ClientClosed;
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
