//! `GET /v1/campaigns`, `GET /v1/campaigns/{id}/stats` and `GET /v1/campaigns/{id}/cascades`.

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::StatusCode, web};

use crate::{
    auth::{Access, AccessError},
    engine::Engine,
    error::json_error,
    hello::with_offset,
    hub::Hub,
};

#[derive(Debug, thiserror::Error)]
pub(super) enum CampaignError {
    #[error("no campaign `{0}`")]
    NotFound(String),
    #[error("query parameter `limit`: {0}")]
    BadLimit(String),
}

impl ResponseError for CampaignError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadLimit(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), self)
    }
}

/// Counters and revenue are the read token's to see, like the live feed; a scoped token sees
/// its campaigns.
pub(crate) async fn list_campaigns(
    req: HttpRequest,
    access: web::Data<Access>,
    engine: web::Data<Engine>,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, AccessError> {
    let grant = access.check_read_request(&req)?;
    // A line that replays a recording (the demo's loop) is counted as far as it has played,
    // as its subscribers' hello counts it.
    let campaigns: Vec<_> = engine
        .summaries(|id| grant.allows(id))
        .into_iter()
        .map(|c| {
            let line = hub.line_counts(&c.id);
            let mut c = with_offset(c, |id| hub.offset(id));
            if let Some(line) = &line {
                crate::hello::count_line(&mut c, line);
            }
            c
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "campaigns": campaigns })))
}

pub(crate) async fn campaign_stats(
    req: HttpRequest,
    access: web::Data<Access>,
    id: web::Path<String>,
    engine: web::Data<Engine>,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, actix_web::Error> {
    let id = id.into_inner();
    access.check_read_request(&req)?.check(&id)?;
    match engine.stats(&id) {
        Some(mut stats) => {
            stats.summary = with_offset(stats.summary, |id| hub.offset(id));
            Ok(HttpResponse::Ok().json(stats))
        }
        None => Err(CampaignError::NotFound(id).into()),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct CascadesQuery {
    limit: Option<String>,
}

/// Most cascades listed at once, and by default.
const MAX_CASCADES: usize = 256;
const DEFAULT_CASCADES: usize = 10;

/// The campaign's top cascades: each root share with the clicks, conversions and revenue of its
/// whole cascade, generation by generation.
pub(crate) async fn campaign_cascades(
    req: HttpRequest,
    access: web::Data<Access>,
    id: web::Path<String>,
    query: web::Query<CascadesQuery>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, actix_web::Error> {
    access.check_read_request(&req)?.check(&id)?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_CASCADES,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CASCADES).contains(n))
            .ok_or_else(|| {
                CampaignError::BadLimit(format!("a number from 1 to {MAX_CASCADES}, not `{text}`"))
            })?,
    };
    let id = id.into_inner();
    match engine.cascades(&id, limit) {
        Some(cascades) => Ok(HttpResponse::Ok().json(cascades)),
        None => Err(CampaignError::NotFound(id).into()),
    }
}
