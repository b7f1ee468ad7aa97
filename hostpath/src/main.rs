//! `hostpath-provisioner`: one instance per node (a DaemonSet), each making a
//! directory per claim scheduled to its node. See README.md.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;

use hostpath_provisioner::config::Config;
use hostpath_provisioner::roots::{ClassRooms, Layout, Roots};
use hostpath_provisioner::{capacity, provisioner::HostPath, reload};

/// Dynamic hostpath provisioner: a directory per claim on the selected node.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory under which every volume of this node is made (without
    /// `--config`; with it, the configuration's `nodePathMap` says).
    #[arg(
        long,
        env = "HOSTPATH_ROOT",
        default_value = "/var/lib/hostpath-provisioner"
    )]
    root: PathBuf,
    /// Configuration file (YAML or JSON, see README "Configuration"): the
    /// roots of each node and class. Read again every
    /// `--config-poll-interval`; a bad new one is refused and the last good
    /// one stays in force.
    #[arg(long, env = "HOSTPATH_CONFIG")]
    config: Option<PathBuf>,
    /// How often the configuration file is read again.
    #[arg(long, env = "CONFIG_POLL_INTERVAL", default_value = "10s", value_parser = external_storage::args::parse_duration)]
    config_poll_interval: std::time::Duration,
    /// The ConfigMap the configuration is mounted from (in POD_NAMESPACE):
    /// reload events are recorded on it (else on the Node).
    #[arg(long, env = "CONFIG_MAP_NAME")]
    config_map_name: Option<String>,
    /// Publish this node's free space as CSIStorageCapacity objects, so the
    /// scheduler places claims only where they fit (needs a provisioner
    /// name that is a valid CSIDriver name and a CSIDriver object with
    /// `storageCapacity: true`; see README "Capacity-aware scheduling").
    #[arg(long, env = "PUBLISH_CAPACITY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    publish_capacity: bool,
    /// How often the published free space is read again.
    #[arg(long, env = "CAPACITY_INTERVAL", default_value = "60s", value_parser = external_storage::args::parse_duration)]
    capacity_interval: std::time::Duration,
    /// How often archives (`onDelete: archive`) past their
    /// `archiveRetention` are looked for and removed.
    #[arg(long, env = "ARCHIVE_SWEEP_INTERVAL", default_value = "10m", value_parser = external_storage::args::parse_duration)]
    archive_sweep_interval: std::time::Duration,
    #[command(flatten)]
    common: external_storage::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli =
        external_storage::args::parse_command_line(hostpath_provisioner::PROVISIONER_NAME);
    let common = cli.common;
    let node = common.required_node_name()?;
    let config = match &cli.config {
        Some(path) => Config::load(path)
            .with_context(|| format!("invalid configuration {}", path.display()))?,
        None => {
            let shown = cli.root.display().to_string();
            external_storage::fields::volume_dir(&shown)
                .with_context(|| format!("--root {shown}"))?;
            Config::single_root(&cli.root)
        }
    };
    let layout = Layout::open(config, &node, None)?;
    // Capacity without a configuration is of one root: `--root`, or the
    // first root of this node's top-level entry at start.
    let main_root = match &cli.config {
        None => cli.root.clone(),
        Some(_) => (layout.config.node_path_map.paths_of(&node).ok())
            .and_then(|p| p.first().cloned())
            .unwrap_or_else(|| cli.root.clone()),
    };
    let roots = Arc::new(Roots::new(layout));
    // One client beside the controller's, with a rate limit of its own, for
    // what runs apart from the claim loop: the capacity rounds (a list and a
    // few writes each) and the events of config reloads and of archived and
    // retained volumes, all published by one `Events` from this node.
    let side_client = external_storage::args::client(common.kubeconfig.as_deref(), 5.0, 10).await?;
    let controller = common.provisioner_name.clone().unwrap_or_default();
    let events = external_storage::events::Events::new(side_client.clone(), &controller, &node);
    if let Some(path) = &cli.config {
        let object = match &cli.config_map_name {
            Some(name) => {
                external_storage::reload::config_map_ref(name, &common.leader_elect_namespace)
            }
            None => k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        tokio::spawn(reload::watch(
            reload::reloader(path),
            roots.clone(),
            node.clone(),
            events.clone(),
            object,
            cli.config_poll_interval,
        ));
    }
    if cli.publish_capacity {
        // Classes of names that cannot name a CSIDriver (such as the
        // default external-storage.io/hostpath) get no capacity; the main
        // name must be one that can.
        let main_name = common.provisioner_name.clone().unwrap_or_default();
        capacity::check_driver_name(&main_name)?;
        let mut provisioners = vec![main_name];
        provisioners.extend(
            (common.additional_provisioner_names.iter())
                .filter(|p| capacity::check_driver_name(p).is_ok())
                .cloned(),
        );
        let publisher = capacity::Publisher {
            provisioners,
            namespace: common.leader_elect_namespace.clone(),
            root: main_root.clone(),
            node: node.clone(),
            interval: cli.capacity_interval,
            quotas: hostfs::quota::UsageCollector::new(
                &main_root,
                HostPath::projects_dir(&main_root),
            ),
            rooms: cli.config.as_ref().map(|_| {
                Arc::new(ClassRooms {
                    roots: roots.clone(),
                    node: node.clone(),
                }) as Arc<dyn capacity::ClassRoom>
            }),
        };
        tokio::spawn(publisher.run(side_client));
    }
    // Used and limit bytes of every quota-enforced volume in every root in
    // force (a reload may change them), read from the kernel's project
    // quotas at each scrape.
    let in_force = roots.clone();
    let usage = hostfs::quota::UsageMetrics::new(move || {
        (in_force.current().roots())
            .map(|r| hostfs::quota::UsageCollector::new(r.path(), HostPath::projects_dir(r.path())))
            .collect()
    });
    let metrics = external_storage::Metrics::with_registry(|r| {
        r.register_collector(Box::new(usage));
    });
    // Archive and retain events go on the PV, from this node's instance.
    let hostpath = Arc::new(HostPath::with_roots(roots, node, Some(events)));
    let sweeper = hostpath.clone();
    hostfs::archive::spawn_sweeper(cli.archive_sweep_interval, move || sweeper.sweep_archives());
    external_storage::run_with_metrics(common, hostpath, metrics).await?;
    Ok(())
}
