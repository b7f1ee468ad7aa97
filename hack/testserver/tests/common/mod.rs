//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `f` until it returns true, panicking after 10 seconds.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw HTTP/1.1 request; returns (status, headers, body).
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
    if let Some((ct, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// A server configuration without the in-process binder and scheduler:
/// only what a test itself writes changes the store.
pub fn without_controllers() -> kube_testserver::Config {
    kube_testserver::Config {
        binder: false,
        scheduler: false,
        ..Default::default()
    }
}

pub fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// Creates one ConfigMap per name (see [`cm`]) through `api`, in order.
pub async fn create_cms(api: &kube::Api<ConfigMap>, names: impl IntoIterator<Item = String>) {
    for name in names {
        api.create(&kube::api::PostParams::default(), &cm(&name))
            .await
            .unwrap();
    }
}

pub fn pvc(name: &str, class: Option<&str>, size: &str) -> PersistentVolumeClaim {
    let mut v = json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    if let Some(c) = class {
        v["spec"]["storageClassName"] = json!(c);
    }
    serde_json::from_value(v).unwrap()
}

pub fn pv(name: &str, class: &str, size: &str) -> PersistentVolume {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": size}, "storageClassName": class, "hostPath": {"path": format!("/tmp/{name}")}}}))
    .unwrap()
}

/// The `Status` carried by a kube error.
pub fn status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected API error, got {other:?}"),
    }
}
