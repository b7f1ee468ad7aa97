//! Fault injection and request statistics, via the library API and HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume};
use kube::api::{Api, ListParams, PostParams};
use kube_testserver::{FaultKind, TestServer};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn error_rates_return_the_injected_code() {
    let srv = TestServer::start().await.unwrap();
    let mut cfg = srv.kube_config();
    cfg.default_retry = false;
    let client = kube::Client::try_from(cfg).unwrap();
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let f = srv.faults();
    for (kind, code) in [
        (FaultKind::InternalError, 500),
        (FaultKind::TooManyRequests, 429),
        (FaultKind::Conflict, 409),
        (FaultKind::Timeout, 504),
    ] {
        f.set_error_rate(Some("create"), Some("persistentvolumes"), kind, 1.0);
        let s = status(
            pvs.create(&PostParams::default(), &pv("a", "x", "1Gi"))
                .await
                .unwrap_err(),
        );
        assert_eq!(s.code, code);
    }
    // other verbs and resources are unaffected
    pvs.list(&ListParams::default()).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("ok")).await.unwrap();
    f.clear();
    pvs.create(&PostParams::default(), &pv("a", "x", "1Gi"))
        .await
        .unwrap();
    // 429 carries Retry-After
    f.set_error_rate(None, None, FaultKind::TooManyRequests, 1.0);
    let (code, head, _) = raw(srv.addr(), "GET", "/api/v1/nodes", None).await;
    assert_eq!(code, 429);
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    f.clear();
    // rate 0.5 fails roughly half
    f.set_error_rate(Some("get"), None, FaultKind::InternalError, 0.5);
    let mut fails = 0;
    for _ in 0..100 {
        if pvs.get("a").await.is_err() {
            fails += 1;
        }
    }
    assert!((20..=80).contains(&fails), "{fails}");
    f.clear();
    // kube's default client retries 429 transparently (Retry-After honoured)
    f.set_error_rate(
        Some("list"),
        Some("persistentvolumes"),
        FaultKind::TooManyRequests,
        0.5,
    );
    let retrying: Api<PersistentVolume> = Api::all(srv.client().await);
    for _ in 0..3 {
        retrying.list(&ListParams::default()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_client_requests_including_failures() {
    let srv = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    srv.reset_stats();
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let _ = cms.create(&PostParams::default(), &cm("a")).await; // 409
    cms.get("a").await.unwrap();
    let _ = cms.get("missing").await;
    cms.list(&ListParams::default()).await.unwrap();
    let st = srv.stats();
    assert_eq!(st.count("create", "configmaps"), 2);
    assert_eq!(st.count("get", "configmaps"), 2);
    assert_eq!(st.count("list", "configmaps"), 1);
    assert_eq!(st.writes(), 2);
    assert_eq!(st.reads(), 3);
    assert_eq!(st.total(), 5);
    let (code, _, body) = raw(srv.addr(), "GET", "/testserver/stats", None).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["writes"], 2);
    let _ = raw(srv.addr(), "GET", "/version", None).await;
    assert_eq!(srv.stats().count("get", "discovery"), 1);
    srv.reset_stats();
    assert_eq!(srv.stats().total(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_fault_api_latency_and_refusal() {
    let srv = TestServer::start().await.unwrap();
    let body = r#"{"errors":[{"verb":"list","resource":"configmaps","kind":"InternalError","rate":1.0}],"latencyMs":100}"#;
    let (code, _, resp) = raw(
        srv.addr(),
        "POST",
        "/testserver/faults",
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(code, 200, "{resp}");
    let cms: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let t = Instant::now();
    assert_eq!(
        status(cms.list(&ListParams::default()).await.unwrap_err()).code,
        500
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
    let (code, _, _) = raw(
        srv.addr(),
        "PUT",
        "/testserver/faults",
        Some(("application/json", r#"{"clear":true}"#)),
    )
    .await;
    assert_eq!(code, 200);
    cms.list(&ListParams::default()).await.unwrap();

    srv.faults().refuse_connections_for(Duration::from_secs(2));
    srv.faults().refused().await;
    assert!(tokio::net::TcpStream::connect(srv.addr()).await.is_err());
    eventually("serving again", || async {
        tokio::net::TcpStream::connect(srv.addr()).await.is_ok()
    })
    .await;
    cms.list(&ListParams::default()).await.unwrap();
}
