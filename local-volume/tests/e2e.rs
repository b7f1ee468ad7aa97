//! End-to-end: the real `local-volume-provisioner` binary against
//! kube-testserver (with its PV binder and WaitForFirstConsumer scheduler),
//! discovering real tmpfs mounts and a real loop device in temporary
//! discovery directories, as root. Where mounting is impossible the test
//! prints why and skips that part only. Every mount and loop device is
//! released by a guard, also when a test fails.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use local_volume_provisioner::labels::NODE_LABEL;
use local_volume_provisioner::pv::pv_name;
use serde_json::json;

const NODE: &str = "node-1";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
const PROVISIONER: &str = "external-storage.io/local-volume";

/// Mount points and loop devices to release, newest first, on drop.
#[derive(Default)]
struct Guard {
    mounts: Vec<PathBuf>,
    loops: Vec<String>,
}

impl Guard {
    /// Mounts a tmpfs of `size` at `path` (created); false, with the reason
    /// printed, when this machine cannot.
    fn tmpfs(&mut self, path: &Path, size: &str) -> bool {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                self.mounts.push(path.to_path_buf());
                true
            }
            Ok(o) => {
                eprintln!(
                    "SKIP: cannot mount tmpfs at {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                false
            }
            Err(e) => {
                eprintln!("SKIP: cannot run mount: {e}");
                false
            }
        }
    }

    fn umount(&mut self, path: &Path) {
        let ok = Command::new("umount").arg(path).status().unwrap().success();
        assert!(ok, "umount {}", path.display());
        self.mounts.retain(|m| m != path);
    }

    /// Attaches `file` to a free loop device.
    fn loop_device(&mut self, file: &Path) -> Option<String> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
                self.loops.push(dev.clone());
                Some(dev)
            }
            Ok(o) => {
                eprintln!(
                    "SKIP: losetup failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP: cannot run losetup: {e}");
                None
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        for l in &self.loops {
            let _ = Command::new("losetup").arg("-d").arg(l).status();
        }
    }
}

struct Env {
    // Dropped in this order: the binary, the server, then mounts, then the
    // temporary directory they live in.
    bin: Binary,
    ts: TestServer,
    client: Client,
    guard: Guard,
    tmp: tempfile::TempDir,
    metrics_port: u16,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// The configuration Env::start writes, with the local-fast class's
/// directory `fast` and further class lines.
fn config_text(tmp: &Path, fast: &str, more: &str) -> String {
    format!(
        "storageClassMap:\n  local-fast:\n    hostDir: {0}/{fast}\n  local-block:\n    hostDir: {0}/block\n    volumeMode: Block\n    blockCleanerCommand: [\"{1}/quick_reset.sh\"]\n  local-keep:\n    hostDir: {0}/keep\n{more}minResyncPeriod: 1h\n",
        tmp.display(),
        scripts().display()
    )
}

impl Env {
    async fn start() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["fs", "block", "keep", "state"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let config = tmp.path().join("config.yaml");
        std::fs::write(&config, config_text(tmp.path(), "fs", "")).unwrap();
        let metrics_port = free_port();
        let metrics_address = format!("127.0.0.1:{metrics_port}");
        let ts = TestServer::start().await.expect("start kube-testserver");
        let client = ts.client().await;
        create_node(&client, NODE).await;
        for (class, policy) in [
            ("local-fast", "Delete"),
            ("local-block", "Delete"),
            ("local-keep", "Retain"),
        ] {
            create_class(&client, class, NO_PROVISIONER, policy, true, json!({})).await;
        }
        let bin = Binary::spawn(
            env!("CARGO_BIN_EXE_local-volume-provisioner"),
            &ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
            &[
                "--node-name",
                NODE,
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
                "--metrics-address",
                &metrics_address,
            ],
            tmp.path(),
        );
        Env {
            bin,
            ts,
            client,
            guard: Guard::default(),
            tmp,
            metrics_port,
        }
    }

    /// Every API call the binary made is allowed by `deploy/local-volume`'s RBAC.
    fn assert_rbac(&self) {
        assert_rbac_allows(&self.ts, PROVISIONER_USER, &deploy_dir("local-volume"));
    }

    fn dir(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Waits for PV `name` to exist with a UID other than `not_uid` and phase
    /// `phase`; returns it.
    async fn wait_pv(&self, name: &str, not_uid: Option<&str>, phase: &str) -> PersistentVolume {
        let api = pvs(&self.client);
        wait_for(&format!("PV {name} {phase} (uid != {not_uid:?})"), || {
            let api = api.clone();
            async move {
                let pv = api.get_opt(name).await.ok()??;
                let fresh = not_uid.is_none_or(|u| pv.metadata.uid.as_deref() != Some(u));
                let ph = pv.status.as_ref()?.phase.as_deref()?.to_string();
                (fresh && ph == phase).then_some(pv)
            }
        })
        .await
    }

    async fn bind(
        &self,
        claim: &str,
        class: &str,
        size: &str,
        extra: serde_json::Value,
    ) -> PersistentVolume {
        create_claim(&self.client, claim, class, size, extra).await;
        create_pod_for(&self.client, claim, NODE).await;
        wait_bound(&self.client, claim).await
    }
}

fn capacity(pv: &PersistentVolume) -> String {
    pv.spec.as_ref().unwrap().capacity.as_ref().unwrap()["storage"]
        .0
        .clone()
}

fn uid(pv: &PersistentVolume) -> String {
    pv.metadata.uid.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_become_pvs_bind_and_are_cleaned_without_following_links_out() {
    let mut env = Env::start().await;
    let (vol1, vol2, plain) = (env.dir("fs/vol1"), env.dir("fs/vol2"), env.dir("fs/plain"));
    if !env.guard.tmpfs(&vol1, "20m") || !env.guard.tmpfs(&vol2, "12g") {
        return;
    }
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("f"), b"not a volume").unwrap();

    let name1 = pv_name("vol1", NODE, "local-fast");
    let name2 = pv_name("vol2", NODE, "local-fast");
    let pv1 = env.wait_pv(&name1, None, "Available").await;
    let pv2 = env.wait_pv(&name2, None, "Available").await;
    assert_eq!(capacity(&pv1), "20Mi");
    assert_eq!(capacity(&pv2), "12Gi", "rounded down to whole GiB");
    let spec = pv1.spec.as_ref().unwrap();
    assert_eq!(
        spec.local.as_ref().unwrap().path,
        vol1.display().to_string()
    );
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-fast"));
    let term = first_affinity_term(&pv1);
    let req = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(req.key, "kubernetes.io/hostname");
    assert_eq!(req.values.as_deref(), Some(&[NODE.to_string()][..]));
    assert_eq!(
        pv1.metadata.annotations.as_ref().unwrap()["pv.kubernetes.io/provisioned-by"],
        PROVISIONER
    );
    assert_eq!(pv1.metadata.labels.as_ref().unwrap()[NODE_LABEL], NODE);

    // One /metrics for the library's and the discovery's metrics; ready once
    // the controller runs and a discovery pass finished.
    let port = env.metrics_port;
    wait_for(
        "/readyz 200",
        || async move { is_ready(port).then_some(()) },
    )
    .await;
    let (status, text) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains(
            r#"local_volume_provisioner_volumes{class="local-fast",mode="Filesystem"} 2"#
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE controller_is_leader gauge"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");

    // The plain directory is reported on the node and gets no PV.
    let note = wait_warning(&env.client, NODE, "plain").await;
    assert!(note.contains("not a mount point"), "{note}");
    let all = pvs(&env.client)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert!(
        all.iter().all(|p| !p
            .spec
            .as_ref()
            .unwrap()
            .local
            .as_ref()
            .unwrap()
            .path
            .ends_with("/plain")),
        "a plain directory must not become a PV"
    );
    assert_eq!(std::fs::read(plain.join("f")).unwrap(), b"not a volume");

    // Static binding: the smallest volume that fits.
    let bound = env.bind("data", "local-fast", "10Mi", json!({})).await;
    assert_eq!(bound.metadata.name.as_deref(), Some(name1.as_str()));

    // The workload writes data and plants links to data outside its volume.
    let outside = env.dir("outside");
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();
    std::fs::write(outside.join("dir/also"), b"keep").unwrap();
    std::fs::create_dir_all(vol1.join("a/b")).unwrap();
    std::fs::write(vol1.join("a/b/secret"), b"tenant 1").unwrap();
    std::fs::write(vol1.join("top"), b"tenant 1").unwrap();
    symlink(&outside, vol1.join("a/escape")).unwrap();
    symlink(outside.join("precious"), vol1.join("link")).unwrap();

    delete_claim(&env.client, "data").await;
    let back = env.wait_pv(&name1, Some(&uid(&pv1)), "Available").await;
    let left: Vec<_> = std::fs::read_dir(&vol1)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the volume must be empty before it is offered again: {left:?}"
    );
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    assert_eq!(std::fs::read(outside.join("dir/also")).unwrap(), b"keep");
    assert!(
        env.bin.log().contains("cleaning volume"),
        "{}",
        env.bin.log()
    );

    // A PV deleted by hand is not offered again before its volume is cleaned
    // (the Go provisioner's data leak).
    let again = env.bind("again", "local-fast", "10Mi", json!({})).await;
    assert_eq!(again.metadata.name.as_deref(), Some(name1.as_str()));
    std::fs::write(vol1.join("secret"), b"tenant 2").unwrap();
    pvs(&env.client)
        .delete(&name1, &Default::default())
        .await
        .unwrap();
    // pv-protection holds a Bound PV (as on a real cluster) until its claim
    // lets go; being deleted already, it is not cleaned as a Released PV
    // (the library does not delete a deleting PV again): discovery cleans
    // the volume before it offers it again.
    let held = pvs(&env.client).get(&name1).await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    delete_claim(&env.client, "again").await;
    let api = pvs(&env.client);
    let old = uid(&back);
    let recreated = wait_for("PV re-created after a manual delete", || {
        let api = api.clone();
        let name1 = name1.clone();
        let old = old.clone();
        async move {
            api.get_opt(&name1)
                .await
                .ok()?
                .filter(|p| p.metadata.uid.as_deref() != Some(&old))
        }
    })
    .await;
    assert!(
        !vol1.join("secret").exists(),
        "re-offered with the previous tenant's data"
    );
    assert!(recreated.spec.is_some());
    wait_normal(&env.client, NODE, "CleaningBeforeReuse").await;

    // A volume that disappears while its PV is Available loses its PV.
    env.guard.umount(&vol2);
    wait_pv_gone(&env.client, &name2).await;
    env.assert_rbac();
}

/// docs/security.md, hole 11: a released volume that cannot be cleaned
/// completely (a filesystem mounted inside it, among a tenant's hostile
/// contents) is not offered again: its PV stays Released, a Warning on it
/// says why, the failure is counted; a later pass, once the mount is gone,
/// cleans it all and offers it again, nothing outside touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_that_cannot_be_cleaned_is_not_offered_until_a_later_pass_cleans_it() {
    let mut env = Env::start().await;
    let vol = env.dir("fs/stuck");
    assert!(env.guard.tmpfs(&vol, "8m"), "mounting a tmpfs needs root");
    let name = pv_name("stuck", NODE, "local-fast");
    let pv = env.wait_pv(&name, None, "Available").await;
    env.bind("stuck", "local-fast", "1Mi", json!({})).await;
    let planted = hostfs::hostile::plant(&vol, &env.dir("outside"));
    let inner = vol.join("inner");
    assert!(env.guard.tmpfs(&inner, "1m"));
    std::fs::write(inner.join("f"), b"another filesystem").unwrap();
    delete_claim(&env.client, "stuck").await;

    let note = wait_warning(&env.client, &name, "a filesystem is mounted here").await;
    println!("cleaning refused: {note}");
    let now = pvs(&env.client).get(&name).await.unwrap();
    assert_eq!(now.metadata.uid, pv.metadata.uid, "not re-created");
    assert_eq!(
        now.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Released"),
        "not offered again half-clean"
    );
    let port = env.metrics_port;
    let (_, text) = http_get(port, "/metrics").expect("GET /metrics");
    assert!(
        text.lines().any(|l| l.starts_with(
            r#"local_volume_provisioner_clean_failed_total{class="local-fast",mode="Filesystem"}"#
        ) && !l.ends_with(" 0")),
        "{text}"
    );
    assert_eq!(
        std::fs::read(inner.join("f")).unwrap(),
        b"another filesystem"
    );

    env.guard.umount(&inner);
    env.wait_pv(&name, Some(&uid(&pv)), "Available").await;
    assert_eq!(std::fs::read_dir(&vol).unwrap().count(), 0, "offered clean");
    planted.assert_outside_intact();
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_loop_device_becomes_a_block_pv_and_the_cleaner_wipes_it() {
    let mut env = Env::start().await;
    let image = env.dir("disk0.img");
    let f = std::fs::File::create(&image).unwrap();
    f.set_len(16 << 20).unwrap();
    drop(f);
    let Some(dev) = env.guard.loop_device(&image) else {
        return;
    };
    symlink(&dev, env.dir("block/disk0")).unwrap();
    // A symlink to something else is reported, not offered.
    symlink("/dev/null", env.dir("block/notblock")).unwrap();

    let name = pv_name("disk0", NODE, "local-block");
    let pv = env.wait_pv(&name, None, "Available").await;
    let spec = pv.spec.as_ref().unwrap();
    assert_eq!(spec.volume_mode.as_deref(), Some("Block"));
    assert_eq!(capacity(&pv), "16Mi");
    assert_eq!(
        spec.local.as_ref().unwrap().path,
        env.dir("block/disk0").display().to_string()
    );
    let note = wait_warning(&env.client, NODE, "notblock").await;
    assert!(note.contains("not a block device"), "{note}");

    let bound = env
        .bind("raw", "local-block", "8Mi", json!({"volumeMode": "Block"}))
        .await;
    assert_eq!(bound.metadata.name.as_deref(), Some(name.as_str()));
    // The tenant writes to the start of the device.
    std::fs::write(&dev, vec![0xABu8; 1 << 20]).unwrap();

    delete_claim(&env.client, "raw").await;
    env.wait_pv(&name, Some(&uid(&pv)), "Available").await;
    let head = std::fs::read(&image).unwrap();
    assert!(
        head[..1 << 20].iter().all(|b| *b == 0),
        "the cleaner must zero the first MiB"
    );
    let log = env.bin.log();
    assert!(
        log.contains("quick reset of") && log.contains("done"),
        "the cleaner's output is logged:\n{log}"
    );
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_volumes_are_never_cleaned() {
    let mut env = Env::start().await;
    let vol = env.dir("keep/vol");
    if !env.guard.tmpfs(&vol, "16m") {
        return;
    }
    let name = pv_name("vol", NODE, "local-keep");
    let pv = env.wait_pv(&name, None, "Available").await;
    assert_eq!(
        pv.spec
            .as_ref()
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Retain")
    );
    env.bind("kept", "local-keep", "1Mi", json!({})).await;
    std::fs::write(vol.join("data"), b"keep me").unwrap();
    delete_claim(&env.client, "kept").await;
    wait_pv_phase(&env.client, &name, "Released").await;
    // A volume mounted afterwards gets its PV: discovery and the controller
    // have run past the release.
    let later = env.dir("keep/later");
    assert!(env.guard.tmpfs(&later, "16m"));
    env.wait_pv(&pv_name("later", NODE, "local-keep"), None, "Available")
        .await;
    assert_eq!(std::fs::read(vol.join("data")).unwrap(), b"keep me");
    let still = pvs(&env.client).get(&name).await.unwrap();
    assert_eq!(uid(&still), uid(&pv));
    assert_eq!(still.status.unwrap().phase.as_deref(), Some("Released"));
    assert!(
        !env.bin.log().contains("cleaning volume"),
        "{}",
        env.bin.log()
    );
    env.assert_rbac();
}

#[test]
fn a_bad_config_fails_start_up_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (yaml, key) in [
        (
            "storageClassMap:\n  local-fast:\n    hostDirr: /mnt/disks\n",
            "storageClassMap.local-fast.hostDirr",
        ),
        (
            "storageClassMap:\n  local-fast:\n    hostDir: /mnt/disks\n    volumeMode: Raw\n",
            "storageClassMap.local-fast.volumeMode",
        ),
        (
            "storageClassMap:\n  local-fast:\n    hostDir: /mnt/disks\nuseJobForCleaning: true\n",
            "useJobForCleaning",
        ),
    ] {
        let config = tmp.path().join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_local-volume-provisioner"))
            .args([
                "--node-name",
                NODE,
                "--metrics-address",
                "",
                "--kubeconfig",
                "/nonexistent",
            ])
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(tmp.path().join("state"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the binary must exit on a bad config"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{yaml}");
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{key} not named in: {stderr}"
        );
    }
}

/// A hand-made PV for `path` on this node, labelled and annotated like ours,
/// with `claim_ref` (a gone claim makes it Released).
fn foreign_pv(
    name: &str,
    path: &Path,
    labelled: bool,
    claim_ref: serde_json::Value,
) -> serde_json::Value {
    let labels = if labelled {
        json!({ NODE_LABEL: NODE })
    } else {
        json!({})
    };
    json!({
        "metadata": {"name": name, "labels": labels,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": "20Mi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-fast",
            "local": {"path": path.display().to_string()},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}]}]}},
            "claimRef": claim_ref,
        },
    })
}

/// Hole 4 of docs/security.md: a Released PV that names a volume another,
/// Bound PV uses must not get that disk wiped: neither a duplicate PV this
/// instance did not make (another name), nor this instance's own PV while a
/// hand-made PV is Bound to the same disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pv_it_did_not_make_or_a_disk_in_use_is_never_wiped() {
    let mut env = Env::start().await;
    let (vol1, vol2) = (env.dir("fs/vol1"), env.dir("fs/vol2"));
    if !env.guard.tmpfs(&vol1, "20m") || !env.guard.tmpfs(&vol2, "40m") {
        return;
    }
    let c = env.client.clone();
    let name1 = pv_name("vol1", NODE, "local-fast");
    let name2 = pv_name("vol2", NODE, "local-fast");
    env.wait_pv(&name1, None, "Available").await;
    env.wait_pv(&name2, None, "Available").await;
    let bound = env.bind("data", "local-fast", "10Mi", json!({})).await;
    assert_eq!(bound.metadata.name.as_deref(), Some(name1.as_str()));
    std::fs::write(vol1.join("tenant"), b"in use").unwrap();

    // A stale duplicate of the Bound volume's PV, Released, labelled ours.
    let gone = json!({"namespace": "default", "name": "gone", "uid": "0000"});
    let _: PersistentVolume = create(&pvs(&c), foreign_pv("stale-copy", &vol1, true, gone)).await;
    let note = wait_warning(&c, "stale-copy", "is not the PV this provisioner makes").await;
    assert!(note.contains(&name1), "{note}");
    assert_eq!(std::fs::read(vol1.join("tenant")).unwrap(), b"in use");
    assert!(pvs(&c).get_opt("stale-copy").await.unwrap().is_some());
    assert_eq!(
        pvs(&c)
            .get(&name1)
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Bound")
    );

    // This instance's own PV is released while a hand-made PV (not
    // labelled, invisible to discovery) is Bound to the same disk.
    let mine = env.bind("data2", "local-fast", "30Mi", json!({})).await;
    assert_eq!(mine.metadata.name.as_deref(), Some(name2.as_str()));
    std::fs::write(vol2.join("tenant"), b"squatter's").unwrap();
    let sq_ref = json!({"namespace": "default", "name": "sq"});
    let _: PersistentVolume = create(&pvs(&c), foreign_pv("squatter", &vol2, false, sq_ref)).await;
    create_claim(
        &c,
        "sq",
        "local-fast",
        "10Mi",
        json!({"volumeName": "squatter"}),
    )
    .await;
    create_pod_for(&c, "sq", NODE).await;
    env.wait_pv("squatter", None, "Bound").await;
    delete_claim(&c, "data2").await;
    let note = wait_warning(&c, &name2, "is used by PV squatter").await;
    println!("refused: {note}");
    assert_eq!(std::fs::read(vol2.join("tenant")).unwrap(), b"squatter's");
    assert_eq!(
        pvs(&c)
            .get(&name2)
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Released"),
        "not cleaned, so not deleted or offered again"
    );
    env.assert_rbac();
}

/// Issue #19.2: the configuration is re-read without a restart. A bad one
/// is refused with an event and a log line while the last good one stays
/// in force (discovery goes on under it); a good one changes a class (its
/// discovery directory) and adds another, and both are discovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_apply_without_restart_and_a_bad_one_is_refused() {
    let mut env = Env::start().await;
    let config = env.dir("config.yaml");
    let first = env.dir("fs/first");
    if !env.guard.tmpfs(&first, "8m") {
        return;
    }
    env.wait_pv(&pv_name("first", NODE, "local-fast"), None, "Available")
        .await;

    // Refused: a relative hostDir. The old configuration stays in force.
    std::fs::write(
        &config,
        config_text(
            env.tmp.path(),
            "fs",
            "  local-new:\n    hostDir: relative\n",
        ),
    )
    .unwrap();
    let note = wait_warning(&env.client, NODE, "new configuration refused").await;
    assert!(note.contains("storageClassMap.local-new.hostDir"), "{note}");
    assert!(
        env.bin.log().contains("new configuration refused"),
        "{}",
        env.bin.log()
    );
    let second = env.dir("fs/second");
    assert!(env.guard.tmpfs(&second, "8m"));
    env.wait_pv(&pv_name("second", NODE, "local-fast"), None, "Available")
        .await;

    // Refused (docs/security.md): a discovery directory among the host's
    // devices, and one over the provisioner's own state directory; each
    // named in a Warning, discovery goes on under the old configuration.
    let state = env.dir("state").display().to_string();
    for (class, needle) in [
        (
            "  local-new:\n    hostDir: /dev/disk/by-id\n    volumeMode: Block\n".to_string(),
            "/dev",
        ),
        (
            format!("  local-new:\n    hostDir: {state}\n"),
            "state directory",
        ),
    ] {
        std::fs::write(&config, config_text(env.tmp.path(), "fs", &class)).unwrap();
        let note = wait_warning(&env.client, NODE, needle).await;
        assert!(note.contains("storageClassMap.local-new"), "{note}");
    }
    let third = env.dir("fs/third");
    assert!(env.guard.tmpfs(&third, "8m"));
    env.wait_pv(&pv_name("third", NODE, "local-fast"), None, "Available")
        .await;

    // Accepted: local-fast moves to fs2/, and local-new discovers new/.
    for d in ["fs2", "new"] {
        std::fs::create_dir_all(env.dir(d)).unwrap();
    }
    create_class(
        &env.client,
        "local-new",
        NO_PROVISIONER,
        "Delete",
        true,
        json!({}),
    )
    .await;
    let new_dir = env.dir("new").display().to_string();
    std::fs::write(
        &config,
        config_text(
            env.tmp.path(),
            "fs2",
            &format!("  local-new:\n    hostDir: {new_dir}\n"),
        ),
    )
    .unwrap();
    let (moved, added) = (env.dir("fs2/moved"), env.dir("new/added"));
    assert!(env.guard.tmpfs(&moved, "8m") && env.guard.tmpfs(&added, "8m"));
    env.wait_pv(&pv_name("moved", NODE, "local-fast"), None, "Available")
        .await;
    env.wait_pv(&pv_name("added", NODE, "local-new"), None, "Available")
        .await;
    wait_for("the ConfigReloaded event naming both classes", || async {
        (events_about(&env.client, NODE).await.iter())
            .any(|(ty, reason, note)| {
                ty == "Normal"
                    && reason == "ConfigReloaded"
                    && note.contains("classes added: local-new; classes changed: local-fast")
            })
            .then_some(())
    })
    .await;
    // PVs made under the old configuration are left as they are.
    assert!(pvs(&env.client)
        .get_opt(&pv_name("first", NODE, "local-fast"))
        .await
        .unwrap()
        .is_some());
    env.assert_rbac();
}
