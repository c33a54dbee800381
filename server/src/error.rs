//! The JSON shape of every error answer: `{"error": "..."}`.

use actix_web::{HttpResponse, http::StatusCode};

pub(crate) fn json_error(status: StatusCode, error: &impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": error.to_string() }))
}
