//! Benchmark (not a test): provision N claims (default 1,000) through the
//! real controller against an in-process kube-testserver, then delete them.
//! Prints elapsed time, claims/s and API requests per volume by verb and
//! resource, as counted by the test server (the benchmark's own requests —
//! creating claims and polling — are subtracted).
//!
//! ```text
//! cargo run --release -p external-storage --example bench_provision -- [claims] [workers]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube_testserver::TestServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        external_storage::args::init_tracing(external_storage::args::LogFormat::Text);
    }
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let workers: u16 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);

    let ts = TestServer::start().await?;
    let client = ts.client().await;
    create_class(&client, "bench", false, "Delete").await;
    let mem = Mem::new();
    let mut opts = fast_options();
    opts.workers = workers;
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    // let the controller list and watch before counting
    tokio::time::sleep(Duration::from_millis(500)).await;
    ts.reset_stats();

    let mut own: BTreeMap<(String, String), u64> = BTreeMap::new();
    let start = Instant::now();
    let api = claims(&client);
    for i in 0..n {
        api.create(
            &PostParams::default(),
            &claim_json(&format!("c{i:05}"), "bench", None),
        )
        .await?;
    }
    *own.entry(("create".into(), "persistentvolumeclaims".into()))
        .or_default() += n as u64;
    let created = start.elapsed();
    let (mut last_bound, mut last_progress) = (0, Instant::now());
    loop {
        let list = api.list(&ListParams::default()).await?;
        *own.entry(("list".into(), "persistentvolumeclaims".into()))
            .or_default() += 1;
        let bound = list
            .items
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            .count();
        if bound == n {
            break;
        }
        if bound != last_bound {
            (last_bound, last_progress) = (bound, Instant::now());
        } else if last_progress.elapsed() > Duration::from_secs(30) {
            // Stalled: say which claims and what their PVs look like.
            for c in list
                .items
                .iter()
                .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound"))
            {
                let pv = pvs(&client).get_opt(&pv_name(c)).await?;
                println!(
                    "STALLED: claim {} phase {:?} finalizers {:?}; PV {} phase {:?}",
                    c.metadata.name.as_deref().unwrap_or_default(),
                    c.status.as_ref().and_then(|s| s.phase.clone()),
                    c.metadata.finalizers,
                    pv_name(c),
                    pv.map(|p| p.status.and_then(|s| s.phase)),
                );
            }
            anyhow::bail!("{bound}/{n} claims Bound, no progress for 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let provisioned = start.elapsed();
    // wait until every intent finalizer is released (part of the work)
    loop {
        let list = api.list(&ListParams::default()).await?;
        *own.entry(("list".into(), "persistentvolumeclaims".into()))
            .or_default() += 1;
        if list
            .items
            .iter()
            .all(|c| c.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = ts.stats();
    let pv_count = pvs(&client).list(&ListParams::default()).await?.items.len();
    if pv_count != n || mem.volume_count() != n {
        println!(
            "INCONSISTENT: {pv_count} PVs and {} backend volumes for {n} claims",
            mem.volume_count()
        );
    }
    println!("provisioned {n} claims with {workers} workers");
    println!("  claims created in   {:>8.2?}", created);
    println!(
        "  all Bound after     {:>8.2?}  ({:.1} claims/s)",
        provisioned,
        n as f64 / provisioned.as_secs_f64()
    );
    print_per_volume("provisioning", &stats.by_verb_resource, &own, n);

    ts.reset_stats();
    let mut own: BTreeMap<(String, String), u64> = BTreeMap::new();
    let start = Instant::now();
    for i in 0..n {
        api.delete(&format!("c{i:05}"), &DeleteParams::default())
            .await?;
    }
    *own.entry(("delete".into(), "persistentvolumeclaims".into()))
        .or_default() += n as u64;
    let pv_api = pvs(&client);
    loop {
        let left = pv_api.list(&ListParams::default()).await?.items.len();
        *own.entry(("list".into(), "persistentvolumes".into()))
            .or_default() += 1;
        if left == 0 && mem.volume_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deleted = start.elapsed();
    let stats = ts.stats();
    println!(
        "deleted {n} volumes in {:>8.2?} ({:.1} volumes/s)",
        deleted,
        n as f64 / deleted.as_secs_f64()
    );
    print_per_volume("deletion", &stats.by_verb_resource, &own, n);
    ctrl.stop().await;
    Ok(())
}

fn print_per_volume(
    what: &str,
    all: &BTreeMap<(String, String), u64>,
    own: &BTreeMap<(String, String), u64>,
    n: usize,
) {
    println!("  controller API requests per volume ({what}):");
    let (mut reads, mut writes) = (0u64, 0u64);
    for ((verb, res), count) in all {
        let mine =
            count.saturating_sub(own.get(&(verb.clone(), res.clone())).copied().unwrap_or(0));
        if mine == 0 {
            continue;
        }
        if matches!(verb.as_str(), "get" | "list" | "watch") {
            reads += mine;
        } else {
            writes += mine;
        }
        println!(
            "    {verb:>8} {res:<24} {:>7.3}  ({mine})",
            mine as f64 / n as f64
        );
    }
    println!(
        "    reads {:.3}/volume, writes {:.3}/volume, total {:.3}/volume",
        reads as f64 / n as f64,
        writes as f64 / n as f64,
        (reads + writes) as f64 / n as f64
    );
}
