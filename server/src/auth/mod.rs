//! Who may ingest and who may subscribe: the all-campaign keys (`--ingest-token`,
//! `--read-token`), token-less ingest from this machine, and campaign-scoped tokens
//! ([`tokens`]). A request let in gets a [`Grant`]: the campaigns it may reach.

mod tokens;

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use subtle::ConstantTimeEq;
pub(crate) use tokens::TokenKeys;
use tokens::{Campaigns, TokenError};
pub use tokens::{KeyError, Scope, mint};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AccessError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error(
        "ingest is disabled: the server listens on a non-loopback address without --ingest-token"
    )]
    IngestDisabled,
    #[error("origin `{0}` is not allowed to open the live feed")]
    OriginNotAllowed(String),
    /// Token-less ingest is for this machine: a request naming another host (a DNS-rebinding
    /// page) or sent from another site's page (a cross-site POST) is refused.
    #[error(
        "{0} may not ingest without a token: only this machine's pages and tools may (set \
         --ingest-token, or name the host with --allowed-host)"
    )]
    NotThisMachine(String),
    #[error("token refused: {0}")]
    TokenRefused(TokenError),
    #[error("this token's scope does not include `{}`", .0.name())]
    ScopeMissing(Scope),
    #[error("this token may not {} campaign `{campaign}`", verb(*.scope))]
    CampaignNotAllowed { scope: Scope, campaign: String },
    #[error(
        "this token reaches only some campaigns: name the one to read (`campaign=`), one of {0}"
    )]
    CampaignNeeded(String),
    #[error("{0} needs a token for every campaign")]
    AllCampaignsNeeded(&'static str),
    #[error("this token may not be used by a page of `{0}`")]
    OriginNotInToken(String),
}

fn verb(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::Ingest => "post events to",
        Scope::Links => "create links in",
    }
}

/// The one answer to a refused client, whatever it asked for: 401 with `WWW-Authenticate` for a
/// missing or wrong token, 403 otherwise.
impl ResponseError for AccessError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::TokenRefused(_) => StatusCode::UNAUTHORIZED,
            Self::IngestDisabled
            | Self::OriginNotAllowed(_)
            | Self::NotThisMachine(_)
            | Self::ScopeMissing(_)
            | Self::CampaignNotAllowed { .. }
            | Self::CampaignNeeded(_)
            | Self::AllCampaignsNeeded(_)
            | Self::OriginNotInToken(_) => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::TokenRefused(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// What a request let in may reach: every campaign (the all-campaign keys, an open server) or
/// those its scoped token names.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    scope: Scope,
    campaigns: Campaigns,
    /// The token's `sub`, for the log of a refusal.
    subject: Option<Arc<str>>,
}

impl Grant {
    pub(crate) fn all(scope: Scope) -> Self {
        Self {
            scope,
            campaigns: Campaigns::All,
            subject: None,
        }
    }

    pub(crate) fn reaches_all(&self) -> bool {
        self.campaigns == Campaigns::All
    }

    pub(crate) fn allows(&self, campaign: &str) -> bool {
        match &self.campaigns {
            Campaigns::All => true,
            Campaigns::Only(ids) => ids.iter().any(|id| id == campaign),
        }
    }

    /// Refuses (and logs, without the token) a campaign the grant does not reach.
    pub(crate) fn check(&self, campaign: &str) -> Result<(), AccessError> {
        if self.allows(campaign) {
            return Ok(());
        }
        self.log_refusal(1);
        Err(self.refusal(campaign))
    }

    /// Why `campaign` is out of reach.
    pub(crate) fn refusal(&self, campaign: &str) -> AccessError {
        AccessError::CampaignNotAllowed {
            scope: self.scope,
            campaign: excerpt(campaign).to_owned(),
        }
    }

    /// One log line for `times` refusals of a request (never the token).
    pub(crate) fn log_refusal(&self, times: u64) {
        tracing::warn!(
            subject = self.subject.as_deref().unwrap_or("-"),
            scope = self.scope.name(),
            times,
            "token refused for a campaign it does not name"
        );
    }

    /// For what spans every campaign (`/metrics`).
    pub(crate) fn check_all(&self, what: &'static str) -> Result<(), AccessError> {
        match self.campaigns {
            Campaigns::All => Ok(()),
            Campaigns::Only(_) => Err(AccessError::AllCampaignsNeeded(what)),
        }
    }

    /// The campaign a reader who named none reads: all of them, or a scoped token's only one.
    pub(crate) fn default_campaign(&self) -> Result<Option<String>, AccessError> {
        match &self.campaigns {
            Campaigns::All => Ok(None),
            Campaigns::Only(ids) => match &ids[..] {
                [one] => Ok(Some(one.clone())),
                ids => Err(AccessError::CampaignNeeded(
                    ids.iter()
                        .take(10)
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Access {
    ingest_token: Option<String>,
    ingest_open: bool,
    /// Host names besides this machine's that token-less ingest answers to (`--allowed-host`).
    allowed_hosts: Vec<String>,
    read_token: Option<String>,
    allowed_origins: Vec<String>,
    /// Keys of campaign-scoped tokens; none: only the all-campaign keys.
    keys: TokenKeys,
}

/// The host name of a `host[:port]` (or `[v6]:port`) authority.
fn host_name(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(name, _)| name)
}

/// At most 120 bytes of a header value a refusal names.
fn excerpt(value: &str) -> &str {
    let mut end = value.len().min(120);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

fn same_token(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The token of an `Authorization: Bearer …` header; the scheme is case-insensitive (RFC 9110).
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Three base64url parts: a JWT rather than one of the all-campaign keys.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl Access {
    pub(crate) fn new(
        ingest_token: Option<String>,
        loopback: bool,
        read_token: Option<String>,
        allowed_origins: Vec<String>,
        allowed_hosts: Vec<String>,
        keys: TokenKeys,
    ) -> Self {
        let ingest_token = ingest_token.filter(|t| !t.is_empty());
        let ingest_open = ingest_token.is_some() || !keys.is_empty() || loopback;
        if !ingest_open {
            tracing::warn!(
                "no --ingest-token on a non-loopback address: POST /v1/events is disabled"
            );
        }
        let allowed_origins = allowed_origins
            .into_iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        let allowed_hosts = allowed_hosts
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Self {
            ingest_token,
            ingest_open,
            allowed_hosts,
            read_token: read_token.filter(|t| !t.is_empty()),
            allowed_origins,
            keys,
        }
    }

    /// Who may post events (`Scope::Ingest`) or create links (`Scope::Links`): the ingest
    /// token's holder, a scoped token's for its campaigns, or, on a server with neither,
    /// this machine.
    pub(crate) fn check_write(
        &self,
        req: &HttpRequest,
        scope: Scope,
    ) -> Result<Grant, AccessError> {
        if !self.ingest_open {
            return Err(AccessError::IngestDisabled);
        }
        if self.ingest_token.is_none() && self.keys.is_empty() {
            return self.check_this_machine(req).map(|()| Grant::all(scope));
        }
        match bearer(req) {
            Some(given)
                if self
                    .ingest_token
                    .as_ref()
                    .is_some_and(|e| same_token(given, e)) =>
            {
                Ok(Grant::all(scope))
            }
            Some(given) if !self.keys.is_empty() && looks_like_jwt(given) => {
                self.scoped(req, given, scope)
            }
            _ => Err(AccessError::Unauthorized),
        }
    }

    /// A scoped token's grant, if a key of ours signed it for `scope` and the page using it
    /// (its `Origin`) is one it names. Refusals are logged with their reason, never the token.
    fn scoped(&self, req: &HttpRequest, token: &str, scope: Scope) -> Result<Grant, AccessError> {
        let refuse = |error: AccessError, subject: Option<&str>| {
            tracing::warn!(
                path = req.path(),
                subject = subject.unwrap_or("-"),
                reason = %error,
                "token refused"
            );
            error
        };
        let claims = self
            .keys
            .verify(token)
            .map_err(|e| refuse(AccessError::TokenRefused(e), None))?;
        if !claims.allows(scope) {
            return Err(refuse(AccessError::ScopeMissing(scope), claims.subject()));
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !claims.allows_origin(origin) {
                return Err(refuse(
                    AccessError::OriginNotInToken(excerpt(origin).to_owned()),
                    claims.subject(),
                ));
            }
        }
        Ok(Grant {
            scope,
            campaigns: claims.campaigns(),
            subject: claims.subject().map(Arc::from),
        })
    }

    /// Without a token, ingest answers only requests for this machine (`Host` a loopback name
    /// or address, or `--allowed-host`) that no other site's page sent (`Origin`, when there is
    /// one, the same).
    fn check_this_machine(&self, req: &HttpRequest) -> Result<(), AccessError> {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let host = header(header::HOST).unwrap_or_default();
        if !self.local_host(host_name(host)) {
            return Err(AccessError::NotThisMachine(format!(
                "host `{}`",
                excerpt(host)
            )));
        }
        if let Some(origin) = header(header::ORIGIN) {
            let authority = origin
                .split_once("://")
                .map_or("", |(_, rest)| rest.trim_end_matches('/'));
            if !self.local_host(host_name(authority)) {
                return Err(AccessError::NotThisMachine(format!(
                    "a page of `{}`",
                    excerpt(origin)
                )));
            }
        }
        Ok(())
    }

    fn local_host(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || self.allowed_hosts.contains(&name)
    }

    /// The `Access-Control-Allow-Origin` for a browser page at `origin` reading the API: any
    /// origin without an allowlist, only the listed ones with one.
    pub(crate) fn cors_allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.allowed_origins.is_empty() {
            return Some(HeaderValue::from_static("*"));
        }
        let origin_text = origin.to_str().ok()?;
        self.allowed_origins
            .iter()
            .any(|o| o == origin_text)
            .then(|| origin.clone())
    }

    /// Live feeds accept the read token as `?token=` (browsers cannot set websocket headers) or
    /// as a bearer token, and check the Origin of browser connections against the allowlist.
    /// [`Access::check_read`] with the `token` of the request's own query string.
    pub(crate) fn check_read_request(&self, req: &HttpRequest) -> Result<Grant, AccessError> {
        let query =
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                .map(web::Query::into_inner)
                .unwrap_or_default();
        self.check_read(req, query.get("token").map(String::as_str))
    }

    pub(crate) fn check_read(
        &self,
        req: &HttpRequest,
        query_token: Option<&str>,
    ) -> Result<Grant, AccessError> {
        let given = query_token.or_else(|| bearer(req));
        let grant = match given {
            _ if self.read_token.is_none() && self.keys.is_empty() => Grant::all(Scope::Read),
            Some(given)
                if self
                    .read_token
                    .as_ref()
                    .is_some_and(|e| same_token(given, e)) =>
            {
                Grant::all(Scope::Read)
            }
            Some(given) if !self.keys.is_empty() && looks_like_jwt(given) => {
                self.scoped(req, given, Scope::Read)?
            }
            _ => return Err(AccessError::Unauthorized),
        };
        if !self.allowed_origins.is_empty()
            && let Some(origin) = req.headers().get(header::ORIGIN)
        {
            let origin = origin.to_str().unwrap_or_default();
            if !self.allowed_origins.iter().any(|o| o == origin) {
                return Err(AccessError::OriginNotAllowed(origin.to_owned()));
            }
        }
        Ok(grant)
    }
}
