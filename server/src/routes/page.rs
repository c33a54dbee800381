//! The browser page at `/`: plain HTML, CSS and JavaScript from `assets/web/`, and the world
//! geography from `assets/world/`, built into the binary so the server needs no files to serve it.

use actix_web::{HttpResponse, http::header};

const INDEX_HTML: &str = include_str!("../../../assets/web/index.html");
const APP_JS: &str = include_str!("../../../assets/web/app.js");
const FEED_JS: &str = include_str!("../../../assets/web/feed.js");
const LAND_JS: &str = include_str!("../../../assets/web/land.js");
/// `assets/web-src/globe.js` bundled with three.js (`npm run web --prefix assets`).
const GLOBE_JS: &str = include_str!("../../../assets/web/globe.js");
const STYLE_CSS: &str = include_str!("../../../assets/web/style.css");
const WORLD_JSON: &str = include_str!("../../../assets/world/world-50m.json");

fn asset(content_type: &'static str, body: &'static str, max_age: u32) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .body(body)
}

pub(crate) async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML, 60)
}

pub(crate) async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS, 60)
}

/// The protocol client, apart from the drawing (docs/browser-protocol.md quotes it).
pub(crate) async fn feed_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", FEED_JS, 60)
}

pub(crate) async fn land_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", LAND_JS, 60)
}

pub(crate) async fn globe_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", GLOBE_JS, 3_600)
}

pub(crate) async fn style_css() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS, 60)
}

/// The arcs' colours, the same palette the viewer draws with.
pub(crate) async fn palette_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(viralglobe_protocol::palette::PALETTE)
}

pub(crate) async fn world_json() -> HttpResponse {
    asset("application/json", WORLD_JSON, 86_400)
}
