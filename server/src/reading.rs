//! What every reader of a campaign's arcs (the live feed, a replay, an export) passes and asks
//! for in its query: the read token (and its Origin), the filter (`campaign`, `kind`, `channel`,
//! `generation`), and where it resumes (`since`, `epoch`). One extractor, so the three read them
//! the same way.

use std::future::{Ready, ready};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, http::StatusCode, web,
};
use serde::Deserialize;
use viralglobe_protocol::LiveFilter;

use crate::{
    auth::{Access, AccessError},
    error::json_error,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("query parameter `{field}`: {message}")]
    BadQuery {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl ReadError {
    pub(crate) fn bad(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadQuery {
            field,
            message: message.into(),
        }
    }
}

impl ResponseError for ReadError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadQuery { .. } => StatusCode::BAD_REQUEST,
            Self::Access(access) => access.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Access(access) => access.error_response(),
            _ => json_error(self.status_code(), self),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ReadQuery {
    campaign: Option<String>,
    kind: Option<String>,
    channel: Option<String>,
    generation: Option<String>,
    token: Option<String>,
    since: Option<String>,
    epoch: Option<String>,
}

/// A reader let in, with what it wants: the campaign is the route's `{id}` where it has one (a
/// replay, an export), the `campaign` parameter otherwise (the live feed).
#[derive(Debug)]
pub(crate) struct Reading {
    pub(crate) filter: LiveFilter,
    since: Option<String>,
    epoch: Option<String>,
}

impl Reading {
    /// Where the reader resumes, if it does.
    pub(crate) fn resume(&self) -> Result<Option<Resume>, ReadError> {
        let resume = Resume::parse(self.since.as_deref(), self.epoch.as_deref())?;
        if resume.is_some() && self.filter.campaign.is_none() {
            return Err(ReadError::bad(
                "campaign",
                "resuming with `since` needs the `campaign` it counts in",
            ));
        }
        Ok(resume)
    }

    /// Where an event-stream reader resumes: after its `Last-Event-ID` (`epoch:seq`, the id of
    /// the last event it got, which a browser's `EventSource` sends when it reconnects), or else
    /// after `since` of `epoch` as for a websocket.
    pub(crate) fn resume_events(&self, req: &HttpRequest) -> Result<Option<Resume>, ReadError> {
        const FIELD: &str = "Last-Event-ID";
        let Some(last) = req.headers().get("last-event-id") else {
            return self.resume();
        };
        let last = last
            .to_str()
            .map_err(|_| ReadError::bad(FIELD, "not `epoch:seq`"))?;
        let (epoch, since) = last
            .rsplit_once(':')
            .ok_or_else(|| ReadError::bad(FIELD, format!("`{last}` is not `epoch:seq`")))?;
        let resume = Resume::parse(Some(since), Some(epoch))?;
        if self.filter.campaign.is_none() {
            return Err(ReadError::bad(
                "campaign",
                "resuming after an event needs the `campaign` it counts in",
            ));
        }
        Ok(resume)
    }
}

impl FromRequest for Reading {
    type Error = ReadError;
    type Future = Ready<Result<Self, ReadError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(read(req))
    }
}

fn read(req: &HttpRequest) -> Result<Reading, ReadError> {
    let query = web::Query::<ReadQuery>::from_query(req.query_string())
        .map_err(|e| ReadError::bad("query", e.to_string()))?
        .into_inner();
    let access = req
        .app_data::<web::Data<Access>>()
        .expect("the server registers its access rules");
    let grant = access.check_read(req, query.token.as_deref())?;
    let campaign = match req.match_info().get("id") {
        Some(id) => Some(id.to_owned()),
        None => query.campaign,
    };
    // A token for some campaigns reads one of them: the one named, or its only one.
    let campaign = match campaign {
        Some(campaign) => {
            grant.check(&campaign)?;
            Some(campaign)
        }
        None => grant.default_campaign()?,
    };
    let filter = LiveFilter::from_query(
        campaign,
        query.kind.as_deref(),
        query.channel.as_deref(),
        query.generation.as_deref(),
    )
    .map_err(|e| ReadError::bad(e.field, e.message))?;
    Ok(Reading {
        filter,
        since: query.since,
        epoch: query.epoch,
    })
}

/// Where a client asks to resume: after arc `since` of epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) since: u64,
    pub(crate) epoch: String,
}

impl Resume {
    /// Parses the `since` and `epoch` query parameters; both or neither.
    fn parse(since: Option<&str>, epoch: Option<&str>) -> Result<Option<Self>, ReadError> {
        let (since, epoch) = match (since, epoch) {
            (None, None) => return Ok(None),
            (Some(since), Some(epoch)) => (since, epoch),
            (Some(_), None) => {
                return Err(ReadError::bad(
                    "epoch",
                    "`since` needs the `epoch` its seq belongs to (from `hello` or `reset`)",
                ));
            }
            (None, Some(_)) => {
                return Err(ReadError::bad(
                    "since",
                    "`epoch` needs `since`, the last seq received",
                ));
            }
        };
        let since = since.parse::<u64>().map_err(|_| {
            ReadError::bad(
                "since",
                format!("`{since}` is not a seq: expected a whole number, 0 or more"),
            )
        })?;
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if epoch.is_empty() || epoch.len() > 64 || !epoch.chars().all(valid) {
            return Err(ReadError::bad(
                "epoch",
                format!("`{epoch}` is not an epoch: 1 to 64 letters, digits, `-`, `_` or `.`"),
            ));
        }
        Ok(Some(Self {
            since,
            epoch: epoch.to_owned(),
        }))
    }
}
