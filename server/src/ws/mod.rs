//! One room for sessions: the loop that every websocket runs (the live feed's and a replay's) —
//! its span, heartbeat, what the client says, sends with deadlines, and why it ended — around a
//! [`Source`] that says what to send; and the same for a server-sent event stream (the live feed
//! for clients that cannot open a websocket), which has nothing to hear. Both run on their bare
//! connection, out of the HTTP dispatcher ([`takeover`], [`socket`]).

mod outbox;
mod socket;
mod takeover;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, error::ErrorBadRequest, http::header};
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;
use tracing::Instrument;

pub(crate) use outbox::Outbox;
pub(crate) use takeover::{asks_for_events, serve_events, serve_upgrade};

use socket::{Inbound, Receiver};
use takeover::{Asked, Takeover};

/// How often the server pings, and how long a client may stay silent (pongs count) or take to
/// accept one frame before it is closed.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a websocket sends: the live feed, or a replay.
pub(crate) trait Source {
    /// What wakes the source: a frame from the hub, a replay's step or clock.
    type Wake;

    /// Sends what comes first (`hello`, a reset, what a resume catches up on).
    async fn open(&mut self, out: &mut Outbox) -> Result<(), Ended>;

    /// Waits for the next thing to send. Dropped whenever the client speaks or the heartbeat
    /// ticks, so it must lose nothing when dropped (a channel's `recv`, an interval's `tick`).
    async fn wait(&mut self) -> Self::Wake;

    /// Sends what `wake` calls for.
    async fn act(&mut self, wake: Self::Wake, out: &mut Outbox) -> Result<(), Ended>;

    /// Answers a text message from the client.
    async fn heard(&mut self, text: ByteString, out: &mut Outbox) -> Result<(), Ended>;
}

/// Accepts `req`'s upgrade to a websocket and leaves `source` to run on its connection once the
/// `101` is written, in the span of a session of `kind` (`live`, `replay`) for `campaign`.
pub(crate) fn start(
    kind: &'static str,
    req: &HttpRequest,
    campaign: Option<&str>,
    source: impl Source + 'static,
) -> Result<HttpResponse, actix_web::Error> {
    let mut response = actix_http::ws::handshake(req.head())?;
    // Every websocket handshake over HTTP/1.1 comes by the upgrade path; one that did not (a
    // test calling the handler directly) has no connection to take.
    let takeover = Takeover::of(req, Asked::Websocket)
        .ok_or_else(|| ErrorBadRequest("websockets are served over HTTP/1.1 only"))?;
    let span = session_span(kind, campaign);
    takeover.run(Box::new(move |receiver, sender| {
        Box::pin(
            async move {
                let started = Instant::now();
                tracing::debug!("websocket connected");
                let mut out = Outbox::socket(sender);
                let ended = serve(&mut out, receiver, source).await;
                tracing::debug!(
                    reason = ended.as_str(),
                    duration_s = started.elapsed().as_secs_f64(),
                    "websocket closed"
                );
                out.close().await;
            }
            .instrument(span),
        )
    }));
    Ok(response.finish().map_into_boxed_body().into())
}

/// Runs `source` as a server-sent event stream (`text/event-stream`). On a connection taken
/// over ([`serve_events`]) it is written to the socket like a websocket's frames, and ends when
/// the client closes; otherwise it runs on a task of its own, and the dispatcher's body is a
/// bounded queue of events. Either way, a client that stops reading ends the session at the
/// next send that waits longer than [`CLIENT_TIMEOUT`]. A websocket handshake is refused: the
/// stream is not what its client could read.
pub(crate) fn start_events(
    kind: &'static str,
    req: &HttpRequest,
    campaign: Option<&str>,
    source: impl Source + 'static,
) -> Result<HttpResponse, actix_web::Error> {
    if req.headers().contains_key(header::UPGRADE) {
        return Err(ErrorBadRequest(
            "this route serves server-sent events; open websockets on /v1/live",
        ));
    }
    let span = session_span(kind, campaign);
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx would otherwise hold events back to fill its buffers.
        .insert_header(("x-accel-buffering", "no"));
    if let Some(takeover) = Takeover::of(req, Asked::Events) {
        takeover.run(Box::new(move |receiver, sender| {
            let out = Outbox::event_socket(sender);
            Box::pin(run_events(out, Some(receiver), source).instrument(span))
        }));
        return Ok(response.finish());
    }
    let (body, events) = mpsc::channel::<Bytes>(EVENTS_QUEUED);
    actix_web::rt::spawn(run_events(Outbox::events(body), None, source).instrument(span));
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok::<_, actix_web::Error>(event), events))
    });
    Ok(response.streaming(stream))
}

/// Events queued for one stream's body, when the dispatcher serves it.
const EVENTS_QUEUED: usize = 16;

async fn run_events(mut out: Outbox, closed: Option<Receiver>, source: impl Source) {
    let started = Instant::now();
    tracing::debug!("event stream opened");
    let ended = serve_events_to(&mut out, closed, source).await;
    tracing::debug!(
        reason = ended.as_str(),
        duration_s = started.elapsed().as_secs_f64(),
        "event stream closed"
    );
}

/// Sends `source`'s events to `out` until it ends; `closed` hears the client close its
/// connection (the dispatcher hears it for a stream it serves).
async fn serve_events_to(
    out: &mut Outbox,
    mut closed: Option<Receiver>,
    mut source: impl Source,
) -> Ended {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    if let Err(ended) = source.open(out).await {
        return ended;
    }
    loop {
        let done = tokio::select! {
            wake = source.wait() => Box::pin(source.act(wake, out)).await,
            _ = heartbeat.tick() => out.keep_alive(Instant::now()).await,
            _ = client_closed(&mut closed) => Err(Ended::ClientClosed),
        };
        if let Err(ended) = done {
            return ended;
        }
    }
}

/// When the client of an event stream closes its connection (what it sends is dropped); never,
/// without a connection to hear.
async fn client_closed(closed: &mut Option<Receiver>) {
    match closed {
        Some(receiver) => while let Ok(Inbound::Other) = receiver.recv().await {},
        None => std::future::pending().await,
    }
}

async fn serve(out: &mut Outbox, mut inbound: Receiver, mut source: impl Source) -> Ended {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    if let Err(ended) = source.open(out).await {
        return ended;
    }
    loop {
        let done = tokio::select! {
            // Boxed: what acting takes (a frame's send with its deadline, a catch-up) would
            // otherwise be part of every idle session's size.
            wake = source.wait() => Box::pin(source.act(wake, out)).await,
            message = inbound.recv() => {
                last_heard = Instant::now();
                match message {
                    Ok(Inbound::Text(text)) => source.heard(text, out).await,
                    Ok(Inbound::Ping(bytes)) => out.pong(&bytes).await,
                    Ok(Inbound::Other) => Ok(()),
                    Ok(Inbound::Close) | Err(_) => Err(Ended::ClientClosed),
                }
            }
            _ = heartbeat.tick() => out.keep_alive(last_heard).await,
        };
        if let Err(ended) = done {
            return ended;
        }
    }
}

/// Why a websocket session ended, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The client closed the connection (or it broke).
    ClientClosed,
    /// Nothing heard from the client, not even a pong, for [`CLIENT_TIMEOUT`].
    ClientSilent,
    /// A frame could not be sent: the client is gone, or did not take it in time.
    SendFailed,
    /// The server is shutting down.
    ServerStopping,
    /// The recording could not be read.
    ReadFailed,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client closed",
            Self::ClientSilent => "client silent",
            Self::SendFailed => "send failed or timed out",
            Self::ServerStopping => "server stopping",
            Self::ReadFailed => "recording unreadable",
        }
    }
}

/// The span of one session: a number of its own and the campaign, so that its connect and close
/// lines (at debug) and any error can be told apart. Not the client's address: a visitor's
/// address is never logged.
fn session_span(kind: &'static str, campaign: Option<&str>) -> tracing::Span {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    tracing::info_span!("session", kind, id, campaign = campaign.unwrap_or("*"))
}
