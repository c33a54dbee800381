//! The read API, the browser page and operational endpoints.

mod campaigns;
mod health;
mod page;

use actix_web::{HttpRequest, HttpResponse, Resource, http::StatusCode, web};

use crate::error::json_error;

/// The page and its assets, the campaigns' read API, and the operational endpoints.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    page::configure(config);
    config
        .service(
            resource("/v1/campaigns")
                .get(campaigns::list_campaigns)
                .head(campaigns::list_campaigns),
        )
        .service(
            resource("/v1/campaigns/{id}/stats")
                .get(campaigns::campaign_stats)
                .head(campaigns::campaign_stats),
        )
        .service(
            resource("/v1/campaigns/{id}/cascades")
                .get(campaigns::campaign_cascades)
                .head(campaigns::campaign_cascades),
        )
        .service(
            resource("/healthz")
                .get(health::healthz)
                .head(health::healthz),
        )
        .service(
            resource("/metrics")
                .get(health::metrics)
                .head(health::metrics),
        );
}

/// A route's resource: a method it does not serve is answered 405, in JSON like every error.
pub(crate) fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let message = format!("{} is not served on {}", req.method(), req.path());
    json_error(StatusCode::METHOD_NOT_ALLOWED, &message)
}

/// Any other path: 404, in JSON.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        &format!("no such path: {}", req.path()),
    )
}

/// Query parameters that do not parse: 400 in JSON, naming the problem.
pub(crate) fn query_errors() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(bad_request("query"))
}

/// Path segments that do not parse: 400 in JSON.
pub(crate) fn path_errors() -> web::PathConfig {
    web::PathConfig::default().error_handler(bad_request("path"))
}

/// An extractor's error as a JSON 400 that says which part of the request was wrong.
fn bad_request<E>(part: &'static str) -> impl Fn(E, &HttpRequest) -> actix_web::Error
where
    E: std::fmt::Debug + std::fmt::Display + 'static,
{
    move |error, _| {
        let message = format!("{part}: {error}");
        actix_web::error::InternalError::from_response(
            error,
            json_error(StatusCode::BAD_REQUEST, &message),
        )
        .into()
    }
}
