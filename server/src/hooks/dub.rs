//! `POST /v1/hooks/dub`: Dub's webhooks (`link.clicked`, `lead.created`, `sale.created`), signed
//! with `Dub-Signature` (hex HMAC-SHA256 of the raw body with the webhook's secret,
//! `--dub-webhook-secret`). A Dub link is a share (`dub:link:<link.id>`), its click a click
//! (`dub:click:<click.id>`, placed by the click's address, which is then dropped), a lead a
//! sign-up and a sale a purchase with its amount (each `dub:<event id>`, placed where its click
//! was). Every id comes from Dub, so a delivery Dub repeats is a duplicate. docs/consuming.md has
//! the field-by-field mapping.

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::StatusCode, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::{Grant, Scope},
    error::json_error,
    ingest::{IngestReport, Pipeline},
};

/// The secret Dub signs with, if webhooks from Dub are taken.
pub(crate) struct DubHook {
    key: Option<ring::hmac::Key>,
}

impl DubHook {
    pub(crate) fn new(secret: Option<&str>) -> Self {
        Self {
            key: secret
                .filter(|s| !s.is_empty())
                .map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.as_bytes())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HookError {
    #[error("webhooks from Dub are not taken: start the server with --dub-webhook-secret")]
    Off,
    #[error("the Dub-Signature header is missing or does not match the body")]
    BadSignature,
    #[error("not a Dub webhook: {0}")]
    Invalid(String),
    #[error("{0}: try again shortly (Dub retries by itself)")]
    Unavailable(String),
}

impl ResponseError for HookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Off => StatusCode::FORBIDDEN,
            Self::BadSignature => StatusCode::UNAUTHORIZED,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), self)
    }
}

/// Where the webhook's links were posted, and their campaign: Dub knows neither.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HookQuery {
    campaign: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    city: Option<String>,
    country: Option<String>,
}

/// Campaign of links that name none (`utm_campaign`) when the webhook's address names none.
const DEFAULT_CAMPAIGN: &str = "dub";

pub(crate) async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<HookQuery>,
    hook: web::Data<DubHook>,
    pipeline: web::Data<Pipeline>,
) -> Result<HttpResponse, HookError> {
    let key = hook.key.as_ref().ok_or(HookError::Off)?;
    let signature = req
        .headers()
        .get("dub-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(hex)
        .ok_or(HookError::BadSignature)?;
    ring::hmac::verify(key, &body, &signature).map_err(|_| HookError::BadSignature)?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| HookError::Invalid(e.to_string()))?;
    let lines = match events(&payload, &query)? {
        Mapped::Events(lines) => lines,
        Mapped::Ignored(why) => {
            return Ok(HttpResponse::Ok().json(json!({ "ignored": why })));
        }
    };
    let mut report = IngestReport::default();
    let numbered = (1u64..).zip(lines.iter().map(String::as_bytes));
    pipeline
        .ingest_async(numbered, &mut report, &Grant::all(Scope::Ingest))
        .await
        .map_err(|e| HookError::Unavailable(e.to_string()))?;
    tracing::debug!(event = %payload["event"], accepted = report.accepted, "Dub webhook");
    Ok(HttpResponse::Ok().json(report))
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

enum Mapped {
    /// Input lines: the link's share, its click, the conversion.
    Events(Vec<String>),
    /// A webhook that draws nothing (another event type, a bot's click), and why.
    Ignored(String),
}

fn field<'a>(value: &'a Value, path: &str) -> Result<&'a Value, HookError> {
    value
        .pointer(path)
        .filter(|v| !v.is_null())
        .ok_or_else(|| HookError::Invalid(format!("no `{}`", &path[1..].replace('/', "."))))
}

fn text<'a>(value: &'a Value, path: &str) -> Result<&'a str, HookError> {
    field(value, path)?.as_str().ok_or_else(|| {
        HookError::Invalid(format!("`{}` is not text", &path[1..].replace('/', ".")))
    })
}

fn events(payload: &Value, query: &HookQuery) -> Result<Mapped, HookError> {
    let kind = text(payload, "/event")?;
    let goal = match kind {
        "link.clicked" => None,
        "lead.created" => Some("signup"),
        "sale.created" => Some("purchase"),
        other => return Ok(Mapped::Ignored(format!("`{other}` draws nothing"))),
    };
    let at = text(payload, "/createdAt")?;
    let link = field(payload, "/data/link")?;
    let share_id = format!("dub:link:{}", text(link, "/id")?);
    let mut lines = Vec::new();

    let campaign = link["utm_campaign"]
        .as_str()
        .filter(|c| !c.is_empty())
        .or(query.campaign.as_deref())
        .unwrap_or(DEFAULT_CAMPAIGN);
    let sharer = link["shortLink"]
        .as_str()
        .or(link["key"].as_str())
        .unwrap_or("dub");
    let mut share = json!({
        "type": "share", "id": share_id, "campaign": campaign,
        "channel": link["utm_source"].as_str().filter(|s| !s.is_empty()).unwrap_or("dub"),
        "sharer": sharer, "tool": "dub",
        "ts": link["createdAt"].as_str().unwrap_or(at),
    });
    if let (Some(lat), Some(lon)) = (query.lat, query.lon) {
        share["lat"] = json!(lat);
        share["lon"] = json!(lon);
        share["city"] = json!(query.city);
        share["country"] = json!(query.country);
    }
    lines.push(share.to_string());

    // The visitor: placed by the click's coordinates where Dub gives them, else by its address.
    let click = payload.pointer("/data/click").filter(|c| c.is_object());
    let place = |event: &mut Value| {
        let Some(click) = click else { return };
        if let (Some(lat), Some(lon)) = (click["latitude"].as_f64(), click["longitude"].as_f64()) {
            event["lat"] = json!(lat);
            event["lon"] = json!(lon);
            event["city"] = click["city"].clone();
            event["country"] = click["country"].clone();
        } else if let Some(ip) = click["ip"].as_str() {
            event["ip"] = json!(ip);
        }
    };
    if let Some(click) = click {
        if click["bot"].as_bool() == Some(true) && goal.is_none() {
            return Ok(Mapped::Ignored("a bot's click".into()));
        }
        if let Some(id) = click["id"].as_str() {
            let mut event = json!({
                "type": "click", "id": format!("dub:click:{id}"), "share": share_id,
                "ts": click["timestamp"].as_str().unwrap_or(at),
            });
            place(&mut event);
            lines.push(event.to_string());
        }
    } else if goal.is_none() {
        return Err(HookError::Invalid("no `data.click`".into()));
    }

    if let Some(goal) = goal {
        let value_cents = match goal {
            "purchase" => field(payload, "/data/sale/amount")?
                .as_u64()
                .ok_or_else(|| {
                    HookError::Invalid("`data.sale.amount` is not a whole number of cents".into())
                })?,
            _ => 0,
        };
        let mut event = json!({
            "type": "conversion", "id": format!("dub:{}", text(payload, "/id")?),
            "share": share_id, "goal": goal, "value_cents": value_cents, "ts": at,
        });
        place(&mut event);
        lines.push(event.to_string());
    }
    Ok(Mapped::Events(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(payload: Value) -> Vec<Value> {
        match events(&payload, &HookQuery::default()).expect("maps") {
            Mapped::Events(lines) => lines
                .iter()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect(),
            Mapped::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn a_sale_is_its_links_share_its_click_and_a_purchase() {
        let got = lines(json!({
            "id": "evt_1", "event": "sale.created", "createdAt": "2024-08-30T09:57:51.245Z",
            "data": {
                "eventName": "Purchased",
                "click": {"id": "c1", "ip": "63.141.57.109", "country": "US", "city": "San Francisco"},
                "link": {"id": "l1", "key": "79ys3WA", "shortLink": "https://dub.sh/79ys3WA"},
                "sale": {"amount": 2499, "currency": "usd"}
            }
        }));
        assert_eq!(got.len(), 3);
        assert_eq!(
            (&got[0]["type"], &got[0]["id"], &got[0]["campaign"]),
            (&json!("share"), &json!("dub:link:l1"), &json!("dub"))
        );
        assert_eq!(
            (&got[1]["id"], &got[1]["share"], &got[1]["ip"]),
            (
                &json!("dub:click:c1"),
                &json!("dub:link:l1"),
                &json!("63.141.57.109")
            )
        );
        assert_eq!(
            (&got[2]["goal"], &got[2]["value_cents"], &got[2]["id"]),
            (&json!("purchase"), &json!(2499), &json!("dub:evt_1"))
        );
    }

    #[test]
    fn other_events_and_bots_draw_nothing() {
        let ignored = |payload: Value| {
            matches!(
                events(&payload, &HookQuery::default()),
                Ok(Mapped::Ignored(_))
            )
        };
        assert!(ignored(
            json!({"id": "e", "event": "link.created", "createdAt": "x", "data": {}})
        ));
        assert!(ignored(
            json!({"id": "e", "event": "link.clicked", "createdAt": "2024-08-30T09:57:51Z",
            "data": {"click": {"id": "c", "bot": true}, "link": {"id": "l"}}})
        ));
        assert!(matches!(
            events(&json!({"id": "e", "event": "link.clicked", "createdAt": "x", "data": {"link": {"id": "l"}}}), &HookQuery::default()),
            Err(HookError::Invalid(m)) if m == "no `data.click`"
        ));
    }
}
