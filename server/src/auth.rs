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
pub enum AccessError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error(
        "ingest is disabled: the server listens on a non-loopback address without --ingest-token"
    )]
    IngestDisabled,
    #[error("origin `{0}` is not allowed to open the live feed")]
    OriginNotAllowed(String),
}

/// The one answer to a refused client, whatever it asked for: 401 with `WWW-Authenticate` for a
/// missing or wrong token, 403 otherwise.
impl ResponseError for AccessError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::IngestDisabled | Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
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
pub struct Access {
    ingest_token: Option<String>,
    ingest_open: bool,
    read_token: Option<String>,
    allowed_origins: Vec<String>,
}

fn same_token(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl Access {
    pub fn new(
        ingest_token: Option<String>,
        loopback: bool,
        read_token: Option<String>,
        allowed_origins: Vec<String>,
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
        Self {
            ingest_token,
            ingest_open,
            read_token: read_token.filter(|t| !t.is_empty()),
            allowed_origins,
        }
    }

    pub fn check_ingest(&self, req: &HttpRequest) -> Result<(), AccessError> {
        if !self.ingest_open {
            return Err(AccessError::IngestDisabled);
        }
        match &self.ingest_token {
            None => Ok(()),
            Some(expected) => match bearer(req) {
                Some(given) if same_token(given, expected) => Ok(()),
                _ => Err(AccessError::Unauthorized),
            },
        }
    }

    /// The `Access-Control-Allow-Origin` for a browser page at `origin` reading the API: any
    /// origin without an allowlist, only the listed ones with one.
    pub fn cors_allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
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
    pub fn check_read_request(&self, req: &HttpRequest) -> Result<(), AccessError> {
        let query =
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                .map(web::Query::into_inner)
                .unwrap_or_default();
        self.check_read(req, query.get("token").map(String::as_str))
    }

    pub fn check_read(
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
