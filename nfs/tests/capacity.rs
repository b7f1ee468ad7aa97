//! `enforceCapacity` and expansion end to end on a quota-enabled kernel:
//! the real `nfs-provisioner` binary (with NFS-Ganesha) against
//! kube-testserver, its export root on a filesystem mounted with project
//! quotas, written to through the real libnfs client over NFSv3 (libnfs's
//! NFSv4 writes do not work on Debian 12). `QUOTA_TEST_EXT4` and
//! `QUOTA_TEST_XFS` name the mounts; `hack/test-quota-vm.sh` runs this in a
//! VM whose kernel has quota support, with `QUOTA_VM=1`.
//!
//! Per filesystem: a claim of an `enforceCapacity` class; an NFS write past
//! its request fails with the server's EDQUOT (NFS3ERR_DQUOT); `/metrics`
//! reports used and limit bytes from the quota; growing the claim
//! (`allowVolumeExpansion`) raises the limit, the PV's and the claim's
//! capacity, and the larger write succeeds; deleting the claim removes the
//! project's limit and frees its id.
//!
//! Needs root and the Ganesha and libnfs packages, as `e2e.rs`. Without the
//! variables the test says loudly that it skipped.

use std::path::{Path, PathBuf};

mod common;

use common::*;
use e2e_support::*;
use hostfs::quota;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/nfs";
const MIB: u64 = 1 << 20;

/// `nfs-cp` of a `len`-byte local file to `file` in export `path`: the
/// client's output as the error.
fn nfs_put(path: &str, file: &str, len: u64, tmp: &Path) -> Result<(), String> {
    let local = tmp.join(format!("local-{file}"));
    std::fs::write(&local, vec![0x5a_u8; len as usize]).unwrap();
    let out = run("nfs-cp", &[local.to_str().unwrap(), &url(path, file, 3)]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim()
        .to_string())
    }
}

async fn scenario(fs: &str, mnt: &Path) {
    let (export_root, ts) = quota_scenario(fs, mnt, "nfs-export").await;
    let client = ts.client().await;
    let c = &client;
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let _reaper = Reaper(run_dir.clone());
    let port = free_port();
    nfs_service(c).await;
    let mut provisioner = Server::new(&export_root, &run_dir, port).spawn(
        &ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
        tmp.path(),
        &[],
    );
    wait_ready(port).await;
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> = kube::Api::all(c.clone());
    create(
        &classes,
        json!({
            "metadata": {"name": "nfs-capped"},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": true,
            "parameters": {"enforceCapacity": "true"},
        }),
    )
    .await;

    // --- an NFS write past the request fails with the server's EDQUOT
    create_claim(
        c,
        "capped",
        "nfs-capped",
        "8Mi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    let pv = wait_bound(c, "capped").await;
    let pv_name = pv.metadata.name.clone().unwrap();
    let path = nfs_path(&pv);
    let dir = PathBuf::from(&path);
    let state = export_root.join(".nfs-provisioner/projects").join(&pv_name);
    let project: u32 = std::fs::read_to_string(&state)
        .expect("the project id is recorded")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(quota::project_of(&dir).unwrap(), (project, true));
    assert_eq!(quota::usage(&dir, project).unwrap().limit_bytes, 8 * MIB);
    let too_much = 12 * MIB;
    let e = nfs_put(&path, "big", too_much, tmp.path())
        .expect_err("an NFS write past the 8 MiB request must fail");
    // nfs-cp prints no NFS status ("Failed to write to dest file"), so the
    // proof is the server side: the file stopped at the limit, the
    // project's quota is full, and the filesystem itself has room.
    assert!(e.contains("Failed to write"), "{e}");
    let avail = assert_filesystem_has_room(&export_root, 64 * MIB);
    let at = quota::usage(&dir, project).unwrap();
    assert!(
        at.used_bytes + 64 * 1024 >= at.limit_bytes,
        "the write stopped short of the quota: {at:?}"
    );
    let errno = format!(
        "refused at the quota (project {project} used {} of {} bytes, {avail} bytes free on {fs})",
        at.used_bytes, at.limit_bytes
    );
    println!(
        "quota-evidence: nfs {fs}: NFSv3 write of {too_much} bytes past 8 MiB request: {errno} (libnfs: {})",
        e.replace('\n', " ")
    );
    let on_disk = std::fs::metadata(dir.join("big"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(on_disk <= 8 * MIB, "{on_disk} bytes landed");

    // --- /metrics from the quota
    let used = quota::usage(&dir, project).unwrap().used_bytes;
    assert!(used <= 8 * MIB, "{used}");
    assert_eq!(quota_metrics(port, &pv_name), (Some(used), Some(8 * MIB)));
    println!(
        "quota-evidence: nfs {fs}: metrics {pv_name}: used {used} capacity {} bytes",
        8 * MIB
    );

    // --- expansion: quota, PV and claim grow; the write then fits
    // The partial `big` stays (Ganesha may hold it open; removing it behind
    // the server's back need not free its blocks): 6 MiB more takes the
    // volume past the old 8 MiB limit and fits only under the raised one.
    grow_and_check(c, "capped", &pv_name, &dir, project, ("16Mi", 16 * MIB)).await;
    let more = 6 * MIB;
    nfs_put(&path, "big2", more, tmp.path()).expect("8 + 6 MiB fit in the expanded 16 MiB");
    assert_eq!(std::fs::metadata(dir.join("big2")).unwrap().len(), more);
    let used = quota::usage(&dir, project).unwrap().used_bytes;
    assert!(used > 8 * MIB + more - MIB, "{used}");
    assert_eq!(quota_metrics(port, &pv_name), (Some(used), Some(16 * MIB)));
    wait_normal(c, "capped", "VolumeResizeSuccessful").await;
    println!(
        "quota-evidence: nfs {fs}: expanded to 16 MiB: NFSv3 write of {more} more bytes (past the old 8 MiB limit) succeeded; metrics used {used} capacity {}",
        16 * MIB
    );

    // --- delete: export and data gone, the project's limit removed, its id free
    delete_and_check_freed(
        c,
        ("capped", &pv_name),
        (&dir, &state, &export_root),
        project,
        || quota_metrics(port, &pv_name),
    )
    .await;
    create_claim(
        c,
        "next",
        "nfs-capped",
        "8Mi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    let next = wait_bound(c, "next").await;
    let next_name = next.metadata.name.clone().unwrap();
    let next_project = std::fs::read_to_string(
        export_root
            .join(".nfs-provisioner/projects")
            .join(&next_name),
    )
    .unwrap();
    assert_eq!(
        next_project.trim(),
        project.to_string(),
        "the freed id is reused"
    );
    println!(
        "quota-evidence: nfs {fs}: deleted: project {project} has no limit and no usage, its id went to the next claim"
    );
    delete_claim(c, "next").await;
    wait_pv_gone(c, &next_name).await;

    let status = provisioner
        .terminate(std::time::Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert_rbac_allows(&ts, PROVISIONER_USER, &deploy_dir("nfs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_capacity_and_expand_on_ext4_and_xfs_through_nfs() {
    let mounts = quota_mounts_or_skip("NFS capacity enforcement");
    if mounts.is_empty() {
        return;
    }
    preflight();
    // One Ganesha at a time (fixed ports): the filesystems one after the other.
    for (fs, mnt) in mounts {
        scenario(fs, &mnt).await;
    }
}
