//! Replays of recorded campaigns: the websocket that plays one at any speed, its timeline, and
//! exports. Everything reads the campaign recordings through a [`RecordingIndex`] — the one the
//! engine keeps as it writes, or for a recording it does not write (the demo's), one built on
//! first open and extended as the file grows — so a seek reads at most one checkpoint's worth of
//! lines and a replay of a live campaign runs on into its new events.

pub(crate) mod cursor;
pub(crate) mod export;
pub(crate) mod session;
pub(crate) mod timeline;

use std::{path::PathBuf, sync::Arc};

use actix_web::{HttpResponse, ResponseError, http::StatusCode, web};
use dashmap::DashMap;

use crate::{
    error::json_error,
    recording::{
        self,
        index::{KeptIndexes, RecordingIndex, SharedIndex},
    },
    routes::resource,
};

/// A campaign's replay, timeline and exports.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/v1/campaigns/{id}/replay").get(session::replay))
        .service(
            resource("/v1/campaigns/{id}/timeline")
                .get(timeline::timeline)
                .head(timeline::timeline),
        )
        .service(resource("/v1/campaigns/{id}/export").get(export::export_route));
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no recording of campaign `{0}`")]
    NotFound(String),
    #[error("cannot read the recording of `{campaign}`: {source}")]
    Read {
        campaign: String,
        source: std::io::Error,
    },
    #[error("query parameter `{field}`: {message}")]
    BadQuery {
        field: &'static str,
        message: String,
    },
}

impl ResponseError for ReplayError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Read { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadQuery { .. } => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), self)
    }
}

/// Finds campaign recordings and their indexes.
pub struct Library {
    data_dir: PathBuf,
    /// Recordings kept outside `data_dir/campaigns` (the demo's), with their epochs.
    registered: DashMap<String, (PathBuf, String)>,
    /// The indexes of the recordings the engine writes.
    kept: KeptIndexes,
    /// Those of the others, read on first open.
    read: DashMap<String, SharedIndex>,
}

impl Library {
    /// The recordings under `data_dir`; `kept` are the indexes the engine keeps of them.
    pub fn new(data_dir: PathBuf, kept: KeptIndexes) -> Arc<Self> {
        Arc::new(Self {
            data_dir,
            registered: DashMap::new(),
            kept,
            read: DashMap::new(),
        })
    }

    /// Serves `campaign` from the recording at `path`, whose arc line is of epoch `epoch`.
    pub fn register(&self, campaign: &str, path: PathBuf, epoch: String) {
        self.read.remove(campaign);
        self.registered.insert(campaign.to_owned(), (path, epoch));
    }

    /// The epoch of the recording that serves `campaign`.
    pub fn epoch(&self, campaign: &str) -> Option<String> {
        match self.registered.get(campaign) {
            Some(entry) => Some(entry.1.clone()),
            None => recording::read_epoch(&self.data_dir, campaign),
        }
    }

    /// The campaign's index, up to date with the file. Blocking: a recording the engine does not
    /// write is read on first open.
    pub fn open(&self, campaign: &str) -> Result<SharedIndex, ReplayError> {
        let read_error = |source| ReplayError::Read {
            campaign: campaign.to_owned(),
            source,
        };
        let registered = self.registered.get(campaign).map(|entry| entry.0.clone());
        let path = match registered {
            Some(path) => path,
            None if viralglobe_protocol::input::check_campaign_id(campaign).is_ok() => {
                recording::campaign_path(&self.data_dir, campaign)
            }
            None => return Err(ReplayError::NotFound(campaign.to_owned())),
        };
        // An index the engine keeps serves the file it indexes (and one read before it was
        // kept, the demo's while it loads, is not needed any more).
        if let Some(index) = self.kept.get(campaign).filter(|index| index.path == path) {
            self.read.remove(campaign);
            return Ok(index.clone());
        }
        if let Some(index) = self.read.get(campaign).map(|i| i.clone()) {
            index.extend().map_err(read_error)?;
            return Ok(index);
        }
        if !path.is_file() {
            return Err(ReplayError::NotFound(campaign.to_owned()));
        }
        let started = std::time::Instant::now();
        let index = RecordingIndex::read(campaign, &path).map_err(read_error)?;
        tracing::info!(campaign, path = %path.display(), records = index.records(),
            elapsed_ms = started.elapsed().as_millis() as u64, "recording indexed for replay");
        Ok(self
            .read
            .entry(campaign.to_owned())
            .or_insert(Arc::new(index))
            .clone())
    }
}

/// Parses a time query parameter: epoch milliseconds or RFC 3339.
pub(crate) fn parse_time(field: &'static str, value: &str) -> Result<i64, ReplayError> {
    value
        .parse::<i64>()
        .ok()
        .or_else(|| viralglobe_protocol::Timestamp::parse_rfc3339(value).map(|t| t.0))
        .ok_or_else(|| ReplayError::BadQuery {
            field,
            message: format!("`{value}` is neither epoch milliseconds nor an RFC 3339 date-time"),
        })
}
