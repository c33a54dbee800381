//! Logs (tracing, to stderr) and metrics (Prometheus text at /metrics).

pub(crate) mod process;
pub(crate) mod sources;

use std::{io::IsTerminal, sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Logs go to stderr, as text or one JSON object per line (with the span fields: a websocket
/// session's id, peer and campaign); `RUST_LOG` filters them (default `info`).
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// The process-wide metrics recorder, installed on first use.
pub(crate) fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0,
                ])
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full("viralglobe_live_queue_depth".into()),
                    &[
                        0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
                    ],
                )
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full("viralglobe_ingest_group_requests".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Only fails if another recorder is installed; then ours still renders what it gets.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            start_at_zero();
            handle
        })
        .clone()
}

/// Histograms keep their samples until they are folded in: done here every few seconds, so
/// memory stays flat whether or not anyone scrapes `/metrics`.
pub(crate) fn spawn_upkeep(handle: PrometheusHandle) {
    actix_web::rt::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Every series a dashboard or an alert looks for exists from the start, at 0, rather than
/// appearing with its first event; `viralglobe_build_info` says which build is running.
fn start_at_zero() {
    metrics::gauge!("viralglobe_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for kind in ["share", "click", "conversion"] {
        metrics::counter!("viralglobe_events_ingested_total", "type" => kind).absolute(0);
        metrics::counter!("viralglobe_events_duplicate_total", "type" => kind).absolute(0);
        metrics::counter!("viralglobe_arcs_total", "kind" => kind).absolute(0);
    }
    for reason in ["invalid", "unresolvable"] {
        metrics::counter!("viralglobe_events_rejected_total", "reason" => reason).absolute(0);
    }
    metrics::gauge!("viralglobe_held_events").set(0.0);
    for kind in ["share", "click_or_conversion"] {
        metrics::counter!("viralglobe_held_expired_total", "type" => kind).absolute(0);
    }
    metrics::gauge!("viralglobe_live_subscribers").set(0.0);
    metrics::counter!("viralglobe_live_dropped_arcs_total").absolute(0);
    metrics::counter!("viralglobe_recording_errors_total").absolute(0);
    for visitor in ["person", "bot", "head", "unknown_link"] {
        metrics::counter!("viralglobe_link_redirects_total", "visitor" => visitor).absolute(0);
    }
    for outcome in ["recorded", "duplicate", "rejected", "lost"] {
        metrics::counter!("viralglobe_link_clicks_total", "outcome" => outcome).absolute(0);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "viralglobe_log_up",
        "Cluster mode: 1 while this node both appends to and follows the log in Redis"
    );
    describe_counter!(
        "viralglobe_log_entries_applied_total",
        "Cluster mode: log entries (ingest batches) this node applied"
    );
    describe_histogram!(
        "viralglobe_log_append_seconds",
        "Cluster mode: one round trip appending a group of batches to the log"
    );
    describe_counter!(
        "viralglobe_events_ingested_total",
        "Events accepted, by type"
    );
    describe_counter!(
        "viralglobe_events_duplicate_total",
        "Re-sent events ignored, by type"
    );
    describe_counter!(
        "viralglobe_events_rejected_total",
        "Lines rejected, by reason"
    );
    describe_counter!(
        "viralglobe_geo_misses_total",
        "Events with no location, by reason"
    );
    describe_gauge!(
        "viralglobe_held_events",
        "Events waiting for their share or parent share"
    );
    describe_counter!(
        "viralglobe_held_expired_total",
        "Held events given up after waiting longer than --held-expiry-secs, by type"
    );
    describe_counter!("viralglobe_arcs_total", "Arcs resolved, by kind");
    describe_counter!(
        "viralglobe_link_redirects_total",
        "Redirects of tracked links, by visitor: a person (a click), a bot or link preview, HEAD, or a code that is no link"
    );
    describe_counter!(
        "viralglobe_link_clicks_total",
        "Clicks of people on tracked links, by outcome: recorded, a duplicate (the same visitor within the hour), or lost (not recorded: queue full, ingest refused)"
    );
    describe_gauge!("viralglobe_live_subscribers", "Open live-feed websockets");
    describe_counter!(
        "viralglobe_live_dropped_arcs_total",
        "Arcs dropped for slow subscribers"
    );
    describe_histogram!(
        "viralglobe_ingest_batch_seconds",
        "Time to apply and record one group of ingest batches (requests that arrived together)"
    );
    describe_histogram!(
        "viralglobe_ingest_group_requests",
        "Requests whose batches were applied and written out together (group commit)"
    );
    describe_counter!(
        "viralglobe_recording_errors_total",
        "Failed writes to recordings"
    );
    describe_gauge!(
        "viralglobe_build_info",
        "1, labelled with the running version"
    );
    describe_histogram!(
        "viralglobe_live_delivery_seconds",
        "From an arc's publication to its frame's hand-over to a live subscriber's socket (one frame in 8 of each subscriber's)"
    );
    describe_histogram!(
        "viralglobe_live_queue_depth",
        "Frames waiting in a live subscriber's queue when a tick offers it more"
    );
    describe_gauge!("process_resident_memory_bytes", "Resident memory");
    describe_gauge!("process_virtual_memory_bytes", "Virtual memory");
    describe_gauge!("process_cpu_seconds_total", "CPU time, user and system");
    describe_gauge!("process_threads", "Threads");
    describe_gauge!("process_open_fds", "Open file descriptors");
    describe_gauge!(
        "process_max_fds",
        "Most file descriptors the process may open"
    );
    describe_gauge!("process_start_time_seconds", "Start time, Unix seconds");
    describe_histogram!(
        "viralglobe_http_request_seconds",
        "Time to answer an HTTP request (to the upgrade, for websockets), by route and status"
    );
}
