//! Websockets and event streams leave actix-http's HTTP/1 dispatcher, whose two 8 KiB buffers
//! would otherwise be held for every open session.
//!
//! - The dispatcher hands a request that asks to upgrade to a websocket, with its connection, to
//!   [`serve_upgrade`] instead of serving it.
//! - A connection whose first request is for the live feed as server-sent events is seen before
//!   the dispatcher gets it ([`asks_for_events`]): [`serve_events`] reads that request itself.
//!   (An event stream asked for on a connection that served other requests first, as a browser
//!   reusing its connections may, is served by the dispatcher.)
//!
//! Either way the same application runs on the request (routes, tokens, filters, middleware); a
//! handler that accepts leaves its session in the request's [`Takeover`], and the session runs
//! on the bare connection ([`super::socket`]) once its answer's head is written: an idle session
//! holds its socket, its session and nothing else.

use std::{cell::Cell, convert::Infallible, rc::Rc, time::Duration};

use actix_codec::{Framed, FramedParts};
use actix_http::{
    ConnectionType, HttpMessage, Request, Response, ServiceConfig,
    body::{BodySize, MessageBody, to_bytes_limited},
    h1,
};
use actix_web::{
    HttpRequest,
    dev::{Service, ServiceResponse},
    http::StatusCode,
    rt::net::TcpStream,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future::LocalBoxFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::socket::{self, Receiver, Sender};

/// A session waiting for its connection.
type Session = Box<dyn FnOnce(Receiver, Sender) -> LocalBoxFuture<'static, ()>>;

/// What a connection taken out of the dispatcher is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Websocket,
    Events,
}

/// Where a handler that accepts leaves its session; in the extensions of every request that
/// came by [`serve_upgrade`] or [`serve_events`].
#[derive(Clone)]
pub(super) struct Takeover {
    asked: Asked,
    session: Rc<Cell<Option<Session>>>,
}

impl Takeover {
    /// The takeover of `req`'s connection, if it can be taken over for what was `asked`.
    pub(super) fn of(req: &HttpRequest, asked: Asked) -> Option<Self> {
        req.extensions()
            .get::<Self>()
            .filter(|takeover| takeover.asked == asked)
            .cloned()
    }

    pub(super) fn run(&self, session: Session) {
        self.session.set(Some(session));
    }
}

/// The largest answer written other than a session's own (an error's few lines), and how long
/// it may take to make.
const MAX_REFUSAL: usize = 64 * 1024;
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one request that asked to upgrade to a websocket, on its connection, by `app`. A
/// connection that breaks while its answer is written ends here (the session logs its own end).
pub(crate) async fn serve_upgrade<S, B>(
    app: Rc<S>,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), Infallible>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    // The answer is boxed and gone before the session runs: for the socket's life, the
    // connection's task holds the session and nothing else.
    match Box::pin(answer(app, req, framed, Asked::Websocket)).await {
        Ok(Some(session)) => session.await,
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "connection lost while answering an upgrade request"),
    }
    Ok(())
}

/// The request line that [`asks_for_events`] looks for.
const EVENTS_REQUEST: &[u8] = b"GET /v1/live/events";

/// How long a new connection may take to send the start of its request line.
const REQUEST_START_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the first request on `tcp` is for the live feed as server-sent events, by what the
/// client has sent so far (left unread for whoever serves it). `None`: nothing came in time.
pub(crate) async fn asks_for_events(tcp: &TcpStream) -> Option<bool> {
    let looked = async {
        let mut start = [0u8; EVENTS_REQUEST.len() + 1];
        loop {
            let n = tcp.peek(&mut start).await.ok()?;
            let seen = &start[..n.min(EVENTS_REQUEST.len())];
            if n == 0 || !EVENTS_REQUEST.starts_with(seen) {
                return Some(false);
            }
            if n > EVENTS_REQUEST.len() {
                return Some(matches!(start[EVENTS_REQUEST.len()], b'?' | b' '));
            }
            // A request line sent in pieces (rare): look again once more may have come.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(REQUEST_START_TIMEOUT, looked)
        .await
        .ok()
        .flatten()
}

/// Serves a connection whose first request is for an event stream ([`asks_for_events`]), by
/// `app`: reads the request, answers it, and runs the stream on the connection.
pub(crate) async fn serve_events<S, B>(app: Rc<S>, tcp: TcpStream, config: ServiceConfig)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let answered = Box::pin(async move {
        let peer = tcp.peer_addr().ok();
        let mut framed = Framed::new(tcp, h1::Codec::new(config));
        let head = tokio::time::timeout(REQUEST_START_TIMEOUT, framed.next()).await;
        let Ok(Some(Ok(h1::Message::Item(mut req)))) = head else {
            // Too slow, too large or not HTTP: what the dispatcher would do, without the
            // courtesy of an answer.
            return Ok(None);
        };
        req.head_mut().peer_addr = peer;
        answer(app, req, framed, Asked::Events).await
    })
    .await;
    match answered {
        Ok(Some(session)) => session.await,
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "connection lost while answering an event stream"),
    }
}

/// Answers the request; when it is accepted, the session to run on its connection.
async fn answer<S, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
    asked: Asked,
) -> std::io::Result<Option<LocalBoxFuture<'static, ()>>>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let takeover = Takeover {
        asked,
        session: Rc::default(),
    };
    req.extensions_mut().insert(takeover.clone());
    let response: Response<_> = match app.call(req).await {
        Ok(response) => response.into_parts().1.map_into_boxed_body().into(),
        Err(error) => error.error_response().into(),
    };
    let (mut head, body) = response.into_parts();
    let accepted = match asked {
        Asked::Websocket => StatusCode::SWITCHING_PROTOCOLS,
        Asked::Events => StatusCode::OK,
    };
    if let (Some(session), true) = (takeover.session.take(), head.status() == accepted) {
        let size = match asked {
            Asked::Websocket => BodySize::None,
            // The stream ends when the connection closes: no chunks to frame.
            Asked::Events => {
                head.head_mut().no_chunking(true);
                head.head_mut().set_connection_type(ConnectionType::Close);
                BodySize::Stream
            }
        };
        framed.send(h1::Message::Item((head, size))).await?;
        // The codec's buffers are dropped here, not kept for the session's life.
        let FramedParts { io, read_buf, .. } = framed.into_parts();
        let (receiver, sender) = match asked {
            Asked::Websocket => socket::split(io, read_buf),
            Asked::Events => socket::split_events(io),
        };
        return Ok(Some(session(receiver, sender)));
    }
    // Refused (or not a route that takes the connection): the answer, then the connection
    // closes — whatever the client sent after its request was meant for the session it asked for.
    // A body that does not end soon (a stream) is not sent: the head says what happened.
    let body =
        match tokio::time::timeout(REFUSAL_TIMEOUT, to_bytes_limited(body, MAX_REFUSAL)).await {
            Ok(Ok(Ok(body))) => body,
            _ => Bytes::new(),
        };
    head.head_mut().set_connection_type(ConnectionType::Close);
    // Head and body in one write: a websocket client reads what came with the head.
    let size = BodySize::Sized(body.len() as u64);
    framed.feed(h1::Message::Item((head, size))).await?;
    framed.feed(h1::Message::Chunk(Some(body))).await?;
    framed.send(h1::Message::Chunk(None)).await?;
    // A lingering close: closing with unread bytes would reset the connection, and a reset can
    // destroy the answer before the client reads it.
    let mut io = framed.into_parts().io;
    io.shutdown().await?;
    let mut unread = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while io.read(&mut unread).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    Ok(None)
}

/// How long a refused connection waits for its client to close.
const LINGER: Duration = Duration::from_secs(1);
