//! The load generator of the benchmark suite (`bash bench/run.sh`): starts the real server as a
//! separate process pinned to its own CPUs, drives it with real clients over loopback sockets
//! (HTTP ingest, websocket subscribers), and prints one table row per figure.

mod bare;
pub mod cli;
mod events;
mod http;
mod publisher;
pub mod report;
mod scenarios;
mod server;
mod subscribers;
pub mod workload;

use cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::BareServer) = cli.command {
        return bare::serve();
    }
    server::pin_self(&cli.client_cpus)?;
    let workers = if cli.client_cpus.is_empty() {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        cpu_count(&cli.client_cpus)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(scenarios::run(&cli))
}

/// CPUs in a `taskset` list such as `1` or `0,2-3`.
pub(crate) fn cpu_count(list: &str) -> usize {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}
