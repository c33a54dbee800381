//! Who may ingest and who may subscribe.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use subtle::ConstantTimeEq;

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
}

/// The one answer to a refused client, whatever it asked for: 401 with `WWW-Authenticate` for a
/// missing or wrong token, 403 otherwise.
impl ResponseError for AccessError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::IngestDisabled | Self::OriginNotAllowed(_) | Self::NotThisMachine(_) => {
                StatusCode::FORBIDDEN
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if *self == Self::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
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

impl Access {
    pub(crate) fn new(
        ingest_token: Option<String>,
        loopback: bool,
        read_token: Option<String>,
        allowed_origins: Vec<String>,
        allowed_hosts: Vec<String>,
    ) -> Self {
        let ingest_token = ingest_token.filter(|t| !t.is_empty());
        let ingest_open = ingest_token.is_some() || loopback;
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
        }
    }

    pub(crate) fn check_ingest(&self, req: &HttpRequest) -> Result<(), AccessError> {
        if !self.ingest_open {
            return Err(AccessError::IngestDisabled);
        }
        match &self.ingest_token {
            None => self.check_this_machine(req),
            Some(expected) => match bearer(req) {
                Some(given) if same_token(given, expected) => Ok(()),
                _ => Err(AccessError::Unauthorized),
            },
        }
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
    pub(crate) fn check_read_request(&self, req: &HttpRequest) -> Result<(), AccessError> {
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
    ) -> Result<(), AccessError> {
        if let Some(expected) = &self.read_token {
            let given = query_token.or_else(|| bearer(req));
            if !given.is_some_and(|g| same_token(g, expected)) {
                return Err(AccessError::Unauthorized);
            }
        }
        if !self.allowed_origins.is_empty()
            && let Some(origin) = req.headers().get(header::ORIGIN)
        {
            let origin = origin.to_str().unwrap_or_default();
            if !self.allowed_origins.iter().any(|o| o == origin) {
                return Err(AccessError::OriginNotAllowed(origin.to_owned()));
            }
        }
        Ok(())
    }
}
