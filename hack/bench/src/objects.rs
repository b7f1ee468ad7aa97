//! The Kubernetes objects benches and chaos runs create, and API calls that
//! ride out injected faults.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde_json::json;

/// The objects, shared with the end-to-end tests.
pub use e2e_support::{scheduled_claim, storage_class};

/// Runs `op` until it succeeds, treating `done` errors as success (e.g. 409
/// on create, 404 on delete), for up to `deadline`; under injected faults the
/// driver's own requests fail too.
pub async fn retry<T, F, Fut>(
    what: &str,
    deadline: Duration,
    done: impl Fn(&kube::Error) -> bool,
    mut op: F,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        match op().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if done(&e) => return Ok(None),
            Err(e) if tokio::time::Instant::now() >= end => {
                anyhow::bail!("{what}: still failing after {deadline:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether `e` is an API error with HTTP status `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Creates `class` (an existing one is fine).
pub async fn ensure_class(client: &Client, sc: &StorageClass) -> anyhow::Result<()> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let pp = PostParams::default();
    retry(
        "create StorageClass",
        Duration::from_secs(30),
        |e| is_status(e, 409),
        || api.create(&pp, sc),
    )
    .await?;
    Ok(())
}

/// Creates Node `name` (labelled `kubernetes.io/hostname=<name>`) unless it
/// exists: the controller gives claims whose selected node does not exist
/// back to the scheduler, so node-local runs need their Nodes, as on a real
/// cluster.
pub async fn ensure_node(client: &Client, name: &str) -> anyhow::Result<()> {
    ensure_node_labelled(client, name, name).await
}

/// [`ensure_node`] with a `kubernetes.io/hostname` label other than the
/// name (as on clusters with FQDN node names), Ready.
pub async fn ensure_node_labelled(
    client: &Client,
    name: &str,
    hostname: &str,
) -> anyhow::Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": hostname}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))?;
    let pp = PostParams::default();
    retry(
        "create Node",
        Duration::from_secs(30),
        |e| is_status(e, 409),
        || api.create(&pp, &node),
    )
    .await?;
    Ok(())
}

/// Creates a claim, retrying through faults (409 = an earlier attempt landed).
pub async fn create_claim_retrying(
    api: &Api<PersistentVolumeClaim>,
    c: &PersistentVolumeClaim,
) -> anyhow::Result<()> {
    let pp = PostParams::default();
    retry(
        "create claim",
        Duration::from_secs(60),
        |e| is_status(e, 409),
        || api.create(&pp, c),
    )
    .await?;
    Ok(())
}

/// Deletes a claim, retrying through faults (404 = already gone).
pub async fn delete_claim_retrying(
    api: &Api<PersistentVolumeClaim>,
    name: &str,
) -> anyhow::Result<()> {
    let dp = DeleteParams::default();
    retry(
        "delete claim",
        Duration::from_secs(60),
        |e| is_status(e, 404),
        || api.delete(name, &dp),
    )
    .await?;
    Ok(())
}
