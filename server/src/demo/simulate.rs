//! Live traffic for a running server: the demo campaign's events made fresh (new ids, a campaign
//! of their own, timestamps of now) and posted as NDJSON at a chosen rate — for demos of live
//! ingest and for load tests. Progress goes to stderr, the totals to stdout as JSON.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use viralglobe_protocol::{InputEvent, Timestamp, input::Origin};

use super::player;

/// What to send, where, how fast, for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// Events per second.
    pub rate: f64,
    /// Stop after this long; `None` runs until interrupted.
    pub duration: Option<Duration>,
    /// The campaign the fresh events belong to.
    pub campaign: String,
    /// Bearer token for `POST /v1/events`.
    pub token: Option<String>,
}

/// What was sent and what the server said about it.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub sent: u64,
    pub requests: u64,
    pub accepted: u64,
    pub held: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub seconds: f64,
    /// Events per second actually achieved.
    pub rate: f64,
}

/// The ingest report of one request (the fields we count).
#[derive(Debug, Deserialize)]
struct Report {
    accepted: u64,
    held: u64,
    duplicates: u64,
    rejected_count: u64,
    #[serde(default)]
    rejected: Vec<serde_json::Value>,
}

/// One request per tick carries the events due by the end of that tick.
const TICK: Duration = Duration::from_millis(100);

pub fn run(options: &Options) -> anyhow::Result<Totals> {
    if !(options.rate.is_finite() && options.rate > 0.0) {
        bail!("--rate must be a positive number of events per second");
    }
    let url = format!("{}/v1/events", options.server.trim_end_matches('/'));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut events = FreshEvents::new(&options.campaign);
    let mut totals = Totals::default();
    let mut progress = Progress::new();
    let started = Instant::now();
    loop {
        let elapsed = started.elapsed();
        if options.duration.is_some_and(|limit| elapsed >= limit) {
            break;
        }
        let horizon = options
            .duration
            .map_or(elapsed + TICK, |limit| (elapsed + TICK).min(limit));
        let due = (options.rate * horizon.as_secs_f64()).round() as u64;
        let count = due.saturating_sub(totals.sent);
        if count > 0 {
            let mut body = String::new();
            for line in events.by_ref().take(count as usize) {
                body.push_str(&line);
                body.push('\n');
            }
            let report = post(&agent, &url, options.token.as_deref(), body)?;
            totals.sent += count;
            totals.requests += 1;
            totals.accepted += report.accepted;
            totals.held += report.held;
            totals.duplicates += report.duplicates;
            totals.rejected += report.rejected_count;
            if let Some(first) = report.rejected.first() {
                tracing::warn!(rejected = %first, "the server rejected a line");
            }
        }
        progress.show(&totals, started.elapsed());
        std::thread::sleep((started + horizon).saturating_duration_since(Instant::now()));
    }
    totals.seconds = started.elapsed().as_secs_f64();
    totals.rate = totals.sent as f64 / totals.seconds.max(f64::EPSILON);
    progress.finish(&totals);
    Ok(totals)
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: String,
) -> anyhow::Result<Report> {
    let mut request = agent
        .post(url)
        .header("content-type", "application/x-ndjson");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request
        .send(body)
        .with_context(|| format!("cannot post events to {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    match status {
        200 | 400 => serde_json::from_str(&text)
            .with_context(|| format!("{url} answered {status} with an unexpected body: {text}")),
        401 | 403 => {
            bail!("{url} refused the events ({status}): pass the ingest token with --token")
        }
        _ => bail!("{url} answered {status}: {text}"),
    }
}

/// The embedded demo campaign's events, again and again, each pass with ids of its own so the
/// server counts them as new, all in `campaign`, stamped with the time they are sent.
struct FreshEvents {
    campaign: String,
    run: String,
    pass: u64,
    records: Box<dyn Iterator<Item = viralglobe_protocol::RecordedEvent>>,
}

impl FreshEvents {
    fn new(campaign: &str) -> Self {
        Self {
            campaign: campaign.to_owned(),
            run: format!("sim{}", Timestamp::now().0),
            pass: 0,
            records: Box::new(player::records()),
        }
    }

    fn refresh(&self, event: InputEvent) -> InputEvent {
        let fresh = |id: &str| format!("{}.{}-{id}", self.run, self.pass);
        let ts = Timestamp::now();
        match event {
            InputEvent::Share(mut share) => {
                share.id = fresh(&share.id);
                share.parent = share.parent.as_deref().map(fresh);
                share.campaign.clone_from(&self.campaign);
                share.ts = ts;
                InputEvent::Share(share)
            }
            InputEvent::Click(mut click) => {
                click.id = click.id.as_deref().map(fresh);
                click.share = fresh(&click.share);
                click.ts = ts;
                InputEvent::Click(click)
            }
            InputEvent::Conversion(mut conversion) => {
                conversion.id = conversion.id.as_deref().map(fresh);
                conversion.share = fresh(&conversion.share);
                conversion.ts = ts;
                InputEvent::Conversion(conversion)
            }
        }
    }
}

impl Iterator for FreshEvents {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let record = match self.records.next() {
            Some(record) => record,
            None => {
                self.pass += 1;
                self.records = Box::new(player::records());
                self.records.next()?
            }
        };
        let mut event = self.refresh(record.event);
        // The recording keeps places, not addresses: each event says where it happened.
        if let Some(at) = record.at {
            *event.origin_mut() = Origin {
                ip: None,
                lat: Some(at.lat),
                lon: Some(at.lon),
                city: at.city,
                country: at.country,
            };
        }
        serde_json::to_string(&event).ok()
    }
}

/// A line a second on stderr; rewritten in place on a terminal.
struct Progress {
    terminal: bool,
    next: Duration,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            next: Duration::from_secs(1),
        }
    }

    fn show(&mut self, totals: &Totals, elapsed: Duration) {
        if elapsed < self.next {
            return;
        }
        self.next = elapsed + Duration::from_secs(1);
        let line = format!(
            "{:>7.1}s  sent {:>9}  {:>8.0}/s  accepted {:>9}  held {:>6}  duplicates {:>6}  \
             rejected {:>6}",
            elapsed.as_secs_f64(),
            totals.sent,
            totals.sent as f64 / elapsed.as_secs_f64(),
            totals.accepted,
            totals.held,
            totals.duplicates,
            totals.rejected,
        );
        let mut stderr = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(stderr, "\r{line}")
        } else {
            writeln!(stderr, "{line}")
        };
    }

    fn finish(&self, totals: &Totals) {
        if self.terminal {
            eprintln!();
        }
        eprintln!(
            "sent {} events in {} requests over {:.1}s ({:.0}/s): {} accepted, {} held, {} \
             duplicates, {} rejected",
            totals.sent,
            totals.requests,
            totals.seconds,
            totals.rate,
            totals.accepted,
            totals.held,
            totals.duplicates,
            totals.rejected
        );
    }
}
