//! The flags every provisioner binary shares, and [`run`], which turns them
//! into a running controller.
//!
//! Two stages, like ripgrep's low/high args: [`Args`] is what clap parses
//! (every flag also from an environment variable); [`Settings`] is the
//! validated result (`TryFrom<Args>`), and only [`run`] does I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube::client::ClientBuilder;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::controller::orphans::{orphan_lease_name, OrphanPolicy};
use crate::controller::{
    default_identity, ControllerError, ControllerOptions, ProvisionController,
};
use crate::leader::LeaderElection;
use crate::provisioner::Provisioner;
use crate::ratelimit::RateLimitLayer;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The shipped `--kube-api-qps`.
pub const DEFAULT_QPS: f64 = 50.0;
/// The shipped `--kube-api-burst`.
pub const DEFAULT_BURST: u32 = 100;

/// Shared flags; put them in a binary's parser with `#[command(flatten)]`.
#[derive(Clone, Debug, Parser)]
pub struct Args {
    /// Path to a kubeconfig; in-cluster config (or ~/.kube/config) if unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Name of this provisioner, as in StorageClass `provisioner`.
    #[arg(long, env = "PROVISIONER_NAME")]
    pub provisioner_name: Option<String>,
    /// Further names this provisioner answers to (comma-separated).
    #[arg(long, env = "ADDITIONAL_PROVISIONER_NAMES", value_delimiter = ',')]
    pub additional_provisioner_names: Vec<String>,
    /// Node-local mode: serve only claims scheduled to this node and delete
    /// only PVs whose node affinity names it. Disables leader election.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Run behind leader election (cluster-wide mode).
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_elect_namespace: String,
    /// Lease name; derived from the provisioner name if unset.
    #[arg(long, env = "LEADER_ELECT_LEASE_NAME")]
    pub leader_elect_lease_name: Option<String>,
    /// How long a Lease is valid after its last renewal.
    #[arg(long, env = "LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// The leader renews within this time or steps down.
    #[arg(long, env = "LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// Wait between leader-election attempts after an error.
    #[arg(long, env = "LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Address of the /metrics, /healthz, /readyz server; empty disables it.
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_address: String,
    /// Concurrent reconciles per loop (claims, volumes).
    #[arg(long, env = "WORKER_THREADS", default_value_t = 4)]
    pub worker_threads: u16,
    /// Average API requests per second; 0 disables the limit. The default
    /// (kube-scheduler's) is chosen in docs/performance.md ("Shipped
    /// client limits").
    #[arg(long, env = "KUBE_API_QPS", default_value_t = DEFAULT_QPS)]
    pub kube_api_qps: f64,
    /// API request burst above the average.
    #[arg(long, env = "KUBE_API_BURST", default_value_t = DEFAULT_BURST)]
    pub kube_api_burst: u32,
    /// Publish the Normal `Provisioning` event before each provisioning
    /// (`ProvisioningSucceeded` / `ProvisioningFailed` follow either way);
    /// worth a request per volume for slow backends only.
    #[arg(long, env = "PROVISIONING_EVENT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub provisioning_event: bool,
    /// Put a finalizer on provisioned PVs so deleting the PV object cannot
    /// skip deleting the backend volume.
    #[arg(long, env = "ADD_FINALIZER", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub add_finalizer: bool,
    /// First retry delay after a failure (doubles up to the max).
    #[arg(long, env = "RETRY_INTERVAL_START", default_value = "15s", value_parser = parse_duration)]
    pub retry_interval_start: Duration,
    /// Longest retry delay.
    #[arg(long, env = "RETRY_INTERVAL_MAX", default_value = "1000s", value_parser = parse_duration)]
    pub retry_interval_max: Duration,
    /// Retry delay for infeasible requests.
    #[arg(long, env = "INFEASIBLE_RETRY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub infeasible_retry_interval: Duration,
    /// Failed provisioning attempts before giving up on a claim until it
    /// changes; 0 = retry forever.
    #[arg(long, env = "FAILED_PROVISION_THRESHOLD", default_value_t = 15)]
    pub failed_provision_threshold: u32,
    /// Failed delete attempts before giving up on a PV until it changes;
    /// 0 = retry forever.
    #[arg(long, env = "FAILED_DELETE_THRESHOLD", default_value_t = 15)]
    pub failed_delete_threshold: u32,
    /// Delete the PV objects pinned (by `kubernetes.io/hostname` node
    /// affinity) to a node that has been deleted for this long, without
    /// interruption: their data is unreachable, and a bound claim can then
    /// be re-created on another node. Only PVs provisioned by this
    /// provisioner, never `Retain` ones, and no data is touched. One
    /// instance sweeps, holding the Lease `<lease name>-orphans` in
    /// `--leader-elect-namespace`. Absent or 0 = off.
    #[arg(long, env = "DELETE_VOLUMES_OF_DELETED_NODES_AFTER", value_parser = parse_duration)]
    pub delete_volumes_of_deleted_nodes_after: Option<Duration>,
    /// For a provisioner whose backend records provisioning intent itself
    /// (hostpath, nfs): how long a backend volume may stay without its PV
    /// before the intent sweep checks, with live reads, whether its claim
    /// is gone and removes it. Longer than any provisioning takes and
    /// than the PV save's retries (refused otherwise); a volume whose claim
    /// still waits for it is never removed.
    #[arg(long, env = "PENDING_VOLUME_GRACE", default_value = "10m", value_parser = parse_duration)]
    pub pending_volume_grace: Duration,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Parses a provisioner binary's command line: its own clap struct `C`,
/// which flattens [`Args`], with `default_name` as `--provisioner-name`'s
/// default (shown in `--help`). An empty `--provisioner-name` or
/// `PROVISIONER_NAME` (a chart value left blank) also means the default.
/// Bad input exits with clap's message, as `C::parse()` would.
pub fn parse_command_line<C: Parser>(default_name: &'static str) -> C {
    parse_command_line_from(default_name, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse_command_line`] of `args` (the first is the program's name).
pub fn parse_command_line_from<C, I, T>(
    default_name: &'static str,
    args: I,
) -> Result<C, clap::Error>
where
    C: Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let or_default = move |v: &str| -> Result<String, std::convert::Infallible> {
        Ok(if v.is_empty() { default_name } else { v }.to_string())
    };
    let mut matches = C::command()
        .mut_arg("provisioner_name", |a| {
            a.default_value(default_name).value_parser(or_default)
        })
        .try_get_matches_from(args)?;
    C::from_arg_matches_mut(&mut matches)
}

impl Args {
    /// The node of a node-local provisioner (one pod per node, from a
    /// DaemonSet): `--node-name`, which such a provisioner cannot run
    /// without. The error says where the DaemonSet sets it.
    pub fn required_node_name(&self) -> Result<String, RunError> {
        (self.node_name.clone().filter(|n| !n.is_empty())).ok_or_else(|| {
            RunError::InvalidArgs(
                "--node-name (or NODE_NAME) is required: the DaemonSet sets it from spec.nodeName"
                    .into(),
            )
        })
    }
}

/// Why a duration flag or parameter does not parse; each names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number where one was expected.
    #[error("invalid duration {0:?}: expected e.g. 500ms, 15s, 2m, 1h")]
    NotANumber(String),
    /// A unit other than `ms`, `s`, `m` or `h`.
    #[error("invalid duration unit in {0:?}: use ms, s, m or h")]
    Unit(String),
    /// Negative, infinite or too large to be a duration.
    #[error("invalid duration {0:?}: out of range")]
    OutOfRange(String),
}

/// Parse `500ms`, `15s`, `2m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| DurationError::NotANumber(s.to_string()))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(DurationError::Unit(s.to_string())),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| DurationError::OutOfRange(s.to_string()))
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    /// Controller options.
    pub options: ControllerOptions,
    /// Kubeconfig path, if any.
    pub kubeconfig: Option<PathBuf>,
    /// Metrics server address, if enabled.
    pub metrics_address: Option<SocketAddr>,
    /// API rate limit (qps, burst).
    pub rate_limit: (f64, u32),
    /// Log format.
    pub log_format: LogFormat,
}

/// Why the flags are unusable, or the provisioner cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A flag value is invalid; the message names it.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// The kubeconfig could not be read.
    #[error("reading kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// No in-cluster config and no usable kubeconfig.
    #[error("finding Kubernetes client configuration (set --kubeconfig?): {0}")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("building Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The metrics address could not be bound.
    #[error("binding metrics address {addr}: {source}")]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// Why the address could not be bound (in use, not permitted, ...).
        #[source]
        source: std::io::Error,
    },
    /// The controller stopped with an error.
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

impl TryFrom<Args> for Settings {
    type Error = RunError;

    fn try_from(a: Args) -> Result<Self, RunError> {
        let bad = |m: String| Err(RunError::InvalidArgs(m));
        let name = a.provisioner_name.clone().unwrap_or_default();
        if name.is_empty() {
            return bad("--provisioner-name (PROVISIONER_NAME) is required".into());
        }
        if a.worker_threads == 0 {
            return bad("--worker-threads must be at least 1".into());
        }
        if a.retry_interval_start.is_zero() || a.retry_interval_max < a.retry_interval_start {
            return bad("--retry-interval-start must be > 0 and <= --retry-interval-max".into());
        }
        if a.leader_elect_renew_deadline >= a.leader_elect_lease_duration {
            return bad(
                "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration"
                    .into(),
            );
        }
        if a.kube_api_qps < 0.0 || !a.kube_api_qps.is_finite() {
            return bad("--kube-api-qps must be >= 0".into());
        }
        let node_name = a.node_name.clone().filter(|n| !n.is_empty());
        let metrics_address = if a.metrics_address.is_empty() {
            None
        } else {
            let s = if a.metrics_address.starts_with(':') {
                format!("0.0.0.0{}", a.metrics_address)
            } else {
                a.metrics_address.clone()
            };
            Some(s.parse().map_err(|e| {
                RunError::InvalidArgs(format!("--metrics-address {:?}: {e}", a.metrics_address))
            })?)
        };
        let identity = default_identity();
        let mut options = ControllerOptions::new(name.clone());
        options.additional_provisioner_names = a
            .additional_provisioner_names
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        // Node-local instances each own their node: nothing to elect.
        options.leader_election = (a.leader_elect && node_name.is_none()).then(|| {
            let mut le =
                LeaderElection::new(&name, a.leader_elect_namespace.clone(), identity.clone());
            if let Some(n) = a.leader_elect_lease_name.clone() {
                le.lease_name = n;
            }
            le.lease_duration = a.leader_elect_lease_duration;
            le.renew_deadline = a.leader_elect_renew_deadline;
            le.retry_period = a.leader_elect_retry_period;
            le
        });
        // The deleted-node sweep has a Lease of its own in every mode: in
        // node-local mode there is no other election to lean on.
        options.orphans = a.delete_volumes_of_deleted_nodes_after.and_then(|grace| {
            let mut le =
                LeaderElection::new(&name, a.leader_elect_namespace.clone(), identity.clone());
            le.lease_name = orphan_lease_name(&name);
            le.lease_duration = a.leader_elect_lease_duration;
            le.renew_deadline = a.leader_elect_renew_deadline;
            le.retry_period = a.leader_elect_retry_period;
            OrphanPolicy::new(grace, Some(le))
        });
        options.node_name = node_name;
        options.workers = a.worker_threads;
        options.add_finalizer = a.add_finalizer;
        options.provisioning_event = a.provisioning_event;
        options.retry_interval_start = a.retry_interval_start;
        options.retry_interval_max = a.retry_interval_max;
        options.infeasible_retry_interval = a.infeasible_retry_interval;
        options.failed_provision_threshold = a.failed_provision_threshold;
        options.failed_delete_threshold = a.failed_delete_threshold;
        if a.pending_volume_grace.is_zero() {
            return Err(RunError::InvalidArgs(
                "--pending-volume-grace must be longer than any provisioning takes, not 0".into(),
            ));
        }
        let budget = crate::controller::intent_sweep::save_retry_budget(
            options.pv_save_retries,
            options.pv_save_retry_interval,
            options.retry_interval_max,
        );
        if a.pending_volume_grace <= budget {
            return Err(RunError::InvalidArgs(format!(
                "--pending-volume-grace ({:?}) must be longer than a PV save's retries may take ({budget:?}, from --retry-interval-max), or a volume whose PV is still being saved could be removed",
                a.pending_volume_grace
            )));
        }
        options.pending_volume_grace = a.pending_volume_grace;
        options.identity = identity;
        Ok(Settings {
            options,
            kubeconfig: a.kubeconfig,
            metrics_address,
            rate_limit: (a.kube_api_qps, a.kube_api_burst),
            log_format: a.log_format,
        })
    }
}

/// Install the global tracing subscriber (`RUST_LOG`, default `info`).
/// Colours only when stdout is a terminal: in a pod, `kubectl logs` and log
/// collectors would otherwise show raw escape codes.
/// Does nothing if one is installed already.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A client for `kubeconfig` (or the inferred config) with the rate limit.
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    qps: f64,
    burst: u32,
) -> Result<Client, RunError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(RunError::Kubeconfig)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(RunError::Kubeconfig)?
        }
        None => kube::Config::infer().await.map_err(RunError::InferConfig)?,
    };
    Ok(ClientBuilder::try_from(config)
        .map_err(RunError::Client)?
        .with_layer(&RateLimitLayer::new(qps, burst))
        .build())
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received; finishing running operations");
        t.cancel();
    });
    token
}

/// Run a provisioner with the shared flags until SIGTERM/SIGINT: logging,
/// rate-limited client, metrics server, leader election or node-local mode.
pub async fn run<P: Provisioner>(args: Args, provisioner: P) -> Result<(), RunError> {
    run_until(args, provisioner, shutdown_on_signals()).await
}

/// Like [`run`], but stops when `shutdown` is cancelled instead of on signals.
pub async fn run_until<P: Provisioner>(
    args: Args,
    provisioner: P,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    run_serving(args, provisioner, shutdown, None).await
}

/// Like [`run`], with the provisioner's own metrics on `/metrics`: build
/// `metrics` with [`Metrics::with_registry`](crate::Metrics::with_registry)
/// (gauges, counters, or a
/// [`Collector`](prometheus_client::collector::Collector) that reads its
/// values at scrape time); the controller records its own metrics in the
/// same registry.
pub async fn run_with_metrics<P: Provisioner>(
    args: Args,
    provisioner: P,
    metrics: crate::Metrics,
) -> Result<(), RunError> {
    run_serving(args, provisioner, shutdown_on_signals(), Some(metrics)).await
}

async fn run_serving<P: Provisioner>(
    args: Args,
    provisioner: P,
    shutdown: CancellationToken,
    metrics: Option<crate::Metrics>,
) -> Result<(), RunError> {
    init_tracing(args.log_format);
    let settings = Settings::try_from(args)?;
    let (qps, burst) = settings.rate_limit;
    let client = client(settings.kubeconfig.as_deref(), qps, burst).await?;
    let mut controller = ProvisionController::new(client, provisioner, settings.options);
    if let Some(m) = metrics {
        controller = controller.with_metrics(std::sync::Arc::new(m));
    }
    if let Some(addr) = settings.metrics_address {
        let (bound, _) = crate::http::serve(
            addr,
            controller.metrics(),
            controller.ready_flag(),
            shutdown.clone(),
        )
        .await
        .map_err(|source| RunError::MetricsBind { addr, source })?;
        tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    }
    controller.run(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let mut v = vec!["prov"];
        v.extend_from_slice(args);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("5d"), Err(DurationError::Unit("5d".into())));
        assert_eq!(
            parse_duration("x"),
            Err(DurationError::NotANumber("x".into()))
        );
        assert_eq!(
            parse_duration("-5s"),
            Err(DurationError::NotANumber("-5s".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            Err(DurationError::OutOfRange("99999999999999999999999h".into()))
        );
    }

    #[test]
    fn defaults_are_cluster_wide_with_leader_election() {
        let s = Settings::try_from(parse(&["--provisioner-name", "example.com/hostpath"])).unwrap();
        let le = s.options.leader_election.unwrap();
        assert_eq!(le.lease_name, "example-com-hostpath");
        assert_eq!(le.lease_duration, Duration::from_secs(15));
        assert_eq!(s.options.workers, 4);
        assert_eq!(s.options.failed_provision_threshold, 15);
        assert_eq!(s.metrics_address, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(!s.options.add_finalizer);
        assert!(!s.options.provisioning_event);
        assert_eq!(s.rate_limit, (DEFAULT_QPS, DEFAULT_BURST));
    }

    #[test]
    fn a_grace_period_shorter_than_the_pv_save_retries_is_refused() {
        let grace = |g: &str, max: &str| {
            Settings::try_from(parse(&[
                "--provisioner-name",
                "p",
                "--pending-volume-grace",
                g,
                "--retry-interval-start",
                "100ms",
                "--retry-interval-max",
                max,
            ]))
        };
        // Save retries: 1 s, then 2 s three times (7 s in all).
        let e = grace("7s", "2s").unwrap_err().to_string();
        assert!(e.contains("--pending-volume-grace"), "{e}");
        let s = grace("8s", "2s").unwrap();
        assert_eq!(s.options.pending_volume_grace, Duration::from_secs(8));
        assert!(grace("0s", "2s").is_err());
        // The defaults (1 + 2 + 4 + 8 s) leave the default 10 min alone.
        assert!(Settings::try_from(parse(&["--provisioner-name", "p"])).is_ok());
    }

    #[test]
    fn node_local_disables_leader_election() {
        let s = Settings::try_from(parse(&[
            "--provisioner-name",
            "p",
            "--node-name",
            "n1",
            "--add-finalizer",
            "--additional-provisioner-names",
            "a,b",
            "--metrics-address",
            "",
        ]))
        .unwrap();
        assert!(s.options.leader_election.is_none());
        assert_eq!(s.options.node_name.as_deref(), Some("n1"));
        assert!(s.options.add_finalizer);
        assert_eq!(s.options.additional_provisioner_names, vec!["a", "b"]);
        assert_eq!(s.metrics_address, None);
    }

    #[test]
    fn a_node_local_provisioner_needs_its_node_name() {
        let named = parse(&["--node-name", "n1"]);
        assert_eq!(named.required_node_name().unwrap(), "n1");
        for args in [&[][..], &["--node-name", ""][..]] {
            let e = parse(args).required_node_name().unwrap_err();
            assert!(e.to_string().contains("--node-name"), "{e}");
        }
    }

    #[test]
    fn deleting_volumes_of_deleted_nodes_is_off_unless_asked() {
        let off = |args: &[&str]| {
            let mut v = vec![
                "--provisioner-name",
                "example.com/hostpath",
                "--node-name",
                "n1",
            ];
            v.extend_from_slice(args);
            Settings::try_from(parse(&v)).unwrap().options.orphans
        };
        assert_eq!(off(&[]), None);
        assert_eq!(off(&["--delete-volumes-of-deleted-nodes-after", "0"]), None);
        let p = off(&[
            "--delete-volumes-of-deleted-nodes-after",
            "10m",
            "--leader-elect-namespace",
            "ns",
        ])
        .unwrap();
        assert_eq!(p.grace, Duration::from_secs(600));
        let le = p.lease.unwrap();
        assert_eq!(le.lease_name, "example-com-hostpath-orphans");
        assert_eq!(le.namespace, "ns");
        assert!(
            Args::try_parse_from(["p", "--delete-volumes-of-deleted-nodes-after", "5d"]).is_err()
        );
    }

    #[test]
    fn leader_elect_can_be_turned_off() {
        let s = Settings::try_from(parse(&[
            "--provisioner-name",
            "p",
            "--leader-elect",
            "false",
        ]))
        .unwrap();
        assert!(s.options.leader_election.is_none());
    }

    #[test]
    fn invalid_settings_name_the_flag() {
        let e = Settings::try_from(parse(&[])).unwrap_err();
        assert!(e.to_string().contains("--provisioner-name"), "{e}");
        let e = Settings::try_from(parse(&["--provisioner-name", "p", "--worker-threads", "0"]))
            .unwrap_err();
        assert!(e.to_string().contains("--worker-threads"), "{e}");
        let e = Settings::try_from(parse(&[
            "--provisioner-name",
            "p",
            "--leader-elect-renew-deadline",
            "20s",
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("renew-deadline"), "{e}");
        let s: Args = parse_command_line_from("d", ["prov"]).unwrap();
        assert_eq!(s.provisioner_name.as_deref(), Some("d"));
    }

    /// A binary's own flags beside the shared ones, as the provisioners
    /// have them.
    #[derive(Debug, Parser)]
    struct BinaryCli {
        #[arg(long, default_value = "/x")]
        root: PathBuf,
        #[command(flatten)]
        common: Args,
    }

    #[test]
    fn a_binary_command_line_gets_its_default_provisioner_name() {
        let parse = |args: &[&str]| {
            parse_command_line_from::<BinaryCli, _, _>(
                "example.com/d",
                std::iter::once("bin").chain(args.iter().copied()),
            )
        };
        let name = |c: BinaryCli| c.common.provisioner_name;
        assert_eq!(name(parse(&[]).unwrap()).as_deref(), Some("example.com/d"));
        let given = parse(&["--provisioner-name", "mine", "--root", "/r"]).unwrap();
        assert_eq!(given.root, PathBuf::from("/r"));
        assert_eq!(name(given).as_deref(), Some("mine"));
        assert_eq!(
            name(parse(&["--provisioner-name="]).unwrap()).as_deref(),
            Some("example.com/d"),
            "an empty name means the default"
        );
        let e = parse(&["--no-such-flag"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = help.render().to_string();
        assert!(help.contains("[default: example.com/d]"), "{help}");
    }
}
