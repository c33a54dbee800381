//! A broker of the figure's own (Debian's `redis-server`, `nats-server`) on a free loopback port
//! and the clients' CPUs, in a directory of its own, stopped when dropped.

use std::{
    net::TcpListener,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{cli::Cli, server::pinned};

pub(super) struct Broker {
    child: Child,
    pub(super) port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts `program` with the arguments `args(port, directory)` gives, once it listens.
    pub(super) fn start(
        cli: &Cli,
        program: &str,
        args: impl Fn(u16, &str) -> Vec<String>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = pinned(&cli.client_cpus, program.as_ref())
            .args(args(port, &dir.path().display().to_string()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program} (apt install it)"))?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("{program} did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    /// Redis with its append-only file fsynced as `appendfsync` says (`None`: no persistence).
    pub(super) fn redis(cli: &Cli, appendfsync: Option<&str>) -> anyhow::Result<Self> {
        let program = installed("redis-server").unwrap_or_else(|| "redis-server".into());
        Self::start(cli, &program, |port, dir| {
            let mut args = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ]
            .map(str::to_owned)
            .to_vec();
            if let Some(appendfsync) = appendfsync {
                args.extend(
                    ["--appendonly", "yes", "--appendfsync", appendfsync].map(str::to_owned),
                );
            }
            args.extend(["--dir".to_owned(), dir.to_owned()]);
            args
        })
    }

    pub(super) fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Debian installed `name` (in /usr/sbin, which a user's PATH may lack), if it did.
pub(super) fn installed(name: &str) -> Option<String> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| std::path::Path::new(path).exists())
}
