//! `GET /v1/campaigns` and `GET /v1/campaigns/{id}/stats`.

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::StatusCode, web};

use crate::{
    auth::{Access, AccessError},
    engine::Engine,
    error::json_error,
    hello::with_offset,
    hub::Hub,
};

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("no campaign `{0}`")]
    NotFound(String),
}

impl ResponseError for CampaignError {
    fn status_code(&self) -> StatusCode {
        StatusCode::NOT_FOUND
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), self)
    }
}

/// Counters and revenue are the read token's to see, like the live feed.
pub async fn list_campaigns(
    req: HttpRequest,
    access: web::Data<Access>,
    engine: web::Data<Engine>,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, AccessError> {
    access.check_read_request(&req)?;
    let campaigns: Vec<_> = engine
        .summaries()
        .into_iter()
        .map(|c| with_offset(c, |id| hub.offset(id)))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "campaigns": campaigns })))
}

pub async fn campaign_stats(
    req: HttpRequest,
    access: web::Data<Access>,
    id: web::Path<String>,
    engine: web::Data<Engine>,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, actix_web::Error> {
    access.check_read_request(&req)?;
    let id = id.into_inner();
    match engine.stats(&id) {
        Some(mut stats) => {
            stats.summary = with_offset(stats.summary, |id| hub.offset(id));
            Ok(HttpResponse::Ok().json(stats))
        }
        None => Err(CampaignError::NotFound(id).into()),
    }
}
