//! `bench --cluster real`: our hostpath binary and the Go anchor (the
//! program of `hack/bench/anchor/` on sig-storage-lib-external-provisioner)
//! on the real control plane of `hack/cluster.sh`, side by side.
//!
//! Each row gets a fresh control plane (etcd, kube-apiserver,
//! kube-controller-manager at the row's client QPS/burst, kube-scheduler),
//! one Ready Node, and one provisioner process authenticated as its own
//! ServiceAccount. Claims name a WaitForFirstConsumer class and arrive with
//! `volume.kubernetes.io/selected-node` already set (what the scheduler
//! writes once a pod using the claim is placed; there is no kubelet), the
//! same for both programs. The bench's own watches time, per claim, its
//! create being sent → its PV first seen (the provisioner's work) and →
//! the claim `Bound` (which includes kube-controller-manager's binder).
//! Requests per volume are the apiserver's audit log entries of the
//! provisioner's user, by verb; peak RSS is `VmHWM`, CPU is `utime +
//! stime` from `/proc/<pid>/stat` between ready and settled.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use kube::runtime::watcher;
use kube::Client;

use crate::chaos::control_plane::{audit_by_agent, audit_by_verb, ControlPlane};
use crate::hostpath::Process;
use crate::latency::Latencies;
use crate::objects;
use crate::requests::PerVolume;
use crate::table::Table;

/// Provisioner name of our hostpath binary.
pub const OURS: &str = "external-storage.io/hostpath";
/// Provisioner name of the Go anchor.
pub const ANCHOR: &str = "bench.external-storage.io/anchor";
/// The one node of every row.
pub const NODE: &str = "bench-node";
/// kube-controller-manager's client QPS/burst as `hack/cluster.sh` starts
/// it by default (kube-controller-manager's own defaults).
pub const KCM_DEFAULT: (u32, u32) = (20, 30);

/// Which program a row runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Our `hostpath-provisioner` binary (node-local mode).
    Ours,
    /// The Go anchor on sig-storage-lib-external-provisioner.
    Anchor,
}

/// A provisioner's client rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Qps {
    /// No client-side limit.
    Unlimited,
    /// QPS and burst.
    Limited(f64, u32),
    /// The program's own default (the anchor: client-go's 5/10).
    ProgramDefault,
}

/// One row's setup.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The program.
    pub who: Who,
    /// Claims created.
    pub claims: usize,
    /// kube-controller-manager's client QPS/burst.
    pub kcm: (u32, u32),
    /// The provisioner's client QPS/burst.
    pub qps: Qps,
    /// Worker threads (ours) / threadiness (the anchor).
    pub workers: u16,
}

/// What to run and with which limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// Claim counts with kube-controller-manager at its default QPS/burst.
    pub default_kcm_sizes: Vec<usize>,
    /// Claim counts with kube-controller-manager's QPS/burst raised.
    pub raised_kcm_sizes: Vec<usize>,
    /// The raised kube-controller-manager QPS/burst.
    pub raised_kcm: (u32, u32),
    /// Claims of the throttled rows (ours at its shipped limits and at
    /// 20/50, the anchor at 20/50 and at its default); 0 skips them.
    pub throttled_claims: usize,
    /// Also run the anchor at its own default limits (client-go's 5/10)
    /// among the throttled rows.
    pub anchor_default_row: bool,
    /// Skip the anchor.
    pub no_anchor: bool,
    /// Workers of both programs.
    pub workers: u16,
    /// Claim creates in flight at once.
    pub concurrency: usize,
    /// Per-row timeout for every claim to settle.
    pub timeout: Duration,
}

/// Per-claim timings and totals of one row.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Claims whose PV was seen.
    pub pvs: usize,
    /// Claims seen `Bound`.
    pub bound: usize,
    /// First create sent → last PV seen.
    pub pv_elapsed: Duration,
    /// First create sent → last claim `Bound`.
    pub bound_elapsed: Duration,
    /// Create sent → PV seen, per claim.
    pub to_pv: Latencies,
    /// Create sent → `Bound`, per claim.
    pub to_bound: Latencies,
    /// Whether every claim settled (Bound, no finalizer but pvc-protection).
    pub complete: bool,
}

/// One row's results.
#[derive(Debug, Clone)]
pub struct Row {
    /// What ran.
    pub setup: Setup,
    /// Claim → PV and claim → Bound rates and latencies, RSS and CPU.
    pub measured: Measured,
    /// The provisioner's requests per volume (audit log, its user only).
    pub requests: PerVolume,
    /// Peak RSS (`VmHWM`) at the end, KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU seconds from ready to settled.
    pub cpu_seconds: Option<f64>,
    /// kube-controller-manager's requests per volume, and its 409
    /// Conflicts per volume (audit log, by its user agent).
    pub kcm: (f64, f64),
    /// Claims with a `ProvisioningSucceeded` event, and Bound claims without
    /// one (the events dropped).
    pub events: (usize, usize),
}

/// The rows `opts` asks for, in table order: per kube-controller-manager
/// setting and size, ours then the anchor, unthrottled; then the throttled
/// rows with kube-controller-manager raised.
pub fn setups(opts: &Options) -> Vec<Setup> {
    let mut out = Vec::new();
    let whos: &[Who] = if opts.no_anchor {
        &[Who::Ours]
    } else {
        &[Who::Ours, Who::Anchor]
    };
    let row = |who, claims, kcm, qps| Setup {
        who,
        claims,
        kcm,
        qps,
        workers: opts.workers,
    };
    for (kcm, sizes) in [
        (KCM_DEFAULT, &opts.default_kcm_sizes),
        (opts.raised_kcm, &opts.raised_kcm_sizes),
    ] {
        for &n in sizes.iter().filter(|&&n| n > 0) {
            for &who in whos {
                out.push(row(who, n, kcm, Qps::Unlimited));
            }
        }
    }
    if opts.throttled_claims > 0 {
        // Ours with no limit flags: the shipped defaults.
        out.push(row(
            Who::Ours,
            opts.throttled_claims,
            opts.raised_kcm,
            Qps::ProgramDefault,
        ));
        for &who in whos {
            out.push(row(
                who,
                opts.throttled_claims,
                opts.raised_kcm,
                Qps::Limited(20.0, 50),
            ));
        }
        if !opts.no_anchor && opts.anchor_default_row {
            out.push(row(
                Who::Anchor,
                opts.throttled_claims,
                opts.raised_kcm,
                Qps::ProgramDefault,
            ));
        }
    }
    out
}

/// Runs one row on a fresh control plane.
pub async fn run_row(
    setup: &Setup,
    ours_exe: &Path,
    anchor_exe: Option<&Path>,
    opts: &Options,
) -> anyhow::Result<Row> {
    let env = vec![
        ("KCM_KUBE_API_QPS".to_string(), setup.kcm.0.to_string()),
        ("KCM_KUBE_API_BURST".to_string(), setup.kcm.1.to_string()),
    ];
    let mut cp = ControlPlane::start_real(env, false).await?;
    let r = run_on(&cp, setup, ours_exe, anchor_exe, opts).await;
    if r.is_err() {
        cp.keep_logs();
    }
    r
}

async fn run_on(
    cp: &ControlPlane,
    setup: &Setup,
    ours_exe: &Path,
    anchor_exe: Option<&Path>,
    opts: &Options,
) -> anyhow::Result<Row> {
    cp.nodes(&[(NODE, NODE)]).await?;
    let admin = cp.admin();
    let work = tempfile::tempdir()?;
    let root = work.path().join("volumes");
    std::fs::create_dir_all(&root)?;
    let root_s = root.to_str().context("temp path is not UTF-8")?.to_string();
    let workers = setup.workers.to_string();
    let (class, provisioner) = match setup.who {
        Who::Ours => ("bench-hostpath", OURS),
        Who::Anchor => ("bench-anchor", ANCHOR),
    };
    objects::ensure_class(
        &admin,
        &objects::storage_class(class, provisioner, "Delete", true),
    )
    .await?;
    let (mut proc, user) = match setup.who {
        Who::Ours => {
            let (kubeconfig, user) = cp.provisioner_kubeconfig(Some("hostpath")).await?;
            let (qps, burst) = match setup.qps {
                Qps::Unlimited => ("0".to_string(), "50".to_string()),
                Qps::Limited(q, b) => (q.to_string(), b.to_string()),
                Qps::ProgramDefault => (String::new(), String::new()),
            };
            let mut args = vec![
                "--node-name",
                NODE,
                "--root",
                &root_s,
                "--worker-threads",
                &workers,
            ];
            if !qps.is_empty() {
                args.extend(["--kube-api-qps", &qps, "--kube-api-burst", &burst]);
            }
            let mut p = Process::start(ours_exe, &kubeconfig, &args, work.path())?;
            p.wait_ready(Duration::from_secs(60)).await?;
            (
                p,
                user.context("no ServiceAccount user on the real cluster")?,
            )
        }
        Who::Anchor => {
            let exe = anchor_exe.context("no anchor binary")?;
            let (kubeconfig, user) = cp.cluster_admin_sa_kubeconfig("bench-anchor").await?;
            let kc = kubeconfig
                .to_str()
                .context("path is not UTF-8")?
                .to_string();
            let (qps, burst) = match setup.qps {
                Qps::Unlimited => ("-1".to_string(), "0".to_string()),
                Qps::Limited(q, b) => (q.to_string(), b.to_string()),
                Qps::ProgramDefault => (String::new(), String::new()),
            };
            let mut args = vec![
                "--kubeconfig",
                &kc,
                "--provisioner-name",
                ANCHOR,
                "--root",
                &root_s,
                "--threadiness",
                &workers,
            ];
            if !qps.is_empty() {
                args.extend(["--kube-api-qps", &qps, "--kube-api-burst", &burst]);
            }
            let mut p =
                Process::start_plain(exe, &args, &[("POD_NAMESPACE", "default")], work.path())?;
            p.wait_log("Started provisioner controller", Duration::from_secs(60))
                .await?;
            (p, user)
        }
    };
    let cpu_ready = proc.cpu_seconds();
    let measured = measure(&admin, setup, class, provisioner, opts).await?;
    let audit = cp.audit_log().context("no audit log")?;
    // Work queued behind the client's rate limiter (the Go library's
    // events are sent asynchronously) still belongs to the row.
    let drained = drain(&audit, &user, Duration::from_secs(3), opts.timeout).await;
    eprintln!("  requests drained {drained:.1?} after the last claim settled");
    let peak_rss_kib = proc.peak_rss_kib();
    let cpu_seconds = proc.cpu_seconds().zip(cpu_ready).map(|(b, a)| b - a);
    proc.kill();
    if !measured.complete {
        eprintln!("provisioner log tail:\n{}", tail(&proc.log(), 20));
    }
    let made = std::fs::read_dir(&root)?.count();
    anyhow::ensure!(
        !measured.complete || made >= setup.claims,
        "{made} directories under the root for {} claims",
        setup.claims
    );
    let requests = per_volume(&audit_by_verb(&audit, &user), measured.bound);
    let (kcm, conflicts) = audit_by_agent(&audit, "kube-controller-manager/");
    let n = measured.bound.max(1) as f64;
    let sent = events_sent(&admin).await?;
    let dropped = measured.bound.saturating_sub(sent);
    Ok(Row {
        setup: setup.clone(),
        measured,
        requests,
        peak_rss_kib,
        cpu_seconds,
        kcm: (kcm as f64 / n, conflicts as f64 / n),
        events: (sent, dropped),
    })
}

/// Waits until `user` has sent no request but Lease renewals for `quiet`
/// (read from the audit log's appended lines, at most `cap`); returns how
/// long that took, quiet window included.
async fn drain(audit: &Path, user: &str, quiet: Duration, cap: Duration) -> Duration {
    let start = Instant::now();
    let needle = format!("\"username\":\"{user}\"");
    let (mut offset, mut last_change) = (0usize, Instant::now());
    loop {
        if std::fs::metadata(audit).map_or(0, |m| m.len()) < offset as u64 {
            // Rotated (kube-apiserver's writer rotates at 100 MB): the new
            // file starts empty.
            offset = 0;
        }
        let text = read_from(audit, offset as u64);
        let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if end > 0 {
            let new = String::from_utf8_lossy(&text[..end]);
            if new
                .lines()
                .any(|l| l.contains(&needle) && !l.contains("\"resource\":\"leases\""))
            {
                last_change = Instant::now();
            }
            offset += end;
        }
        if last_change.elapsed() >= quiet || start.elapsed() >= cap {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The bytes of `path` from `offset` on (none if it cannot be read).
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut out);
        }
    }
    out
}

/// How many claims of the bench's namespace have a `ProvisioningSucceeded`
/// event (read after the provisioner's requests drained).
async fn events_sent(admin: &Client) -> anyhow::Result<usize> {
    use k8s_openapi::api::core::v1::Event;
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    let lp = kube::api::ListParams::default().fields("reason=ProvisioningSucceeded");
    let list = events.list(&lp).await.context("listing events")?;
    let claims: std::collections::BTreeSet<String> = list
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("PersistentVolumeClaim"))
        .filter_map(|e| e.involved_object.name)
        .collect();
    Ok(claims.len())
}

/// `(verb, resource) → count` divided by `volumes`.
fn per_volume(counts: &BTreeMap<(String, String), u64>, volumes: usize) -> PerVolume {
    let n = volumes.max(1) as f64;
    let mut out = PerVolume::default();
    for ((verb, res), c) in counts {
        let per = *c as f64 / n;
        *out.by_verb.entry(verb.clone()).or_default() += per;
        *out.by_resource.entry(res.clone()).or_default() += per;
        out.total += per;
    }
    out
}

/// Whether claim `c` is Bound with no finalizer but the apiserver's
/// pvc-protection (our intent finalizer released).
fn settled(c: &PersistentVolumeClaim) -> bool {
    c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        && c.metadata
            .finalizers
            .iter()
            .flatten()
            .all(|f| f == external_storage::annotations::PVC_PROTECTION_FINALIZER)
}

/// What the measurement reads of one watch event.
enum Seen {
    /// A claim: its name, whether it is Bound, whether it is settled.
    Claim(String, bool, bool),
    /// A PV: the name of its claim, if it has one.
    Pv(Option<String>),
    /// A watch's initial list is done.
    Synced,
    /// Anything else.
    Other,
}

/// Creates `setup.claims` claims and times them through the bench's own
/// watches of claims and PVs (opened, and their initial lists done, before
/// the first create).
async fn measure(
    admin: &Client,
    setup: &Setup,
    class: &str,
    provisioner: &str,
    opts: &Options,
) -> anyhow::Result<Measured> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), "default");
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let cw = watcher(claims.clone(), watcher::Config::default()).map(|e| match e {
        Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => Seen::Claim(
            c.metadata.name.clone().unwrap_or_default(),
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"),
            settled(&c),
        ),
        Ok(watcher::Event::InitDone) => Seen::Synced,
        _ => Seen::Other,
    });
    let pw = watcher(pvs, watcher::Config::default()).map(|e| match e {
        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
            Seen::Pv(p.spec.and_then(|s| s.claim_ref).and_then(|r| r.name))
        }
        Ok(watcher::Event::InitDone) => Seen::Synced,
        _ => Seen::Other,
    });
    let mut events = futures::stream::select(cw.boxed(), pw.boxed());
    let mut synced = 0;
    let sync_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while synced < 2 {
        match tokio::time::timeout_at(sync_deadline, events.next()).await {
            Ok(Some(Seen::Synced)) => synced += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => anyhow::bail!("the bench's watches did not sync within 30 s"),
        }
    }

    let n = setup.claims;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let creator = {
        let (sent, claims) = (sent.clone(), claims.clone());
        let (class, provisioner, concurrency) =
            (class.to_string(), provisioner.to_string(), opts.concurrency);
        tokio::spawn(async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let (sent, claims) = (sent.clone(), claims.clone());
                    let name = format!("c{i:05}");
                    let c = objects::scheduled_claim(&name, &class, &provisioner, Some(NODE));
                    async move {
                        sent.lock().unwrap().insert(name, Instant::now());
                        objects::create_claim_retrying(&claims, &c).await
                    }
                })
                .buffer_unordered(concurrency.max(1))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<()>>>()
        })
    };

    let mut pv_at: HashMap<String, Instant> = HashMap::new();
    let mut bound_at: HashMap<String, Instant> = HashMap::new();
    let mut settled_set: HashMap<String, bool> = HashMap::new();
    let mut done = 0;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    while done < n {
        if Instant::now() >= next_progress {
            eprintln!(
                "  ... {} PVs, {} of {n} Bound after {:.0?}",
                pv_at.len(),
                bound_at.len(),
                start.elapsed()
            );
            next_progress += Duration::from_secs(10);
        }
        let ev = tokio::select! {
            e = events.next() => e,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
        };
        let now = Instant::now();
        match ev {
            Some(Seen::Claim(name, bound, now_settled)) => {
                if bound {
                    bound_at.entry(name.clone()).or_insert(now);
                }
                let was = settled_set.insert(name, now_settled).unwrap_or(false);
                match (was, now_settled) {
                    (false, true) => done += 1,
                    (true, false) => done -= 1,
                    _ => {}
                }
            }
            Some(Seen::Pv(Some(claim))) => {
                pv_at.entry(claim).or_insert(now);
            }
            Some(_) => {}
            None => break,
        }
    }
    creator
        .await
        .context("claim creator panicked")?
        .context("creating claims")?;
    let sent = sent.lock().unwrap();
    let lat = |at: &HashMap<String, Instant>| {
        Latencies::new(
            at.iter()
                .filter_map(|(c, t)| Some(t.saturating_duration_since(*sent.get(c)?)))
                .collect(),
        )
    };
    let last = |at: &HashMap<String, Instant>| {
        at.values()
            .max()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(start))
    };
    Ok(Measured {
        pvs: pv_at.len(),
        bound: bound_at.len(),
        pv_elapsed: last(&pv_at),
        bound_elapsed: last(&bound_at),
        to_pv: lat(&pv_at),
        to_bound: lat(&bound_at),
        complete: done == n,
    })
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Label of a row's program.
fn who_label(who: Who, anchor_version: &str) -> String {
    match who {
        Who::Ours => "ours: hostpath binary (Rust)".into(),
        Who::Anchor => format!("anchor: sig-storage-lib {anchor_version} (Go)"),
    }
}

fn qps_label(who: Who, q: Qps) -> String {
    match (who, q) {
        (_, Qps::Unlimited) => "unlimited".into(),
        (Who::Ours, Qps::Limited(20.0, 50)) => "20/50 (our earlier default)".into(),
        (_, Qps::Limited(q, b)) => format!("{q}/{b}"),
        (Who::Anchor, Qps::ProgramDefault) => "5/10 (client-go default)".into(),
        (Who::Ours, Qps::ProgramDefault) => format!(
            "{}/{} (our shipped default)",
            external_storage::args::DEFAULT_QPS,
            external_storage::args::DEFAULT_BURST
        ),
    }
}

fn per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The numbers of a row, in the table's ratio columns' order:
/// PV claims/s, PV p50, PV p99, Bound claims/s, Bound p50, Bound p99,
/// requests per volume, peak RSS KiB, CPU-s per 1,000 claims,
/// kube-controller-manager's requests per volume.
fn figures(r: &Row) -> [Option<f64>; 10] {
    let m = &r.measured;
    [
        Some(per_s(m.pvs, m.pv_elapsed)),
        Some(ms(m.to_pv.percentile(50.0))),
        Some(ms(m.to_pv.percentile(99.0))),
        Some(per_s(m.bound, m.bound_elapsed)),
        Some(ms(m.to_bound.percentile(50.0))),
        Some(ms(m.to_bound.percentile(99.0))),
        Some(r.requests.total),
        r.peak_rss_kib.map(|k| k as f64),
        r.cpu_seconds
            .map(|c| c / r.setup.claims.max(1) as f64 * 1000.0),
        Some(r.kcm.0),
    ]
}

/// A row's cells.
fn cells(r: &Row, anchor_version: &str) -> Vec<String> {
    let s = &r.setup;
    let f = figures(r);
    let timeout = if r.measured.complete {
        String::new()
    } else {
        format!(" ({} of {} Bound: timeout)", r.measured.bound, s.claims)
    };
    vec![
        format!("{}/{}", s.kcm.0, s.kcm.1),
        s.claims.to_string(),
        who_label(s.who, anchor_version) + &timeout,
        qps_label(s.who, s.qps),
        format!("{:.1}", f[0].unwrap_or(0.0)),
        format!("{:.0} / {:.0} ms", f[1].unwrap_or(0.0), f[2].unwrap_or(0.0)),
        format!("{:.1}", f[3].unwrap_or(0.0)),
        format!("{:.0} / {:.0} ms", f[4].unwrap_or(0.0), f[5].unwrap_or(0.0)),
        format!("{:.2}", r.requests.total),
        r.requests.verbs_cell(),
        f[7].map_or("n/a".into(), |k| format!("{:.1} MiB", k / 1024.0)),
        f[8].map_or("n/a".into(), |c| format!("{c:.2}")),
        format!("{} / {}", r.events.0, r.events.1),
        format!("{:.2} ({:.2} 409s)", r.kcm.0, r.kcm.1),
    ]
}

/// The side-by-side table: every row, and after each pair of ours and the
/// anchor on the same size, kube-controller-manager setting and client
/// QPS/burst, their ratio (ours ÷ anchor).
pub fn render(rows: &[Row], anchor_version: &str) -> String {
    let mut t = Table::new(&[
        "kcm QPS/burst",
        "claims",
        "provisioner",
        "client QPS/burst",
        "→ PV claims/s",
        "→ PV p50 / p99",
        "→ Bound claims/s",
        "→ Bound p50 / p99",
        "API req/volume",
        "by verb (per volume)",
        "peak RSS",
        "CPU-s / 1,000 claims",
        "events sent / dropped",
        "kcm req/volume",
    ]);
    let mut i = 0;
    while i < rows.len() {
        let r = &rows[i];
        let s = &r.setup;
        t.row(cells(r, anchor_version));
        let pair = rows.get(i + 1).filter(|n| {
            s.who == Who::Ours
                && n.setup.who == Who::Anchor
                && n.setup.claims == s.claims
                && n.setup.kcm == s.kcm
                && n.setup.qps == s.qps
        });
        if let Some(a) = pair {
            t.row(cells(a, anchor_version));
            let (f, g) = (figures(r), figures(a));
            let ratio = |k: usize| match (f[k], g[k]) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                _ => "n/a".into(),
            };
            t.row(vec![
                String::new(),
                String::new(),
                "**ratio ours ÷ anchor**".into(),
                String::new(),
                ratio(0),
                format!("{} / {}", ratio(1), ratio(2)),
                ratio(3),
                format!("{} / {}", ratio(4), ratio(5)),
                ratio(6),
                String::new(),
                ratio(7),
                ratio(8),
                String::new(),
                ratio(9),
            ]);
            i += 2;
        } else {
            i += 1;
        }
    }
    t.render()
}

/// Runs every row of `opts`; prints progress on stderr. Returns the rows
/// (a row that fails is an error: its cluster's logs are kept).
pub async fn run(
    opts: &Options,
    ours_exe: &Path,
    anchor_exe: Option<PathBuf>,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for setup in setups(opts) {
        eprintln!("running {setup:?} on a fresh real control plane ...");
        let row = run_row(&setup, ours_exe, anchor_exe.as_deref(), opts)
            .await
            .with_context(|| format!("row {setup:?}"))?;
        let m = &row.measured;
        eprintln!(
            "  {} PVs in {:.2?}, {} of {} Bound in {:.2?}; {:.2} requests/volume",
            m.pvs, m.pv_elapsed, m.bound, setup.claims, m.bound_elapsed, row.requests.total
        );
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            default_kcm_sizes: vec![100],
            raised_kcm_sizes: vec![100, 1000],
            raised_kcm: (1000, 2000),
            throttled_claims: 100,
            anchor_default_row: true,
            no_anchor: false,
            workers: 4,
            concurrency: 16,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn setups_pair_ours_with_the_anchor() {
        let s = setups(&opts());
        assert_eq!(s.len(), 2 + 4 + 4);
        assert_eq!((s[0].who, s[1].who), (Who::Ours, Who::Anchor));
        assert_eq!(s[0].kcm, KCM_DEFAULT);
        assert_eq!(s[2].kcm, (1000, 2000));
        assert_eq!((s[6].who, s[6].qps), (Who::Ours, Qps::ProgramDefault));
        assert_eq!(s[7].qps, Qps::Limited(20.0, 50));
        assert_eq!((s[7].who, s[8].who), (Who::Ours, Who::Anchor));
        assert_eq!((s[9].who, s[9].qps), (Who::Anchor, Qps::ProgramDefault));
        let mut o = opts();
        o.anchor_default_row = false;
        assert_eq!(setups(&o).len(), 2 + 4 + 3);
        let mut o = opts();
        o.no_anchor = true;
        assert!(setups(&o).iter().all(|s| s.who == Who::Ours));
    }

    #[test]
    fn per_volume_divides_by_volumes() {
        let mut c = BTreeMap::new();
        c.insert(("create".to_string(), "persistentvolumes".to_string()), 100);
        c.insert(
            ("patch".to_string(), "persistentvolumeclaims".to_string()),
            200,
        );
        let p = per_volume(&c, 100);
        assert_eq!(p.total, 3.0);
        assert_eq!(p.by_verb["patch"], 2.0);
    }
}
