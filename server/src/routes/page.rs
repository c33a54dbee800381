//! The browser page at `/`, the embeddable globe at `/embed`, and the script for marketers'
//! sites: plain HTML, CSS and JavaScript from `assets/web/` and `assets/embed/`, and the world
//! geography from `assets/world/`, built into the binary so the server needs no files to serve
//! them.

use actix_web::{HttpResponse, http::header, middleware, web};

use super::resource;

/// A file served as it is, with how long browsers may keep it.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    max_age_s: u32,
    /// Large and compressible: gzipped for clients that take it.
    compress: bool,
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../assets/web/index.html"),
        max_age_s: 60,
        compress: false,
    },
    Asset {
        path: "/app.js",
        content_type: JS,
        body: include_str!("../../../assets/web/app.js"),
        max_age_s: 60,
        compress: false,
    },
    // The protocol client, apart from the drawing (docs/browser-protocol.md quotes it).
    Asset {
        path: "/feed.js",
        content_type: JS,
        body: include_str!("../../../assets/web/feed.js"),
        max_age_s: 60,
        compress: false,
    },
    Asset {
        path: "/land.js",
        content_type: JS,
        body: include_str!("../../../assets/web/land.js"),
        max_age_s: 60,
        compress: false,
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../assets/web/style.css"),
        max_age_s: 60,
        compress: false,
    },
    Asset {
        path: "/world.json",
        content_type: "application/json",
        body: include_str!("../../../assets/world/world-50m.json"),
        max_age_s: 86_400,
        compress: true,
    },
    // The script a marketer's site includes (docs/links.md).
    Asset {
        path: "/vg.js",
        content_type: JS,
        body: include_str!("../../../assets/web/vg.js"),
        max_age_s: 3_600,
        compress: false,
    },
    // The embeddable globe: the custom element with three.js (`npm run embed --prefix assets`, also
    // the npm package viralglobe-globe; the page above takes its `createGlobe` from it), and a
    // page of its own for an iframe (docs/embedding.md).
    Asset {
        path: "/embed/viral-globe.js",
        content_type: JS,
        body: include_str!("../../../assets/embed/viral-globe.js"),
        max_age_s: 3_600,
        compress: true,
    },
    Asset {
        path: "/embed",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../assets/web/embed.html"),
        max_age_s: 60,
        compress: false,
    },
];

impl Asset {
    fn response(&self) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(self.content_type)
            .insert_header((
                header::CACHE_CONTROL,
                format!("public, max-age={}", self.max_age_s),
            ))
            .body(self.body)
    }
}

/// Every asset, GET and HEAD, and the arcs' palette.
pub(super) fn configure(config: &mut web::ServiceConfig) {
    for asset in ASSETS {
        let serve = move || async move { asset.response() };
        let route = resource(asset.path).get(serve).head(serve);
        if asset.compress {
            config.service(route.wrap(middleware::Compress::default()));
        } else {
            config.service(route);
        }
    }
    config.service(
        resource("/palette.json")
            .get(palette_json)
            .head(palette_json),
    );
}

/// The arcs' colours, the same palette the viewer draws with.
async fn palette_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(viralglobe_protocol::palette::PALETTE)
}
