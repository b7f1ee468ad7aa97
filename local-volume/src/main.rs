//! `local-volume-provisioner`: one instance per node (a DaemonSet). Parses
//! the flags and the config, then runs the library's controller (node-local
//! mode: deletion = cleaning) and the discovery loop under one shutdown
//! token. See README.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use external_storage::args::{client, init_tracing, parse_duration, shutdown_on_signals};
use external_storage::{ProvisionController, Settings};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use local_volume_provisioner::config::Config;
use local_volume_provisioner::discovery::Discovery;
use local_volume_provisioner::labels::NODE_LABEL;
use local_volume_provisioner::metrics::LocalMetrics;
use local_volume_provisioner::pv::NodeInfo;
use local_volume_provisioner::reload;
use local_volume_provisioner::state::StateDir;
use local_volume_provisioner::volumes::{LocalVolumes, Volumes};

/// Static local-volume provisioner: PVs for the disks under discovery directories.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The configuration: a YAML file, or a directory with one file per key
    /// (a ConfigMap mounted as a volume).
    #[arg(
        long,
        env = "LOCAL_VOLUME_CONFIG",
        default_value = "/etc/provisioner/config"
    )]
    config: PathBuf,
    /// Re-read the configuration before every discovery pass and put a
    /// valid new one in force without a restart (a refused one is reported
    /// and the last good one stays).
    #[arg(long, env = "CONFIG_RELOAD", default_value_t = true, action = clap::ArgAction::Set)]
    config_reload: bool,
    /// The ConfigMap the configuration is mounted from (in POD_NAMESPACE):
    /// reload events are recorded on it (else on the Node).
    #[arg(long, env = "CONFIG_MAP_NAME")]
    config_map_name: Option<String>,
    /// Host directory (mounted at the same path) recording which volumes may
    /// hold data; must survive restarts of the pod.
    #[arg(
        long,
        env = "STATE_DIR",
        default_value = "/var/lib/local-volume-provisioner"
    )]
    state_dir: PathBuf,
    /// Time between discovery passes.
    #[arg(long, env = "DISCOVERY_PERIOD", default_value = "10s", value_parser = parse_duration)]
    discovery_period: Duration,
    /// Longest a block cleaner may run before it is killed (and retried).
    #[arg(long, env = "BLOCK_CLEANER_TIMEOUT", default_value = "6h", value_parser = parse_duration)]
    block_cleaner_timeout: Duration,
    #[command(flatten)]
    common: external_storage::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli =
        external_storage::args::parse_command_line(local_volume_provisioner::PROVISIONER_NAME);
    let common = cli.common;
    init_tracing(common.log_format);
    let config = Config::load(&cli.config)
        .with_context(|| format!("invalid configuration {}", cli.config.display()))?;
    if config.use_node_name_only {
        tracing::info!("useNodeNameOnly has no effect: PVs are tied to their node by label, not by provisioner name");
    }
    let node_name = common.required_node_name()?;
    if cli.discovery_period.is_zero() {
        bail!("--discovery-period must be greater than zero");
    }
    let state = StateDir::open(&cli.state_dir)
        .with_context(|| format!("cannot use state directory {}", cli.state_dir.display()))?;
    config
        .check_state_dir(state.path())
        .with_context(|| format!("invalid configuration {}", cli.config.display()))?;
    let config_namespace = common.leader_elect_namespace.clone();
    let mut settings = Settings::try_from(common)?;
    let (qps, burst) = settings.rate_limit;
    let client = client(settings.kubeconfig.as_deref(), qps, burst).await?;
    let node = Api::<Node>::all(client.clone())
        .get(&node_name)
        .await
        .with_context(|| {
            format!("reading Node {node_name} (its labels go into the PVs' node affinity)")
        })?;
    let node = NodeInfo::from_node(&node);
    settings.options.node_hostname = Some(node.hostname.clone());
    // Static: the library only deletes (cleans) released PVs, so it watches
    // no claims, and only this node's PVs (those this instance labelled):
    // each DaemonSet pod caches its node's share, not the whole cluster's.
    settings.options.watch_claims = false;
    settings.options.pv_label_selector = Some(format!("{NODE_LABEL}={}", node.label_value()));
    let shutdown = shutdown_on_signals();

    let (lib_metrics, local_metrics) = LocalMetrics::with_library();
    let local_metrics = Arc::new(local_metrics);
    let volumes = Arc::new(Volumes::new(
        config,
        node,
        state,
        local_metrics.clone(),
        cli.block_cleaner_timeout,
        Some(client.clone()),
    ));
    let scope = settings.options.scope();
    let identity = settings.options.identity.clone();
    let controller = ProvisionController::with_shared(
        client.clone(),
        Arc::new(LocalVolumes(volumes.clone())),
        settings.options,
    )
    .with_metrics(Arc::new(lib_metrics));
    let mut discovery = Discovery::start(client, volumes, scope, &identity, &shutdown);
    if cli.config_reload {
        let object = (cli.config_map_name.as_deref())
            .map(|name| external_storage::reload::config_map_ref(name, &config_namespace));
        discovery = discovery.with_reload(reload::reloader(&cli.config), object);
    }
    if let Some(addr) = settings.metrics_address {
        let (bound, _) = external_storage::http::serve_all_ready(
            addr,
            controller.metrics(),
            vec![controller.ready_flag(), discovery.ready.clone()],
            shutdown.clone(),
        )
        .await
        .with_context(|| format!("binding metrics address {addr}"))?;
        tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    }
    let period = cli.discovery_period;
    let (ctrl, ()) = tokio::join!(
        controller.run(shutdown.clone()),
        discovery.run(period, shutdown.clone())
    );
    ctrl?;
    Ok(())
}
