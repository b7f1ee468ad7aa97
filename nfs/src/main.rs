//! `nfs-provisioner`: runs NFS-Ganesha over the export root and provisions
//! an export per claim. See README.md.
//!
//! Start-up order: open the export root and its identity, find the server
//! address, start the supervised server, and only once it is ready (every
//! recorded export live again) start the provisioning controller. `/readyz`
//! is green only while both run and the server answers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use external_storage::args::{self, parse_duration, Settings};
use external_storage::ProvisionController;
use nfs_provisioner::address;
use nfs_provisioner::export_disk;
use nfs_provisioner::exports::ExportRoot;
use nfs_provisioner::ganesha::{ClientList, CoreConfig};
use nfs_provisioner::node_clients;
use nfs_provisioner::provisioner::Nfs;
use nfs_provisioner::seccomp;
use nfs_provisioner::server::{Server, ServerConfig};

/// NFS provisioner: an NFS-Ganesha server in a pod, an export per claim.
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
struct Cli {
    /// Directory holding every volume (the pod's volume); exports are its
    /// subdirectories, bookkeeping is in its `.nfs-provisioner/`.
    #[arg(long, env = "EXPORT_ROOT", default_value = "/export")]
    export_root: PathBuf,
    /// Runtime files (rendered configs, D-Bus socket, pid file).
    #[arg(long, env = "RUN_DIR", default_value = "/run/nfs-provisioner")]
    run_dir: PathBuf,
    /// Server address written into PVs; overrides the Service lookup.
    #[arg(long, env = "NFS_SERVER")]
    server: Option<String>,
    /// Service whose ClusterIP is the server address (recommended: it
    /// survives pod restarts).
    #[arg(long, env = "SERVICE_NAME")]
    service_name: Option<String>,
    /// Namespace of that Service.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    service_namespace: String,
    /// The claim holding the export root, in POD_NAMESPACE (the
    /// StatefulSet's `export-<pod>`). At start its PV's reclaim policy is
    /// set to Retain, so deleting the namespace or the claim never deletes
    /// the disk with every volume's data. Unset: nothing is changed.
    #[arg(long, env = "EXPORT_CLAIM")]
    export_claim: Option<String>,
    /// Fallback server address (unstable across pod restarts).
    #[arg(long, env = "POD_IP")]
    pod_ip: Option<String>,
    /// Who may mount besides the Nodes: comma-separated IP addresses and
    /// CIDR networks, written into every export (and the NFSv4 pseudo
    /// root) with the Nodes' addresses. Empty by default: only the Nodes
    /// mount (the kubelet mounts from its node's address). Add the
    /// addresses your nodes mount from when they are not on their Node
    /// objects (docs/security.md).
    #[arg(long, env = "ALLOWED_CLIENTS", value_parser = ClientList::parse)]
    allowed_clients: Option<ClientList>,
    /// Admit the cluster's Nodes: every Node's InternalIP and ExternalIP
    /// and the gateway addresses of its pod CIDRs, watched live (a node
    /// added gets in, a deleted one is cut off). `false` admits only
    /// `--allowed-clients`.
    #[arg(long, env = "ADMIT_NODES", default_value_t = true, action = clap::ArgAction::Set)]
    admit_nodes: bool,
    /// With `--admit-nodes`: also admit the first two addresses of each
    /// Node's pod CIDRs (the CNI bridge's gateway and an overlay's tunnel,
    /// where kube-proxy's masquerade puts a kubelet's mount). Turn it off
    /// when your CNI's IPAM ignores the Nodes' podCIDRs (Calico IPAM,
    /// Cilium cluster-pool): a pod could then hold such an address.
    #[arg(long, env = "ADMIT_POD_CIDR_GATEWAYS", default_value_t = true, action = clap::ArgAction::Set)]
    admit_pod_cidr_gateways: bool,
    /// Address Ganesha listens on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// NFS port.
    #[arg(long, env = "NFS_PORT", default_value_t = 2049)]
    nfs_port: u16,
    /// MOUNT (mountd) port.
    #[arg(long, env = "MOUNT_PORT", default_value_t = 20048)]
    mount_port: u16,
    /// NFSv4 grace period in seconds after a (re)start, 0-180; 0 skips it
    /// (tests only: clients cannot reclaim state then).
    #[arg(long, env = "GRACE_PERIOD", default_value_t = 90, value_parser = clap::value_parser!(u32).range(0..=180))]
    grace_period: u32,
    /// Time between health probes of the server.
    #[arg(long, env = "PROBE_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    probe_interval: Duration,
    /// How long a starting server may go without answering and without
    /// using CPU before it is restarted (a busy one, reading thousands of
    /// exports, is waited for up to 30 minutes).
    #[arg(long, env = "START_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    start_timeout: Duration,
    /// How long an unresponsive server is tolerated before a restart.
    #[arg(long, env = "UNRESPONSIVE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    unresponsive_timeout: Duration,
    /// `ganesha.nfsd` executable.
    #[arg(long, env = "GANESHA_BINARY", default_value = "ganesha.nfsd")]
    ganesha_binary: PathBuf,
    /// `dbus-daemon` executable.
    #[arg(long, env = "DBUS_DAEMON_BINARY", default_value = "dbus-daemon")]
    dbus_daemon_binary: PathBuf,
    /// `rpcbind` executable (started only when nothing answers on port 111).
    #[arg(long, env = "RPCBIND_BINARY", default_value = "rpcbind")]
    rpcbind_binary: PathBuf,
    /// How often archives (`onDelete: archive`) past their
    /// `archiveRetention` are looked for and removed.
    #[arg(long, env = "ARCHIVE_SWEEP_INTERVAL", default_value = "10m", value_parser = args::parse_duration)]
    archive_sweep_interval: Duration,
    #[command(flatten)]
    common: external_storage::Args,
    #[command(subcommand)]
    command: Option<Command>,
}

/// One-shot tasks instead of serving.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Writes the NFS container's seccomp profile to
    /// DIR/external-storage/nfs-ganesha.json (atomically; nothing is written
    /// when it is already there) and exits. DIR is the kubelet's seccomp
    /// directory, `<kubelet root>/seccomp`.
    InstallSeccompProfile {
        /// The kubelet's seccomp directory (as mounted in this container).
        #[arg(long, default_value = "/var/lib/kubelet/seccomp")]
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = external_storage::args::parse_command_line(nfs_provisioner::PROVISIONER_NAME);
    if let Some(Command::InstallSeccompProfile { dir }) = &cli.command {
        return match seccomp::install(dir)? {
            seccomp::Installed::Written(path) => {
                println!("seccomp profile written to {}", path.display());
                Ok(())
            }
            seccomp::Installed::Unchanged(path) => {
                println!("seccomp profile at {} is current", path.display());
                Ok(())
            }
        };
    }
    let mut common = cli.common;
    // One server, one disk: there is no standby that could take over the
    // volumes, so there is nothing to elect.
    common.leader_elect = false;
    if common.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
        bail!("--node-name/NODE_NAME must not be set: the NFS provisioner serves claims of every node");
    }
    args::init_tracing(common.log_format);
    let settings = Settings::try_from(common)?;

    let extra = cli.allowed_clients.clone().unwrap_or_default();
    if !cli.admit_nodes && extra.is_empty() {
        bail!("--admit-nodes=false without --allowed-clients: no client could mount any volume");
    }
    if extra.admits_everyone() {
        tracing::warn!(
            clients = %extra,
            "--allowed-clients admits every address: any host that reaches the server can mount every volume"
        );
    }
    let (qps, burst) = settings.rate_limit;
    let client = args::client(settings.kubeconfig.as_deref(), qps, burst).await?;
    // The first list of Nodes, so the exports admit them from the start.
    let clients = if cli.admit_nodes {
        match node_clients::initial(&client, &extra, cli.admit_pod_cidr_gateways).await {
            Ok(list) => list,
            // The API server is away: serve the existing mounts to whom the
            // exports admitted before; the Node watch corrects it later.
            Err(error) => match ExportRoot::saved_clients(&cli.export_root) {
                Some(saved) => {
                    tracing::warn!(%error, clients = %saved, "cannot list the Nodes; starting with the client list the exports were last rendered for");
                    saved.union(&extra)
                }
                None => {
                    return Err(anyhow::Error::new(error).context("listing the Nodes, whose addresses may mount (RBAC: list nodes; or --admit-nodes=false with --allowed-clients)"))
                }
            },
        }
    } else {
        extra.clone()
    };
    let root = Arc::new(
        ExportRoot::open(&cli.export_root, clients).with_context(|| {
            format!(
                "cannot use {} as the export root",
                cli.export_root.display()
            )
        })?,
    );
    let identity = root
        .identity()
        .context("reading this instance's identity")?;
    let source = address::choose(
        cli.server.as_deref(),
        cli.service_name.as_deref(),
        &cli.service_namespace,
        cli.pod_ip.as_deref(),
    )?;
    let server_address = address::resolve(&source, &client).await?;
    if let Some(claim) = cli.export_claim.as_deref().filter(|c| !c.is_empty()) {
        // Serving goes on either way; the data is only at risk if the
        // namespace is deleted, so this is a loud warning, not a stop.
        match export_disk::retain(&client, &cli.service_namespace, claim).await {
            Ok(export_disk::Outcome::Retained { pv, was }) => {
                tracing::info!(%pv, %was, "the export disk's PV is Retain now: deleting the namespace or its claim keeps every volume's data")
            }
            Ok(export_disk::Outcome::AlreadyRetained { pv }) => {
                tracing::info!(%pv, "the export disk's PV is Retain")
            }
            Err(error) => {
                tracing::warn!(%error, "cannot make the export disk's PV Retain: deleting the namespace may delete every volume's data")
            }
        }
    }
    tracing::info!(root = %root.path().display(), identity, server = server_address, clients = %root.clients(), "starting");

    let shutdown = args::shutdown_on_signals();
    let server = Arc::new(Server::new(
        ServerConfig {
            core: CoreConfig {
                bind: cli.bind_address,
                nfs_port: cli.nfs_port,
                mount_port: cli.mount_port,
                grace_period: cli.grace_period,
            },
            run_dir: cli.run_dir,
            ganesha: cli.ganesha_binary,
            dbus_daemon: cli.dbus_daemon_binary,
            rpcbind: cli.rpcbind_binary,
            probe_interval: cli.probe_interval,
            start_timeout: cli.start_timeout,
            unresponsive_timeout: cli.unresponsive_timeout,
        },
        root.clone(),
    ));
    let supervisor = tokio::spawn(server.clone().run(shutdown.clone()));
    if cli.admit_nodes {
        tokio::spawn(node_clients::follow(
            client.clone(),
            extra,
            cli.admit_pod_cidr_gateways,
            server.clone(),
            shutdown.clone(),
        ));
    }

    let controller_name = settings.options.provisioner_name.clone();
    let events = external_storage::events::Events::new(client.clone(), &controller_name, &identity);
    let provisioner = Arc::new(Nfs::new(
        root,
        server.clone(),
        identity,
        server_address,
        Some(events),
    ));
    let sweeper = provisioner.clone();
    hostfs::archive::spawn_sweeper(cli.archive_sweep_interval, move || sweeper.sweep_archives());
    // Used and limit bytes of every enforceCapacity volume, from the kernel's
    // project quotas at each scrape.
    let usage = hostfs::quota::UsageCollector::new(
        &cli.export_root,
        nfs_provisioner::provisioner::projects_dir(&cli.export_root),
    );
    let metrics = external_storage::Metrics::with_registry(|r| {
        r.register_collector(Box::new(usage));
    });
    let controller = ProvisionController::new(client, provisioner, settings.options)
        .with_metrics(Arc::new(metrics));
    let ready = Arc::new(AtomicBool::new(false));
    let controller_ready = controller.ready_flag();
    if let Some(addr) = settings.metrics_address {
        // /readyz says why it is not ready: the server's reason (Ganesha's
        // own error text when it cannot export), else the controller.
        let reason: external_storage::http::NotReadyReason = {
            let (server, controller_ready) = (server.clone(), controller_ready.clone());
            Arc::new(move || {
                server.not_ready_reason().or_else(|| {
                    (!controller_ready.load(Ordering::Acquire))
                        .then(|| "the provisioning controller is not running yet".to_string())
                })
            })
        };
        let (bound, _) = external_storage::http::serve_explained(
            addr,
            controller.metrics(),
            vec![ready.clone()],
            Some(reason),
            shutdown.clone(),
        )
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
        tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    }
    {
        let (server, ready, shutdown) = (server.clone(), ready.clone(), shutdown.clone());
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                ready.store(
                    server.is_ready() && controller_ready.load(Ordering::Acquire),
                    Ordering::Release,
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            ready.store(false, Ordering::Release);
        });
    }

    tracing::info!("waiting for the NFS server before provisioning");
    while !server.is_ready() {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let result = if shutdown.is_cancelled() {
        Ok(())
    } else {
        controller.run(shutdown.clone()).await
    };
    shutdown.cancel();
    let _ = supervisor.await;
    result?;
    Ok(())
}
