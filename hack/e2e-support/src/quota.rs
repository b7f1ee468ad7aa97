//! Fixtures of the capacity tests that hostpath and nfs share
//! (`*/tests/capacity.rs`, run in the quota VM by `hack/test-quota-vm.sh`):
//! which quota-enabled mounts this run was given, the scenario's opening (a
//! quota-checked root and a kube-testserver), a volume's used and limit
//! bytes as the provisioner's `/metrics` show them, growing a claim and
//! checking the grown limit, and checking that a deleted volume's project
//! is free.

use std::path::{Path, PathBuf};

use hostfs::quota::{self, ProjectQuotas, Usage};
use kube::api::{Patch, PatchParams};
use kube::Client;
use kube_testserver::TestServer;
use serde_json::json;

use crate::{claims, delete_claim, http_get, pvs, wait_for, wait_pv_gone};

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

/// Fails unless the filesystem holding `path` has more than `bytes` free
/// (`df`): a write stopped by a quota proves nothing when the filesystem
/// itself was full. Returns the free bytes.
pub fn assert_filesystem_has_room(path: &Path, bytes: u64) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .expect("df");
    let avail: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the available bytes");
    assert!(
        avail > bytes,
        "the filesystem itself is full: {avail} bytes free"
    );
    avail
}

/// [`quota_mounts`], or, when there are none (this kernel has no quota
/// support), none after saying loudly on stdout and stderr that `what` was
/// not tested here and where it is.
pub fn quota_mounts_or_skip(what: &str) -> Vec<(&'static str, PathBuf)> {
    let mounts = quota_mounts();
    if mounts.is_empty() {
        let why = format!(
            "SKIPPED: {what} NOT TESTED here: QUOTA_TEST_EXT4/QUOTA_TEST_XFS are unset (this \
             kernel has no quota support); hack/test-quota-vm.sh runs this test in a VM with a \
             quota-enabled kernel"
        );
        println!("{why}");
        eprintln!("{why}");
    }
    mounts
}

/// Grows claim `claim` (bound to `pv`, whose directory `dir` is quota
/// project `project`) to `size` (= `bytes`): the claim's status, the PV's
/// capacity and the project's limit all say so.
pub async fn grow_and_check(
    client: &Client,
    claim: &str,
    pv: &str,
    dir: &Path,
    project: u32,
    (size, bytes): (&str, u64),
) {
    resize_claim(client, claim, size).await;
    let got = pvs(client).get(pv).await.unwrap();
    assert_eq!(
        got.spec.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        size
    );
    assert_eq!(quota::usage(dir, project).unwrap().limit_bytes, bytes);
}

/// Deletes claim `claim` and checks what its volume leaves: the PV `pv` and
/// the volume's directory `dir` gone, the recorded project id `state` gone,
/// no limit and no usage left on project `project` of the filesystem at
/// `root`, and no metrics for the PV (`scrape` reads them).
pub async fn delete_and_check_freed(
    client: &Client,
    (claim, pv): (&str, &str),
    (dir, state, root): (&Path, &Path, &Path),
    project: u32,
    scrape: impl Fn() -> (Option<u64>, Option<u64>),
) {
    delete_claim(client, claim).await;
    wait_pv_gone(client, pv).await;
    assert!(!dir.exists(), "the volume directory must be removed");
    assert!(!state.exists(), "{} must be gone", state.display());
    assert_eq!(
        quota::usage(root, project).unwrap(),
        Usage {
            used_bytes: 0,
            limit_bytes: 0
        }
    );
    assert_eq!(scrape(), (None, None));
}

/// The value of `name{persistentvolume="<pv>"}` in a Prometheus text body.
pub fn volume_metric(body: &str, name: &str, pv: &str) -> Option<u64> {
    let prefix = format!("{name}{{persistentvolume=\"{pv}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `(used, capacity)` of `pv` on the `/metrics` at `port`: the quota
/// gauges hostfs exports (`USED_BYTES_METRIC`, `CAPACITY_BYTES_METRIC`),
/// the same for every provisioner that enforces capacity.
pub fn quota_metrics(port: u16, pv: &str) -> (Option<u64>, Option<u64>) {
    let (status, body) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    (
        volume_metric(&body, quota::USED_BYTES_METRIC, pv),
        volume_metric(&body, quota::CAPACITY_BYTES_METRIC, pv),
    )
}

/// The opening of a capacity scenario on the `fs` mount `mnt`: the
/// provisioner's root `mnt/<dir>` made, project quotas on it checked (a
/// panic naming the filesystem when the mount has none: the test was told it
/// has), and a kube-testserver started. Returns the root and the server.
pub async fn quota_scenario(fs: &str, mnt: &Path, dir: &str) -> (PathBuf, TestServer) {
    let root = mnt.join(dir);
    std::fs::create_dir_all(&root).unwrap();
    ProjectQuotas::detect(&root)
        .unwrap_or_else(|e| panic!("{fs} at {} must have project quotas: {e}", mnt.display()));
    let ts = TestServer::start().await.expect("start kube-testserver");
    (root, ts)
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
