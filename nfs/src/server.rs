//! Supervision of the NFS server: rpcbind (only if none answers), a private
//! D-Bus daemon and `ganesha.nfsd -F`, all children of this process.
//!
//! Expected flow: start rpcbind and the bus, render Ganesha's config with
//! every recorded export inline, start Ganesha, wait until NFS and MOUNT
//! answer an RPC `NULL` and D-Bus answers (for as long as Ganesha keeps
//! working through its config: [`crate::startup`]), make the live exports equal the
//! records (add missing, withdraw unrecorded), prove that Ganesha can
//! export at all (the canary, below), then report ready. While
//! running, probe every `probe_interval`; a failed probe makes us not ready,
//! a server unresponsive for `unresponsive_timeout` is killed. Any child
//! exiting restarts Ganesha (and the dead helper) with exponential backoff
//! (1 s doubling to 30 s, reset after a minute of uptime).
//!
//! The canary: answering RPC and D-Bus does not mean Ganesha can export. A
//! container whose seccomp profile refuses `name_to_handle_at` (containerd's
//! `RuntimeDefault` before 1.6.22/1.7.3 without `CAP_SYS_ADMIN`) runs a
//! Ganesha that answers every probe and fails every `AddExport` with
//! `EPERM`; with no records to re-add at start, nothing noticed, the pod
//! was Ready and every claim failed. So after every (re)start, before
//! ready, the server adds and at once removes an export of an empty
//! directory in the state directory (`.nfs-provisioner/canary`: volume names
//! cannot start with a dot; export id [`ganesha::CANARY_EXPORT_ID`], which
//! no volume gets; no client access). Until that works the server stays
//! not ready, [`Server::not_ready_reason`] (and so `/readyz`) carries
//! Ganesha's answer, and the canary is tried again every `probe_interval`.
//!
//! Guarantees: ready implies every valid record is a live export and an
//! `AddExport` just worked; export
//! changes (provision, delete, reconcile) are serialized by one lock, so a
//! restart never resurrects an export being withdrawn. Children get
//! `PR_SET_PDEATHSIG` (SIGKILL), so a killed provisioner does not leave a
//! Ganesha holding the ports; a stale one named by the pid file is killed at
//! start as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::dbus::{DbusError, ExportMgr};
use crate::exports::{ExportRoot, RootError};
use crate::ganesha::{self, ClientList, CoreConfig};
use crate::rpc;
use crate::startup::{self, StartWatch, Verdict};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const STABLE: Duration = Duration::from_secs(60);
const PING_TIMEOUT: Duration = Duration::from_secs(3);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Ports, address and grace period.
    pub core: CoreConfig,
    /// Runtime files: the rendered configs, the bus socket, the pid file.
    pub run_dir: PathBuf,
    /// `ganesha.nfsd`.
    pub ganesha: PathBuf,
    /// `dbus-daemon`.
    pub dbus_daemon: PathBuf,
    /// `rpcbind`.
    pub rpcbind: PathBuf,
    /// Time between health probes.
    pub probe_interval: Duration,
    /// How long a starting child may go without answering and without
    /// using CPU before it counts as hung (see [`crate::startup`]).
    pub start_timeout: Duration,
    /// How long a running Ganesha may fail probes before it is restarted.
    pub unresponsive_timeout: Duration,
}

/// Why the server is not serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Not (yet) answering; provisioning and deleting wait for it.
    #[error("the NFS server is not ready (starting or restarting); retrying")]
    NotReady,
    /// A child could not be started.
    #[error("starting {what}: {source}")]
    Spawn {
        /// The program.
        what: String,
        /// Why the process could not be started (missing binary, permissions).
        #[source]
        source: std::io::Error,
    },
    /// A child exited.
    #[error("{what} exited: {status}")]
    Exited {
        /// The program.
        what: &'static str,
        /// Its status.
        status: String,
    },
    /// A child did not come up in time.
    #[error("{0}")]
    StartTimeout(String),
    /// Ganesha stopped answering.
    #[error("ganesha.nfsd unresponsive for {0:?}: {1}")]
    Unresponsive(Duration, String),
    /// The export root failed.
    #[error(transparent)]
    Root(#[from] RootError),
    /// D-Bus failed.
    #[error(transparent)]
    Dbus(#[from] DbusError),
    /// A runtime file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The filesystem error.
        #[source]
        source: std::io::Error,
    },
}

/// The supervised server and the handle provisioning uses.
pub struct Server {
    cfg: ServerConfig,
    root: Arc<ExportRoot>,
    ready: Arc<AtomicBool>,
    reason: RwLock<Option<String>>,
    mgr: RwLock<Option<ExportMgr>>,
    /// The client list the running Ganesha has (`None`: not started yet).
    live_clients: RwLock<Option<ClientList>>,
    ops: Mutex<()>,
}

#[derive(Default)]
struct Children {
    rpcbind: Option<Child>,
    bus: Option<Child>,
    ganesha: Option<Child>,
}

/// Spawns a child that dies with us, its output forwarded to our log.
#[allow(unsafe_code)]
fn spawn(what: &'static str, cmd: &mut Command) -> Result<Child, ServerError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|source| ServerError::Spawn {
        what: what.to_string(),
        source,
    })?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(what, out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(what, err));
    }
    tracing::info!(child = what, pid = child.id(), "started");
    Ok(child)
}

async fn forward(what: &'static str, r: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "nfs_provisioner::child", child = what, "{line}");
    }
}

async fn wait_opt(c: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match c {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

fn alive(c: &mut Option<Child>) -> bool {
    matches!(c.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
}

async fn stop(what: &str, c: &mut Option<Child>, graceful: bool) {
    let Some(mut child) = c.take() else { return };
    if graceful {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if let Ok(Ok(status)) = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                tracing::info!(child = what, %status, "stopped");
                return;
            }
        }
    }
    let _ = child.kill().await;
    tracing::info!(child = what, "killed");
}

impl Children {
    async fn stop_all(&mut self) {
        stop("ganesha.nfsd", &mut self.ganesha, true).await;
        stop("dbus-daemon", &mut self.bus, false).await;
        stop("rpcbind", &mut self.rpcbind, false).await;
    }
}

fn loopback_for(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        a => a,
    }
}

impl Server {
    /// A server for the exports recorded on `root`.
    pub fn new(cfg: ServerConfig, root: Arc<ExportRoot>) -> Self {
        Server {
            cfg,
            root,
            ready: Arc::new(AtomicBool::new(false)),
            reason: RwLock::new(Some("starting".to_string())),
            mgr: RwLock::new(None),
            live_clients: RwLock::new(None),
            ops: Mutex::new(()),
        }
    }

    /// True while the server answers and every recorded export is live.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Why the server is not ready (the last failure of a start, a probe
    /// or the export canary); `None` while ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.is_ready() {
            return None;
        }
        self.reason.read().expect("lock").clone()
    }

    fn set_ready(&self, ready: bool) {
        if ready {
            *self.reason.write().expect("lock") = None;
        }
        if self.ready.swap(ready, Ordering::AcqRel) != ready {
            tracing::info!(ready, "NFS server readiness changed");
        }
    }

    /// Not ready, because of `why`; logged when the reason changes.
    fn set_not_ready(&self, why: String) {
        self.set_ready(false);
        let mut reason = self.reason.write().expect("lock");
        if reason.as_deref() != Some(why.as_str()) {
            tracing::warn!(reason = why, "NFS server not ready");
            *reason = Some(why);
        }
    }

    /// The private bus's address.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.cfg.run_dir.join("bus.sock").display())
    }

    /// Serializes export changes (provision, delete, the start-up reconcile).
    pub async fn lock(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().await
    }

    /// Makes `clients` who may mount (module `node_clients`): the export
    /// files are rendered again, then the running Ganesha's pseudo root and
    /// every export are updated in place (`UpdateExport`), so the mounts of
    /// clients still on the list go on. Not ready: the files are changed
    /// and `Err(NotReady)` says to call again (a start renders the new list
    /// itself).
    pub async fn set_clients(&self, clients: &ClientList) -> Result<(), ServerError> {
        let _ops = self.ops.lock().await;
        if self.root.set_clients(clients)? {
            tracing::info!(clients = %clients, "who may mount changed");
        }
        if self.live_clients.read().expect("lock").as_ref() == Some(clients) {
            return Ok(());
        }
        let mgr = self.export_mgr()?;
        let (records, _damaged) = self.root.records()?;
        let conf = self.write_main_config(clients, &records)?;
        mgr.update_export(&conf, 0).await?;
        // Only live exports: an UpdateExport of an id that is not live adds
        // it (a volume whose delete was cut short would come back). Every
        // one is tried; the first failure is returned (the list is offered
        // again) after the rest have the new list.
        let live = mgr.export_ids().await?;
        let mut failed = None;
        let mut updated = 0;
        for r in records.iter().filter(|r| live.contains(&r.export_id)) {
            match mgr
                .update_export(&self.root.record_path(&r.pv), r.export_id)
                .await
            {
                Ok(()) => updated += 1,
                Err(e) => {
                    tracing::error!(pv = r.pv, export_id = r.export_id, error = %e, "updating who may mount this export failed");
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        *self.live_clients.write().expect("lock") = Some(clients.clone());
        tracing::info!(clients = %clients, exports = updated, "the running server admits the new client list");
        Ok(())
    }

    /// Renders Ganesha's main config for `clients` and `records` into the
    /// run directory (read at a start, and by `UpdateExport` of the pseudo
    /// root); returns its path.
    fn write_main_config(
        &self,
        clients: &ClientList,
        records: &[ganesha::ExportRecord],
    ) -> Result<PathBuf, ServerError> {
        let conf = self.cfg.run_dir.join("ganesha.conf");
        let text =
            ganesha::main_config(&self.cfg.core, &self.root.recovery_root(), clients, records);
        std::fs::write(&conf, text).map_err(|source| ServerError::Io {
            path: conf.display().to_string(),
            source,
        })?;
        Ok(conf)
    }

    /// The export manager, if the server is ready.
    pub fn export_mgr(&self) -> Result<ExportMgr, ServerError> {
        if !self.is_ready() {
            return Err(ServerError::NotReady);
        }
        self.mgr
            .read()
            .expect("lock")
            .clone()
            .ok_or(ServerError::NotReady)
    }

    fn probe_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(loopback_for(self.cfg.core.bind), port)
    }

    /// Supervises until `shutdown`, then stops every child it started.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut kids = Children::default();
        let mut backoff = BACKOFF_START;
        loop {
            let started = Instant::now();
            let result = self.run_once(&mut kids, &shutdown).await;
            self.set_ready(false);
            if shutdown.is_cancelled() {
                break;
            }
            if let Err(e) = result {
                tracing::error!(error = %e, "NFS server down; restarting in {backoff:?}");
                *self.reason.write().expect("lock") = Some(format!("{e} (restarting)"));
            }
            if started.elapsed() >= STABLE {
                backoff = BACKOFF_START;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        kids.stop_all().await;
    }

    async fn run_once(
        &self,
        kids: &mut Children,
        shutdown: &CancellationToken,
    ) -> Result<(), ServerError> {
        stop("ganesha.nfsd", &mut kids.ganesha, false).await;
        let run_dir = &self.cfg.run_dir;
        let io = |source| ServerError::Io {
            path: run_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(run_dir).map_err(io)?;
        // Only root may reach the bus socket (and so Ganesha's admin interface).
        std::fs::set_permissions(run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io)?;
        self.ensure_rpcbind(kids).await?;
        self.ensure_bus(kids).await?;
        let guard = self.ops.lock().await;
        let (records, damaged) = self.root.records()?;
        for e in damaged {
            tracing::error!(error = %e, "damaged export record skipped: fix or remove the file");
        }
        let clients = self.root.clients();
        let conf = self.write_main_config(&clients, &records)?;
        let pidfile = self.cfg.run_dir.join("ganesha.pid");
        kill_stale(&pidfile, "ganesha.nfsd").await;
        let mut cmd = Command::new(&self.cfg.ganesha);
        cmd.args(["-F", "-L", "/dev/stderr", "-N", "NIV_EVENT", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(&pidfile)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus_address());
        kids.ganesha = Some(spawn("ganesha.nfsd", &mut cmd)?);
        let mgr = self.wait_answering(kids, shutdown).await?;
        let Some(mgr) = mgr else { return Ok(()) };
        // Make the live exports equal the records.
        let live = mgr.export_ids().await?;
        for r in &records {
            if !live.contains(&r.export_id) {
                mgr.add_export(&self.root.record_path(&r.pv), &r.path)
                    .await?;
                tracing::info!(pv = r.pv, export_id = r.export_id, "export re-added");
            }
        }
        for id in live.iter().filter(|id| **id != 0) {
            if !records.iter().any(|r| r.export_id == *id) {
                mgr.remove_export(*id).await?;
                tracing::warn!(export_id = id, "live export without a record withdrawn");
            }
        }
        let live = mgr.export_ids().await?;
        if let Some(r) = records.iter().find(|r| !live.contains(&r.export_id)) {
            return Err(ServerError::StartTimeout(format!(
                "export {} of {} is not live after AddExport",
                r.export_id, r.pv
            )));
        }
        *self.mgr.write().expect("lock") = Some(mgr);
        *self.live_clients.write().expect("lock") = Some(clients);
        drop(guard);
        tracing::info!(exports = records.len(), "recorded exports live");
        self.monitor(kids, shutdown).await
    }

    /// Adds and removes the canary export: `Err` with Ganesha's answer when
    /// it cannot export (see the module docs). Callers hold the ops lock.
    async fn export_canary(&self, mgr: &ExportMgr) -> Result<(), String> {
        let dir = self
            .root
            .canary_dir()
            .map_err(|e| format!("preparing the export canary: {e}"))?;
        let conf = self.cfg.run_dir.join("canary.conf");
        std::fs::write(&conf, ganesha::canary_block(&dir))
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let id = ganesha::CANARY_EXPORT_ID;
        let withdraw = || async {
            mgr.remove_export(id)
                .await
                .map(|_| ())
                .map_err(|e| format!("withdrawing the export canary: {e}"))
        };
        // One left live by an attempt that was cut short.
        withdraw().await?;
        let added = mgr.add_export(&conf, &dir).await;
        withdraw().await?;
        added.map(|_| ()).map_err(|e| {
            format!("Ganesha cannot export (a test export of {dir} failed; is name_to_handle_at allowed by the container's seccomp profile? see docs/security.md): {e}")
        })
    }

    async fn ensure_rpcbind(&self, kids: &mut Children) -> Result<(), ServerError> {
        if alive(&mut kids.rpcbind) {
            return Ok(());
        }
        kids.rpcbind = None;
        // rpcbind switches to its own user, which clears PR_SET_PDEATHSIG:
        // one we started before being killed may still run. Replace it, so
        // the running one is our child again (supervised, stopped with us).
        let pidfile = self.cfg.run_dir.join("rpcbind.pid");
        kill_stale(&pidfile, "rpcbind").await;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 111));
        if rpc::ping(addr, rpc::PORTMAP, PING_TIMEOUT).await.is_ok() {
            tracing::info!("rpcbind already answers on port 111; using it");
            return Ok(());
        }
        let mut cmd = Command::new(&self.cfg.rpcbind);
        cmd.args(["-f", "-w"]);
        let child = spawn("rpcbind", &mut cmd)?;
        if let Some(pid) = child.id() {
            std::fs::write(&pidfile, pid.to_string()).map_err(|source| ServerError::Io {
                path: pidfile.display().to_string(),
                source,
            })?;
        }
        kids.rpcbind = Some(child);
        self.wait_until("rpcbind", &mut kids.rpcbind, move || {
            rpc::ping(addr, rpc::PORTMAP, PING_TIMEOUT)
        })
        .await
    }

    async fn ensure_bus(&self, kids: &mut Children) -> Result<(), ServerError> {
        if alive(&mut kids.bus) && self.mgr.read().expect("lock").is_some() {
            return Ok(());
        }
        stop("dbus-daemon", &mut kids.bus, false).await;
        *self.mgr.write().expect("lock") = None;
        let io = |path: &PathBuf| {
            let path = path.display().to_string();
            move |source| ServerError::Io { path, source }
        };
        let socket = self.cfg.run_dir.join("bus.sock");
        let _ = std::fs::remove_file(&socket);
        let conf = self.cfg.run_dir.join("bus.conf");
        std::fs::write(&conf, ganesha::bus_config(&socket)).map_err(io(&conf))?;
        let mut cmd = Command::new(&self.cfg.dbus_daemon);
        cmd.arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile"]);
        kids.bus = Some(spawn("dbus-daemon", &mut cmd)?);
        let address = self.bus_address();
        let deadline = Instant::now() + self.cfg.start_timeout;
        let mgr = loop {
            match ExportMgr::connect(&address).await {
                Ok(m) => break m,
                Err(e) => {
                    if let Some(Ok(Some(status))) = kids.bus.as_mut().map(|c| c.try_wait()) {
                        return Err(ServerError::Exited {
                            what: "dbus-daemon",
                            status: status.to_string(),
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(e.into());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        *self.mgr.write().expect("lock") = Some(mgr);
        Ok(())
    }

    /// Polls `check` until it succeeds, the child exits, or the child has
    /// neither answered nor used CPU for the start timeout (a busy child,
    /// such as Ganesha reading thousands of exports, is waited for up to
    /// [`startup::MAX_START`]).
    async fn wait_until<F, Fut, E>(
        &self,
        what: &'static str,
        child: &mut Option<Child>,
        mut check: F,
    ) -> Result<(), ServerError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let began = Instant::now();
        let mut watch = StartWatch::new(began, self.cfg.start_timeout);
        loop {
            let err = match check().await {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
                return Err(ServerError::Exited {
                    what,
                    status: status.to_string(),
                });
            }
            let cpu = child
                .as_ref()
                .and_then(Child::id)
                .and_then(startup::cpu_ticks);
            let why = match watch.observe(Instant::now(), cpu) {
                Verdict::Wait => None,
                Verdict::Idle => Some(format!("idle for {:?}", self.cfg.start_timeout)),
                Verdict::TooLong => Some(format!("still busy after {:?}", startup::MAX_START)),
            };
            if let Some(why) = why {
                return Err(ServerError::StartTimeout(format!(
                    "{what} not answering after {:?} ({why}): {err}",
                    began.elapsed()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until NFS, MOUNT and D-Bus answer; `None` on shutdown.
    async fn wait_answering(
        &self,
        kids: &mut Children,
        shutdown: &CancellationToken,
    ) -> Result<Option<ExportMgr>, ServerError> {
        let mgr = self
            .mgr
            .read()
            .expect("lock")
            .clone()
            .ok_or(ServerError::NotReady)?;
        let m = &mgr;
        let check = move || async move {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            self.probe(m).await
        };
        self.wait_until("ganesha.nfsd", &mut kids.ganesha, check)
            .await?;
        Ok((!shutdown.is_cancelled()).then_some(mgr))
    }

    async fn probe(&self, mgr: &ExportMgr) -> Result<(), String> {
        let nfs = self.probe_addr(self.cfg.core.nfs_port);
        let mnt = self.probe_addr(self.cfg.core.mount_port);
        rpc::ping(nfs, rpc::NFS_V3, PING_TIMEOUT)
            .await
            .map_err(|e| format!("NFS: {e}"))?;
        rpc::ping(nfs, rpc::NFS_V4, PING_TIMEOUT)
            .await
            .map_err(|e| format!("NFSv4: {e}"))?;
        rpc::ping(mnt, rpc::MOUNT_V3, PING_TIMEOUT)
            .await
            .map_err(|e| format!("MOUNT: {e}"))?;
        mgr.export_ids().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn monitor(
        &self,
        kids: &mut Children,
        shutdown: &CancellationToken,
    ) -> Result<(), ServerError> {
        let mgr = self
            .mgr
            .read()
            .expect("lock")
            .clone()
            .ok_or(ServerError::NotReady)?;
        let mut failing_since: Option<Instant> = None;
        // Proved once per start, before the first ready.
        let mut can_export = false;
        let mut first = true;
        loop {
            let exited = |what: &'static str, s: std::io::Result<ExitStatus>| ServerError::Exited {
                what,
                status: s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                s = wait_opt(&mut kids.ganesha) => { kids.ganesha = None; return Err(exited("ganesha.nfsd", s)) }
                s = wait_opt(&mut kids.bus) => { kids.bus = None; return Err(exited("dbus-daemon", s)) }
                s = wait_opt(&mut kids.rpcbind) => { kids.rpcbind = None; return Err(exited("rpcbind", s)) }
                _ = tokio::time::sleep(self.cfg.probe_interval), if !first => {}
                _ = std::future::ready(()), if first => {}
            }
            first = false;
            match self.probe(&mgr).await {
                Ok(()) => {
                    failing_since = None;
                    if !can_export {
                        let _guard = self.ops.lock().await;
                        if let Err(why) = self.export_canary(&mgr).await {
                            self.set_not_ready(why);
                            continue;
                        }
                        can_export = true;
                        tracing::info!("NFS server ready");
                    }
                    self.set_ready(true);
                }
                Err(e) => {
                    self.set_not_ready(format!("probe failed: {e}"));
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.cfg.unresponsive_timeout {
                        stop("ganesha.nfsd", &mut kids.ganesha, false).await;
                        return Err(ServerError::Unresponsive(since.elapsed(), e));
                    }
                }
            }
        }
    }
}

/// Kills a `comm` process left behind by a previous instance (named in the
/// pid file).
async fn kill_stale(pidfile: &std::path::Path, comm: &str) {
    let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let found = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if found.trim() != comm {
        return;
    }
    tracing::warn!(pid, comm, "killing a process left behind by a previous run");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    for _ in 0..100 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // gone, or a zombie waiting for a parent that is not us
        if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_go_to_loopback_when_bound_to_any() {
        assert_eq!(
            loopback_for("0.0.0.0".parse().unwrap()),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            loopback_for("::".parse().unwrap()),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        assert_eq!(
            loopback_for("10.0.0.5".parse().unwrap()),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
    }
}
