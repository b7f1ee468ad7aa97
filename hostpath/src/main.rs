//! `hostpath-provisioner`: one instance per node (a DaemonSet), each making a
//! directory per claim scheduled to its node. See README.md.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use hostpath_provisioner::{fsroot::Root, provisioner::HostPath};

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
    // Used and limit bytes of every quota-enforced volume, read from the
    // kernel's project quotas at each scrape.
    let usage = hostpath_provisioner::quota::UsageCollector::new(
        &cli.root,
        HostPath::projects_dir(&cli.root),
    );
    let metrics = external_storage::Metrics::with_registry(|r| {
        r.register_collector(Box::new(usage));
    });
    external_storage::run_with_metrics(common, HostPath::new(root, node), metrics).await?;
    Ok(())
}
