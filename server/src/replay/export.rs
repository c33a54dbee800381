//! Exports of a campaign's arcs: NDJSON (the live feed's arc objects), CSV (one row per arc, for
//! spreadsheets) and GeoJSON (RFC 7946: one feature per arc, `[lon, lat]`, for kepler.gl or any
//! GIS). Streamed a chunk at a time, so a campaign of any size exports in constant memory.
//! Visitors' IP addresses stay in the recordings: an export carries places, never addresses.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::error::TrySendError;
use viralglobe_protocol::{ArcEvent, LiveFilter, Place};

use super::{cursor::Cursor, cursor::Progress};
use crate::{reading::Reading, recording::index::RecordingIndex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Ndjson,
    Csv,
    Geojson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Geojson => "application/geo+json",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Geojson => "geojson",
        }
    }
}

const CSV_HEADER: &str = "seq,kind,goal,campaign,share,root,generation,channel,sharer_kind,\
value_cents,ts,from_lat,from_lon,from_city,from_country,to_lat,to_lon,to_city,to_country\n";
/// Arcs per chunk written or sent.
const CHUNK: usize = 2_000;

/// Writes every arc of the campaign (that `filter` wants) to `sink`, a chunk at a time, with the
/// `seq` the export has reached; stops early when `sink` returns false (the client went away).
/// Blocking.
pub(crate) fn export(
    index: &RecordingIndex,
    format: Format,
    filter: &LiveFilter,
    mut sink: impl FnMut(String, u64) -> bool,
) -> io::Result<()> {
    let mut cursor = Cursor::seek(index, i64::MIN)?;
    let mut text = match format {
        Format::Ndjson => String::new(),
        Format::Csv => CSV_HEADER.to_owned(),
        Format::Geojson => r#"{"type":"FeatureCollection","features":["#.to_owned(),
    };
    let (mut arcs, mut first, mut reached) = (Vec::with_capacity(CHUNK), true, 0);
    loop {
        arcs.clear();
        let progress = cursor.advance(index, i64::MAX, u64::MAX, filter, CHUNK, &mut arcs)?;
        for arc in &arcs {
            match format {
                Format::Ndjson => ndjson_line(&mut text, arc),
                Format::Csv => csv_row(&mut text, arc),
                Format::Geojson => {
                    if !std::mem::take(&mut first) {
                        text.push(',');
                    }
                    text.push_str(&geojson_feature(arc).to_string());
                }
            }
        }
        reached = arcs.last().map_or(reached, |a| a.seq);
        if progress == Progress::End {
            break;
        }
        if !sink(std::mem::take(&mut text), reached) {
            return Ok(());
        }
    }
    if format == Format::Geojson {
        text.push_str("]}\n");
    }
    sink(text, reached);
    Ok(())
}

fn ndjson_line(out: &mut String, arc: &ArcEvent) {
    out.push_str(&serde_json::to_string(arc).expect("arcs serialize"));
    out.push('\n');
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv_row(out: &mut String, arc: &ArcEvent) {
    let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
    let place = |p: Option<&Place>| {
        p.map_or(
            [String::new(), String::new(), String::new(), String::new()],
            |p| {
                [
                    p.lat.to_string(),
                    p.lon.to_string(),
                    text(p.city.as_deref()),
                    text(p.country.as_deref()),
                ]
            },
        )
    };
    let mut fields = vec![
        arc.seq.to_string(),
        arc.kind.as_str().to_owned(),
        text(arc.goal.as_deref()),
        arc.campaign.clone(),
        arc.share.clone(),
        arc.root.clone(),
        arc.generation.to_string(),
        arc.channel.clone(),
        text(arc.sharer_kind.as_deref()),
        arc.value_cents.map(|v| v.to_string()).unwrap_or_default(),
        arc.ts.to_string(),
    ];
    fields.extend(place(arc.from.as_ref()));
    fields.extend(place(Some(&arc.to)));
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, field);
    }
    out.push('\n');
}

/// A LineString from `from` to `to`, or a Point for a root share; the arc's fields as properties.
fn geojson_feature(arc: &ArcEvent) -> serde_json::Value {
    let position = |p: &Place| json!([p.lon, p.lat]);
    let geometry = match &arc.from {
        Some(from) => {
            json!({"type": "LineString", "coordinates": [position(from), position(&arc.to)]})
        }
        None => json!({"type": "Point", "coordinates": position(&arc.to)}),
    };
    let mut properties = serde_json::to_value(arc).expect("arcs serialize");
    if let Some(map) = properties.as_object_mut() {
        map.remove("from");
        map.remove("to");
        let mut put = |key: &str, value: Option<&String>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), json!(value));
            }
        };
        put("from_city", arc.from.as_ref().and_then(|p| p.city.as_ref()));
        put(
            "from_country",
            arc.from.as_ref().and_then(|p| p.country.as_ref()),
        );
        put("to_city", arc.to.city.as_ref());
        put("to_country", arc.to.country.as_ref());
        map.insert("time".into(), json!(arc.ts.to_string()));
    }
    json!({"type": "Feature", "geometry": geometry, "properties": properties})
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExportQuery {
    format: Option<Format>,
}

/// Exports running at once: each holds a thread and a chunk or two of buffers, so there are at
/// most `max` of them, and one whose client takes nothing for [`STALL_TIMEOUT`] ends.
pub(crate) struct Exports {
    running: AtomicUsize,
    max: usize,
}

/// A running export's place among them, given back when it ends.
struct ExportSlot(Arc<Exports>);

impl Drop for ExportSlot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Exports {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            running: AtomicUsize::new(0),
            max: max.max(1),
        })
    }

    fn start(self: &Arc<Self>) -> Option<ExportSlot> {
        let taken = self
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        taken.ok().map(|_| ExportSlot(self.clone()))
    }
}

/// How long an export waits for its client to take a chunk before it gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Hands `chunk` to the response, waiting while its queue is full, at most [`STALL_TIMEOUT`];
/// false when the client is gone or took nothing for that long.
fn hand_over(tx: &tokio::sync::mpsc::Sender<Bytes>, chunk: String) -> bool {
    let mut chunk = Bytes::from(chunk);
    let started = Instant::now();
    loop {
        match tx.try_send(chunk) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(back)) if started.elapsed() < STALL_TIMEOUT => {
                chunk = back;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TrySendError::Full(_)) => {
                tracing::info!("export client took nothing for {STALL_TIMEOUT:?}; export ended");
                return false;
            }
        }
    }
}

/// `GET /v1/campaigns/{id}/export?format=ndjson|csv|geojson&kind=…`
pub(crate) async fn export_route(
    reading: Reading,
    query: web::Query<ExportQuery>,
    library: web::Data<super::Library>,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, actix_web::Error> {
    let filter = reading.filter;
    let campaign = filter.campaign.clone().unwrap_or_default();
    let format = query.format.unwrap_or(Format::Ndjson);
    let epoch = library.epoch(&campaign);
    let library = library.into_inner();
    let name = campaign.clone();
    let index = web::block(move || library.open(&name)).await??;

    let Some(slot) = exports.into_inner().start() else {
        return Ok(HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "10"))
            .json(serde_json::json!({
                "error": "too many exports are running; try again shortly"
            })));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    std::thread::Builder::new()
        .name("export".into())
        .spawn(move || {
            let _slot = slot;
            let sent = export(&index, format, &filter, |chunk, _| hand_over(&tx, chunk));
            if let Err(error) = sent {
                tracing::error!(%error, "export stopped");
            }
        })
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    let file_name = format!("{campaign}.{}", format.extension());
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type()).insert_header((
        "content-disposition",
        format!("attachment; filename=\"{file_name}\""),
    ));
    // The epoch the arcs' `seq`s count in: a client can resume the live feed after the export.
    if let Some(epoch) = epoch {
        response.insert_header(("x-viralglobe-epoch", epoch));
    }
    Ok(response.streaming(body))
}
