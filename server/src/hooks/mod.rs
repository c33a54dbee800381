//! Webhooks of the link shorteners people already use, mapped onto shares, clicks and
//! conversions and applied through the same [`Pipeline`] as `POST /v1/events`.

mod dub;

use actix_web::web;

pub(crate) use dub::DubHook;

/// `POST /v1/hooks/dub`.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config.service(crate::routes::resource("/v1/hooks/dub").post(dub::receive));
}
