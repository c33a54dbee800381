//! `GET /v1/campaigns` and `GET /v1/campaigns/{id}/stats`.

use actix_web::{HttpResponse, ResponseError, http::StatusCode, web};

use crate::{engine::Engine, error::json_error};

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

pub async fn list_campaigns(engine: web::Data<Engine>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "campaigns": engine.summaries() }))
}

pub async fn campaign_stats(
    id: web::Path<String>,
    engine: web::Data<Engine>,
) -> Result<HttpResponse, CampaignError> {
    let id = id.into_inner();
    match engine.stats(&id) {
        Some(stats) => Ok(HttpResponse::Ok().json(stats)),
        None => Err(CampaignError::NotFound(id)),
    }
}
