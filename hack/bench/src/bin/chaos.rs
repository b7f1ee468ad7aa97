//! `chaos`: two leader-elected replicas of the in-memory provisioner (or the
//! hostpath binary on two nodes) against kube-testserver while claims come
//! and go under 10 % API errors, latency spikes, dropped watches, a server
//! restart and kills; then, once settled, the invariants. Exit 0 only if
//! every invariant holds. With `--cluster real` the same plan runs on the
//! real control plane of `hack/cluster.sh` with the kills and a
//! kube-apiserver restart (the API faults are the test server's only). See
//! hack/README.md.
//!
//! ```text
//! cargo run -p external-storage-bench --release --bin chaos -- --quick
//! cargo run -p external-storage-bench --release --bin chaos -- --quick --provisioner hostpath
//! cargo run -p external-storage-bench --release --bin chaos -- --quick --cluster real
//! cargo run -p external-storage-bench --release --bin chaos -- --seed 42   # replay
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use external_storage_bench::backend::MemBackend;
use external_storage_bench::chaos::control_plane::{self, ControlPlane};
use external_storage_bench::chaos::fleet::Fleet;
use external_storage_bench::chaos::instances::{self, Instances};
use external_storage_bench::chaos::invariants;
use external_storage_bench::chaos::plan::{self, Action, ClaimPlan, PlanConfig};
use external_storage_bench::chaos::replicas::Replicas;
use external_storage_bench::hostpath;
use external_storage_bench::machine::Machine;
use external_storage_bench::objects;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use kube_testserver::FaultKind;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
#[command(about = "Fault-injection run of the provisioning controller; checks its invariants")]
struct Cli {
    /// CI mode: 200 claims over 30 s (about a minute in all).
    #[arg(long)]
    quick: bool,
    /// Seed of the plan (claims, classes, deletions, fault moments); random if not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Claims (default 200 with --quick, else 1,000).
    #[arg(long)]
    claims: Option<usize>,
    /// Length of the fault phase in seconds (default 30 with --quick, else 120).
    #[arg(long)]
    duration: Option<u64>,
    /// Fraction of API requests failing with 500 during the fault phase.
    #[arg(long, default_value_t = 0.10)]
    error_rate: f64,
    /// Seconds to wait for the cluster to settle after the faults stop.
    #[arg(long, default_value_t = 90)]
    settle_timeout: u64,
    /// Milliseconds the in-memory backend's `provision` takes after making
    /// the volume: the window in which a kill leaves a volume without a PV.
    #[arg(long, default_value_t = 50)]
    provision_ms: u64,
    /// The provisioner under test.
    #[arg(long, value_enum, default_value_t = Under::Mem)]
    provisioner: Under,
    /// The control plane: kube-testserver (with API faults) or the real one
    /// of `hack/cluster.sh` (kills and a kube-apiserver restart only).
    #[arg(long, value_enum, default_value_t = control_plane::Kind::Testserver)]
    cluster: control_plane::Kind,
}

/// Which provisioner a run tests.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Under {
    /// Two in-process, leader-elected replicas of the in-memory provisioner.
    Mem,
    /// The hostpath binary, one node-local instance on each of two nodes.
    Hostpath,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let begun = Instant::now();
    let seed = cli.seed.unwrap_or_else(rand::random);
    let quick = cli.quick;
    let cfg = PlanConfig {
        claims: cli.claims.unwrap_or(if quick { 200 } else { 1000 }),
        duration: Duration::from_secs(cli.duration.unwrap_or(if quick { 30 } else { 120 })),
        retain_fraction: 0.5,
        delete_fraction: 0.6,
        max_lifetime: Duration::from_secs(8),
        leader_kills: if quick { 4 } else { 8 },
        latency_spikes: if quick { 3 } else { 10 },
        watch_drops: if quick { 4 } else { 12 },
        restarts: 1,
    };
    println!("{}", Machine::detect().line());
    let real = cli.cluster == control_plane::Kind::Real;
    println!(
        "seed {seed} (replay: --seed {seed}{} --provisioner {}{})",
        if quick { " --quick" } else { "" },
        format!("{:?}", cli.provisioner).to_lowercase(),
        if real { " --cluster real" } else { "" }
    );
    let mut steps = plan::plan(seed, &cfg);
    if real {
        // The same plan (same seed, same claims and moments), without the
        // faults only the test server can inject.
        let before = steps.len();
        steps.retain(|s| !matches!(s.action, Action::Latency(_) | Action::DropWatches));
        println!(
            "plan: {cfg:?}; real control plane: API errors ({:.0} %), latency spikes and watch drops are test-server only and skipped ({} steps); kills and the apiserver restart stay",
            cli.error_rate * 100.0,
            before - steps.len()
        );
    } else {
        println!(
            "plan: {cfg:?}; API error rate {:.0} %",
            cli.error_rate * 100.0
        );
    }

    let mut cp = ControlPlane::start(cli.cluster).await?;
    let result = run(&cli, &cfg, steps, &mut cp, seed, begun).await;
    if result.is_err() {
        cp.keep_logs();
    }
    result
}

/// The run on a started control plane.
async fn run(
    cli: &Cli,
    cfg: &PlanConfig,
    steps: Vec<plan::Step>,
    cp: &mut ControlPlane,
    seed: u64,
    begun: Instant,
) -> anyhow::Result<()> {
    let admin = cp.admin();
    let tmp = tempfile::tempdir()?;
    let (fleet, user) = match cli.provisioner {
        Under::Mem => {
            let (kubeconfig, user) = cp.provisioner_kubeconfig(None).await?;
            let backend =
                MemBackend::audited(cp.auditor(), Duration::from_millis(cli.provision_ms));
            let mut replicas = Replicas::new(kubeconfig, backend.clone());
            for _ in 0..2 {
                replicas.spawn().await?;
            }
            let fleet = Fleet::Mem {
                replicas: Arc::new(Mutex::new(replicas)),
                backend,
            };
            (fleet, user)
        }
        Under::Hostpath => {
            let nodes: Vec<_> = instances::NODES
                .into_iter()
                .zip(instances::HOSTNAMES)
                .collect();
            cp.nodes(&nodes).await?;
            let (kubeconfig, user) = cp.provisioner_kubeconfig(Some("hostpath")).await?;
            let exe = hostpath::locate_or_build()?;
            let instances = Instances::start(&exe, &kubeconfig, tmp.path())?;
            (Fleet::Hostpath(Arc::new(Mutex::new(instances))), user)
        }
    };
    if let Some(u) = &user {
        println!("the provisioner authenticates as {u}");
    }
    let provisioner = fleet.provisioner();
    let wffc = fleet.node_for(0).is_some();
    for (name, policy) in [("chaos-delete", "Delete"), ("chaos-retain", "Retain")] {
        objects::ensure_class(
            &admin,
            &objects::storage_class(name, provisioner, policy, wffc),
        )
        .await?;
    }
    let observer = cp.observer();
    fleet.wait_serving(Duration::from_secs(20)).await?;

    // Sample leadership overlap (two replicas running workers at once).
    let overlap = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = tokio::spawn({
        let (fleet, overlap) = (fleet.clone(), overlap.clone());
        async move {
            loop {
                if fleet.leaders().await > 1 {
                    overlap.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let faults = cp.faults();
    if let Some(f) = &faults {
        f.set_error_rate(None, None, FaultKind::InternalError, cli.error_rate);
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), "default");
    let mut claims = JoinSet::new();
    let mut respawns = JoinSet::new();
    let start = tokio::time::Instant::now();
    let (mut kills, mut restarts, mut drops, mut spikes) = (0, 0, 0, 0);
    let mut claim_index = 0;
    for step in steps {
        tokio::time::sleep_until(start + step.at).await;
        match step.action {
            Action::Claim(c) => {
                let node = fleet.node_for(claim_index);
                claim_index += 1;
                claims.spawn(claim_life(api.clone(), c, provisioner, node));
            }
            Action::Latency(d) => {
                if let Some(f) = &faults {
                    spikes += usize::from(!d.is_zero());
                    f.set_latency(d);
                }
            }
            Action::DropWatches => {
                if let Some(f) = &faults {
                    drops += 1;
                    f.drop_watches();
                }
            }
            Action::RestartServer { down } => {
                restarts += 1;
                let what = cp.restart(down).await?;
                println!("t={:>5.1}s {what}", start.elapsed().as_secs_f64());
            }
            Action::KillLeader { respawn_after } => {
                if let Some(what) = fleet.kill(kills).await {
                    kills += 1;
                    println!(
                        "t={:>5.1}s killed {what}; replacement in {respawn_after:.1?}",
                        start.elapsed().as_secs_f64()
                    );
                }
                let fleet = fleet.clone();
                respawns.spawn(async move {
                    tokio::time::sleep(respawn_after).await;
                    fleet.respawn().await
                });
            }
        }
    }
    while let Some(r) = claims.join_next().await {
        r.context("claim task panicked")??;
    }
    while let Some(r) = respawns.join_next().await {
        r.context("respawn task panicked")??;
    }
    if let Some(f) = &faults {
        f.clear();
    }
    let fault_phase = start.elapsed();
    println!(
        "fault phase {fault_phase:.1?}: {} claims, {kills} kills, {restarts} server restart(s), {drops} watch drops, {spikes} latency spikes",
        cfg.claims
    );

    // Settle: faults off, two replicas, wait for the controller to finish.
    let settle_start = Instant::now();
    let settle_deadline = settle_start + Duration::from_secs(cli.settle_timeout);
    let settled = loop {
        // A failed list on the real cluster is just not settled yet.
        let world = cp.world(provisioner, false).await;
        let snap = fleet.snapshot().await;
        if world.is_ok_and(|w| w.settled(&snap)) {
            break true;
        }
        if Instant::now() > settle_deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settle_time = settle_start.elapsed();
    sampler.abort();
    let world = cp.world(provisioner, true).await?;
    let snap = fleet.snapshot().await;
    let seen = observer.seen();
    let report = invariants::check(&world, &snap, &seen);
    let killed = fleet.killed().await;
    fleet.stop().await;

    let requests = cp.requests(user.as_deref());
    println!(
        "settled: {settled} after {settle_time:.1?}; backend volumes {} (deletes {}); API requests {} ({} writes)",
        snap.volumes.len(),
        snap.deletes,
        requests.total,
        requests.writes
    );
    if cp.is_real() {
        println!("API requests by client (the apiserver's audit log; requests, writes):");
        for (client, (n, w)) in &requests.by_client {
            println!("  {client}: {n}, {w}");
        }
        println!(
            "observer (watches): {} PVs created for {} claims seen, {} re-lists; backend deletes the auditor could not judge (API unreachable 30 s): {}; provisioner requests denied by RBAC: {} (and {} while a restarted apiserver was starting)",
            seen.pvs_created.values().map(Vec::len).sum::<usize>(),
            seen.claim_names.len(),
            seen.relists,
            snap.unaudited,
            requests.denied.len(),
            requests.denied_starting.len()
        );
        for d in requests.denied.iter().take(20) {
            println!("  denied: {d}");
        }
        for d in requests.denied_starting.iter().take(20) {
            println!("  denied while the apiserver was starting: {d}");
        }
    }
    println!(
        "replicas killed: {:?}; provisions cut mid-flight by a kill: {}; samples with two leaders at once: {}; observer lagged: {}; backend volumes re-created after cleanup: {}",
        killed,
        fleet.provisions_cut().map_or("n/a".into(), |n| n.to_string()),
        overlap.load(std::sync::atomic::Ordering::Relaxed),
        seen.lagged,
        report.recreated.len()
    );
    print!("{}", report.render());
    println!("total chaos time: {:.1?}", begun.elapsed());
    if report.violations() > 0 {
        // The instances' logs (and roots) stay for the post-mortem.
        let kept = tmp.keep();
        println!(
            "provisioner logs and volume roots kept in {}",
            kept.display()
        );
        anyhow::bail!(
            "{} invariant violation(s); replay with the command printed at the top (--seed {seed})",
            report.violations()
        );
    }
    if !requests.denied.is_empty() || snap.unaudited > 0 {
        anyhow::bail!(
            "{} request(s) of the provisioner denied by the real RBAC authorizer, {} backend delete(s) unaudited (seed {seed})",
            requests.denied.len(),
            snap.unaudited
        );
    }
    println!("all invariants hold (seed {seed})");
    Ok(())
}

/// Creates a claim, and deletes it later if the plan says so.
async fn claim_life(
    api: Api<PersistentVolumeClaim>,
    c: ClaimPlan,
    provisioner: &'static str,
    node: Option<&'static str>,
) -> anyhow::Result<()> {
    let class = if c.retain {
        "chaos-retain"
    } else {
        "chaos-delete"
    };
    objects::create_claim_retrying(
        &api,
        &objects::scheduled_claim(&c.name, class, provisioner, node),
    )
    .await?;
    if let Some(after) = c.delete_after {
        tokio::time::sleep(after).await;
        objects::delete_claim_retrying(&api, &c.name).await?;
    }
    Ok(())
}
