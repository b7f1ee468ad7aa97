//! Watch semantics: resume from resourceVersion, 410 Expired, bookmarks,
//! selector transitions, timeouts, streaming lists, forced disconnects,
//! stop/restart, and a kube-runtime reflector that converges through them.

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube_testserver::{Config, TestServer};
use serde_json::json;

fn names(evs: &[WatchEvent<ConfigMap>]) -> Vec<String> {
    evs.iter()
        .map(|e| match e {
            WatchEvent::Added(c) => format!("ADDED {}", c.metadata.name.clone().unwrap()),
            WatchEvent::Modified(c) => format!("MODIFIED {}", c.metadata.name.clone().unwrap()),
            WatchEvent::Deleted(c) => format!("DELETED {}", c.metadata.name.clone().unwrap()),
            WatchEvent::Bookmark(_) => "BOOKMARK".into(),
            WatchEvent::Error(e) => format!("ERROR {}", e.code),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_from_resource_version_replays_history() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv = a.metadata.resource_version.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let wp = WatchParams::default().disable_bookmarks().timeout(1);
    let evs: Vec<_> = api
        .watch(&wp, &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names(&evs), vec!["MODIFIED a", "ADDED b", "DELETED a"]);
    // DELETED carries a new resourceVersion
    if let WatchEvent::Deleted(d) = &evs[2] {
        let drv: u64 = d
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(drv > rv.parse::<u64>().unwrap() + 2);
    }
    // rv "0": synthetic ADDED for current state
    let evs: Vec<_> = api
        .watch(&wp, "0")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names(&evs), vec!["ADDED b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_events_and_selector_transitions() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let start = api
        .create(&PostParams::default(), &cm("x"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default()
        .labels("sel=yes")
        .disable_bookmarks()
        .timeout(2);
    let mut stream = api.watch(&wp, &start).await.unwrap().boxed();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "yes"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"q": "1"}})),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(
            tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(names(&got), vec!["ADDED x", "MODIFIED x", "DELETED x"]);
    // other namespaces are not delivered to a namespaced watch
    let other: Api<ConfigMap> = Api::namespaced(srv.client().await, "kube-system");
    let rv = other
        .create(&PostParams::default(), &cm("ks"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let evs: Vec<_> = api
        .watch(
            &WatchParams::default().disable_bookmarks().timeout(1),
            &(rv.parse::<u64>().unwrap() - 1).to_string(),
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(evs.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn too_old_resource_version_is_410_expired() {
    let srv = TestServer::start_with(Config {
        watch_history: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    create_cms(&api, (0..20).map(|i| format!("c{i}"))).await;
    let evs: Vec<_> = api
        .watch(&WatchParams::default().timeout(5), "2")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(evs.len(), 1);
    match &evs[0] {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version: 2 ("),
                "{}",
                e.message
            );
        }
        other => panic!("expected error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bookmarks_and_streaming_lists() {
    let srv = TestServer::start_with(Config {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    api.create(&PostParams::default(), &cm("b1")).await.unwrap();
    let rv = srv.store().current_rv().to_string();
    let evs: Vec<_> = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let bms: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let WatchEvent::Bookmark(b) = e {
                Some(b.clone())
            } else {
                None
            }
        })
        .collect();
    assert!(bms.len() >= 3, "got {} bookmarks", bms.len());
    assert_eq!(bms[0].metadata.resource_version, rv);

    let wp = WatchParams::streaming_lists().timeout(1);
    let evs: Vec<_> = api
        .watch(&wp, "")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(matches!(&evs[0], WatchEvent::Added(c) if c.metadata.name.as_deref() == Some("b1")));
    match &evs[1] {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata
                .annotations
                .get("k8s.io/initial-events-end")
                .map(String::as_str),
            Some("true")
        ),
        other => panic!("expected initial-events-end bookmark, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reflector_converges_after_drop_and_expiry() {
    let srv = TestServer::start_with(Config {
        watch_history: 10,
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    create_cms(&api, (0..5).map(|i| format!("r{i}"))).await;
    let r = reader.clone();
    eventually("reflector sees 5", || {
        let r = r.clone();
        async move { r.state().len() == 5 }
    })
    .await;

    // forced disconnect
    srv.faults().drop_watches();
    api.create(&PostParams::default(), &cm("after-drop"))
        .await
        .unwrap();
    let r = reader.clone();
    eventually("reflector sees 6", || {
        let r = r.clone();
        async move { r.state().len() == 6 }
    })
    .await;

    // disconnect, then more writes than the history holds -> the resumed watch gets 410 and relists
    srv.faults().set_latency(Duration::from_millis(0));
    srv.faults()
        .refuse_connections_for(Duration::from_millis(500));
    // Cut the open watch too: otherwise it may stay connected and receive
    // the writes below live, and nothing forces a relist.
    srv.faults().drop_watches();
    let store = srv.store();
    let cmr = kube_testserver::registry::id("", "configmaps");
    for i in 0..30 {
        store
            .create(
                cmr,
                json!({"metadata": {"name": format!("bulk{i}"), "namespace": "default"}}),
            )
            .unwrap();
    }
    store.delete(cmr, "default", "r0", None, None).unwrap();
    let r = reader.clone();
    eventually("reflector relists after 410", || {
        let r = r.clone();
        async move { r.state().len() == 35 }
    })
    .await;
    assert!(
        srv.stats().count("list", "configmaps") >= 2,
        "watcher should have relisted: {:?}",
        srv.stats()
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_and_restart_keep_data() {
    let mut srv = TestServer::start().await.unwrap();
    let url = srv.url();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    api.create(&PostParams::default(), &cm("keep"))
        .await
        .unwrap();
    let mut w = api
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(w.next().await.is_some());
    srv.stop().await;
    assert!(
        tokio::net::TcpStream::connect(srv.addr()).await.is_err(),
        "connections must be refused"
    );
    // the open watch was cut
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert!(end.is_none() || end.unwrap().is_err());
    srv.restart().await.unwrap();
    assert_eq!(srv.url(), url);
    let fresh: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    assert!(fresh.get("keep").await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_watcher_never_blocks_writers_and_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await.unwrap();
    let mut sock = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let req = format!("GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", srv.addr());
    sock.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // far more events than the broadcast buffer (65536) while nobody reads the socket
    let store = srv.store();
    let cmr = kube_testserver::registry::id("", "configmaps");
    let started = std::time::Instant::now();
    let writer = tokio::task::spawn_blocking(move || {
        for i in 0..100_000 {
            store
                .create(
                    cmr,
                    json!({"metadata": {"name": format!("s{i}"), "namespace": "default"}}),
                )
                .unwrap();
        }
    });
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("writers blocked")
        .unwrap();
    let write_time = started.elapsed();
    // reading now drains what was buffered and then hits the end of the stream
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut buf))
        .await
        .expect("watch was not closed")
        .unwrap();
    let events = buf.windows(8).filter(|w| w == b"\"type\":\"").count();
    assert!(events < 100_000, "the lagging watcher should have been cut, got {events} events (writes took {write_time:?})");
    // a fresh client is unaffected
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    assert!(api.get("s99999").await.is_ok());
}
