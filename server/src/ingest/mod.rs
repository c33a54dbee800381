//! Ingest: lines of JSON → parsed, located events → the engine. Shared by `POST /v1/events`
//! and the followed file, so both accept and reject exactly the same input.

mod follow;
mod group;
mod http;

use std::sync::Arc;

pub(crate) use follow::follow;
use group::GroupCommit;
pub(crate) use http::{IngestLimits, configure};
use serde::Serialize;
use viralglobe_protocol::{InputError, InputEvent, Place};

use crate::{
    auth::Grant,
    cluster::Cluster,
    engine::{Engine, EngineError, Located, Outcome},
    geo::GeoDb,
};

/// Rejected lines listed in one answer; beyond this only the count grows.
const MAX_LISTED_REJECTIONS: usize = 1_000;

/// One rejected line, by its 1-based number in the body (or element number in a JSON array).
#[derive(Debug, Clone, Serialize)]
pub struct RejectedLine {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    pub error: String,
}

/// The answer to an ingest request.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    /// Events acknowledged: recorded, and applied or held for their share.
    pub accepted: u64,
    /// Of those, events waiting for their share (or parent share) to arrive.
    pub held: u64,
    /// Re-sent events with an id already seen: acknowledged and ignored.
    pub duplicates: u64,
    pub rejected_count: u64,
    pub rejected: Vec<RejectedLine>,
    /// When the server could not take the whole batch (a 503): the first line it did not
    /// acknowledge. Send it and the lines after it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_acknowledged_from: Option<u64>,
    /// Cluster mode with `--redis-wait N`: `false` when the batch is in the log and applied but
    /// fewer than N replicas confirmed it within a second (answered 202); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated: Option<bool>,
    /// Cluster mode: events in the log that this node had not applied when it answered (202):
    /// every node will apply them, so they are acknowledged, but their outcomes (accepted,
    /// duplicate, rejected) are not in this report.
    #[serde(skip_serializing_if = "is_zero")]
    pub logged: u64,
    /// Why the answer is a 202: what fell short of what was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl IngestReport {
    /// The batch is acknowledged with less than was asked: in the log but short of replicas, or
    /// not yet applied here (HTTP 202).
    pub(crate) fn short_of_asked(&self) -> bool {
        self.replicated == Some(false) || self.logged > 0
    }
}

impl IngestReport {
    fn reject(&mut self, line: u64, error: InputError) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(RejectedLine {
                line,
                field: error.field,
                error: error.message,
            });
        }
    }
}

/// Parsed and located events, with their line numbers, ready for the engine or the log.
pub(crate) struct Prepared {
    batch: Vec<Located>,
    numbers: Vec<u64>,
}

#[derive(Clone)]
pub struct Pipeline {
    engine: Arc<Engine>,
    /// Requests' batches, applied together when they arrive together.
    group: Arc<GroupCommit>,
    geo: Arc<GeoDb>,
    /// Cluster mode: batches go to the log, and the engine applies them from there.
    log: Option<Arc<Cluster>>,
}

impl Pipeline {
    pub fn new(engine: Arc<Engine>, geo: Arc<GeoDb>, log: Option<Arc<Cluster>>) -> Self {
        let group = GroupCommit::new(engine.clone());
        Self {
            engine,
            group,
            geo,
            log,
        }
    }

    /// Parses, locates and applies numbered lines as one batch. Blank lines are skipped. Blocks
    /// in cluster mode until the batch is in the log and applied: for threads (the follower).
    pub fn ingest<'a>(
        &self,
        lines: impl IntoIterator<Item = (u64, &'a [u8])>,
        report: &mut IngestReport,
    ) -> Result<(), EngineError> {
        let Some(prepared) = self.prepare(lines, report, &Grant::all(crate::auth::Scope::Ingest))
        else {
            return Ok(());
        };
        let applied = match &self.log {
            None => self.engine.apply(prepared.batch),
            Some(log) => log.append_blocking(prepared.batch),
        };
        settle(applied, prepared.numbers, report)
    }

    /// [`Pipeline::ingest`] for request handlers: waits for the log without blocking a worker.
    pub(crate) async fn ingest_async<'a>(
        &self,
        lines: impl IntoIterator<Item = (u64, &'a [u8])>,
        report: &mut IngestReport,
        grant: &Grant,
    ) -> Result<(), EngineError> {
        let prepared = self.prepare(lines, report, grant);
        self.apply_prepared(prepared, report).await
    }

    /// Applies what [`Pipeline::prepare`] made of a request's lines, and counts it in `report`.
    pub(crate) async fn apply_prepared(
        &self,
        prepared: Option<Prepared>,
        report: &mut IngestReport,
    ) -> Result<(), EngineError> {
        let Some(prepared) = prepared else {
            return Ok(());
        };
        let applied = match &self.log {
            None => self.group.apply(prepared.batch).await,
            Some(log) => log.append(prepared.batch).await,
        };
        settle(applied, prepared.numbers, report)
    }

    /// Applies events that are parsed and located already (the tracked links' shares, clicks
    /// and conversions) the way a request's batch is: group commit, or the cluster's log (short
    /// of `--redis-wait`'s replicas is no failure for them: nobody waits on the answer).
    pub(crate) async fn apply_located(
        &self,
        batch: Vec<Located>,
    ) -> Result<Vec<Outcome>, EngineError> {
        match &self.log {
            None => self.group.apply(batch).await,
            Some(log) => log.append(batch).await,
        }
    }

    /// Parses and locates numbered lines: the events to apply, each with its line's number; a
    /// line that is not an event, or is for a campaign `grant` does not reach, is counted in
    /// `report`.
    pub(crate) fn prepare<'a>(
        &self,
        lines: impl IntoIterator<Item = (u64, &'a [u8])>,
        report: &mut IngestReport,
        grant: &Grant,
    ) -> Option<Prepared> {
        let lines = lines.into_iter();
        // Sized once: growing a vector of events moves every event each time it doubles.
        let mut batch = Vec::with_capacity(lines.size_hint().0);
        let mut numbers = Vec::with_capacity(lines.size_hint().0);
        let mut refused = 0u64;
        for (number, line) in lines {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match InputEvent::parse(line) {
                Ok(event) if let Err(refusal) = self.admit(&event, grant) => {
                    refused += 1;
                    report.reject(number, refusal);
                }
                Ok(mut event) => {
                    let place = self.locate(&event);
                    event.forget_address();
                    batch.push(Located { event, place });
                    numbers.push(number);
                }
                Err(error) => {
                    metrics::counter!("viralglobe_events_rejected_total", "reason" => "invalid")
                        .increment(1);
                    report.reject(number, error);
                }
            }
        }
        if refused > 0 {
            metrics::counter!("viralglobe_events_rejected_total", "reason" => "campaign")
                .increment(refused);
            grant.log_refusal(refused);
        }
        (!batch.is_empty()).then_some(Prepared { batch, numbers })
    }

    /// Whether `grant` reaches the event's campaign: a share's own, or for a click or a
    /// conversion, its share's, which must be recorded already (a token for one campaign cannot
    /// add clicks to another's shares, and cannot know which campaign a share not yet recorded
    /// will be in).
    fn admit(&self, event: &InputEvent, grant: &Grant) -> Result<(), InputError> {
        if grant.reaches_all() {
            return Ok(());
        }
        let (field, campaign) = match (event, event.share()) {
            (InputEvent::Share(share), _) => ("campaign", Some(Arc::from(share.campaign.as_str()))),
            (_, Some(share)) => ("share", self.engine.share_campaign(share)),
            (_, None) => return Ok(()),
        };
        let message = match campaign {
            Some(campaign) if grant.allows(&campaign) => return Ok(()),
            Some(campaign) => grant.refusal(&campaign).to_string(),
            None => format!(
                "share `{}` is not recorded: with a token for some campaigns, post the share \
                 before its clicks and conversions",
                viralglobe_protocol::input::bounded(event.share().unwrap_or_default())
            ),
        };
        Err(InputError {
            field: Some(field),
            message,
        })
    }

    /// An explicit position wins over the address; no location is counted by reason.
    fn locate(&self, event: &InputEvent) -> Option<Arc<Place>> {
        let origin = event.origin();
        if let (Some(lat), Some(lon)) = (origin.lat, origin.lon) {
            return Some(Arc::new(Place {
                lat,
                lon,
                city: origin.city.clone(),
                country: origin.country.clone(),
            }));
        }
        self.locate_address(origin.ip)
    }

    /// The place of an address; a miss is counted by its reason.
    pub(crate) fn locate_address(&self, ip: Option<std::net::IpAddr>) -> Option<Arc<Place>> {
        let reason = match ip {
            Some(ip) => match self.geo.locate(ip) {
                Ok(place) => return Some(place),
                Err(miss) => miss.as_str(),
            },
            None => "no_address",
        };
        metrics::counter!("viralglobe_geo_misses_total", "reason" => reason).increment(1);
        None
    }
}

/// Counts each event's outcome into the report; what was not acknowledged is named by line.
fn settle(
    applied: Result<Vec<Outcome>, EngineError>,
    numbers: Vec<u64>,
    report: &mut IngestReport,
) -> Result<(), EngineError> {
    let (outcomes, unavailable) = match applied {
        Ok(outcomes) => (outcomes, None),
        // In the log: acknowledged, and said how far.
        Err(e @ EngineError::Unreplicated(_)) => {
            report.replicated = Some(false);
            report.logged += numbers.len() as u64;
            report.warning = Some(e.to_string());
            return Ok(());
        }
        Err(EngineError::Logged(reason)) => {
            report.logged += numbers.len() as u64;
            report.warning = Some(reason);
            return Ok(());
        }
        // What was applied is acknowledged; the rest is refused and can be sent again.
        Err(EngineError::Unavailable { reason, applied }) => {
            report.not_acknowledged_from = numbers.get(applied.len()).copied();
            let rest = EngineError::Unavailable {
                reason,
                applied: Vec::new(),
            };
            (applied, Some(rest))
        }
        Err(e) => {
            report.not_acknowledged_from = numbers.first().copied();
            return Err(e);
        }
    };
    for (number, outcome) in numbers.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Accepted => report.accepted += 1,
            Outcome::Held => {
                report.accepted += 1;
                report.held += 1;
            }
            Outcome::Duplicate => report.duplicates += 1,
            Outcome::Rejected(error) => report.reject(number, error),
        }
    }
    unavailable.map_or(Ok(()), Err)
}
