//! `GET /healthz` and `GET /metrics`.

use actix_web::{HttpRequest, HttpResponse, web};

use metrics_exporter_prometheus::PrometheusHandle;

use std::sync::Arc;

use crate::{
    auth::{Access, AccessError},
    cluster::Cluster,
    engine::Engine,
    geo::GeoDb,
    telemetry::sources::Consumers,
};

/// 200 while the server takes events; 503 with the reason once ingest has stopped (or, in
/// cluster mode, this node stopped following the log), so a load balancer or an operator sees
/// it. Redis away is reported (`log.redis`) but stays 200: this node still serves its feeds.
pub(crate) async fn healthz(
    geo: web::Data<GeoDb>,
    engine: web::Data<Engine>,
    cluster: web::Data<Option<Arc<Cluster>>>,
    consumers: web::Data<Consumers>,
) -> HttpResponse {
    let log = cluster.as_ref().as_ref().map(|c| c.health());
    let stopped = engine
        .stopped()
        .map(str::to_owned)
        .or_else(|| log.as_ref().and_then(|l| l.stopped.clone()));
    let (mut response, status) = match &stopped {
        None => (HttpResponse::Ok(), "ok"),
        Some(_) => (HttpResponse::ServiceUnavailable(), "ingest stopped"),
    };
    let mut body = serde_json::json!({
        "status": status,
        "reason": stopped,
        "version": env!("CARGO_PKG_VERSION"),
        "geo_database": geo.description(),
        "held_events": engine.held(),
    });
    if let Some(log) = log {
        body["log"] = serde_json::json!(log);
    }
    // A broker away is reported, not a failure: the node serves on, and the consumer resumes.
    if !consumers.statuses().is_empty() {
        let statuses: Vec<_> = consumers.statuses().iter().map(|s| &**s).collect();
        body["sources"] = serde_json::json!(statuses);
    }
    response.json(body)
}

/// Behind the read token too, when there is one (a scraper sends it as a bearer token).
pub(crate) async fn metrics(
    req: HttpRequest,
    access: web::Data<Access>,
    metrics: web::Data<PrometheusHandle>,
) -> Result<HttpResponse, AccessError> {
    access
        .check_read_request(&req)?
        .check_all("/metrics (counters of every campaign)")?;
    crate::telemetry::process::update();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render()))
}
