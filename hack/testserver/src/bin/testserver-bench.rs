//! Throughput benchmark: starts a server in-process, opens watchers, creates
//! many ConfigMaps concurrently through kube-rs and reports creates/s and
//! delivered watch events/s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube_testserver::TestServer;

/// Command line.
#[derive(Parser, Debug)]
struct Args {
    /// Objects to create.
    #[arg(long, default_value_t = 20_000)]
    objects: usize,
    /// Concurrent create requests.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Concurrent watchers.
    #[arg(long, default_value_t = 2)]
    watchers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let srv = TestServer::start().await?;
    let client = srv.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = srv.store().current_rv().to_string();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let api = api.clone();
        let rv = rv.clone();
        let delivered = delivered.clone();
        let n = args.objects;
        watchers.push(tokio::spawn(async move {
            let wp = WatchParams::default().disable_bookmarks();
            let mut s = api.watch(&wp, &rv).await?.boxed();
            let mut seen = 0;
            while seen < n {
                match s.try_next().await? {
                    Some(WatchEvent::Added(_)) => {
                        seen += 1;
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => anyhow::bail!("watch ended after {seen} events"),
                }
            }
            Ok::<_, anyhow::Error>(Instant::now())
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    futures::stream::iter(0..args.objects)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("bench-{i}"), "labels": {"bench": "yes"}},
                    "data": {"payload": "x".repeat(64)}
                }))?;
                api.create(&PostParams::default(), &cm).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let mut last = start;
    for w in watchers {
        last = last.max(w.await??);
    }
    let watch_secs = (last - start).as_secs_f64();
    let events = delivered.load(Ordering::Relaxed);
    println!(
        "objects: {}, concurrency: {}, watchers: {}",
        args.objects, args.concurrency, args.watchers
    );
    println!(
        "creates/s: {:.0} ({} in {:.2}s)",
        args.objects as f64 / create_secs,
        args.objects,
        create_secs
    );
    println!(
        "watch events/s delivered (all watchers): {:.0} ({} in {:.2}s)",
        events as f64 / watch_secs,
        events,
        watch_secs
    );
    println!(
        "stats: {} writes, {} reads",
        srv.stats().writes(),
        srv.stats().reads()
    );
    Ok(())
}
