//! The local-volume scenario on either control plane (`E2E_CLUSTER=real` or
//! `testserver`, see `e2e_support::cluster`): `kubectl apply -f
//! deploy/local-volume` (its StorageClass `fast-disks`), the DaemonSet's
//! instance run locally as the deploy/ ServiceAccount on a node named by its
//! FQDN whose `kubernetes.io/hostname` label is its short name, real tmpfs
//! mounts discovered as PVs, the scheduler choosing the PV for a pod, the
//! PV controller binding it; deleting the claim cleans the volume and offers
//! it again, Retain keeps the data. Skips (saying so) where tmpfs cannot be
//! mounted. Also: the shipped RBAC allows what `--add-finalizer` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_support::*;
use external_storage::annotations::PV_FINALIZER;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use local_volume_provisioner::pv::pv_name;
use serde_json::json;

const NODE: (&str, &str) = ("lv-node.cluster.example.com", "lv-node");

/// tmpfs mounts, unmounted on drop (also when the test fails).
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn tmpfs(&mut self, path: &Path) -> bool {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        if !out.status.success() {
            eprintln!(
                "SKIP: cannot mount tmpfs at {} (the scenario needs root and mounts): {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            return false;
        }
        self.0.push(path.to_path_buf());
        true
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

async fn wait_available(client: &Client, name: &str, not_uid: Option<&str>) -> PersistentVolume {
    let api = pvs(client);
    wait_for(&format!("PV {name} Available (uid != {not_uid:?})"), || {
        let api = api.clone();
        async move {
            let pv = api.get_opt(name).await.ok()??;
            let fresh = not_uid.is_none_or(|u| pv.metadata.uid.as_deref() != Some(u));
            let available = pv.status.as_ref()?.phase.as_deref()? == "Available";
            (fresh && available && pv.metadata.deletion_timestamp.is_none()).then_some(pv)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_local_volume_discover_bind_clean_and_retain() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mounts = Mounts(Vec::new());
    let (vol, kept) = (tmp.path().join("fs/vol1"), tmp.path().join("keep/vol1"));
    if !mounts.tmpfs(&vol) || !mounts.tmpfs(&kept) {
        return;
    }
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let installed = cluster.install("local-volume");
    cluster.node(NODE.0, NODE.1).await;
    create_class(
        &client,
        "local-keep",
        "kubernetes.io/no-provisioner",
        "Retain",
        true,
        json!({}),
    )
    .await;
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storageClassMap:\n  fast-disks:\n    hostDir: {0}/fs\n  local-keep:\n    hostDir: {0}/keep\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join("state")).unwrap();
    let _bin = Binary::spawn(
        env!("CARGO_BIN_EXE_local-volume-provisioner"),
        &installed.kubeconfig,
        &[
            "--node-name",
            NODE.0,
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            tmp.path().join("state").to_str().unwrap(),
            "--discovery-period",
            "200ms",
            "--retry-interval-start",
            "200ms",
            "--retry-interval-max",
            "2s",
        ],
        tmp.path(),
    );

    // Discovery: the mount becomes a PV pinned by the hostname label.
    let name = pv_name("vol1", NODE.0, "fast-disks");
    let pv = wait_available(&client, &name, None).await;
    let term = first_affinity_term(&pv);
    assert!(
        term.match_fields.is_none(),
        "the scheduler matches labels only"
    );
    let req = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(req.key, "kubernetes.io/hostname");
    assert_eq!(req.values.as_deref(), Some(&[NODE.1.to_string()][..]));

    // The scheduler picks the node and the PV; the PV controller binds.
    create_claim(&client, "data", "fast-disks", "10Mi", json!({})).await;
    create_pod_on(&client, "data", NODE.1).await;
    let bound = wait_bound(&client, "data").await;
    assert_eq!(bound.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(wait_scheduled(&client, "data").await, NODE.0);
    std::fs::write(vol.join("secret"), b"tenant 1").unwrap();

    // Delete: cleaned, then offered again as a new PV of the same name.
    let old_uid = pv.metadata.uid.clone().unwrap();
    delete_claim(&client, "data").await;
    wait_available(&client, &name, Some(&old_uid)).await;
    assert!(
        std::fs::read_dir(&vol).unwrap().next().is_none(),
        "the volume must be empty before it is offered again"
    );

    // Retain: Released, and the data stays.
    create_claim(&client, "kept", "local-keep", "10Mi", json!({})).await;
    create_pod_on(&client, "kept", NODE.1).await;
    let pv = wait_bound(&client, "kept").await;
    std::fs::write(kept.join("file"), b"kept").unwrap();
    let kept_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "kept").await;
    wait_pv_phase(&client, &kept_name, "Released").await;
    // The fast-disks volume going through another round trip proves the
    // instance is past the Released PV and left it alone.
    create_claim(&client, "after", "fast-disks", "10Mi", json!({})).await;
    create_pod_on(&client, "after", NODE.1).await;
    wait_bound(&client, "after").await;
    assert_eq!(std::fs::read(kept.join("file")).unwrap(), b"kept");
    assert!(pvs(&client).get_opt(&kept_name).await.unwrap().is_some());

    cluster.assert_rbac(&installed);
}

const RBAC_NODE: &str = "node-1";
/// The class `deploy/local-volume` ships.
const CLASS: &str = "fast-disks";

/// Unmounts what it mounted, on drop.
struct Mounted(PathBuf);

impl Mounted {
    /// A tmpfs at `path`, or `None` (with the reason on stderr) when this
    /// machine cannot mount one.
    fn tmpfs(path: &Path) -> Option<Mounted> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mounted(path.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIP: cannot mount tmpfs at {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Issue 14, item 9: `--add-finalizer` makes the library PATCH finalizers
/// onto the PVs local-volume creates; its ClusterRole must allow that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rbac_local_volume_with_add_finalizer() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_vol) = Mounted::tmpfs(&tmp.path().join("disks/vol1")) else {
        return;
    };
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let installed = cluster.install("local-volume");
    cluster.node(RBAC_NODE, RBAC_NODE).await;
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storageClassMap:\n  {CLASS}:\n    hostDir: {}/disks\nminResyncPeriod: 1h\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join("state")).unwrap();
    let _bin = Binary::spawn(
        env!("CARGO_BIN_EXE_local-volume-provisioner"),
        &installed.kubeconfig,
        &[
            "--node-name",
            RBAC_NODE,
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            tmp.path().join("state").to_str().unwrap(),
            "--discovery-period",
            "200ms",
            "--add-finalizer",
        ],
        tmp.path(),
    );
    let name = pv_name("vol1", RBAC_NODE, CLASS);
    let api = pvs(&client);
    wait_for(&format!("PV {name} with {PV_FINALIZER}"), || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let pv = api.get_opt(&name).await.ok()??;
            pv.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == PV_FINALIZER)
                .then_some(())
        }
    })
    .await;
    cluster.assert_rbac(&installed);
}

/// Issue #19.5 (upstream local-static-provisioner #181): with
/// `--delete-volumes-of-deleted-nodes-after`, the PV of a node deleted for
/// good is deleted by the surviving instance (the deploy/ RBAC allows the
/// Node watch and the Lease), its disk is not touched, our PV finalizer is
/// released, and the claim, made again, binds to the other node's volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_local_volume_the_claim_of_a_deleted_node_binds_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (doomed, survivor) = ("lv-a", "lv-b");
    let mut mounts = Mounts(Vec::new());
    let vol = |node: &str| tmp.path().join(node).join("disks/vol1");
    if !mounts.tmpfs(&vol(doomed)) || !mounts.tmpfs(&vol(survivor)) {
        return;
    }
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let installed = cluster.install("local-volume");
    cluster.node(doomed, doomed).await;
    cluster.node(survivor, survivor).await;
    let spawn = |node: &str| {
        let dir = tmp.path().join(node);
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storageClassMap:\n  {CLASS}:\n    hostDir: {}/disks\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let state = dir.join("state");
        let sweep = deleted_node_sweep_args(&installed.namespace);
        let mut args = vec![
            "--node-name",
            node,
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--discovery-period",
            "200ms",
            "--add-finalizer",
        ];
        args.extend(sweep.iter().map(String::as_str));
        Binary::spawn(
            env!("CARGO_BIN_EXE_local-volume-provisioner"),
            &installed.kubeconfig,
            &args,
            &dir,
        )
    };
    let doomed_bin = spawn(doomed);
    let _survivor_bin = spawn(survivor);
    let (gone_pv, other_pv) = (
        pv_name("vol1", doomed, CLASS),
        pv_name("vol1", survivor, CLASS),
    );
    wait_available(&client, &gone_pv, None).await;
    wait_available(&client, &other_pv, None).await;
    create_claim(&client, "data", CLASS, "10Mi", json!({})).await;
    create_pod_on(&client, "data", doomed).await;
    let bound = wait_bound(&client, "data").await;
    assert_eq!(bound.metadata.name.as_deref(), Some(gone_pv.as_str()));
    std::fs::write(vol(doomed).join("file"), b"data").unwrap();

    // The node goes for good, and its instance with it.
    drop(doomed_bin);
    e2e_support::cluster::kubectl(cluster.admin_kubeconfig(), &["delete", "node", doomed]);
    wait_pv_deleting(&client, &gone_pv).await;
    let warning = wait_warning(&client, "data", "create it again").await;
    assert!(warning.contains(doomed), "{warning}");
    wait_normal(&client, &gone_pv, "DeletedNodeVolumeRemoved").await;
    // Our finalizer waited for a cleaning only the vanished instance could
    // do: released.
    wait_for("our finalizer released", || {
        let api = pvs(&client);
        let name = gone_pv.clone();
        async move {
            let held = match api.get_opt(&name).await.ok()? {
                None => return Some(()),
                Some(pv) => pv.metadata.finalizers.unwrap_or_default(),
            };
            (!held.iter().any(|f| f == PV_FINALIZER)).then_some(())
        }
    })
    .await;

    // Made again, the claim binds to the volume of the node that is left.
    delete_claim(&client, "data").await;
    wait_pv_gone(&client, &gone_pv).await;
    create_claim(&client, "data", CLASS, "10Mi", json!({})).await;
    create_pod_on(&client, "data", survivor).await;
    let again = wait_bound(&client, "data").await;
    assert_eq!(again.metadata.name.as_deref(), Some(other_pv.as_str()));
    assert_eq!(wait_scheduled(&client, "data").await, survivor);
    // The deleted node's disk was not touched.
    assert_eq!(std::fs::read(vol(doomed).join("file")).unwrap(), b"data");

    cluster.assert_rbac(&installed);
}
