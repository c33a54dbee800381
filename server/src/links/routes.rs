//! The link routes: minting and describing links (producers), the redirect and the QR code
//! (anyone holding a link), and the public endpoints `vg.js` calls from visitors' browsers.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{Method, StatusCode, header},
    middleware, web,
};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use viralglobe_protocol::{InputError, InputEvent, Place, Timestamp, input::check_link_code};

use super::{LinkError, NewLink, Tracker, codes, visitor};
use crate::{
    auth::{Access, Scope},
    engine::{Located, Outcome},
    error::json_error,
    routes::resource,
};

/// Largest body of `POST /v1/links`.
const MAX_LINK_BODY: usize = 16 * 1024;
/// Largest body a browser may send.
const MAX_BROWSER_BODY: usize = 1024;
/// Longest channel, goal or visitor-chosen id a browser may send, and sharer name.
const MAX_BROWSER_NAME: usize = 32;
const MAX_BROWSER_SHARER: usize = 64;

/// `/l/{code}`, matched by its prefix alone: registered first, as the busiest route at a viral
/// peak (every pattern tried before a route costs a match).
pub(crate) fn configure_redirect(config: &mut web::ServiceConfig) {
    config.service(web::scope("/l").default_service(web::to(redirect)));
}

/// The producers' and browsers' routes.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/v1/links").post(create_link))
        .service(
            resource("/v1/links/{code}")
                .get(describe_link)
                .head(describe_link),
        )
        .service(
            resource("/v1/links/{code}/qr.svg")
                .get(link_qr)
                .head(link_qr),
        )
        .service(
            resource("/v1/links/{code}/share")
                .wrap(public_cors())
                .post(browser_share)
                .route(web::method(Method::OPTIONS).to(preflight)),
        )
        .service(
            resource("/v1/links/{code}/conversions")
                .wrap(public_cors())
                .post(browser_conversion)
                .route(web::method(Method::OPTIONS).to(preflight)),
        );
}

/// Any site may call the browsers' endpoints: they take no token and answer no secrets.
fn public_cors() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new().add((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
}

/// `POST /v1/links`: a campaign post's link (or any share's), minted with the ingest token or a
/// token scoped to `links` in its campaign.
async fn create_link(
    req: HttpRequest,
    payload: web::Payload,
    tracker: web::Data<Tracker>,
    access: web::Data<Access>,
) -> Result<HttpResponse, LinkError> {
    let grant = access.check_write(&req, Scope::Links)?;
    let body = Body::read(payload, MAX_LINK_BODY).await?;
    let campaign = body.required("campaign")?;
    grant.check(&campaign)?;
    let place = match (body.number_f64("lat")?, body.number_f64("lon")?) {
        (Some(lat), Some(lon)) => Some(Place {
            lat,
            lon,
            city: body.text("city", usize::MAX)?,
            country: body.text("country", usize::MAX)?,
        }),
        _ => None,
    };
    let minted = tracker
        .mint(NewLink {
            id: body.text("id", usize::MAX)?,
            destination: body.required("destination")?,
            channel: body.required("channel")?,
            sharer: body.required("sharer")?,
            sharer_kind: body.text("sharer_kind", usize::MAX)?,
            reach: body.number_u64("reach")?,
            parent: body.text("parent", usize::MAX)?,
            tool: body.text("tool", usize::MAX)?,
            address: tracker.address(&req),
            campaign,
            place,
        })
        .await?;
    tracing::info!(code = minted.code, share = minted.id, "link minted");
    Ok(HttpResponse::Created().json(minted))
}

/// `GET /v1/links/{code}`: what a link is and where it leads (readers).
async fn describe_link(
    req: HttpRequest,
    code: web::Path<String>,
    tracker: web::Data<Tracker>,
    access: web::Data<Access>,
) -> Result<HttpResponse, LinkError> {
    let grant = access.check_read_request(&req)?;
    let link = tracker.link(&code)?;
    grant.check(&link.campaign)?;
    let resolved = tracker.engine.share(&link.share);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "code": code.as_str(),
        "url": tracker.url_of(&code),
        "qr": format!("{}/v1/links/{code}/qr.svg", tracker.options.public_url),
        "id": link.share,
        "campaign": &*link.campaign,
        "destination": &*link.destination,
        "channel": link.channel,
        "sharer": link.sharer,
        "parent": link.parent,
        "generation": resolved.as_ref().map(|(generation, _)| generation),
        "at": resolved.as_ref().and_then(|(_, place)| place.as_deref()),
        "ts": link.ts,
    })))
}

/// `GET /v1/links/{code}/qr.svg`: the link's address as a QR code, for a stage screen or a flyer.
async fn link_qr(
    code: web::Path<String>,
    tracker: web::Data<Tracker>,
) -> Result<HttpResponse, LinkError> {
    // Only a link's code gets one; an unknown code is a 404, as its redirect is.
    tracker.link(&code)?;
    let url = tracker.url_of(&code);
    let svg = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| {
            LinkError::Invalid(InputError {
                field: None,
                message: format!("the link's address does not fit a QR code: {e}"),
            })
        })?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .build();
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(svg))
}

/// `GET /l/{code}` (and `HEAD`): 302 to the destination with `vg=CODE`, at once; a person's
/// visit is left to be recorded as a click. Bots, link previews and `HEAD` are not counted.
async fn redirect(req: HttpRequest, tracker: web::Data<Tracker>) -> HttpResponse {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        let message = format!("{method} is not served on {}", req.path());
        return json_error(StatusCode::METHOD_NOT_ALLOWED, &message);
    }
    let code = req.path().strip_prefix("/l/").unwrap_or_default();
    let Some(link) = check_link_code(code)
        .ok()
        .and_then(|()| tracker.engine.links().get(code))
    else {
        tracker.redirects.unknown_link.increment(1);
        return HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(NOT_FOUND_PAGE);
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map_or(&b""[..], |v| v.as_bytes());
    let counted = &tracker.redirects;
    if method == Method::HEAD {
        counted.head.increment(1);
    } else if user_agent.is_empty() || tracker.bots.is_bot(&String::from_utf8_lossy(user_agent)) {
        counted.bot.increment(1);
    } else {
        record_visit(&req, &tracker, &link.share, code, user_agent);
        counted.person.increment(1);
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, with_code(&link.destination, code)))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .finish()
}

fn record_visit(req: &HttpRequest, tracker: &Tracker, share: &str, code: &str, user_agent: &[u8]) {
    let now = Timestamp::now();
    let address = tracker.address(req);
    let place = tracker
        .pipeline
        .locate_address(tracker.placing(req, address));
    let salt = tracker.salt.key(visitor::day_of(now.0));
    let event = InputEvent::Click(viralglobe_protocol::ClickEvent {
        id: Some(visitor::visit_id(&salt, address, user_agent, code, now.0)),
        share: share.to_owned(),
        origin: Default::default(),
        ts: now,
    });
    tracker.clicks.push(Located { event, place });
}

/// `destination` with `vg=CODE` added to its query, its fragment kept last.
fn with_code(destination: &str, code: &str) -> String {
    let (base, fragment) = match destination.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (destination, None),
    };
    let separator = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut url = format!("{base}{separator}vg={code}");
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Link not found</title>\
<body style=\"font-family:system-ui;margin:4em auto;max-width:32em\"><h1>This link does not \
exist</h1><p>Check the address: a tracked link's code has 11 letters and digits.</p>";

/// `POST /v1/links/{code}/share` (from `vg.js`): a child link of the link that brought this
/// visitor, to the same destination, placed where the visitor is.
async fn browser_share(
    req: HttpRequest,
    code: web::Path<String>,
    payload: web::Payload,
    tracker: web::Data<Tracker>,
) -> Result<HttpResponse, LinkError> {
    let parent = tracker.link(&code)?;
    let body = Body::read(payload, MAX_BROWSER_BODY).await?;
    let channel = body
        .name("channel", MAX_BROWSER_NAME)?
        .ok_or_else(|| missing("channel"))?;
    let sharer = body
        .text("sharer", MAX_BROWSER_SHARER)?
        .unwrap_or_else(|| "visitor".to_owned());
    let placed_by = tracker.browser_visitor(&req)?;
    let minted = tracker
        .mint(NewLink {
            id: None,
            campaign: parent.campaign.to_string(),
            destination: parent.destination.to_string(),
            channel,
            sharer,
            sharer_kind: Some("visitor".to_owned()),
            reach: None,
            parent: Some(parent.share.to_string()),
            tool: Some("vg.js".to_owned()),
            place: None,
            address: placed_by,
        })
        .await?;
    Ok(HttpResponse::Created().json(minted))
}

/// `POST /v1/links/{code}/conversions` (from `vg.js`): a goal reached by a visitor whom this link
/// brought, recorded as unverified.
async fn browser_conversion(
    req: HttpRequest,
    code: web::Path<String>,
    payload: web::Payload,
    tracker: web::Data<Tracker>,
) -> Result<HttpResponse, LinkError> {
    let link = tracker.link(&code)?;
    let off = &tracker.options.browser_conversions_off;
    if off.iter().any(|c| c == "*" || **c == *link.campaign) {
        return Err(LinkError::BrowserConversionsOff(link.campaign.to_string()));
    }
    let body = Body::read(payload, MAX_BROWSER_BODY).await?;
    let goal = body
        .name("goal", MAX_BROWSER_NAME)?
        .ok_or_else(|| missing("goal"))?;
    let value_cents = body.number_u64("value_cents")?.unwrap_or(0);
    // The page's own id (an order number) makes a report sent twice count once; it is kept apart
    // from the ids that producers send, so a browser cannot shadow a server-to-server conversion.
    let id = match body.name("id", MAX_BROWSER_NAME)? {
        Some(id) => format!("browser-{}-{id}", link.campaign),
        None => format!("browser-{}", codes::new_code()),
    };
    let placed_by = tracker.browser_visitor(&req)?;
    let line = serde_json::json!({
        "type": "conversion",
        "id": id,
        "share": link.share,
        "goal": goal,
        "value_cents": value_cents,
        "unverified": true,
        "ts": Timestamp::now(),
    });
    let event = InputEvent::parse(line.to_string().as_bytes()).map_err(LinkError::Invalid)?;
    let place = tracker.pipeline.locate_address(placed_by);
    match tracker.apply(Located { event, place }).await? {
        Outcome::Accepted | Outcome::Held => {
            Ok(HttpResponse::Created().json(serde_json::json!({ "recorded": true })))
        }
        Outcome::Duplicate => Ok(
            HttpResponse::Ok().json(serde_json::json!({ "recorded": false, "duplicate": true }))
        ),
        Outcome::Rejected(error) => Err(LinkError::Invalid(error)),
    }
}

/// CORS preflight of the browser endpoints (`vg.js` sends `text/plain`, which needs none; a page
/// that sends `application/json` or headers of its own asks first). Any header may come: these
/// endpoints take no credentials and read no header a page could forge to gain anything.
async fn preflight(req: HttpRequest) -> HttpResponse {
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static("content-type"));
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

fn missing(field: &'static str) -> LinkError {
    LinkError::Invalid(InputError {
        field: Some(field),
        message: "missing".into(),
    })
}

fn invalid(field: &'static str, message: impl Into<String>) -> LinkError {
    LinkError::Invalid(InputError {
        field: Some(field),
        message: message.into(),
    })
}

/// A JSON object body, read up to a size, whose fields are taken one by one so that every error
/// names its field.
struct Body(Map<String, Value>);

impl Body {
    async fn read(mut payload: web::Payload, limit: usize) -> Result<Self, LinkError> {
        let mut bytes = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                LinkError::Invalid(InputError {
                    field: None,
                    message: format!("reading the body failed: {e}"),
                })
            })?;
            if bytes.len() + chunk.len() > limit {
                return Err(LinkError::TooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(LinkError::Invalid(InputError {
                field: None,
                message: "the body must be a JSON object".into(),
            })),
            Err(e) => Err(LinkError::Invalid(InputError {
                field: None,
                message: format!("the body is not JSON: {e}"),
            })),
        }
    }

    fn field(&self, field: &'static str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A string of at most `max` bytes, with no control characters.
    fn text(&self, field: &'static str, max: usize) -> Result<Option<String>, LinkError> {
        match self.field(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() > max => {
                Err(invalid(field, format!("longer than {max} bytes")))
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                Err(invalid(field, "must not hold control characters"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(field, "must be a string")),
        }
    }

    fn required(&self, field: &'static str) -> Result<String, LinkError> {
        self.text(field, usize::MAX)?.ok_or_else(|| missing(field))
    }

    /// A short name: letters, digits, `-`, `_`, `.`.
    fn name(&self, field: &'static str, max: usize) -> Result<Option<String>, LinkError> {
        let name = self.text(field, max)?;
        if let Some(name) = &name
            && (name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        {
            return Err(invalid(field, "must be letters, digits, '-', '_' or '.'"));
        }
        Ok(name)
    }

    fn number_u64(&self, field: &'static str) -> Result<Option<u64>, LinkError> {
        match self.field(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(field, "must be a whole number, 0 or more")),
        }
    }

    fn number_f64(&self, field: &'static str) -> Result<Option<f64>, LinkError> {
        match self.field(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(field, "must be a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_code;

    #[test]
    fn the_code_joins_the_query_and_the_fragment_stays_last() {
        let code = "Ab3dE5gH1jK";
        assert_eq!(
            with_code("https://a.example", code),
            "https://a.example?vg=Ab3dE5gH1jK"
        );
        assert_eq!(
            with_code("https://a.example/p?x=1#top", code),
            "https://a.example/p?x=1&vg=Ab3dE5gH1jK#top"
        );
        assert_eq!(
            with_code("https://a.example/p?#t", code),
            "https://a.example/p?vg=Ab3dE5gH1jK#t"
        );
    }
}
