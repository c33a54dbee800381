//! `GET /healthz` and `GET /metrics`.

use actix_web::{HttpResponse, web};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{engine::Engine, geo::GeoDb};

pub async fn healthz(geo: web::Data<GeoDb>, engine: web::Data<Engine>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "geo_database": geo.description(),
        "held_events": engine.held(),
    }))
}

pub async fn metrics(metrics: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}
