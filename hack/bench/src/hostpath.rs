//! The real `hostpath-provisioner` binary as a measured process: found (or
//! built) next to this binary, started with its metrics server on a free
//! local port, timed until `/readyz` answers 200, and measured through
//! `/proc/<pid>/status`.
//!
//! Process handling is local rather than `e2e_support::Binary` because the
//! benchmark needs what tests do not: a metrics address, the pid, and timing
//! from the instant of `spawn`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hostpath binary in the same profile directory as this executable,
/// brought up to date with `cargo build -p hostpath-provisioner` (same
/// profile; a no-op when it is fresh, so a run never measures a binary
/// older than its sources). A binary that dies before `/readyz` fails the
/// run with its log.
pub fn locate_or_build() -> anyhow::Result<PathBuf> {
    locate_or_build_binary("hostpath-provisioner", "hostpath-provisioner")
}

/// Binary `bin` of workspace package `package`, found or built like
/// [`locate_or_build`]'s.
pub fn locate_or_build_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating this executable")?;
    let dir = me.parent().context("executable has no directory")?;
    let exe = dir.join(bin);
    let Ok(cargo) = std::env::var("CARGO") else {
        // Not started by cargo (a copied bench binary): use what is there.
        if exe.exists() {
            eprintln!(
                "using {} as found (not run by cargo, not rebuilt)",
                exe.display()
            );
            return Ok(exe);
        }
        bail!(
            "{} is missing; build it with cargo build -p {package}",
            exe.display()
        );
    };
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "-p", package, "-p", "external-storage-bench"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!("building {bin}: {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cargo}"))?;
    if !status.success() || !exe.exists() {
        bail!("could not build {}; run {cmd:?} by hand", exe.display());
    }
    Ok(exe)
}

/// A running provisioner process; SIGKILLed on drop.
pub struct Process {
    child: Child,
    started: Instant,
    /// 0 for a process started with [`Process::start_plain`].
    metrics_port: u16,
    log: PathBuf,
}

impl Process {
    /// Starts `exe --kubeconfig K --metrics-address 127.0.0.1:<free> <args>`,
    /// output to `<log_dir>/<exe name>-<port>.log`.
    pub fn start(
        exe: &Path,
        kubeconfig: &Path,
        args: &[&str],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let port = e2e_support::free_port();
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        let log = log_dir.join(format!("{name}-{port}.log"));
        let file = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = Command::new(exe)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-address", &format!("127.0.0.1:{port}")])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning {}", exe.display()))?;
        Ok(Self {
            child,
            started,
            metrics_port: port,
            log,
        })
    }

    /// Starts `exe ARGS` with `env` added, output to `<log_dir>/<exe
    /// name>-<n>.log`: a program without our flags (the Go anchor), whose
    /// readiness is a log line ([`Process::wait_log`]).
    pub fn start_plain(
        exe: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        let log = log_dir.join(format!("{name}-{}.log", e2e_support::free_port()));
        let file = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = Command::new(exe)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning {}", exe.display()))?;
        Ok(Self {
            child,
            started,
            metrics_port: 0,
            log,
        })
    }

    /// The port of its metrics server, for [`wait_ready`](Self::wait_ready)
    /// of a process started with [`Process::start_plain`] whose own
    /// arguments give it `--metrics-address 127.0.0.1:<port>`.
    pub fn with_metrics_port(mut self, port: u16) -> Self {
        self.metrics_port = port;
        self
    }

    /// Polls the log every 5 ms until it contains `needle`; returns the
    /// time since `spawn`.
    pub async fn wait_log(&mut self, needle: &str, within: Duration) -> anyhow::Result<Duration> {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "process exited with {status} before {needle:?}; log:\n{}",
                    self.log()
                );
            }
            if self.log().contains(needle) {
                return Ok(self.started.elapsed());
            }
            if Instant::now() > end {
                bail!("no {needle:?} after {within:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// CPU time (user + system) used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        crate::machine::cpu_seconds(self.pid())
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/readyz` every 5 ms until it answers 200; returns the time
    /// since `spawn`.
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "provisioner exited with {status} before ready; log:\n{}",
                    self.log()
                );
            }
            if http_status(self.metrics_port, "/readyz").await == Some(200) {
                return Ok(self.started.elapsed());
            }
            if Instant::now() > end {
                bail!("not ready after {within:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Peak RSS (`VmHWM`) so far, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        crate::machine::peak_rss_kib(self.pid())
    }

    /// Resident set size now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        crate::machine::rss_kib(self.pid())
    }

    /// What the process logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status code of `GET path` on 127.0.0.1:`port`, `None` if unreachable.
async fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).await.ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
