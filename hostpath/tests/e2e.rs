//! End-to-end: the real `hostpath-provisioner` binary against kube-testserver
//! (with its PV binder and WaitForFirstConsumer scheduler), making real
//! directories in a temporary root.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/hostpath";
const NODE: &str = "node-1";

struct Env {
    ts: TestServer,
    client: Client,
    tmp: tempfile::TempDir,
    _provisioner: Binary,
}

impl Env {
    async fn start() -> Env {
        let ts = TestServer::start().await.expect("start kube-testserver");
        let client = ts.client().await;
        let tmp = tempfile::tempdir().unwrap();
        for node in [NODE, "node-2"] {
            create_node(&client, node).await;
        }
        let provisioner = spawn_instance(&ts, tmp.path(), NODE, &tmp.path().join("root"));
        Env {
            ts,
            client,
            tmp,
            _provisioner: provisioner,
        }
    }

    /// Every API call the binary made is allowed by `deploy/hostpath`'s RBAC.
    fn assert_rbac(&self) {
        assert_rbac_allows(&self.ts, PROVISIONER_USER, &deploy_dir("hostpath"));
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    async fn class(&self, name: &str, policy: &str, params: serde_json::Value) {
        create_class(&self.client, name, PROVISIONER, policy, true, params).await;
    }

    async fn claim_on(&self, name: &str, class: &str, node: &str) {
        create_claim(&self.client, name, class, "1Gi", json!({})).await;
        create_pod_for(&self.client, name, node).await;
    }
}

/// One node's provisioner instance (the DaemonSet's pod on `node`).
fn spawn_instance(ts: &TestServer, logs: &Path, node: &str, root: &Path) -> Binary {
    let log_dir = logs.join(format!("logs-{node}"));
    std::fs::create_dir_all(&log_dir).unwrap();
    let mut args = vec!["--node-name", node];
    args.extend(QUICK_RETRIES);
    args.extend(["--root", root.to_str().unwrap()]);
    args.extend(["--archive-sweep-interval", "1s"]);
    Binary::spawn(
        env!("CARGO_BIN_EXE_hostpath-provisioner"),
        &ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
        &args,
        &log_dir,
    )
}

fn host_path(pv: &PersistentVolume) -> PathBuf {
    PathBuf::from(&pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_a_directory_and_deletes_it_without_following_symlinks_out() {
    let env = Env::start().await;
    env.class(
        "hostpath",
        "Delete",
        json!({"mode": "0770", "pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Name }}"}),
    )
    .await;
    env.claim_on("data", "hostpath", NODE).await;
    let pv = wait_bound(&env.client, "data").await;
    let dir = host_path(&pv);
    assert_eq!(dir, env.root().join("default/data"));
    assert!(dir.is_dir(), "{} must exist", dir.display());
    assert_eq!(mode(&dir), 0o770);
    let ann = pv.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann["pv.kubernetes.io/provisioned-by"], PROVISIONER);
    let spec = pv.spec.as_ref().unwrap();
    let term = first_affinity_term(&pv);
    assert_eq!(
        term.match_expressions.as_ref().unwrap()[0]
            .values
            .as_deref(),
        Some(&[NODE.to_string()][..])
    );
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");

    // A workload plants links to data outside its volume.
    let outside = env.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();
    std::fs::write(dir.join("file"), b"data").unwrap();
    symlink(&outside, dir.join("escape")).unwrap();
    symlink(outside.join("precious"), dir.join("file-link")).unwrap();

    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&env.client, "data").await;
    wait_pv_gone(&env.client, &pv_name).await;
    assert!(!dir.exists(), "the volume directory must be removed");
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    assert!(env.root().join("default").is_dir(), "parents stay");
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uid_and_gid_own_the_directory_and_the_kubelet_is_told_the_group() {
    let env = Env::start().await;
    env.class("owned", "Delete", json!({"uid": "4000", "gid": "3000"}))
        .await;
    env.claim_on("owned", "owned", NODE).await;
    let pv = wait_bound(&env.client, "owned").await;
    let dir = host_path(&pv);
    let meta = std::fs::metadata(&dir).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (4000, 3000), "{}", dir.display());
    assert_eq!(mode(&dir), 0o770, "an owner needs no 0777");
    let ann = pv.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann["hostpath.external-storage.io/uid"], "4000");
    assert_eq!(ann["pv.beta.kubernetes.io/gid"], "3000");

    // A bad value: a Warning naming the parameter, and no volume.
    env.class("bad-owner", "Delete", json!({"uid": "www-data"}))
        .await;
    env.claim_on("bad", "bad-owner", NODE).await;
    let warning = wait_warning(&env.client, "bad", "not a numeric ID").await;
    assert!(warning.contains("uid"), "{warning}");
    // Volumes of both classes would sit side by side (same pattern).
    let made: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        made.iter().all(|n| !n.contains("bad")),
        "a volume was made for a class with a bad uid: {made:?}"
    );
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_data_and_the_pv() {
    let env = Env::start().await;
    env.class("keep", "Retain", json!({})).await;
    env.claim_on("kept", "keep", NODE).await;
    let pv = wait_bound(&env.client, "kept").await;
    let dir = host_path(&pv);
    assert_eq!(mode(&dir), 0o777, "default mode");
    std::fs::write(dir.join("file"), b"data").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&env.client, "kept").await;
    wait_pv_phase(&env.client, &pv_name, "Released").await;
    // The provisioner had every chance to act on the Released PV; a claim it
    // provisions afterwards proves it is alive and past that point.
    env.claim_on("after", "keep", NODE).await;
    wait_bound(&env.client, "after").await;
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"data");
    assert!(pvs(&env.client).get_opt(&pv_name).await.unwrap().is_some());
    env.assert_rbac();
}

/// The archive directories at the top of `root` made for `pv`.
fn archives_of(root: &Path, pv: &str) -> Vec<PathBuf> {
    let prefix = format!("archived-{pv}-");
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_on_delete_keeps_nested_data_out_of_reach_and_the_retention_removes_only_its_archives(
) {
    let env = Env::start().await;
    let nested = "{{ .PVC.Namespace }}/{{ .PVC.Name }}";
    env.class(
        "archive",
        "Delete",
        json!({"pathPattern": nested, "onDelete": "archive", "archiveRetention": "3s"}),
    )
    .await;
    env.class(
        "archive-forever",
        "Delete",
        json!({"pathPattern": nested, "onDelete": "archive"}),
    )
    .await;
    // Looks like an archive, was not made by the provisioner: never removed.
    let fake = env.root().join("archived-pvc-fake-20200101T000000Z");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("file"), b"not yours").unwrap();

    env.claim_on("forever", "archive-forever", NODE).await;
    let kept_pv = wait_bound(&env.client, "forever").await;
    let kept_name = kept_pv.metadata.name.clone().unwrap();
    delete_claim(&env.client, "forever").await;
    wait_pv_gone(&env.client, &kept_name).await;
    wait_normal(&env.client, &kept_name, "VolumeArchived").await;

    env.claim_on("logs", "archive", NODE).await;
    let pv = wait_bound(&env.client, "logs").await;
    let pv_name = pv.metadata.name.clone().unwrap();
    let ann = pv.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann["external-storage.io/on-delete"], "archive");
    assert_eq!(ann["external-storage.io/archive-retention"], "3s");
    let dir = host_path(&pv);
    assert_eq!(dir, env.root().join("default/logs"));
    std::fs::write(dir.join("data"), b"old logs").unwrap();
    delete_claim(&env.client, "logs").await;
    wait_pv_gone(&env.client, &pv_name).await;

    let note = wait_normal(&env.client, &pv_name, "VolumeArchived").await;
    let archive = archives_of(&env.root(), &pv_name);
    assert_eq!(archive.len(), 1, "{archive:?}");
    assert!(note.contains(archive[0].to_str().unwrap()), "{note}");
    assert_eq!(std::fs::read(archive[0].join("data")).unwrap(), b"old logs");
    assert_eq!(mode(&archive[0]), 0o700, "only root reaches an archive");
    assert!(!dir.exists(), "the volume's path is free again");

    // The same claim made again gets a fresh, empty directory at that path.
    env.claim_on("logs", "archive", NODE).await;
    let again = wait_bound(&env.client, "logs").await;
    assert_eq!(host_path(&again), dir);
    assert!(!dir.join("data").exists());

    // The sweep (every second here) removes the archive after 3 s...
    wait_for("the archive removed after its retention", || async {
        archives_of(&env.root(), &pv_name).is_empty().then_some(())
    })
    .await;
    // ...and in that same pass left the one without a retention, and the
    // directory that only looks like an archive.
    assert_eq!(archives_of(&env.root(), &kept_name).len(), 1);
    assert_eq!(std::fs::read(fake.join("file")).unwrap(), b"not yours");
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_on_delete_deletes_the_pv_and_keeps_the_directory_forever() {
    let env = Env::start().await;
    env.class("retain", "Delete", json!({"onDelete": "retain"}))
        .await;
    env.claim_on("mine", "retain", NODE).await;
    let pv = wait_bound(&env.client, "mine").await;
    let pv_name = pv.metadata.name.clone().unwrap();
    let dir = host_path(&pv);
    std::fs::write(dir.join("data"), b"keep").unwrap();
    delete_claim(&env.client, "mine").await;
    wait_pv_gone(&env.client, &pv_name).await;
    let note = wait_normal(&env.client, &pv_name, "VolumeRetained").await;
    assert!(note.contains(dir.to_str().unwrap()), "{note}");
    assert_eq!(std::fs::read(dir.join("data")).unwrap(), b"keep");
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_parameter_gives_a_warning_naming_it_and_no_volume() {
    let env = Env::start().await;
    env.class("bad", "Delete", json!({"volumeType": "nfs"}))
        .await;
    env.claim_on("c", "bad", NODE).await;
    let note = wait_warning(&env.client, "c", "volumeType").await;
    assert!(note.contains("allowed: hostPath, local"), "{note}");
    assert_eq!(pv_names(&env.client).await, Vec::<String>::new());
    let entries: Vec<_> = std::fs::read_dir(env.root()).unwrap().flatten().collect();
    assert!(
        entries
            .iter()
            .all(|e| e.file_name() == ".hostpath-provisioner"),
        "no volume directory may be made: {entries:?}"
    );
    env.assert_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_other_nodes_are_left_to_their_instance() {
    let env = Env::start().await;
    env.class("hostpath", "Delete", json!({})).await;
    env.claim_on("elsewhere", "hostpath", "node-2").await;
    env.claim_on("here", "hostpath", NODE).await;
    let here = wait_bound(&env.client, "here").await;
    assert!(host_path(&here).starts_with(env.root()));
    let other = claims(&env.client).get("elsewhere").await.unwrap();
    assert_eq!(
        other.metadata.annotations.unwrap()["volume.kubernetes.io/selected-node"],
        "node-2"
    );
    // node-2's instance starts only now, long after node-1's saw the claim
    // (the watch delivered it before `here`): the volume it gets shows
    // who made it. Had node-1's instance taken it, it would be in node-1's
    // root with node-1's affinity.
    let root_2 = env.tmp.path().join("root-2");
    let _second = spawn_instance(&env.ts, env.tmp.path(), "node-2", &root_2);
    let elsewhere = wait_bound(&env.client, "elsewhere").await;
    assert!(
        host_path(&elsewhere).starts_with(&root_2),
        "{}",
        host_path(&elsewhere).display()
    );
    assert_eq!(
        first_affinity_term(&elsewhere)
            .match_expressions
            .as_ref()
            .unwrap()[0]
            .values
            .as_deref(),
        Some(&["node-2".to_string()][..])
    );
    assert_eq!(
        pvs(&env.client)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let in_root_1: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".hostpath-provisioner")
        .collect();
    assert_eq!(
        in_root_1.len(),
        1,
        "only `here` is on node-1: {in_root_1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_it_did_not_make_is_never_deleted() {
    let env = Env::start().await;
    let manual = env.root().join("manual");
    std::fs::create_dir_all(&manual).unwrap();
    std::fs::write(manual.join("file"), b"precious").unwrap();
    // A PV that claims to be ours, points into our root, and is Released
    // with policy Delete, but was never made by this provisioner.
    let pv: PersistentVolume = create(
        &pvs(&env.client),
        json!({
            "metadata": {
                "name": "impostor",
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "hostpath",
                "hostPath": {"path": manual.display().to_string()},
                "claimRef": {"namespace": "default", "name": "gone", "uid": "0000"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}
                ]}]}},
            },
        }),
    )
    .await;
    let name = pv.metadata.name.unwrap();
    wait_pv_phase(&env.client, &name, "Released").await;
    wait_pv_gone(&env.client, &name).await;
    assert_eq!(std::fs::read(manual.join("file")).unwrap(), b"precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_binding_uses_the_one_node_the_class_names() {
    let env = Env::start().await;
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> =
        kube::Api::all(env.client.clone());
    create(
        &classes,
        json!({
            "metadata": {"name": "pinned"},
            "provisioner": PROVISIONER,
            "volumeBindingMode": "Immediate",
            "allowedTopologies": [{"matchLabelExpressions": [
                {"key": "kubernetes.io/hostname", "values": [NODE]}
            ]}],
        }),
    )
    .await;
    // No pod: nothing selects a node; the class's topology names it.
    create_claim(&env.client, "pinned-claim", "pinned", "1Gi", json!({})).await;
    let pv = wait_bound(&env.client, "pinned-claim").await;
    assert!(host_path(&pv).is_dir());

    // An Immediate class that names no node: the claim is told why it waits.
    create_class(
        &env.client,
        "unpinned",
        PROVISIONER,
        "Delete",
        false,
        json!({}),
    )
    .await;
    create_claim(&env.client, "unpinned-claim", "unpinned", "1Gi", json!({})).await;
    let note = wait_warning(&env.client, "unpinned-claim", "cannot choose a node").await;
    assert!(note.contains("WaitForFirstConsumer"), "{note}");
    assert!(note.contains("allowedTopologies"), "{note}");
    let claim = claims(&env.client).get("unpinned-claim").await.unwrap();
    assert!(claim.spec.unwrap().volume_name.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_claims_on_two_nodes_land_on_their_nodes_and_go_with_their_data() {
    let env = Env::start().await;
    let root_2 = env.tmp.path().join("root-2");
    let _second = spawn_instance(&env.ts, env.tmp.path(), "node-2", &root_2);
    env.class("hostpath", "Delete", json!({})).await;
    let names: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
    for (i, name) in names.iter().enumerate() {
        let node = if i.is_multiple_of(2) { NODE } else { "node-2" };
        env.claim_on(name, "hostpath", node).await;
    }
    let mut dirs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (node, root) = if i.is_multiple_of(2) {
            (NODE, env.root())
        } else {
            ("node-2", root_2.clone())
        };
        let pv = wait_bound(&env.client, name).await;
        let dir = host_path(&pv);
        assert!(
            dir.starts_with(&root),
            "{name}: {} not under {node}'s root",
            dir.display()
        );
        assert!(dir.is_dir());
        let term = first_affinity_term(&pv);
        assert_eq!(
            term.match_expressions.as_ref().unwrap()[0]
                .values
                .as_deref(),
            Some(&[node.to_string()][..])
        );
        std::fs::write(dir.join("data"), name.as_bytes()).unwrap();
        dirs.push((pv.metadata.name.clone().unwrap(), dir));
    }
    for name in &names {
        delete_claim(&env.client, name).await;
    }
    for (pv, dir) in &dirs {
        wait_pv_gone(&env.client, pv).await;
        assert!(
            !dir.exists(),
            "{} must be removed with its PV",
            dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_escaping_the_root_is_refused_and_nothing_outside_changes() {
    let env = Env::start().await;
    env.class(
        "pattern",
        "Delete",
        json!({"pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Annotations.dir }}"}),
    )
    .await;
    let root = env.root();
    wait_for("the provisioner to open its root", || {
        let root = root.clone();
        async move { root.join(".hostpath-provisioner").is_dir().then_some(()) }
    })
    .await;
    // The test's own directory must not change; other tests run in
    // parallel, so /tmp and / are only checked for the escaped name.
    let listing = |dir: &Path| -> Vec<std::ffi::OsString> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(env.tmp.path());
    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim = create(
        &claims(&env.client),
        json!({
            "metadata": {"name": "escape", "annotations": {"dir": "../../../escaped"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "pattern",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }),
    )
    .await;
    create_pod_for(&env.client, "escape", NODE).await;
    let note = wait_warning(&env.client, "escape", "pathPattern").await;
    assert!(note.contains("not allowed"), "{note}");
    assert_eq!(
        before,
        listing(env.tmp.path()),
        "nothing may appear outside the root"
    );
    assert!(env
        .tmp
        .path()
        .ancestors()
        .all(|d| !d.join("escaped").exists()));
    assert_eq!(listing(&root), [".hostpath-provisioner"]);
    assert_eq!(pv_names(&env.client).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expanding_a_claim_raises_the_capacity_of_its_volume() {
    let env = Env::start().await;
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> =
        kube::Api::all(env.client.clone());
    create(
        &classes,
        json!({
            "metadata": {"name": "growable"},
            "provisioner": PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": true,
        }),
    )
    .await;
    env.claim_on("grow", "growable", NODE).await;
    let pv = wait_bound(&env.client, "grow").await;
    let pv_name = pv.metadata.name.clone().unwrap();
    std::fs::write(host_path(&pv).join("data"), b"kept").unwrap();
    claims(&env.client)
        .patch(
            "grow",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"spec": {"resources": {"requests": {"storage": "3Gi"}}}}),
            ),
        )
        .await
        .unwrap();
    let api = claims(&env.client);
    wait_for("the claim's status.capacity to reach 3Gi", || {
        let api = api.clone();
        async move {
            let c = api.get("grow").await.ok()?;
            (c.status?.capacity?.get("storage")?.0 == "3Gi").then_some(())
        }
    })
    .await;
    let pv = pvs(&env.client).get(&pv_name).await.unwrap();
    assert_eq!(
        pv.spec.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        "3Gi"
    );
    assert_eq!(std::fs::read(host_path(&pv).join("data")).unwrap(), b"kept");
    wait_normal(&env.client, "grow", "VolumeResizeSuccessful").await;
    env.assert_rbac();
}

/// Hole 2 of docs/security.md: a claim's annotation aims its directory
/// inside another claim's volume (`ns/a/b` inside `ns/a`). Without
/// `allowSlashInValues` the value is refused; with it, the nesting is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_cannot_place_its_volume_inside_another_claims_volume() {
    let env = Env::start().await;
    let pattern = "{{ .PVC.Namespace }}/{{ .PVC.Annotations.dir }}";
    env.class("strict", "Delete", json!({"pathPattern": pattern}))
        .await;
    env.class(
        "slashes",
        "Delete",
        json!({"pathPattern": pattern, "allowSlashInValues": "true"}),
    )
    .await;
    let claim = |name: &str, class: &str, dir: &str| {
        json!({
            "metadata": {"name": name, "annotations": {"dir": dir}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        })
    };
    let c = &env.client;
    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        create(&claims(c), claim("outer", "slashes", "a")).await;
    create_pod_for(c, "outer", NODE).await;
    let outer = host_path(&wait_bound(c, "outer").await);
    assert_eq!(outer, env.root().join("default/a"));

    // The default class refuses the slash in the value itself.
    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        create(&claims(c), claim("sneaky", "strict", "a/b")).await;
    create_pod_for(c, "sneaky", NODE).await;
    let note = wait_warning(c, "sneaky", "allowSlashInValues").await;
    assert!(note.contains("contains `/`"), "{note}");

    // A class that allows slashes still refuses a path inside the volume
    // of another claim, and one around it.
    for (name, dir) in [("inner", "a/b"), ("deeper", "a/b/c")] {
        let _: k8s_openapi::api::core::v1::PersistentVolumeClaim =
            create(&claims(c), claim(name, "slashes", dir)).await;
        create_pod_for(c, name, NODE).await;
        let note = wait_warning(c, name, "nests with volume").await;
        assert!(note.contains("`default/a`"), "{note}");
    }
    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        create(&claims(c), claim("inside", "slashes", "x/y")).await;
    create_pod_for(c, "inside", NODE).await;
    wait_bound(c, "inside").await;
    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        create(&claims(c), claim("around", "slashes", "x")).await;
    create_pod_for(c, "around", NODE).await;
    let note = wait_warning(c, "around", "nests with volume").await;
    assert!(note.contains("`default/x/y`"), "{note}");

    // Nothing was made inside the outer volume, and only the two good
    // claims got volumes.
    let entries: Vec<_> = std::fs::read_dir(&outer).unwrap().flatten().collect();
    assert!(entries.is_empty(), "{entries:?}");
    assert_eq!(
        pvs(c).list(&Default::default()).await.unwrap().items.len(),
        2
    );
    env.assert_rbac();
}
