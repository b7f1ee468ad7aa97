//! `hostpath-provisioner`: one instance per node (a DaemonSet), each making a
//! directory per claim scheduled to its node. See README.md.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use hostfs::root::Root;
use hostpath_provisioner::{capacity, provisioner::HostPath};

/// Dynamic hostpath provisioner: a directory per claim on the selected node.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory under which every volume of this node is made.
    #[arg(
        long,
        env = "HOSTPATH_ROOT",
        default_value = "/var/lib/hostpath-provisioner"
    )]
    root: PathBuf,
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
    let cli = Cli::parse();
    let common = cli
        .common
        .with_default_provisioner_name(hostpath_provisioner::PROVISIONER_NAME);
    let Some(node) = common.node_name.clone().filter(|n| !n.is_empty()) else {
        bail!("--node-name (or NODE_NAME) is required: the DaemonSet sets it from spec.nodeName");
    };
    let root = Root::open(&cli.root)
        .with_context(|| format!("cannot use {} as the volume root", cli.root.display()))?;
    if cli.publish_capacity {
        // Classes of names that cannot name a CSIDriver (such as the
        // default external-storage.io/hostpath) get no capacity; the main
        // name must be one that can.
        let main_name = common.provisioner_name.clone().unwrap_or_default();
        capacity::check_driver_name(&main_name).map_err(anyhow::Error::msg)?;
        let mut provisioners = vec![main_name];
        provisioners.extend(
            (common.additional_provisioner_names.iter())
                .filter(|p| capacity::check_driver_name(p).is_ok())
                .cloned(),
        );
        // Its own client and rate limit: a round is a list and a few writes.
        let client = external_storage::args::client(common.kubeconfig.as_deref(), 5.0, 10).await?;
        let publisher = capacity::Publisher {
            provisioners,
            namespace: common.leader_elect_namespace.clone(),
            root: cli.root.clone(),
            node: node.clone(),
            interval: cli.capacity_interval,
            quotas: hostfs::quota::UsageCollector::new(
                &cli.root,
                HostPath::projects_dir(&cli.root),
            ),
        };
        tokio::spawn(publisher.run(client));
    }
    // Used and limit bytes of every quota-enforced volume, read from the
    // kernel's project quotas at each scrape.
    let usage = hostfs::quota::UsageCollector::new(&cli.root, HostPath::projects_dir(&cli.root));
    let metrics = external_storage::Metrics::with_registry(|r| {
        r.register_collector(Box::new(usage));
    });
    // Archive and retain events go on the PV, from this node's instance.
    let events_client =
        external_storage::args::client(common.kubeconfig.as_deref(), 5.0, 10).await?;
    let controller = common.provisioner_name.clone().unwrap_or_default();
    let events = external_storage::events::Events::new(events_client, &controller, &node);
    let hostpath = std::sync::Arc::new(HostPath::new(root, node, Some(events)));
    let sweeper = hostpath.clone();
    hostfs::archive::spawn_sweeper(cli.archive_sweep_interval, move || sweeper.sweep_archives());
    external_storage::run_with_metrics(common, hostpath, metrics).await?;
    Ok(())
}
