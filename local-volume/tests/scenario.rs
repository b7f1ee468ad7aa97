//! local-volume on either control plane (`E2E_CLUSTER=real` or
//! `testserver`, see `e2e_support::cluster`), installed from
//! `deploy/local-volume` and authenticated as its ServiceAccount: a mounted
//! volume becomes a PV, with `--add-finalizer` on, and every call the
//! binary made is allowed by the shipped RBAC (on the real cluster, the real
//! authorizer's verdicts from the audit log).

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_support::*;
use external_storage::annotations::PV_FINALIZER;
use local_volume_provisioner::pv::pv_name;

const NODE: &str = "node-1";
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
    cluster.node(NODE, NODE).await;
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
            NODE,
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
    let name = pv_name("vol1", NODE, CLASS);
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
