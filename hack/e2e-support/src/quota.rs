//! Fixtures of the capacity tests that hostpath and nfs share
//! (`*/tests/capacity.rs`, run in the quota VM by `hack/test-quota-vm.sh`):
//! which quota-enabled mounts this run was given, a volume's used and limit
//! bytes as the provisioner's `/metrics` show them, and growing a claim.

use std::path::PathBuf;

use kube::api::{Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::{claims, http_get, wait_for};

/// The quota-enabled mounts this run was given, `(fs, path)`, from
/// `QUOTA_TEST_EXT4` and `QUOTA_TEST_XFS`. With `QUOTA_VM` set (the quota
/// VM) both must be given: there a missing mount fails instead of skipping.
pub fn quota_mounts() -> Vec<(&'static str, PathBuf)> {
    let mounts: Vec<_> = [("ext4", "QUOTA_TEST_EXT4"), ("xfs", "QUOTA_TEST_XFS")]
        .into_iter()
        .filter_map(|(fs, var)| Some((fs, PathBuf::from(std::env::var_os(var)?))))
        .collect();
    if std::env::var_os("QUOTA_VM").is_some() {
        assert_eq!(
            mounts.len(),
            2,
            "QUOTA_VM is set: both QUOTA_TEST_EXT4 and QUOTA_TEST_XFS must name prjquota mounts"
        );
    }
    mounts
}

/// The value of `name{persistentvolume="<pv>"}` in a Prometheus text body.
pub fn volume_metric(body: &str, name: &str, pv: &str) -> Option<u64> {
    let prefix = format!("{name}{{persistentvolume=\"{pv}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `(used, capacity)` of `pv` on the `/metrics` at `port`, read from the
/// gauges named `used` and `capacity`.
pub fn volume_metrics(
    port: u16,
    pv: &str,
    used: &str,
    capacity: &str,
) -> (Option<u64>, Option<u64>) {
    let (status, body) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    (
        volume_metric(&body, used, pv),
        volume_metric(&body, capacity, pv),
    )
}

/// Asks for `size` on claim `claim` and waits until its `status.capacity`
/// says so (the provisioner's `expand` and the library's update done).
pub async fn resize_claim(client: &Client, claim: &str, size: &str) {
    claims(client)
        .patch(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size}}}})),
        )
        .await
        .unwrap();
    let api = claims(client);
    wait_for(&format!("claim {claim}'s status.capacity {size}"), || {
        let api = api.clone();
        async move {
            let c = api.get(claim).await.ok()?;
            (c.status?.capacity?.get("storage")?.0 == size).then_some(())
        }
    })
    .await;
}
