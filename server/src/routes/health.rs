//! `GET /healthz` and `GET /metrics`.

use actix_web::{HttpRequest, HttpResponse, web};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    auth::{Access, AccessError},
    engine::Engine,
    geo::GeoDb,
};

/// 200 while the server takes events; 503 with the reason once ingest has stopped, so a load
/// balancer or an operator sees it.
pub async fn healthz(geo: web::Data<GeoDb>, engine: web::Data<Engine>) -> HttpResponse {
    let (mut response, status, reason) = match engine.stopped() {
        None => (HttpResponse::Ok(), "ok", None),
        Some(reason) => (
            HttpResponse::ServiceUnavailable(),
            "ingest stopped",
            Some(reason),
        ),
    };
    response.json(serde_json::json!({
        "status": status,
        "reason": reason,
        "version": env!("CARGO_PKG_VERSION"),
        "geo_database": geo.description(),
        "held_events": engine.held(),
    }))
}

/// Behind the read token too, when there is one (a scraper sends it as a bearer token).
pub async fn metrics(
    req: HttpRequest,
    access: web::Data<Access>,
    metrics: web::Data<PrometheusHandle>,
) -> Result<HttpResponse, AccessError> {
    access.check_read_request(&req)?;
    crate::telemetry::process::update();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render()))
}
