//! The state every request handler shares (the store, fault injection,
//! request counters, the access log, the configuration), in a module of its
//! own so that the server that builds it and the handlers that read it do
//! not import each other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access::AccessLog;
use crate::faults::Faults;
use crate::stats::StatsRecorder;
use crate::store::Store;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Run the PersistentVolume binder loop.
    pub binder: bool,
    /// Run the volume-aware scheduler loop.
    pub scheduler: bool,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Number of change events kept for watch resumption.
    pub watch_history: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            binder: true,
            scheduler: true,
            bookmark_interval: Duration::from_secs(1),
            watch_history: 10_000,
        }
    }
}

/// State shared by all handlers.
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    /// Fault injection.
    pub faults: Faults,
    /// Request counters.
    pub stats: StatsRecorder,
    /// Distinct calls per user (for RBAC checks).
    pub access: AccessLog,
    /// The server's configuration (controllers on or off, watch history).
    pub config: Config,
    pub(crate) addr: SocketAddr,
}

impl AppState {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
