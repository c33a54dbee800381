//! `GET /v1/live`: the websocket of one subscriber.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::StatusCode, web};
use actix_ws::Session;
use bytestring::ByteString;
use serde::Deserialize;
use tokio::sync::mpsc;
use viralglobe_protocol::{LiveFilter, PROTOCOL_VERSION, ServerMessage};

use super::socket::{HEARTBEAT, Inbound, keep_alive, receive, send};
use crate::{auth::AccessError, error::json_error, state::AppState};

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    campaign: Option<String>,
    kind: Option<String>,
    token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("query parameter `kind`: {0}")]
    BadFilter(String),
}

impl ResponseError for LiveError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Access(AccessError::OriginNotAllowed(_)) => StatusCode::FORBIDDEN,
            Self::Access(_) => StatusCode::UNAUTHORIZED,
            Self::BadFilter(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), self)
    }
}

pub async fn live(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<LiveQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let LiveQuery {
        campaign,
        kind,
        token,
    } = query.into_inner();
    state
        .access
        .check_read(&req, token.as_deref())
        .map_err(LiveError::from)?;
    let kinds = LiveFilter::parse_kinds(kind.as_deref().unwrap_or_default())
        .map_err(LiveError::BadFilter)?;
    let filter = LiveFilter {
        campaign: campaign.filter(|c| !c.is_empty()),
        kinds,
    };

    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let frames = state.hub.subscribe(filter.clone());
    let campaigns = state
        .engine()
        .summaries()
        .into_iter()
        .filter(|c| filter.wants_campaign(&c.id))
        .collect();
    let hello = ServerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        server: concat!("viralglobe-server/", env!("CARGO_PKG_VERSION")).into(),
        filter,
        campaigns,
    };
    let hello = serde_json::to_string(&hello).expect("hello serializes");
    actix_web::rt::spawn(run_session(session, stream, frames, hello.into()));
    Ok(response)
}

async fn run_session(
    mut session: Session,
    stream: actix_ws::MessageStream,
    mut frames: mpsc::Receiver<ByteString>,
    hello: ByteString,
) {
    let mut stream = stream.max_frame_size(64 * 1024);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    let mut open = send(&mut session, hello).await;
    while open {
        tokio::select! {
            frame = frames.recv() => {
                open = match frame {
                    Some(frame) => send(&mut session, frame).await,
                    None => false,
                };
            }
            msg = stream.recv() => {
                last_heard = Instant::now();
                // Subscribers have nothing to say; their text is ignored.
                open = match receive(&mut session, msg).await {
                    Inbound::Text(_) => true,
                    Inbound::Handled(open) => open,
                };
            }
            _ = heartbeat.tick() => open = keep_alive(&mut session, last_heard).await,
        }
    }
    let _ = session.close(None).await;
}
