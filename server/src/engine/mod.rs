//! The engine: applies batches of located events to the share tree, statistics and recordings,
//! and hands the resulting arcs to the live hub.
//!
//! Writers take one lock for a whole batch, so recording order, sequence numbers and share-tree
//! changes agree; parsing and geolocation happen before it, outside. Readers of the share tree
//! never take it.

#[cfg(test)]
mod agreement;
mod attribution;
mod error;
mod indexer;
mod ledger;
mod links;
mod seen;
mod stats;
mod summaries;
mod tree;

use std::{
    ops::Range,
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

pub(crate) use error::EngineError;
pub use ledger::HeldLimits;
pub(crate) use ledger::{Expired, Outcome};
pub(crate) use links::{Link, Links};
use tree::ShareTree;
use viralglobe_protocol::{
    ArcEvent, ArcKind, CampaignStats, CampaignSummary, InputEvent, Place, RecordedEvent,
    attribution::Cascades,
};

use self::{
    indexer::Indexer,
    ledger::{Ledger, Sink},
    summaries::Summaries,
};
use crate::{
    hub::Hub,
    recording::{
        self, Recorder, RecordingError, SyncFiles,
        index::{IndexedLine, KeptIndexes, RecordingIndex},
    },
};

/// An event with the place it happened, if known.
pub struct Located {
    pub event: InputEvent,
    pub place: Option<Arc<Place>>,
}

struct State {
    ledger: Ledger,
    recorder: Recorder,
    indexer: Indexer,
}

impl State {
    /// The ledger, and the sink its lines go to (with the arcs they draw, when `arcs` is given).
    fn parts<'a>(&'a mut self, arcs: Option<&'a mut Vec<ArcEvent>>) -> (&'a mut Ledger, Sink<'a>) {
        let Self {
            ledger,
            recorder,
            indexer,
        } = self;
        let sink = Sink {
            recorder,
            indexer,
            arcs,
        };
        (ledger, sink)
    }

    /// Writes out what is buffered; then what was written is indexed.
    fn commit(&mut self) -> Result<(), RecordingError> {
        let committed = self.recorder.commit();
        match committed {
            Ok(()) => self.indexer.committed(),
            Err(_) => self.indexer.failed(),
        }
        committed
    }
}

pub struct Engine {
    state: Mutex<State>,
    /// The share tree, the links and the campaigns' counters, read without the lock.
    shares: Arc<ShareTree>,
    links: Arc<Links>,
    summaries: Summaries,
    /// Events waiting for their share or parent share, as of the last batch.
    held: AtomicUsize,
    /// The indexes of the recordings it writes, kept as it writes them.
    kept_indexes: KeptIndexes,
    hub: Arc<Hub>,
    sync_files: SyncFiles,
    stopped: OnceLock<String>,
    /// The local clock of held events' waits (cluster mode uses the log's instead).
    opened: Instant,
}

/// The events' types, as the metrics label them; [`type_of`] gives an event's place here.
const TYPES: [&str; 3] = ["share", "click", "conversion"];

fn type_of(event: &InputEvent) -> usize {
    match event {
        InputEvent::Share(_) => 0,
        InputEvent::Click(_) => 1,
        InputEvent::Conversion(_) => 2,
    }
}

/// Counts a batch's outcomes by type: each counter is looked up once a batch, not once an event
/// (a lookup hashes the name and labels: a few percent of ingest, done per event).
fn count_outcomes(outcomes: &[Outcome], types: Vec<usize>) {
    let (mut ingested, mut duplicate, mut rejected) = ([0u64; 3], [0u64; 3], 0);
    for (outcome, at) in outcomes.iter().zip(types) {
        match outcome {
            Outcome::Accepted | Outcome::Held => ingested[at] += 1,
            Outcome::Duplicate => duplicate[at] += 1,
            Outcome::Rejected(_) => rejected += 1,
        }
    }
    for (label, (ingested, duplicate)) in TYPES.into_iter().zip(ingested.into_iter().zip(duplicate))
    {
        if ingested > 0 {
            metrics::counter!("viralglobe_events_ingested_total", "type" => label)
                .increment(ingested);
        }
        if duplicate > 0 {
            metrics::counter!("viralglobe_events_duplicate_total", "type" => label)
                .increment(duplicate);
        }
    }
    if rejected > 0 {
        metrics::counter!("viralglobe_events_rejected_total", "reason" => "unresolvable")
            .increment(rejected);
    }
}

/// Counts the arcs drawn, by kind, once a group.
fn count_arcs(arcs: &[ArcEvent]) {
    for kind in ArcKind::ALL {
        let drawn = arcs.iter().filter(|arc| arc.kind == kind).count() as u64;
        if drawn > 0 {
            metrics::counter!("viralglobe_arcs_total", "kind" => kind.as_str()).increment(drawn);
        }
    }
}

/// Follows `records` as a restart follows a recording, in memory; returns each campaign's last
/// `seq`. For the fuzz target of the recording reader.
pub(crate) fn follow_in_memory(records: &[RecordedEvent]) -> Vec<(String, u64)> {
    let limits = HeldLimits {
        max: usize::MAX,
        max_per_campaign: usize::MAX,
    };
    let mut ledger = Ledger::new(Arc::new(ShareTree::default()), limits);
    for record in records {
        let place = record.at.clone().map(Arc::new);
        if record.campaign.is_some() {
            ledger.follow(record, place);
        } else {
            ledger.follow_journal(record.clone(), place);
        }
    }
    ledger
        .campaigns
        .iter()
        .map(|(id, c)| (id.to_string(), c.seq))
        .collect()
}

impl Engine {
    /// Opens the recordings under `data_dir` and rebuilds the state they describe by following
    /// every recorded line, then tells the hub where each campaign's arc line stands.
    pub fn open(
        data_dir: &Path,
        sync_each_commit: bool,
        held: HeldLimits,
        max_open_recordings: usize,
        hub: Arc<Hub>,
    ) -> Result<Self, EngineError> {
        let started = Instant::now();
        let shares = Arc::new(ShareTree::default());
        let mut ledger = Ledger::new(shares.clone(), held);
        let recorder = Recorder::new(data_dir, sync_each_commit, max_open_recordings)?;
        let mut indexer = Indexer::new(data_dir.to_owned(), shares.clone());
        let mut records = 0;
        let campaigns = recording::recorded_campaigns(data_dir)?;
        let mut noted = Instant::now();
        for (done, campaign) in campaigns.iter().enumerate() {
            let path = recording::campaign_path(data_dir, campaign);
            let id: Arc<str> = campaign.as_str().into();
            let report = recording::read_records(&path, |r, bytes| {
                let place = r.at.clone().map(Arc::new);
                let draws = ledger.follow(&r, place).is_some();
                indexer.read(&id, bytes, &r, draws);
            })?;
            indexer.committed();
            records += report.records;
            // A large data directory takes a while: say how far it got, every few seconds.
            if noted.elapsed() > Duration::from_secs(5) {
                noted = Instant::now();
                tracing::info!(
                    records,
                    campaigns = done + 1,
                    of = campaigns.len(),
                    "rebuilding state from recordings"
                );
            }
        }
        recorder.read_journal(|r| {
            let place = r.at.clone().map(Arc::new);
            ledger.follow_journal(r, place);
        })?;
        // What a restart writes (resolutions a crash left undone, the journal without what has
        // resolved) needs disk space. Without it the server still starts and serves what it has;
        // ingest waits, answering 503, until a restart with room.
        let stopped = OnceLock::new();
        let mut state = State {
            ledger,
            recorder,
            indexer,
        };
        let rebuilt = {
            let (ledger, mut sink) = state.parts(None);
            ledger.finish_rebuild(&mut sink)
        };
        let written = rebuilt.and_then(|rebuilt| {
            state.commit()?;
            state
                .recorder
                .rewrite_journal(&rebuilt.still_held, &rebuilt.expired)
        });
        let State {
            ledger, recorder, ..
        } = &state;
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write what the restart needs: serving reads, ingest stopped");
            metrics::counter!("viralglobe_recording_errors_total").increment(1);
            let _ = stopped.set(format!("{e} (while restarting)"));
        }
        for campaign in &campaigns {
            let epoch = recorder.epoch(campaign).unwrap_or_else(|e| {
                // A recording from before epochs, and no room to write one: this run's own.
                tracing::warn!(campaign, error = %e, "cannot write the campaign's epoch");
                recording::new_epoch()
            });
            let seq = ledger.campaigns.get(campaign.as_str()).map_or(0, |c| c.seq);
            hub.open_campaign(campaign, epoch, seq);
        }
        metrics::gauge!("viralglobe_held_events").set(ledger.held() as f64);
        let held_now = AtomicUsize::new(ledger.held());
        tracing::info!(
            records,
            campaigns = ledger.campaigns.len(),
            shares = shares.len(),
            held = ledger.held(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            data_dir = %data_dir.display(),
            "state rebuilt from recordings"
        );
        let sync_files = recorder.sync_files();
        let kept_indexes = state.indexer.kept();
        let links = ledger.links.clone();
        let summaries = Summaries::default();
        summaries.publish(state.ledger.changed_summaries());
        Ok(Self {
            state: Mutex::new(state),
            shares,
            links,
            summaries,
            held: held_now,
            kept_indexes,
            hub,
            sync_files,
            stopped,
            opened: Instant::now(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied event behind that matters
        // more than stopping ingest would, so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds since the engine opened: the clock of waits outside cluster mode.
    fn local_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Cluster mode, before anything is applied: every new campaign's epoch is `epoch` (the
    /// deployment's, so that every node numbers the same arc line), and lines that start a wait
    /// carry the log's time (so that a node rebuilt from them gives up what every node does).
    pub(crate) fn enter_cluster_mode(&self, epoch: String) {
        let mut state = self.lock();
        state.recorder.set_new_campaign_epoch(epoch);
        state.ledger.stamp_waits = true;
    }

    /// Applies a batch in order and writes it out; returns one outcome per event. The batch is
    /// durable (per the fsync policy) when this returns `Ok`.
    pub(crate) fn apply(&self, batch: Vec<Located>) -> Result<Vec<Outcome>, EngineError> {
        self.apply_at(batch, self.local_ms())
    }

    /// [`Engine::apply`] with waits that begin stamped `now_ms` (cluster mode: the log entry's
    /// time, so that every node gives up the same events at the same entry).
    pub(crate) fn apply_at(
        &self,
        batch: Vec<Located>,
        now_ms: u64,
    ) -> Result<Vec<Outcome>, EngineError> {
        let mut results = self.apply_group_at(vec![batch], now_ms);
        results.pop().expect("one result a batch")
    }

    /// Applies batches from requests that arrived together, in order, under one lock, and writes
    /// them out with one commit (group commit); returns what [`Engine::apply`] would have for each.
    pub(crate) fn apply_group(
        &self,
        batches: Vec<Vec<Located>>,
    ) -> Vec<Result<Vec<Outcome>, EngineError>> {
        self.apply_group_at(batches, self.local_ms())
    }

    fn apply_group_at(
        &self,
        batches: Vec<Vec<Located>>,
        now_ms: u64,
    ) -> Vec<Result<Vec<Outcome>, EngineError>> {
        if let Some(reason) = self.stopped.get() {
            return batches
                .iter()
                .map(|_| Err(EngineError::Stopped(reason.clone())))
                .collect();
        }
        let started = Instant::now();
        let mut applied = Vec::with_capacity(batches.len());
        let mut arcs = Vec::new();
        let mut state = self.lock();
        let (ledger, mut sink) = state.parts(Some(&mut arcs));
        ledger.now_ms = ledger.now_ms.max(now_ms);
        let mut written = Ok(());
        for batch in batches {
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut types = Vec::with_capacity(batch.len());
            let mut unavailable = None;
            for located in batch.into_iter().take_while(|_| written.is_ok()) {
                types.push(type_of(&located.event));
                match ledger.apply(located.event, located.place, &mut sink) {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) if e.nothing_written() => {
                        unavailable = Some(e);
                        break;
                    }
                    Err(e) => {
                        written = Err(e);
                        break;
                    }
                }
            }
            applied.push((outcomes, types, unavailable));
        }
        if let Err(e) = written.and_then(|()| state.commit()) {
            self.summaries.publish(state.ledger.changed_summaries());
            let reason = e.to_string();
            let _ = self.stopped.set(reason.clone());
            metrics::counter!("viralglobe_recording_errors_total").increment(1);
            tracing::error!(error = %e, "recording failed: ingest stops until a restart");
            // Nothing of the group is acknowledged.
            let mut first = Some(EngineError::from(e));
            return applied
                .iter()
                .map(|_| Err(first.take().unwrap_or(EngineError::Stopped(reason.clone()))))
                .collect();
        }
        let held = state.ledger.held();
        // A campaign's first line created its recording and epoch: its line begins, announced
        // like any new line with a `reset` before its first arc (a subscriber that came first
        // learns the epoch it resumes in). Published under the lock: arcs go out in seq order.
        for (campaign, epoch) in state.recorder.take_new_epochs() {
            self.hub.reset(&campaign, epoch);
        }
        self.summaries.publish(state.ledger.changed_summaries());
        count_arcs(&arcs);
        self.hub.publish(arcs);
        drop(state);

        self.note_held(held);
        metrics::histogram!("viralglobe_ingest_batch_seconds").record(started.elapsed());
        applied
            .into_iter()
            .map(|(outcomes, types, unavailable)| {
                count_outcomes(&outcomes, types);
                match unavailable {
                    None => Ok(outcomes),
                    Some(e) => {
                        metrics::counter!("viralglobe_recording_errors_total").increment(1);
                        tracing::warn!(error = %e, applied = outcomes.len(), "a recording cannot be opened: the rest of the batch is refused, ingest goes on");
                        Err(EngineError::Unavailable {
                            reason: e.to_string(),
                            applied: outcomes,
                        })
                    }
                }
            })
            .collect()
    }

    /// Gives up the events that have waited longer than `max_age` for their share or parent
    /// share, writing the lines that say so.
    pub(crate) fn expire_held(&self, max_age: Duration) -> Result<Expired, EngineError> {
        self.expire_held_at(self.local_ms(), max_age)
    }

    /// [`Engine::expire_held`] by a clock of the caller's (cluster mode: the log's).
    pub(crate) fn expire_held_at(
        &self,
        now_ms: u64,
        max_age: Duration,
    ) -> Result<Expired, EngineError> {
        if let Some(reason) = self.stopped.get() {
            return Err(EngineError::Stopped(reason.clone()));
        }
        let Some(cutoff) = now_ms.checked_sub(max_age.as_millis() as u64) else {
            return Ok(Expired::default());
        };
        let mut state = self.lock();
        let (ledger, mut sink) = state.parts(None);
        let expired = ledger.expire(cutoff, &mut sink);
        let held = ledger.held();
        self.summaries.publish(ledger.changed_summaries());
        // What was given up before a failure is written out too.
        let written = state.commit().and(expired);
        drop(state);
        self.note_held(held);
        match written {
            Ok(expired) => {
                metrics::counter!("viralglobe_held_expired_total", "type" => "share")
                    .increment(expired.shares);
                metrics::counter!("viralglobe_held_expired_total", "type" => "click_or_conversion")
                    .increment(expired.actions);
                if expired != Expired::default() {
                    tracing::warn!(
                        shares = expired.shares,
                        clicks_and_conversions = expired.actions,
                        max_age_s = max_age.as_secs(),
                        "gave up events whose share or parent share did not arrive in time"
                    );
                }
                Ok(expired)
            }
            Err(e) if e.nothing_written() => {
                metrics::counter!("viralglobe_recording_errors_total").increment(1);
                tracing::warn!(error = %e, "a recording cannot be opened: expiry waits for the next round");
                Err(e.into())
            }
            Err(e) => {
                let _ = self.stopped.set(e.to_string());
                metrics::counter!("viralglobe_recording_errors_total").increment(1);
                tracing::error!(error = %e, "recording failed: ingest stops until a restart");
                Err(e.into())
            }
        }
    }

    /// Writes out what is buffered and lists the data directory's state files with their lengths
    /// now. They only grow while the server runs, so their first bytes stay what they are: the
    /// state as of the last batch applied, to copy at leisure (cluster mode's snapshots).
    pub(crate) fn state_files(&self, data_dir: &Path) -> Result<Vec<(String, u64)>, EngineError> {
        let mut state = self.lock();
        if let Err(e) = state.commit() {
            let _ = self.stopped.set(e.to_string());
            metrics::counter!("viralglobe_recording_errors_total").increment(1);
            return Err(e.into());
        }
        Ok(recording::state_files(data_dir)?)
    }

    /// Writes everything out and to disk (at shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.lock().commit() {
            tracing::error!(error = %e, "final flush of the recordings failed");
        }
        recording::sync_all(&self.sync_files);
    }

    /// Loads `campaign`'s recording that lives outside the data directory (the embedded demo's,
    /// unpacked at `path`), in chunks so that readers are never kept waiting long. Nothing is
    /// written. Once it is loaded, its index is kept with those of the recordings written here.
    pub(crate) fn load(
        &self,
        campaign: &str,
        path: Option<&Path>,
        records: impl Iterator<Item = (RecordedEvent, Range<u64>)>,
    ) {
        let shares = self.lock().indexer.shares();
        let index = path.map(|path| RecordingIndex::followed(campaign, path, shares));
        let mut lines = Vec::new();
        let mut records = records.peekable();
        while records.peek().is_some() {
            let mut state = self.lock();
            for (record, bytes) in records.by_ref().take(10_000) {
                let place = record.at.clone().map(Arc::new);
                let draws = state.ledger.follow(&record, place).is_some();
                lines.push(IndexedLine::new(bytes.start, bytes.end, &record, draws));
            }
            self.summaries.publish(state.ledger.changed_summaries());
            drop(state);
            if let Some(index) = &index {
                index.add(&lines);
            }
            lines.clear();
        }
        if let Some(index) = index {
            self.kept_indexes.insert(campaign.into(), Arc::new(index));
        }
    }

    pub(crate) fn sync_files(&self) -> SyncFiles {
        self.sync_files.clone()
    }

    /// The indexes of the recordings it writes, for replays: kept up to date as it writes.
    pub(crate) fn kept_indexes(&self) -> KeptIndexes {
        self.kept_indexes.clone()
    }

    /// The counters of the campaigns `wanted` names, sorted by id, as of the last batch applied:
    /// read without the engine's lock.
    pub(crate) fn summaries(&self, wanted: impl Fn(&str) -> bool) -> Vec<CampaignSummary> {
        self.summaries.of(wanted)
    }

    pub fn stats(&self, campaign: &str) -> Option<CampaignStats> {
        let state = self.lock();
        let held = state.ledger.held() as u64;
        let c = state.ledger.campaigns.get(campaign)?;
        let mut stats = c.stats.to_wire(campaign, held);
        stats.virality = attribution::virality(&stats.by_generation);
        stats.delays = c.attribution.delays();
        stats.places = c.attribution.places();
        Some(stats)
    }

    /// The campaign's `limit` top cascades.
    pub(crate) fn cascades(&self, campaign: &str, limit: usize) -> Option<Cascades> {
        let state = self.lock();
        let c = state.ledger.campaigns.get(campaign)?;
        Some(Cascades {
            campaign: campaign.to_owned(),
            cascades: c.attribution.cascades(limit),
        })
    }

    /// Every tracked link of the recordings, as they are followed.
    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    /// A resolved share's generation, channel and place, if it is resolved.
    pub(crate) fn share(&self, id: &str) -> Option<(u32, Option<Arc<Place>>)> {
        self.shares
            .get(id)
            .map(|node| (node.generation, node.place.clone()))
    }

    /// The campaign of a recorded share.
    pub(crate) fn share_campaign(&self, id: &str) -> Option<Arc<str>> {
        self.shares.get(id).map(|node| node.campaign.arc())
    }

    /// Why ingest stopped, if it did.
    pub(crate) fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// Events waiting for their share or parent share, as of the last batch: read without the
    /// lock (`/healthz` answers while a batch goes in).
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn note_held(&self, held: usize) {
        self.held.store(held, Ordering::Relaxed);
        metrics::gauge!("viralglobe_held_events").set(held as f64);
    }
}
