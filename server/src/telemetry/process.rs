//! The process's own figures in the usual Prometheus names (`process_*`), read from `/proc` when
//! `/metrics` is scraped: memory, CPU time, threads, descriptors and their limit, start time.

use std::fs;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// Sets the `process_*` gauges from `/proc/self`; where it is missing (not Linux), nothing.
pub(crate) fn update() {
    if let Some(stat) = Stat::read() {
        metrics::gauge!("process_cpu_seconds_total").set(stat.cpu_ticks / TICKS_PER_SECOND);
        metrics::gauge!("process_threads").set(stat.threads);
        metrics::gauge!("process_virtual_memory_bytes").set(stat.virtual_bytes);
        if let Some(boot) = boot_time() {
            metrics::gauge!("process_start_time_seconds")
                .set(boot + stat.start_ticks / TICKS_PER_SECOND);
        }
    }
    if let Some(rss) = status_kib("VmRSS:") {
        metrics::gauge!("process_resident_memory_bytes").set(rss * 1024.0);
    }
    if let Ok(fds) = fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
    if let Some(max) = max_open_files() {
        metrics::gauge!("process_max_fds").set(max);
    }
}

struct Stat {
    cpu_ticks: f64,
    threads: f64,
    start_ticks: f64,
    virtual_bytes: f64,
}

impl Stat {
    fn read() -> Option<Self> {
        let text = fs::read_to_string("/proc/self/stat").ok()?;
        // The command name is in parentheses and may hold spaces: fields count from after it.
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state); utime is field 14, stime 15, num_threads 20,
        // starttime 22, vsize 23.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        Some(Self {
            cpu_ticks: field(14)? + field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            virtual_bytes: field(23)?,
        })
    }
}

fn status_kib(key: &str) -> Option<f64> {
    let text = fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn boot_time() -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

fn max_open_files() -> Option<f64> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files": the soft limit is the one that applies.
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let stat = super::Stat::read().expect("/proc/self/stat");
        assert!(stat.threads >= 1.0);
        assert!(stat.virtual_bytes > 0.0);
        assert!(super::status_kib("VmRSS:").expect("VmRSS") > 0.0);
        assert!(super::max_open_files().expect("limit") >= 16.0);
    }
}
