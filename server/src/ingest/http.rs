//! `POST /v1/events`: NDJSON (streamed, applied chunk by chunk as it arrives) or a JSON array.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web,
};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::value::RawValue;
use viralglobe_protocol::input::bounded;

use super::IngestReport;
use super::Pipeline;
use crate::{
    auth::{Access, AccessError, Grant, Scope},
    engine::EngineError,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(
        "unsupported content type `{0}`: send application/x-ndjson (one event per line) or \
         application/json (an array of events)"
    )]
    UnsupportedMediaType(String),
    #[error("body is not a JSON array of events: {0}")]
    NotJson(String),
    #[error("body is larger than {limit} bytes (--max-body-bytes)")]
    BodyTooLarge {
        limit: usize,
        report: Box<IngestReport>,
    },
    #[error(
        "{limit} bytes of JSON bodies are being read already (--max-json-bytes-in-flight): try \
         again shortly, or send NDJSON, which is applied as it streams"
    )]
    JsonBudget { limit: usize },
    #[error("line {line} is longer than {limit} bytes (--max-line-bytes)")]
    LineTooLarge {
        line: u64,
        limit: usize,
        report: Box<IngestReport>,
    },
    #[error("reading the body failed: {error}")]
    Payload {
        error: String,
        report: Box<IngestReport>,
    },
    #[error("{source}")]
    Engine {
        source: EngineError,
        report: Box<IngestReport>,
    },
}

impl IngestError {
    /// What was acknowledged before the failure: those events are recorded and stay.
    fn report(&self) -> Option<&IngestReport> {
        match self {
            Self::BodyTooLarge { report, .. }
            | Self::LineTooLarge { report, .. }
            | Self::Payload { report, .. }
            | Self::Engine { report, .. } => Some(report),
            _ => None,
        }
    }
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Access(access) => access.status_code(),
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotJson(_) | Self::Payload { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } | Self::LineTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // Nothing in the batch from the failed line on was acknowledged: try again later.
            Self::Engine { .. } | Self::JsonBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Access(access) = self {
            return access.error_response();
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Engine { .. } | Self::JsonBudget { .. } = self {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let Some(report) = self.report() {
            body["report"] = serde_json::json!(report);
        }
        response.json(body)
    }
}

enum BodyFormat {
    Ndjson,
    Json,
}

fn body_format(req: &HttpRequest) -> Result<BodyFormat, IngestError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Ok(BodyFormat::Ndjson),
        "application/json" => Ok(BodyFormat::Json),
        _ => Err(IngestError::UnsupportedMediaType(content_type.to_owned())),
    }
}

/// What one request may bring, and what all JSON bodies together may hold in memory (an NDJSON
/// body is applied as it streams; a JSON array is read whole first).
#[derive(Debug)]
pub(crate) struct IngestLimits {
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
    pub max_json_bytes_in_flight: usize,
    pub json_bytes_in_flight: AtomicUsize,
}

/// JSON body bytes one request has taken from the shared budget, given back when it is done.
struct JsonBytes<'a> {
    limits: &'a IngestLimits,
    taken: usize,
}

impl JsonBytes<'_> {
    fn take(&mut self, bytes: usize) -> Result<(), IngestError> {
        let limit = self.limits.max_json_bytes_in_flight;
        self.limits
            .json_bytes_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + bytes <= limit).then_some(n + bytes)
            })
            .map_err(|_| IngestError::JsonBudget { limit })?;
        self.taken += bytes;
        Ok(())
    }
}

impl Drop for JsonBytes<'_> {
    fn drop(&mut self) {
        self.limits
            .json_bytes_in_flight
            .fetch_sub(self.taken, Ordering::AcqRel);
    }
}

/// One request's way in.
struct Ingest<'a> {
    pipeline: &'a web::Data<Pipeline>,
    /// The campaigns the request's token may post to.
    grant: Grant,
    max_body_bytes: usize,
    max_line_bytes: usize,
    limits: &'a IngestLimits,
}

/// `POST /v1/events`.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config.service(crate::routes::resource("/v1/events").post(post_events));
}

async fn post_events(
    req: HttpRequest,
    mut payload: web::Payload,
    pipeline: web::Data<Pipeline>,
    access: web::Data<Access>,
    limits: web::Data<IngestLimits>,
) -> Result<HttpResponse, IngestError> {
    let grant = access.check_write(&req, Scope::Ingest)?;
    let state = Ingest {
        pipeline: &pipeline,
        grant,
        max_body_bytes: limits.max_body_bytes,
        max_line_bytes: limits.max_line_bytes,
        limits: &limits,
    };
    let format = body_format(&req)?;
    let mut report = IngestReport::default();
    match format {
        BodyFormat::Ndjson => read_ndjson(&mut payload, &state, &mut report).await?,
        BodyFormat::Json => read_json(&mut payload, &state, &mut report).await?,
    }
    let status =
        if report.accepted + report.duplicates + report.logged == 0 && report.rejected_count > 0 {
            StatusCode::BAD_REQUEST
        } else if report.short_of_asked() {
            // Acknowledged (in the log), with less than was asked: fewer replicas, or not yet
            // applied here.
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
    Ok(HttpResponse::build(status).json(report))
}

fn engine_failed(report: &IngestReport) -> impl FnOnce(EngineError) -> IngestError + '_ {
    move |source| IngestError::Engine {
        source,
        report: Box::new(report.clone()),
    }
}

/// Applies each chunk's complete lines as soon as the chunk arrives, so a producer can keep one
/// request open and see its events live.
async fn read_ndjson(
    payload: &mut web::Payload,
    state: &Ingest<'_>,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let mut buffer = BytesMut::new();
    let (mut next_line, mut total) = (1u64, 0usize);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| IngestError::Payload {
            error: e.to_string(),
            report: Box::new(report.clone()),
        })?;
        total += chunk.len();
        if total > state.max_body_bytes {
            return Err(IngestError::BodyTooLarge {
                limit: state.max_body_bytes,
                report: Box::new(report.clone()),
            });
        }
        buffer.extend_from_slice(&chunk);
        if let Some(last_newline) = buffer.iter().rposition(|&b| b == b'\n') {
            let complete = buffer.split_to(last_newline + 1).freeze();
            ingest_lines(state, &complete, &mut next_line, report).await?;
        }
        if buffer.len() > state.max_line_bytes {
            return Err(IngestError::LineTooLarge {
                line: next_line,
                limit: state.max_line_bytes,
                report: Box::new(report.clone()),
            });
        }
    }
    if !buffer.is_empty() {
        ingest_lines(state, &buffer.freeze(), &mut next_line, report).await?;
    }
    Ok(())
}

async fn ingest_lines(
    state: &Ingest<'_>,
    text: &Bytes,
    next_line: &mut u64,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let first = *next_line;
    let lines: Vec<(u64, &[u8])> = (first..)
        .zip(text.split(|&b| b == b'\n'))
        .map(|(n, line)| (n, line.strip_suffix(b"\r").unwrap_or(line)))
        .collect();
    *next_line = first + lines.len() as u64;
    // Lines before an oversize one are applied; the request stops at it.
    let oversize = lines
        .iter()
        .position(|(_, l)| l.len() > state.max_line_bytes);
    let fitting = &lines[..oversize.unwrap_or(lines.len())];
    state
        .pipeline
        .ingest_async(fitting.iter().copied(), report, &state.grant)
        .await
        .map_err(engine_failed(report))?;
    if let Some(index) = oversize {
        return Err(IngestError::LineTooLarge {
            line: lines[index].0,
            limit: state.max_line_bytes,
            report: Box::new(report.clone()),
        });
    }
    Ok(())
}

async fn read_json(
    payload: &mut web::Payload,
    state: &Ingest<'_>,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let mut body = BytesMut::new();
    let mut held = JsonBytes {
        limits: state.limits,
        taken: 0,
    };
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| IngestError::Payload {
            error: e.to_string(),
            report: Box::new(report.clone()),
        })?;
        if body.len() + chunk.len() > state.max_body_bytes {
            return Err(IngestError::BodyTooLarge {
                limit: state.max_body_bytes,
                report: Box::new(report.clone()),
            });
        }
        held.take(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    // Parsed and located on a blocking thread: an array of 100,000 events would otherwise hold
    // the worker, and every connection it serves, for as long.
    let pipeline = state.pipeline.clone();
    let grant = state.grant.clone();
    let body = body.freeze();
    let mut counted = std::mem::take(report);
    let prepared = web::block(move || {
        let trimmed = body.trim_ascii_start();
        let elements: Vec<&RawValue> = if trimmed.starts_with(b"{") {
            vec![
                serde_json::from_slice(&body)
                    .map_err(|e| IngestError::NotJson(bounded(&e.to_string())))?,
            ]
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| IngestError::NotJson(bounded(&e.to_string())))?
        };
        let lines = (1u64..).zip(elements.iter().map(|raw| raw.get().as_bytes()));
        let prepared = pipeline.prepare(lines, &mut counted, &grant);
        Ok::<_, IngestError>((prepared, counted))
    })
    .await;
    let (prepared, counted) = match prepared {
        Ok(prepared) => prepared?,
        Err(_) => {
            let source = EngineError::Stopped("the server is stopping".into());
            return Err(engine_failed(report)(source));
        }
    };
    *report = counted;
    state
        .pipeline
        .apply_prepared(prepared, report)
        .await
        .map_err(engine_failed(report))
}
