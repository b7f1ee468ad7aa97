//! `enforceCapacity` end to end on a quota-enabled kernel: the real
//! `hostpath-provisioner` binary against kube-testserver, its root on a
//! filesystem mounted with project quotas. `QUOTA_TEST_EXT4` and
//! `QUOTA_TEST_XFS` name such mounts; `hack/test-quota-vm.sh` boots a VM
//! (Debian's kernel, which has quota support, unlike our CI's) with an ext4
//! (`-O quota,project`) and an XFS disk, both mounted `prjquota`, and runs
//! this test there with `QUOTA_VM=1`.
//!
//! Per filesystem: a claim of an `enforceCapacity` class; a write past its
//! request fails with EDQUOT; `/metrics` reports the volume's used and limit
//! bytes from the quota; growing the claim raises the limit and the larger
//! write succeeds; deleting the claim removes the project's limit and frees
//! its id for the next claim.
//!
//! Without the variables (a machine whose kernel cannot do quotas, or no
//! qemu to run the VM) the test says loudly that it skipped; with
//! `QUOTA_VM=1` a missing mount fails it.

use std::path::{Path, PathBuf};

use e2e_support::*;
use hostfs::quota;
use k8s_openapi::api::core::v1::PersistentVolume;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/hostpath";
const NODE: &str = "node-1";
const MIB: u64 = 1 << 20;

/// Writes `len` bytes to `path` as a pod would: without
/// `CAP_SYS_RESOURCE`, which lets a process exceed ext4's (the VFS quota
/// code's) hard limits (XFS enforces them even then). `dd` in 1 MiB blocks
/// under `setpriv --bounding-set=-sys_resource`, fsynced; dd's message
/// (strerror of the failed write) as the error.
fn write_bytes(path: &Path, len: u64) -> Result<(), String> {
    let out = std::process::Command::new("setpriv")
        .args([
            "--bounding-set=-sys_resource",
            "--inh-caps=-sys_resource",
            "dd",
            "if=/dev/zero",
            &format!("of={}", path.display()),
            "bs=1M",
            &format!("count={}", len / MIB),
            "conv=fsync",
            "status=none",
        ])
        .output()
        .expect("setpriv and dd (util-linux, coreutils)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The errno a write past a project's hard limit fails with, checked from
/// dd's message: EDQUOT on ext4; XFS reports a *project* quota's limit as
/// ENOSPC (`xfs_trans_dqresv`), so there the filesystem must have room
/// left, or the ENOSPC would prove nothing.
fn quota_errno(fs: &str, message: &str, on: &Path) -> &'static str {
    if fs == "xfs" {
        assert!(message.contains("No space left on device"), "{message}");
        assert_filesystem_has_room(on, 64 * MIB);
        "ENOSPC (XFS project quota; filesystem not full)"
    } else {
        // strerror(EDQUOT)
        assert!(message.contains("Disk quota exceeded"), "{message}");
        "EDQUOT"
    }
}

fn host_path(pv: &PersistentVolume) -> PathBuf {
    PathBuf::from(&pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path)
}

fn project_of(pv: &PersistentVolume) -> u32 {
    pv.metadata.annotations.as_ref().unwrap()["hostpath.external-storage.io/quota-project"]
        .parse()
        .unwrap()
}

async fn scenario(fs: &str, mnt: &Path) {
    let (root, ts) = quota_scenario(fs, mnt, "hostpath-root").await;
    let client = ts.client().await;
    let c = &client;
    create_node(c, NODE).await;
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let mut args = vec!["--node-name", NODE];
    args.extend(QUICK_RETRIES);
    args.extend([
        "--metrics-address",
        &metrics,
        "--root",
        root.to_str().unwrap(),
    ]);
    let _provisioner = Binary::spawn(
        env!("CARGO_BIN_EXE_hostpath-provisioner"),
        &ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
        &args,
        logs.path(),
    );
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> = kube::Api::all(c.clone());
    create(
        &classes,
        json!({
            "metadata": {"name": "capped"},
            "provisioner": PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": true,
            "parameters": {"enforceCapacity": "true"},
        }),
    )
    .await;

    // --- the limit is the request: a write past it fails with EDQUOT
    create_claim(c, "capped", "capped", "8Mi", json!({})).await;
    create_pod_for(c, "capped", NODE).await;
    let pv = wait_bound(c, "capped").await;
    let pv_name = pv.metadata.name.clone().unwrap();
    let dir = host_path(&pv);
    let project = project_of(&pv);
    assert_eq!(quota::project_of(&dir).unwrap(), (project, true));
    assert_eq!(quota::usage(&dir, project).unwrap().limit_bytes, 8 * MIB);
    let too_much = 12 * MIB;
    let e = write_bytes(&dir.join("big"), too_much)
        .expect_err("a write past the 8 MiB request must fail");
    let errno = quota_errno(fs, &e, &root);
    println!(
        "quota-evidence: hostpath {fs}: write of {too_much} bytes past 8 MiB request: {errno} ({e})"
    );

    // --- /metrics: used and limit bytes from the quota itself
    let used = quota::usage(&dir, project).unwrap().used_bytes;
    assert!(
        used > 7 * MIB && used <= 8 * MIB,
        "the failed write filled the quota: {used}"
    );
    assert_eq!(quota_metrics(port, &pv_name), (Some(used), Some(8 * MIB)));
    println!(
        "quota-evidence: hostpath {fs}: metrics {pv_name}: used {used} capacity {} bytes",
        8 * MIB
    );

    // --- growing the claim raises the limit; the same write then fits
    std::fs::remove_file(dir.join("big")).unwrap();
    grow_and_check(c, "capped", &pv_name, &dir, project, ("16Mi", 16 * MIB)).await;
    write_bytes(&dir.join("big"), too_much).expect("12 MiB fit in the expanded 16 MiB");
    let used = quota::usage(&dir, project).unwrap().used_bytes;
    assert!(used >= too_much, "{used}");
    assert_eq!(quota_metrics(port, &pv_name), (Some(used), Some(16 * MIB)));
    println!(
        "quota-evidence: hostpath {fs}: expanded to 16 MiB: write of {too_much} bytes succeeded; metrics used {used} capacity {}",
        16 * MIB
    );

    // --- delete: the project's limit is removed and its id is free again
    let state = root.join(".hostpath-provisioner/projects").join(&pv_name);
    delete_and_check_freed(
        c,
        ("capped", &pv_name),
        (&dir, &state, &root),
        project,
        || quota_metrics(port, &pv_name),
    )
    .await;
    create_claim(c, "next", "capped", "8Mi", json!({})).await;
    create_pod_for(c, "next", NODE).await;
    let next = wait_bound(c, "next").await;
    assert_eq!(project_of(&next), project, "the freed id is reused");
    println!(
        "quota-evidence: hostpath {fs}: deleted: project {project} has no limit and no usage, its id went to the next claim"
    );
    let next_name = next.metadata.name.clone().unwrap();
    delete_claim(c, "next").await;
    wait_pv_gone(c, &next_name).await;
    assert_rbac_allows(&ts, PROVISIONER_USER, &deploy_dir("hostpath"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_capacity_on_ext4_and_xfs_with_project_quotas() {
    for (fs, mnt) in quota_mounts_or_skip("capacity enforcement") {
        scenario(fs, &mnt).await;
    }
}
