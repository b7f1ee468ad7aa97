//! `bench`: provisioning throughput, claim → Bound latency, API requests per
//! volume, peak RSS and start-up time, against kube-testserver, printed as
//! one Markdown table per run; with `--cluster real`, our hostpath binary
//! and the Go anchor side by side on the real control plane (one table,
//! with ratios). See hack/README.md and docs/performance.md.
//!
//! ```text
//! cargo run -p external-storage-bench --release --bin bench -- --cluster real --quick
//! cargo run -p external-storage-bench --release --bin bench -- --cluster real
//! cargo run -p external-storage-bench --release --bin bench -- --quick
//! cargo run -p external-storage-bench --release --bin bench            # 100/1,000 claims, memory with 10,000 cached
//! cargo run -p external-storage-bench --release --bin bench -- --sizes 10000 --no-hostpath --cached 0
//! cargo run -p external-storage-bench --release --bin bench -- --no-mem --no-hostpath --cached 0 --local-volume 1000,10000
//! cargo run -p external-storage-bench --release --bin bench -- --no-mem --no-hostpath --cached 0 --nfs 1000,10000
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use external_storage::{ControllerOptions, ProvisionController};
use external_storage_bench::backend::MemBackend;
use external_storage_bench::chaos::control_plane;
use external_storage_bench::hostpath::{self, Process};
use external_storage_bench::machine::Machine;
use external_storage_bench::objects;
use external_storage_bench::preload;
use external_storage_bench::real;
use external_storage_bench::table::{mib, ms, Table};
use external_storage_bench::throughput::{self, Measured, Workload};
use kube_testserver::{Config, TestServer};
use tokio_util::sync::CancellationToken;

/// Provisioner name of the in-memory backend.
const MEM: &str = "bench.external-storage.io/mem";
/// Provisioner name of the hostpath binary.
const HOSTPATH: &str = "external-storage.io/hostpath";
/// The one node of the hostpath runs.
const NODE: &str = "bench-node";

#[derive(Parser, Debug)]
#[command(about = "Provisioning benchmarks against kube-testserver or the real control plane")]
struct Cli {
    /// CI mode: 100 and 1,000 claims, memory with 1,000 cached (well under
    /// 2 minutes). With `--cluster real` (hack/test.sh, about 4 minutes in
    /// the debug profile): 100 claims with kube-controller-manager's QPS
    /// raised and at its default, and the throttled rows at 100 but the
    /// anchor's at client-go's 5/10.
    #[arg(long)]
    quick: bool,
    /// The control plane: kube-testserver (default) or the real one of
    /// `hack/cluster.sh`, where our hostpath binary and the Go anchor run
    /// side by side.
    #[arg(long, value_enum, default_value_t = control_plane::Kind::Testserver)]
    cluster: control_plane::Kind,
    /// Claim counts to run (default 100,1000; run 10000 as its own
    /// invocation per provisioner, see hack/README.md). With `--cluster
    /// real`: the sizes with kube-controller-manager's QPS raised (default
    /// 100,1000,10000; 100 with --quick).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// `--cluster real`: sizes with kube-controller-manager at its default
    /// client QPS/burst 20/30 (default 100,1000; 100 with --quick; its
    /// binder makes these rows slow: about 6 claims/s). 0 skips them.
    #[arg(long, value_delimiter = ',')]
    kcm_default_sizes: Vec<usize>,
    /// `--cluster real`: kube-controller-manager's raised client QPS.
    #[arg(long, default_value_t = 1000)]
    kcm_qps: u32,
    /// `--cluster real`: kube-controller-manager's raised client burst.
    #[arg(long, default_value_t = 2000)]
    kcm_burst: u32,
    /// `--cluster real`: claims of the throttled rows (ours at its shipped
    /// limits and at 20/50, the anchor at 20/50 and at client-go's 5/10);
    /// 0 skips them.
    #[arg(long, default_value_t = 100)]
    throttled_claims: usize,
    /// `--cluster real`: skip the Go anchor.
    #[arg(long)]
    no_anchor: bool,
    /// Skip the hostpath binary (in-memory provisioner only).
    #[arg(long)]
    no_hostpath: bool,
    /// Skip the in-memory provisioner (hostpath binary only).
    #[arg(long)]
    no_mem: bool,
    /// Client QPS of the provisioner under test (0 = unlimited); the
    /// binary's shipped default is measured in an extra 100-claim row.
    #[arg(long, default_value_t = 0.0)]
    qps: f64,
    /// Client burst of the provisioner under test.
    #[arg(long, default_value_t = 50)]
    burst: u32,
    /// Worker threads of the provisioner under test (the Go default is 4).
    #[arg(long, default_value_t = 4)]
    workers: u16,
    /// Claim creates in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Per-row timeout for all claims to be Bound, in seconds (default 300;
    /// 1800 with `--cluster real`).
    #[arg(long)]
    timeout: Option<u64>,
    /// Bound claims + PVs preloaded for the memory/start-up table
    /// (default: 1000 with --quick, else 1000,10000; 0 skips the table).
    #[arg(long, value_delimiter = ',')]
    cached: Vec<usize>,
    /// Fail when the peak RSS of the largest `--cached` row is above this
    /// many MiB twice in a row (measured again once, so one noisy run does
    /// not fail it): the memory check of `hack/test.sh`.
    #[arg(long)]
    cached_ceiling_mib: Option<f64>,
    /// Mounted directories the local-volume binary discovers, one row each
    /// (e.g. 1000,10000; none by default). Needs root: its mounts are made
    /// in a mount namespace of its own.
    #[arg(long, value_delimiter = ',')]
    local_volume: Vec<usize>,
    /// Claims the nfs binary (with its NFS-Ganesha) provisions, one row
    /// each, then a restart over their exports (e.g. 1000,10000; none by
    /// default). Needs root and nfs-ganesha; one Ganesha per machine.
    #[arg(long, value_delimiter = ',')]
    nfs: Vec<usize>,
    /// Change events the test server keeps for watch resumption (a watch
    /// that falls further behind gets 410 Gone and re-lists).
    #[arg(long, default_value_t = Config::default().watch_history)]
    watch_history: usize,
}

/// One row of the memory and start-up table.
struct CacheRow {
    objects: usize,
    ready: Duration,
    watching: Duration,
    rss_ready_kib: Option<u64>,
    rss_kib: Option<u64>,
    settled_kib: Option<u64>,
}

/// One row's provisioner setup.
#[derive(Debug, Clone)]
struct Setup {
    hostpath: bool,
    claims: usize,
    qps: f64,
    burst: u32,
    workers: u16,
}

/// One row's results besides the throughput measurement.
struct Row {
    setup: Setup,
    measured: Measured,
    peak_rss_kib: Option<u64>,
    settled_rss_kib: Option<u64>,
    ready: Option<Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The in-process controller's (and the test server's) logs, on request:
    // the table stays readable by default.
    if std::env::var_os("RUST_LOG").is_some() {
        external_storage::args::init_tracing(external_storage::args::LogFormat::Text);
    }
    let begun = Instant::now();
    let machine = Machine::detect();
    if cli.cluster == control_plane::Kind::Real {
        return main_real(&cli, &machine, begun).await;
    }
    let sizes = if !cli.sizes.is_empty() {
        cli.sizes.clone()
    } else if cli.quick {
        vec![100, 1000]
    } else {
        // 10,000-claim rows run as their own invocations (hack/README.md):
        // after one, the process keeps a core busy for ~35 s (inside the
        // dropped test server), which would slow the rows after it.
        vec![100, 1000]
    };
    let mut setups = Vec::new();
    for hostpath in [false, true] {
        if (hostpath && cli.no_hostpath) || (!hostpath && cli.no_mem) {
            continue;
        }
        for &claims in &sizes {
            setups.push(Setup {
                hostpath,
                claims,
                qps: cli.qps,
                burst: cli.burst,
                workers: cli.workers,
            });
        }
        if hostpath && sizes.contains(&100) {
            // The shipped defaults (--kube-api-qps, --kube-api-burst).
            setups.push(Setup {
                hostpath,
                claims: 100,
                qps: external_storage::args::DEFAULT_QPS,
                burst: external_storage::args::DEFAULT_BURST,
                workers: cli.workers,
            });
        }
    }
    let exe = if cli.no_hostpath {
        None
    } else {
        Some(hostpath::locate_or_build()?)
    };
    let tmp = tempfile::tempdir()?;

    println!("{}", machine.line());
    let mut rows = Vec::new();
    for setup in setups {
        eprintln!("running {setup:?} ...");
        let row = match &exe {
            Some(exe) if setup.hostpath => run_hostpath(exe, tmp.path(), &setup, &cli).await,
            _ => run_mem(&setup, &cli).await,
        }
        .with_context(|| format!("row {setup:?}"))?;
        eprintln!(
            "  {} of {} Bound in {:.2?} ({:.1}/s)",
            row.measured.bound,
            setup.claims,
            row.measured.elapsed,
            row.measured.per_second()
        );
        rows.push(row);
    }
    if !rows.is_empty() {
        println!("{}", render(&rows));
    }
    let skip_cached = cli.cached == [0];
    if let Some(exe) = exe.as_ref().filter(|_| !skip_cached) {
        let cached = if !cli.cached.is_empty() {
            cli.cached.clone()
        } else if cli.quick {
            vec![1000]
        } else {
            vec![1000, 10_000]
        };
        let mut t = Table::new(&[
            "hostpath binary with N bound claims + N PVs",
            "start → ready",
            "start → both watches open",
            "RSS at ready",
            "peak RSS (caches full)",
            "RSS settled (10 s later)",
        ]);
        let largest = cached.iter().copied().max().unwrap_or(0);
        for n in cached {
            eprintln!("memory/start-up with {n} claims + {n} PVs ...");
            let mut r = run_cached(exe, tmp.path(), n, &cli)
                .await
                .with_context(|| format!("cached {n}"))?;
            if let (Some(ceiling), true) = (cli.cached_ceiling_mib, n == largest) {
                let over = |r: &CacheRow| r.rss_kib.is_none_or(|k| k as f64 / 1024.0 > ceiling);
                if over(&r) {
                    eprintln!(
                        "  peak RSS {} is over the ceiling of {ceiling} MiB; measuring once more",
                        mib(r.rss_kib)
                    );
                    r = run_cached(exe, tmp.path(), n, &cli)
                        .await
                        .with_context(|| format!("cached {n}, again"))?;
                }
                anyhow::ensure!(
                    !over(&r),
                    "peak RSS with {n} claims + {n} PVs cached is {} twice in a row, over the ceiling of {ceiling} MiB (docs/performance.md, \"The memory check\"): a change gave memory back",
                    mib(r.rss_kib)
                );
                eprintln!(
                    "  peak RSS {} is within the ceiling of {ceiling} MiB",
                    mib(r.rss_kib)
                );
            }
            t.row(vec![
                r.objects.to_string(),
                ms(r.ready),
                ms(r.watching),
                mib(r.rss_ready_kib),
                mib(r.rss_kib),
                mib(r.settled_kib),
            ]);
        }
        println!("{}", t.render());
    }
    if !cli.local_volume.is_empty() {
        println!("{}", local_volume_table(&cli, tmp.path()).await?);
    }
    if !cli.nfs.is_empty() {
        println!("{}", nfs_table(&cli, tmp.path()).await?);
    }
    println!("total bench time: {:.1?}", begun.elapsed());
    if rows.iter().any(|r| !r.measured.complete) {
        anyhow::bail!("some rows did not finish (see `bound`)");
    }
    Ok(())
}

/// `bench --cluster real`: the side-by-side table on the real control plane.
async fn main_real(cli: &Cli, machine: &Machine, begun: Instant) -> anyhow::Result<()> {
    let pick = |given: &[usize], quick: &[usize], full: &[usize]| {
        if !given.is_empty() {
            given.to_vec()
        } else if cli.quick {
            quick.to_vec()
        } else {
            full.to_vec()
        }
    };
    let opts = real::Options {
        default_kcm_sizes: pick(&cli.kcm_default_sizes, &[100], &[100, 1000]),
        raised_kcm_sizes: pick(&cli.sizes, &[100], &[100, 1000, 10_000]),
        raised_kcm: (cli.kcm_qps, cli.kcm_burst),
        throttled_claims: cli.throttled_claims,
        // The anchor at client-go's 5/10 takes ~25 s plus ~40 s of queued
        // events: left out of the quick plan (hack/test.sh).
        anchor_default_row: !cli.quick,
        no_anchor: cli.no_anchor,
        workers: cli.workers,
        concurrency: cli.concurrency,
        timeout: Duration::from_secs(cli.timeout.unwrap_or(1800)),
    };
    let ours = hostpath::locate_or_build()?;
    let anchor = if cli.no_anchor {
        None
    } else {
        Some(external_storage_bench::anchor::locate_or_build()?)
    };
    let version = external_storage_bench::anchor::library_version();
    println!("{}", machine.line());
    println!(
        "real control plane ({}), a fresh one per row; one Node; WaitForFirstConsumer classes, claims created with volume.kubernetes.io/selected-node already set (both programs); {} workers each; {} creates in flight",
        e2e_support::cluster::cluster_sh(&["version"]).trim(),
        cli.workers,
        cli.concurrency
    );
    let rows = real::run(&opts, &ours, anchor).await?;
    println!("{}", real::render(&rows, &version));
    println!("total bench time: {:.1?}", begun.elapsed());
    if rows.iter().any(|r| !r.measured.complete) {
        anyhow::bail!("some rows did not finish (see the provisioner column)");
    }
    Ok(())
}

fn render(rows: &[Row]) -> String {
    let mut t = Table::new(&[
        "provisioner",
        "claims",
        "client QPS/burst",
        "workers",
        "bound",
        "claims/s",
        "p50 → Bound",
        "p99 → Bound",
        "API req/volume",
        "by verb (per volume)",
        "peak RSS",
        "RSS settled (5 s later)",
        "start → ready",
    ]);
    for r in rows {
        let s = &r.setup;
        let m = &r.measured;
        t.row(vec![
            if s.hostpath {
                "hostpath (binary)".into()
            } else {
                "in-memory (in-process)".into()
            },
            s.claims.to_string(),
            if s.qps <= 0.0 {
                "unlimited".into()
            } else {
                format!("{}/{}", s.qps, s.burst)
            },
            s.workers.to_string(),
            if m.complete {
                m.bound.to_string()
            } else {
                format!("{} (timeout)", m.bound)
            },
            format!("{:.1}", m.per_second()),
            ms(m.latencies.percentile(50.0)),
            ms(m.latencies.percentile(99.0)),
            format!("{:.2}", m.requests.total),
            m.requests.verbs_cell(),
            r.peak_rss_kib
                .map_or("n/a (in-process)".into(), |k| mib(Some(k))),
            mib(r.settled_rss_kib),
            r.ready.map_or("n/a".into(), ms),
        ]);
    }
    t.render()
}

fn workload(
    setup: &Setup,
    cli: &Cli,
    class: &str,
    provisioner: &str,
    node: Option<&str>,
) -> Workload {
    Workload {
        claims: setup.claims,
        class: class.into(),
        provisioner: provisioner.into(),
        node: node.map(String::from),
        concurrency: cli.concurrency,
        timeout: Duration::from_secs(cli.timeout.unwrap_or(300)),
    }
}

/// A test server with only the binder (claims arrive with their node selected).
async fn server(cli: &Cli) -> anyhow::Result<TestServer> {
    TestServer::start_with(Config {
        scheduler: false,
        watch_history: cli.watch_history,
        ..Config::default()
    })
    .await
}

async fn run_mem(setup: &Setup, cli: &Cli) -> anyhow::Result<Row> {
    let ts = server(cli).await?;
    let admin = ts.client().await;
    objects::ensure_class(&admin, &objects::storage_class("mem", MEM, "Delete", false)).await?;
    let client =
        external_storage::args::client(Some(ts.kubeconfig_path()), setup.qps, setup.burst).await?;
    let mut opts = ControllerOptions::new(MEM);
    opts.workers = setup.workers;
    let backend = MemBackend::new();
    let ctrl = ProvisionController::with_shared(client, backend.clone(), opts);
    let token = CancellationToken::new();
    let handle = tokio::spawn({
        let t = token.clone();
        async move { ctrl.run(t).await }
    });
    // Let it list and start watching before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let measured = throughput::run(&ts, &admin, &workload(setup, cli, "mem", MEM, None)).await?;
    token.cancel();
    let abort = handle.abort_handle();
    if tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .is_err()
    {
        // Not stopped in time: do not let it run on into the next row.
        abort.abort();
    }
    anyhow::ensure!(
        !measured.complete || backend.len() == setup.claims,
        "backend holds {} volumes for {} claims",
        backend.len(),
        setup.claims
    );
    Ok(Row {
        setup: setup.clone(),
        measured,
        peak_rss_kib: None,
        settled_rss_kib: None,
        ready: None,
    })
}

async fn run_hostpath(
    exe: &std::path::Path,
    tmp: &std::path::Path,
    setup: &Setup,
    cli: &Cli,
) -> anyhow::Result<Row> {
    let ts = server(cli).await?;
    let admin = ts.client().await;
    objects::ensure_class(
        &admin,
        &objects::storage_class("hostpath", HOSTPATH, "Delete", true),
    )
    .await?;
    objects::ensure_node(&admin, NODE).await?;
    let root = tempfile::tempdir_in(tmp)?;
    let qps = setup.qps.to_string();
    let burst = setup.burst.to_string();
    let workers = setup.workers.to_string();
    let mut proc = Process::start(
        exe,
        ts.kubeconfig_path(),
        &[
            "--node-name",
            NODE,
            "--root",
            root.path().to_str().context("temp path is not UTF-8")?,
            "--kube-api-qps",
            &qps,
            "--kube-api-burst",
            &burst,
            "--worker-threads",
            &workers,
        ],
        tmp,
    )?;
    let ready = proc.wait_ready(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let measured = throughput::run(
        &ts,
        &admin,
        &workload(setup, cli, "hostpath", HOSTPATH, Some(NODE)),
    )
    .await?;
    let peak = proc.peak_rss_kib();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = proc.rss_kib();
    let made = std::fs::read_dir(root.path())?.count();
    proc.kill();
    if !measured.complete {
        eprintln!("hostpath log tail:\n{}", tail(&proc.log(), 20));
    }
    anyhow::ensure!(
        !measured.complete || made >= setup.claims,
        "{made} directories under the root for {} claims",
        setup.claims
    );
    Ok(Row {
        setup: setup.clone(),
        measured,
        peak_rss_kib: peak,
        settled_rss_kib: settled,
        ready: Some(ready),
    })
}

/// The local-volume rows (`--local-volume`), one fresh test server each.
async fn local_volume_table(cli: &Cli, tmp: &std::path::Path) -> anyhow::Result<String> {
    let exe =
        hostpath::locate_or_build_binary("local-volume-provisioner", "local-volume-provisioner")?;
    let mut t = Table::new(&[
        "local-volume binary, N mounted directories",
        "start → ready",
        "start → N PVs",
        "PVs/s",
        "API req/PV",
        "by verb (per PV)",
        "peak RSS (N PVs cached)",
        "RSS settled (10 s later)",
        "CPU-s / 1,000 PVs",
    ]);
    for &n in &cli.local_volume {
        eprintln!("local-volume with {n} mounted directories ...");
        let ts = server(cli).await?;
        let r = external_storage_bench::local_volume::run(&ts, &exe, tmp, NODE, n)
            .await
            .with_context(|| format!("local-volume {n}"))?;
        eprintln!(
            "  {} PVs in {:.2?} ({n} bind mounts took {:.2?})",
            r.pvs, r.all_pvs, r.mounts
        );
        t.row(vec![
            n.to_string(),
            ms(r.ready),
            ms(r.all_pvs),
            format!("{:.1}", r.pvs as f64 / r.all_pvs.as_secs_f64().max(1e-9)),
            format!("{:.2}", r.requests.total),
            r.requests.verbs_cell(),
            mib(r.peak_rss_kib),
            mib(r.settled_rss_kib),
            r.cpu_seconds.map_or("n/a".into(), |c| {
                format!("{:.2}", c * 1000.0 / r.pvs.max(1) as f64)
            }),
        ]);
    }
    Ok(t.render())
}

/// The nfs rows (`--nfs`), one fresh test server each.
async fn nfs_table(cli: &Cli, tmp: &std::path::Path) -> anyhow::Result<String> {
    let exe = hostpath::locate_or_build_binary("nfs-provisioner", "nfs-provisioner")?;
    let mut t = Table::new(&[
        "nfs binary + Ganesha, N claims",
        "start → ready (no exports)",
        "N claims → Bound",
        "claims/s",
        "p50 / p99 to Bound",
        "API req/vol",
        "by verb (per volume)",
        "peak RSS",
        "RSS settled (10 s later)",
        "CPU-s / 1,000 claims",
        "Ganesha RSS (N exports)",
        "restart → ready (N exports)",
        "peak RSS after restart (N PVs cached)",
    ]);
    for &n in &cli.nfs {
        eprintln!("nfs with {n} claims ...");
        let ts = server(cli).await?;
        let timeout = Duration::from_secs(cli.timeout.unwrap_or(1800));
        let r = external_storage_bench::nfs::run(&ts, &exe, tmp, n, timeout)
            .await
            .with_context(|| format!("nfs {n}"))?;
        eprintln!(
            "  {n} claims Bound in {:.2?}; restart over {n} exports ready in {:.2?}",
            r.burst.elapsed, r.restart_ready
        );
        t.row(vec![
            n.to_string(),
            ms(r.ready),
            ms(r.burst.elapsed),
            format!("{:.1}", r.burst.per_second()),
            format!(
                "{} / {}",
                ms(r.burst.latencies.percentile(50.0)),
                ms(r.burst.latencies.percentile(99.0))
            ),
            format!("{:.2}", r.burst.requests.total),
            r.burst.requests.verbs_cell(),
            mib(r.peak_rss_kib),
            mib(r.settled_rss_kib),
            r.cpu_seconds.map_or("n/a".into(), |c| {
                format!("{:.2}", c * 1000.0 / r.claims.max(1) as f64)
            }),
            mib(r.ganesha_rss_kib),
            ms(r.restart_ready),
            mib(r.restart_peak_rss_kib),
        ]);
    }
    Ok(t.render())
}

/// Starts the hostpath binary against `n` preloaded bound claims and PVs;
/// peak RSS is read 2 s after both its claim and PV watches are open (their
/// initial lists are then in its caches).
async fn run_cached(
    exe: &std::path::Path,
    tmp: &std::path::Path,
    n: usize,
    cli: &Cli,
) -> anyhow::Result<CacheRow> {
    let ts = server(cli).await?;
    let admin = ts.client().await;
    objects::ensure_class(
        &admin,
        &objects::storage_class("hostpath", HOSTPATH, "Delete", true),
    )
    .await?;
    objects::ensure_node(&admin, NODE).await?;
    preload::bound_pairs(&ts.store(), n, "hostpath", HOSTPATH, NODE)?;
    ts.reset_stats();
    let root = tempfile::tempdir_in(tmp)?;
    let mut proc = Process::start(
        exe,
        ts.kubeconfig_path(),
        &[
            "--node-name",
            NODE,
            "--root",
            root.path().to_str().context("temp path is not UTF-8")?,
            "--kube-api-qps",
            "0",
        ],
        tmp,
    )?;
    let started = Instant::now() - proc.wait_ready(Duration::from_secs(30)).await?;
    let ready = started.elapsed();
    let rss_ready_kib = proc.peak_rss_kib();
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let st = ts.stats();
        if st.count("watch", "persistentvolumeclaims") > 0
            && st.count("watch", "persistentvolumes") > 0
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < end,
            "no watches after 120 s; log:\n{}",
            tail(&proc.log(), 20)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let watching = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kib = proc.peak_rss_kib();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled_kib = proc.rss_kib();
    proc.kill();
    Ok(CacheRow {
        objects: n,
        ready,
        watching,
        rss_ready_kib,
        rss_kib,
        settled_kib,
    })
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
