//! Websocket requests leave actix-http's HTTP/1 dispatcher: it hands a request that asks to
//! upgrade to a websocket, with its connection, to [`serve`] instead of serving it. [`serve`]
//! runs the same application on it (routes, tokens, filters, middleware); a handler that accepts
//! the upgrade leaves the session to run in the request's [`Takeover`], and [`serve`] answers
//! `101` and runs it on the bare connection ([`super::socket`]). The dispatcher and its two
//! buffers are gone by then: an idle websocket holds its socket, its session and nothing else.

use std::{cell::Cell, convert::Infallible, rc::Rc, time::Duration};

use actix_codec::{Framed, FramedParts};
use actix_http::{
    ConnectionType, HttpMessage, Request, Response,
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
use futures_util::{SinkExt, future::LocalBoxFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::socket::{self, Receiver, Sender};

/// A session waiting for its connection.
type Session = Box<dyn FnOnce(Receiver, Sender) -> LocalBoxFuture<'static, ()>>;

/// Where a handler that accepts a websocket leaves its session; in the extensions of every
/// request that came by [`serve`].
#[derive(Clone, Default)]
pub(super) struct Takeover(Rc<Cell<Option<Session>>>);

impl Takeover {
    /// The takeover of `req`'s connection, if it can be taken over (it asked to upgrade to a
    /// websocket, over HTTP/1.1).
    pub(super) fn of(req: &HttpRequest) -> Option<Self> {
        req.extensions().get::<Self>().cloned()
    }

    pub(super) fn run(&self, session: Session) {
        self.0.set(Some(session));
    }
}

/// The largest answer other than `101` written to an upgrade request (an error's few lines).
const MAX_REFUSAL: usize = 64 * 1024;

/// Serves one request that asked to upgrade to a websocket, on its connection, by `app`. A
/// connection that breaks while its answer is written ends here (the session logs its own end).
pub(crate) async fn serve<S, B>(
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
    match Box::pin(answer(app, req, framed)).await {
        Ok(Some(session)) => session.await,
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "connection lost while answering an upgrade request"),
    }
    Ok(())
}

/// Answers the request; when it is accepted, the session to run on its connection.
async fn answer<S, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> std::io::Result<Option<LocalBoxFuture<'static, ()>>>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let takeover = Takeover::default();
    req.extensions_mut().insert(takeover.clone());
    let response: Response<_> = match app.call(req).await {
        Ok(response) => response.into_parts().1.map_into_boxed_body().into(),
        Err(error) => error.error_response().into(),
    };
    let (mut head, body) = response.into_parts();
    let session = takeover.0.take();
    if let (Some(session), StatusCode::SWITCHING_PROTOCOLS) = (session, head.status()) {
        framed
            .send(h1::Message::Item((head, BodySize::None)))
            .await?;
        // The dispatcher's write buffer is dropped here, not kept for the session's life.
        let FramedParts { io, read_buf, .. } = framed.into_parts();
        let (receiver, sender) = socket::split(io, read_buf);
        return Ok(Some(session(receiver, sender)));
    }
    // Refused (or not a websocket route): the answer, then the connection closes — whatever the
    // client sent after its request was meant for the protocol it asked for.
    let body = match to_bytes_limited(body, MAX_REFUSAL).await {
        Ok(Ok(body)) => body,
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
