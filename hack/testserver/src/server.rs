//! `TestServer`: binds a port, serves the router with hyper (own accept loop
//! so that stop/restart/refuse can cut connections), writes a kubeconfig and
//! runs the in-process controllers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::Faults;
use crate::handlers;
use crate::registry::id;
pub use crate::state::{AppState, Config};
use crate::stats::{Stats, StatsRecorder};
use crate::store::Store;

/// Builds the axum router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/testserver/stats",
            get(handlers::get_stats).delete(handlers::reset_stats),
        )
        .route(
            "/testserver/faults",
            axum::routing::post(handlers::set_faults).put(handlers::set_faults),
        )
        .fallback(handlers::dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handlers::stats_and_faults,
        ))
        .with_state(state)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

async fn serve_loop(
    mut listener: Option<TcpListener>,
    app: Router,
    faults: Faults,
    addr: SocketAddr,
) {
    let mut conns = JoinSet::new();
    let notify = faults.refuse_notify();
    loop {
        if let Some(until) = faults.refusing_until() {
            listener = None;
            conns.abort_all();
            while conns.join_next().await.is_some() {}
            faults.mark_refused();
            tokio::time::sleep_until(until.into()).await;
            continue;
        }
        faults.mark_lapsed_refusals();
        let Some(l) = listener.as_ref() else {
            match bind(addr) {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            continue;
        };
        tokio::select! {
            r = l.accept() => {
                if let Ok((stream, _)) = r {
                    let _ = stream.set_nodelay(true);
                    let svc = TowerToHyperService::new(app.clone());
                    conns.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
            _ = notify.notified() => {}
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// A running fake API server on 127.0.0.1.
pub struct TestServer {
    state: Arc<AppState>,
    kubeconfig: PathBuf,
    dir: PathBuf,
    serving: Option<JoinHandle<()>>,
    controllers: Vec<(&'static str, JoinHandle<()>)>,
}

/// Seeds the namespaces every cluster has.
fn seed(store: &Store) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = store.create(id("", "namespaces"), json!({"metadata": {"name": ns}}));
    }
}

/// Writes a kubeconfig pointing at `url` with no credentials.
pub fn write_kubeconfig(path: &Path, url: &str) -> std::io::Result<()> {
    write_kubeconfig_for(path, url, "{}")
}

fn write_kubeconfig_for(path: &Path, url: &str, user: &str) -> std::io::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testserver\n  cluster:\n    server: {url}\nusers:\n- name: testserver\n  user: {user}\ncontexts:\n- name: testserver\n  context:\n    cluster: testserver\n    user: testserver\n    namespace: default\ncurrent-context: testserver\npreferences: {{}}\n"
    );
    std::fs::write(path, text)
}

impl TestServer {
    /// Starts with [`Config::default`].
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_with(Config::default()).await
    }

    /// Starts on an ephemeral port.
    pub async fn start_with(config: Config) -> anyhow::Result<TestServer> {
        Self::start_on("127.0.0.1:0".parse()?, config, None).await
    }

    /// Starts on a given address, optionally writing the kubeconfig to `kubeconfig`.
    pub async fn start_on(
        addr: SocketAddr,
        config: Config,
        kubeconfig: Option<PathBuf>,
    ) -> anyhow::Result<TestServer> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let store = Store::new(config.watch_history);
        seed(&store);
        let state = Arc::new(AppState {
            store,
            faults: Faults::default(),
            stats: StatsRecorder::default(),
            access: Default::default(),
            config,
            addr,
        });
        let dir = crate::scratch::create_in(&std::env::temp_dir())?;
        let kubeconfig = kubeconfig.unwrap_or_else(|| dir.join("kubeconfig"));
        write_kubeconfig(&kubeconfig, &format!("http://{addr}"))?;
        let mut controllers = Vec::new();
        if state.config.binder {
            controllers.push((
                "binder",
                tokio::spawn(crate::controllers::binder::run(state.store.clone())),
            ));
        }
        if state.config.scheduler {
            controllers.push((
                "scheduler",
                tokio::spawn(crate::controllers::scheduler::run(state.store.clone())),
            ));
        }
        let serving = Some(tokio::spawn(serve_loop(
            Some(listener),
            router(state.clone()),
            state.faults.clone(),
            addr,
        )));
        Ok(TestServer {
            state,
            kubeconfig,
            dir,
            serving,
            controllers,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// A kube client for this server (plain http, no auth, namespace `default`).
    ///
    /// It keeps kube's default retry layer, which transparently retries
    /// 429/503/504 responses (up to 15 times); use [`TestServer::kube_config`]
    /// with `default_retry = false` to observe those codes directly.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config()).expect("client from config")
    }

    /// The kube client configuration used by [`TestServer::client`].
    pub fn kube_config(&self) -> kube::Config {
        let mut cfg = kube::Config::new(self.url().parse().expect("valid url"));
        cfg.default_namespace = "default".into();
        cfg
    }

    /// Path of the kubeconfig file written at start.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig whose requests carry the bearer token `user`, so
    /// [`accesses_by`](Self::accesses_by) can tell its calls apart. Nothing
    /// is authorized or denied by it. `user`: letters, digits, `-`, `_`.
    pub fn kubeconfig_as(&self, user: &str) -> std::io::Result<PathBuf> {
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("user {user:?}: use letters, digits, '-' and '_'"),
            ));
        }
        let path = self.dir.join(format!("kubeconfig-{user}"));
        write_kubeconfig_for(&path, &self.url(), &format!("{{token: {user}}}"))?;
        Ok(path)
    }

    /// The distinct API calls made with [`kubeconfig_as`](Self::kubeconfig_as)`(user)`.
    pub fn accesses_by(&self, user: &str) -> Vec<crate::access::Access> {
        self.state.access.by_user(user)
    }

    /// Stops serving: the listener is closed and open connections are cut. Data is kept.
    pub async fn stop(&mut self) {
        if let Some(h) = self.serving.take() {
            h.abort();
            let _ = h.await;
        }
    }

    /// Serves again on the same port with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let mut last = None;
        for _ in 0..100 {
            match bind(self.state.addr) {
                Ok(l) => {
                    self.serving = Some(tokio::spawn(serve_loop(
                        Some(l),
                        router(self.state.clone()),
                        self.state.faults.clone(),
                        self.state.addr,
                    )));
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(anyhow::anyhow!("rebinding {}: {:?}", self.state.addr, last))
    }

    /// Fault injection handle.
    pub fn faults(&self) -> Faults {
        self.state.faults.clone()
    }

    /// Snapshot of request counts.
    pub fn stats(&self) -> Stats {
        self.state.stats.snapshot()
    }

    /// The in-process controllers running now (`binder`, `scheduler`), by
    /// name: a disabled one was never started, so nothing it would do can
    /// happen (a test can rely on that without waiting).
    pub fn controllers_running(&self) -> Vec<&'static str> {
        (self.controllers.iter())
            .filter(|(_, task)| !task.is_finished())
            .map(|(name, _)| *name)
            .collect()
    }

    /// Zeroes request counts.
    pub fn reset_stats(&self) {
        self.state.stats.reset()
    }

    /// Direct access to the object store (bypasses HTTP, stats and faults).
    pub fn store(&self) -> Arc<Store> {
        self.state.store.clone()
    }

    /// Serves until the future completes (used by the binary).
    pub async fn wait_forever(&self) {
        std::future::pending::<()>().await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.serving.take() {
            h.abort();
        }
        for (_, c) in self.controllers.drain(..) {
            c.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
