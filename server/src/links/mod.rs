//! Tracked share links: the server is the tracker. `POST /v1/links` mints a link for a campaign
//! post (a share); `GET /l/{code}` redirects its visitors and records each visit as a click on
//! that share; `vg.js` on the destination site mints child links (child shares, one generation
//! deeper) and reports conversions, through public endpoints that can only add to links that
//! exist. Every link, click and conversion is an ordinary event in the ordinary pipeline.
//!
//! A visitor's address places the event, keys its visit id, and is dropped: events carry the
//! place, never the address (see `docs/links.md`).

mod clicks;
mod codes;
mod limits;
mod routes;
mod visitor;

use std::{net::IpAddr, sync::Arc, time::Duration};

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use ipnet::IpNet;
pub(crate) use routes::{configure, configure_redirect};
use viralglobe_protocol::{InputError, InputEvent, Place, Timestamp, input::check_destination};

use self::{clicks::ClickQueue, limits::RateLimit, visitor::VisitSalt};
use crate::{
    auth::AccessError,
    engine::{Engine, EngineError, Link, Located, Outcome},
    ingest::Pipeline,
};

/// Addresses (and campaigns) counted per minute by the rate limits at most; beyond, new ones wait
/// for the next minute.
const MAX_LIMITED_KEYS: usize = 100_000;

/// How tracked links behave, as plain values.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// The base of link addresses (`https://go.example.com`), without a trailing slash.
    pub public_url: String,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the visitor.
    pub trusted_proxies: Vec<IpNet>,
    /// Visits with `Sec-GPC: 1` or `DNT: 1` are counted without a place.
    pub respect_gpc: bool,
    /// Campaigns whose conversions browsers may not report (`*`: all).
    pub browser_conversions_off: Vec<String>,
    /// Links made and conversions reported per minute by one address.
    pub per_address_per_minute: u32,
    /// Links made per minute in one campaign.
    pub per_campaign_per_minute: u32,
    /// Clicks waiting to be recorded at most.
    pub click_queue: usize,
    /// Cluster mode: the Redis that keeps the day's visit salt.
    pub redis: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("{0}")]
    Invalid(InputError),
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("no link with this code")]
    NotFound,
    #[error("too many {0} this minute; try again in {1} s")]
    RateLimited(&'static str, u64),
    #[error("share id `{0}` is taken: every link is a share of its own")]
    Taken(String),
    #[error("campaign `{0}` does not take conversions from browsers: report them server to server")]
    BrowserConversionsOff(String),
    #[error("{0}")]
    Unavailable(EngineError),
    #[error("the event's outcome did not come back; send it again")]
    NoOutcome,
}

impl ResponseError for LinkError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Access(access) => access.status_code(),
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Taken(_) => StatusCode::CONFLICT,
            Self::BrowserConversionsOff(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) | Self::NoOutcome => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Access(access) = self {
            return access.error_response();
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited(_, seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            Self::Unavailable(_) | Self::NoOutcome => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let Self::Invalid(InputError {
            field: Some(field), ..
        }) = self
        {
            body["field"] = (*field).into();
        }
        response.json(body)
    }
}

/// A link to mint: a share, with what its event needs.
struct NewLink {
    id: Option<String>,
    campaign: String,
    destination: String,
    channel: String,
    sharer: String,
    sharer_kind: Option<String>,
    reach: Option<u64>,
    parent: Option<String>,
    tool: Option<String>,
    /// Where the share is: stated, or else the address's place.
    place: Option<Place>,
    address: Option<IpAddr>,
}

/// A minted link, as answered.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Minted {
    pub id: String,
    pub code: String,
    pub url: String,
}

/// Everything the link routes share.
pub(crate) struct Tracker {
    engine: Arc<Engine>,
    pipeline: Pipeline,
    options: LinkOptions,
    salt: Arc<VisitSalt>,
    bots: isbot::Bots,
    clicks: ClickQueue,
    per_address: RateLimit<IpAddr>,
    per_campaign: RateLimit<Arc<str>>,
    redirects: Redirects,
}

/// `viralglobe_link_redirects_total` by visitor, looked up once: the redirect counts each.
struct Redirects {
    person: metrics::Counter,
    bot: metrics::Counter,
    head: metrics::Counter,
    unknown_link: metrics::Counter,
}

impl Redirects {
    fn new() -> Self {
        let counter = |visitor: &'static str| metrics::counter!("viralglobe_link_redirects_total", "visitor" => visitor);
        Self {
            person: counter("person"),
            bot: counter("bot"),
            head: counter("head"),
            unknown_link: counter("unknown_link"),
        }
    }
}

impl Tracker {
    /// Starts the click recorder (and, in cluster mode, the salt's sharing): call inside the
    /// server's runtime.
    pub(crate) fn start(
        engine: Arc<Engine>,
        pipeline: Pipeline,
        options: LinkOptions,
    ) -> Arc<Self> {
        let salt = VisitSalt::new();
        if let Some(redis) = &options.redis {
            salt.share_through(redis.clone());
        }
        let clicks = ClickQueue::start(pipeline.clone(), options.click_queue);
        Arc::new(Self {
            engine,
            pipeline,
            salt,
            bots: isbot::Bots::default(),
            clicks,
            per_address: RateLimit::new(options.per_address_per_minute, MAX_LIMITED_KEYS),
            per_campaign: RateLimit::new(options.per_campaign_per_minute, MAX_LIMITED_KEYS),
            redirects: Redirects::new(),
            options,
        })
    }

    fn link(&self, code: &str) -> Result<Arc<Link>, LinkError> {
        self.engine.links().get(code).ok_or(LinkError::NotFound)
    }

    fn url_of(&self, code: &str) -> String {
        format!("{}/l/{code}", self.options.public_url)
    }

    fn address(&self, req: &HttpRequest) -> Option<IpAddr> {
        visitor::client_address(req, &self.options.trusted_proxies)
    }

    /// Whether the visitor asked not to be tracked, and we honour it.
    fn opted_out(&self, req: &HttpRequest) -> bool {
        self.options.respect_gpc
            && ["sec-gpc", "dnt"]
                .iter()
                .any(|h| req.headers().get(*h).is_some_and(|v| v.as_bytes() == b"1"))
    }

    /// A browser's request through `vg.js`, within its address's allowance; the address that
    /// places what it makes (none when the visitor opted out).
    fn browser_visitor(&self, req: &HttpRequest) -> Result<Option<IpAddr>, LinkError> {
        let address = self.address(req);
        if let Some(address) = address {
            self.per_address
                .take(limits::address_key(address))
                .map_err(|retry| {
                    LinkError::RateLimited(
                        "links and conversions from this address",
                        retry_secs(retry),
                    )
                })?;
        }
        Ok(self.placing(req, address))
    }

    /// The address that places what `req` makes: none when the visitor opted out.
    fn placing(&self, req: &HttpRequest, address: Option<IpAddr>) -> Option<IpAddr> {
        address.filter(|_| !self.opted_out(req))
    }

    fn limit_campaign(&self, campaign: &Arc<str>) -> Result<(), LinkError> {
        self.per_campaign
            .take(campaign.clone())
            .map_err(|retry| LinkError::RateLimited("links in this campaign", retry_secs(retry)))
    }

    /// Makes `new` a share with a link of its own, through the pipeline, within the campaign's
    /// links a minute; answers once it is acknowledged like any event.
    async fn mint(&self, new: NewLink) -> Result<Minted, LinkError> {
        check_destination(&new.destination).map_err(LinkError::Invalid)?;
        let code = codes::new_code();
        let id = new.id.unwrap_or_else(codes::new_share_id);
        let stated = new.place.as_ref();
        let line = serde_json::json!({
            "type": "share",
            "id": id,
            "campaign": new.campaign,
            "channel": new.channel,
            "sharer": new.sharer,
            "sharer_kind": new.sharer_kind,
            "reach": new.reach,
            "parent": new.parent,
            "tool": new.tool,
            "link": { "code": code, "destination": new.destination },
            "lat": stated.map(|p| p.lat),
            "lon": stated.map(|p| p.lon),
            "city": stated.and_then(|p| p.city.clone()),
            "country": stated.and_then(|p| p.country.clone()),
            "ts": Timestamp::now(),
        });
        let event = InputEvent::parse(line.to_string().as_bytes()).map_err(LinkError::Invalid)?;
        // Only a valid link spends the campaign's allowance.
        self.limit_campaign(&Arc::from(new.campaign.as_str()))?;
        let place = match new.place {
            Some(place) => Some(Arc::new(place)),
            None => self.pipeline.locate_address(new.address),
        };
        let outcome = self.apply(Located { event, place }).await?;
        match outcome {
            Outcome::Accepted | Outcome::Held => Ok(Minted {
                url: self.url_of(&code),
                id,
                code,
            }),
            Outcome::Duplicate => Err(LinkError::Taken(id)),
            Outcome::Rejected(error) => Err(LinkError::Invalid(error)),
        }
    }

    async fn apply(&self, located: Located) -> Result<Outcome, LinkError> {
        let mut outcomes = self
            .pipeline
            .apply_located(vec![located])
            .await
            .map_err(LinkError::Unavailable)?;
        outcomes.pop().ok_or(LinkError::NoOutcome)
    }
}

fn retry_secs(retry: Duration) -> u64 {
    retry.as_secs().max(1)
}
