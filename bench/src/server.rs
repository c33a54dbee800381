//! The process under test: the real server binary (or the bare baseline), pinned to its CPUs, in
//! a fresh data directory, stopped when dropped.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::{Context, bail};

use crate::cli::Cli;

pub struct Process {
    child: Child,
    pub address: String,
    _data: Option<tempfile::TempDir>,
}

impl Process {
    /// Starts the server with an empty data directory.
    pub fn server(cli: &Cli) -> anyhow::Result<Self> {
        Self::server_with(cli, &[])
    }

    /// [`Process::server`] with more command-line arguments.
    pub fn server_with(cli: &Cli, args: &[&str]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut command = pinned(&cli.server_cpus, &cli.server);
        command
            .args(["--listen", "127.0.0.1:0", "--geoip"])
            .arg(&cli.geoip)
            .arg("--data-dir")
            .arg(data.path())
            .args(args);
        let mut process = Self::start(command, "listening on http://")?;
        process._data = Some(data);
        Ok(process)
    }

    /// Stops the server as a crash would and starts it again on the same data directory.
    pub fn restart(mut self, cli: &Cli, args: &[&str]) -> anyhow::Result<Self> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = self
            ._data
            .take()
            .context("a server with a data directory")?;
        let mut command = pinned(&cli.server_cpus, &cli.server);
        command
            .args(["--listen", "127.0.0.1:0", "--geoip"])
            .arg(&cli.geoip)
            .arg("--data-dir")
            .arg(data.path())
            .args(args);
        let mut process = Self::start(command, "listening on http://")?;
        process._data = Some(data);
        Ok(process)
    }

    /// Starts the bare actix-web baseline (this binary's `bare-server`).
    pub fn bare(cli: &Cli) -> anyhow::Result<Self> {
        let mut command = pinned(&cli.server_cpus, &std::env::current_exe()?);
        command.arg("bare-server");
        Self::start(command, "bare server on http://")
    }

    fn start(mut command: Command, marker: &str) -> anyhow::Result<Self> {
        let mut child = command
            .env("RUST_LOG", "warn,viralglobe_server::startup=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        // The server logs to stderr, the baseline prints to stdout: read whichever announces it.
        let stderr = child.stderr.take().context("stderr")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        for lines in [
            Box::new(BufReader::new(stderr).lines()) as Box<dyn Iterator<Item = _> + Send>,
            Box::new(BufReader::new(stdout).lines()),
        ] {
            let tx = tx.clone();
            let marker = marker.to_owned();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let _ = tx.send(match line.find(&marker) {
                        Some(at) => Ok(line[at + marker.len()..].trim().to_owned()),
                        None => Err(line),
                    });
                }
            });
        }
        drop(tx);
        // Until it says where it listens, or exits (both pipes closed) saying why.
        let mut said = Vec::new();
        let address = loop {
            match rx.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(Ok(address)) => break address,
                Ok(Err(line)) => said.push(line),
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "{command:?} did not say where it listens; it said:\n{}",
                        said.join("\n")
                    );
                }
            }
        };
        Ok(Self {
            child,
            address,
            _data: None,
        })
    }

    /// The Node peer (`node DIR/server.js PORT GEOIP`, `../shared/peers/node-fanout`), pinned as
    /// the server is, once it accepts connections.
    pub fn peer(cli: &Cli, dir: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = pinned(&cli.server_cpus, Path::new("node"));
        command
            .arg(dir.join("server.js"))
            .arg(port.to_string())
            .arg(&cli.geoip)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let address = format!("127.0.0.1:{port}");
        let mut process = Self {
            child,
            address,
            _data: None,
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(&process.address).is_ok() {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("the peer exited: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        bail!("the peer did not listen on {} within 30 s", process.address)
    }

    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.address)
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")
    }
}

/// CPU seconds (user and system) of the process `pid` so far.
fn cpu_seconds_of(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').context("a /proc stat line")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// CPU seconds of this process (the load generator and its clients) so far.
pub fn own_cpu_seconds() -> anyhow::Result<f64> {
    cpu_seconds_of("self")
}

impl Process {
    /// CPU seconds the process has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds_of(&self.child.id().to_string())
    }

    /// Open file descriptors.
    pub fn open_fds(&self) -> anyhow::Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))?.count())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` under `taskset -c CPUS` (which execs it, so the pid is the program's).
pub fn pinned(cpus: &str, program: &Path) -> Command {
    if cpus.is_empty() {
        return Command::new(program);
    }
    let mut command = Command::new("taskset");
    command.arg("-c").arg(cpus).arg(program);
    command
}

/// Pins this process (every thread it has and will have) to `cpus`.
pub fn pin_self(cpus: &str) -> anyhow::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin the load generator to CPUs {cpus}");
    }
    Ok(())
}
