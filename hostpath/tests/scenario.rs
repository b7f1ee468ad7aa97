//! The hostpath scenario on either control plane (`E2E_CLUSTER=real` or
//! `testserver`, see `e2e_support::cluster`): `kubectl apply -f
//! deploy/hostpath`, one instance per node authenticated as the deploy/
//! ServiceAccount, pods placed by the scheduler, claims bound by the PV
//! controller, directories made on disk, then deleted with their data, or
//! kept with it under Retain. One node's `kubernetes.io/hostname` label
//! differs from its name, as on clusters with FQDN node names.

use std::path::{Path, PathBuf};

use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use serde_json::json;

/// A node whose name is its hostname label.
const PLAIN: &str = "node-a";
/// A node named by its FQDN, labelled with its short host name.
const FQDN: (&str, &str) = ("node-b.cluster.example.com", "node-b");

fn spawn_instance(kubeconfig: &Path, tmp: &Path, node: &str) -> Binary {
    spawn_instance_with(kubeconfig, tmp, node, &[])
}

fn spawn_instance_with(kubeconfig: &Path, tmp: &Path, node: &str, extra: &[&str]) -> Binary {
    let logs = tmp.join(format!("logs-{node}"));
    std::fs::create_dir_all(&logs).unwrap();
    let root = root_of(tmp, node);
    let mut args = vec![
        "--node-name",
        node,
        "--retry-interval-start",
        "200ms",
        "--retry-interval-max",
        "2s",
        "--root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Binary::spawn(
        env!("CARGO_BIN_EXE_hostpath-provisioner"),
        kubeconfig,
        &args,
        &logs,
    )
}

fn root_of(tmp: &Path, node: &str) -> PathBuf {
    tmp.join("roots").join(node)
}

fn host_path(pv: &PersistentVolume) -> PathBuf {
    PathBuf::from(&pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path)
}

fn affinity_values(pv: &PersistentVolume) -> Vec<String> {
    let term = first_affinity_term(pv);
    assert!(
        term.match_fields.is_none(),
        "the scheduler matches labels only"
    );
    let expr = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(expr.key, "kubernetes.io/hostname");
    expr.values.clone().unwrap_or_default()
}

/// deploy/hostpath installed on a cluster of two nodes, the plain one and
/// the FQDN-named one, each with its instance running as the ServiceAccount.
struct TwoNodes {
    // Dropped in this order: the instances, then the cluster, then their roots.
    _instances: [Binary; 2],
    installed: Installed,
    cluster: Cluster,
    tmp: tempfile::TempDir,
}

impl TwoNodes {
    async fn start() -> TwoNodes {
        let cluster = Cluster::start().await;
        let tmp = tempfile::tempdir().unwrap();
        let installed = cluster.install("hostpath");
        cluster.node(PLAIN, PLAIN).await;
        cluster.node(FQDN.0, FQDN.1).await;
        let instances = [
            spawn_instance(&installed.kubeconfig, tmp.path(), PLAIN),
            spawn_instance(&installed.kubeconfig, tmp.path(), FQDN.0),
        ];
        TwoNodes {
            _instances: instances,
            installed,
            cluster,
            tmp,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_hostpath_provision_delete_and_retain() {
    let env = TwoNodes::start().await;
    let (cluster, client, tmp) = (&env.cluster, env.cluster.client(), &env.tmp);

    // The shipped class (WaitForFirstConsumer, Delete): the scheduler picks
    // the FQDN node for the pod, its instance makes the directory.
    create_claim(&client, "data", "hostpath", "1Gi", json!({})).await;
    create_pod_on(&client, "data", FQDN.1).await;
    let pv = wait_bound(&client, "data").await;
    assert_eq!(wait_scheduled(&client, "data").await, FQDN.0);
    assert_eq!(affinity_values(&pv), [FQDN.1]);
    let dir = host_path(&pv);
    assert!(
        dir.starts_with(root_of(tmp.path(), FQDN.0)),
        "{}",
        dir.display()
    );
    assert!(dir.is_dir(), "{} must exist", dir.display());
    std::fs::write(dir.join("file"), b"data").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "data").await;
    wait_pv_gone(&client, &pv_name).await;
    assert!(
        !dir.exists(),
        "the data goes with the PV: {}",
        dir.display()
    );

    // Retain: the PV is Released and stays, and so does the data.
    create_class(
        &client,
        "keep",
        "external-storage.io/hostpath",
        "Retain",
        true,
        json!({}),
    )
    .await;
    create_claim(&client, "kept", "keep", "1Gi", json!({})).await;
    create_pod_on(&client, "kept", PLAIN).await;
    let pv = wait_bound(&client, "kept").await;
    assert_eq!(wait_scheduled(&client, "kept").await, PLAIN);
    assert_eq!(affinity_values(&pv), [PLAIN]);
    let dir = host_path(&pv);
    std::fs::write(dir.join("file"), b"kept").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "kept").await;
    wait_pv_phase(&client, &pv_name, "Released").await;
    // A claim provisioned afterwards proves the instance is past the
    // Released PV and left it alone.
    create_claim(&client, "after", "keep", "1Gi", json!({})).await;
    create_pod_on(&client, "after", PLAIN).await;
    wait_bound(&client, "after").await;
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"kept");
    assert!(pvs(&client).get_opt(&pv_name).await.unwrap().is_some());

    // onDelete: archive with a nested pathPattern: the PV controller
    // releases the PV, the instance moves the data to the top of its root
    // (the event names it), and the same claim made again starts empty.
    create_class(
        &client,
        "archive",
        "external-storage.io/hostpath",
        "Delete",
        true,
        json!({"onDelete": "archive", "pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Name }}"}),
    )
    .await;
    create_claim(&client, "logs", "archive", "1Gi", json!({})).await;
    create_pod_on(&client, "logs", PLAIN).await;
    let pv = wait_bound(&client, "logs").await;
    let dir = host_path(&pv);
    assert_eq!(dir, root_of(tmp.path(), PLAIN).join("default/logs"));
    std::fs::write(dir.join("file"), b"old logs").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "logs").await;
    wait_pv_gone(&client, &pv_name).await;
    let note = wait_normal(&client, &pv_name, "VolumeArchived").await;
    let archive = root_of(tmp.path(), PLAIN).join(
        note.split_whitespace()
            .find_map(|w| w.rsplit('/').next().filter(|n| n.starts_with("archived-")))
            .unwrap_or_else(|| panic!("no archive named in {note:?}")),
    );
    assert_eq!(std::fs::read(archive.join("file")).unwrap(), b"old logs");
    create_claim(&client, "logs", "archive", "1Gi", json!({})).await;
    create_pod_on(&client, "logs", PLAIN).await;
    assert_eq!(host_path(&wait_bound(&client, "logs").await), dir);
    assert!(!dir.join("file").exists(), "a fresh directory");

    cluster.assert_rbac(&env.installed);
}

/// Issue: an Immediate class's `allowedTopologies` names a node by its
/// `kubernetes.io/hostname` label, which the library used to take for the
/// node's name: on a node named by its FQDN no instance ever answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_affinity_and_allowed_topologies_use_the_hostname_label() {
    let env = TwoNodes::start().await;
    let (cluster, client, tmp) = (&env.cluster, env.cluster.client(), &env.tmp);
    let _: k8s_openapi::api::storage::v1::StorageClass = create(
        &kube::Api::all(client.clone()),
        json!({
            "metadata": {"name": "pinned"},
            "provisioner": "external-storage.io/hostpath",
            "volumeBindingMode": "Immediate",
            "allowedTopologies": [{"matchLabelExpressions": [
                {"key": "kubernetes.io/hostname", "values": [FQDN.1]}
            ]}],
        }),
    )
    .await;
    // No pod: the class's topology alone names the node.
    create_claim(&client, "pinned", "pinned", "1Gi", json!({})).await;
    let pv = wait_bound(&client, "pinned").await;
    assert_eq!(affinity_values(&pv), [FQDN.1]);
    let dir = host_path(&pv);
    assert!(
        dir.starts_with(root_of(tmp.path(), FQDN.0)),
        "{}",
        dir.display()
    );
    assert!(dir.is_dir());
    // A pod using it is placed on that node by the scheduler.
    create_pod_on(&client, "pinned", FQDN.1).await;
    assert_eq!(wait_scheduled(&client, "pinned").await, FQDN.0);
    cluster.assert_rbac(&env.installed);
}

/// A pod for `claim` that prefers (does not require) the node labelled
/// `hostname`: without capacity information the scheduler follows the
/// preference; with it, a node without room is filtered out first.
async fn create_pod_preferring(client: &kube::Client, claim: &str, hostname: &str) {
    let _: k8s_openapi::api::core::v1::Pod = create(
        &pods(client),
        json!({
            "metadata": {"name": format!("{claim}-pod")},
            "spec": {
                "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "preference": {"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]}
                    ]}}
                ]}},
                "containers": [{"name": "app", "image": "busybox"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
            },
        }),
    )
    .await;
}

/// The real control plane with deploy/hostpath and its
/// optional/capacity.yaml applied, once the capacity Role is in force; and
/// the admin kubeconfig; with two Nodes, each named like its hostname
/// label. `None` (the test says it skipped) on kube-testserver, whose
/// scheduler does not read CSIStorageCapacity.
async fn capacity_cluster(nodes: [&str; 2]) -> Option<(Cluster, Installed, PathBuf)> {
    let cluster = Cluster::start().await;
    if !cluster.is_real() {
        println!(
            "SKIPPED on {}: kube-testserver's scheduler does not read CSIStorageCapacity; \
             this test needs the real one (E2E_CLUSTER=real)",
            cluster.backend().name()
        );
        return None;
    }
    let installed = cluster.install("hostpath");
    let admin = cluster.admin_kubeconfig().to_path_buf();
    let manifest = installed.deploy.join("optional/capacity.yaml");
    e2e_support::cluster::kubectl(&admin, &["apply", "-f", manifest.to_str().unwrap()]);
    let sa = format!(
        "system:serviceaccount:{}:{}",
        installed.namespace, installed.service_account
    );
    let ns = installed.namespace.clone();
    wait_for("the capacity Role applies", || {
        let (admin, sa, ns) = (admin.clone(), sa.clone(), ns.clone());
        async move {
            let out = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&admin)
                .args([
                    "auth",
                    "can-i",
                    "create",
                    "csistoragecapacities.storage.k8s.io",
                ])
                .args(["-n", &ns, "--as", &sa])
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).trim() == "yes").then_some(())
        }
    })
    .await;
    for node in nodes {
        cluster.node(node, node).await;
    }
    Some((cluster, installed, admin))
}

/// The flags of an instance publishing capacity into `ns`.
fn capacity_flags(ns: &str) -> [&str; 9] {
    [
        "--provisioner-name",
        "hostpath.external-storage.io",
        "--additional-provisioner-names",
        "external-storage.io/hostpath",
        "--publish-capacity",
        "--capacity-interval",
        "1s",
        "--leader-elect-namespace",
        ns,
    ]
}

/// Waits until `nodes` nodes publish capacity for `class`; (hostname, capacity) sorted.
async fn published(
    caps: &kube::Api<k8s_openapi::api::storage::v1::CSIStorageCapacity>,
    class: &str,
    nodes: usize,
) -> Vec<(String, String)> {
    wait_for(
        &format!("{nodes} nodes publish their capacity for {class}"),
        || {
            let caps = caps.clone();
            async move {
                let items = caps.list(&Default::default()).await.ok()?.items;
                let mut by_node: Vec<(String, String)> = items
                    .iter()
                    .filter(|c| c.storage_class_name == class)
                    .map(|c| {
                        let sel = c
                            .node_topology
                            .as_ref()
                            .unwrap()
                            .match_labels
                            .as_ref()
                            .unwrap();
                        (
                            sel["kubernetes.io/hostname"].clone(),
                            c.capacity.as_ref().unwrap().0.clone(),
                        )
                    })
                    .collect();
                by_node.sort();
                (by_node.len() == nodes).then_some(by_node)
            }
        },
    )
    .await
}

fn mib(q: &str) -> u64 {
    q.strip_suffix("Mi")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap()
}

/// Issue #18.3: with deploy/hostpath/optional/capacity.yaml (a CSIDriver
/// with `storageCapacity: true`, no CSI driver running) and
/// `--publish-capacity`, the real scheduler skips a node whose root has no
/// room for the claim, even when the pod prefers that node; for a class
/// without a CSIDriver it follows the preference onto the small node, where
/// the volume cannot hold what it promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_capacity_aware_scheduling_skips_a_node_without_room() {
    let (small, large) = ("node-small", "node-large");
    let Some((cluster, installed, admin)) = capacity_cluster([small, large]).await else {
        return;
    };
    let ns = installed.namespace.clone();
    let tmp = tempfile::tempdir().unwrap();
    let _mounts = [
        Tmpfs::mount(&root_of(tmp.path(), small), "8m"),
        Tmpfs::mount(&root_of(tmp.path(), large), "256m"),
    ];
    let extra = capacity_flags(&ns);
    let _instances = [
        spawn_instance_with(&installed.kubeconfig, tmp.path(), small, &extra),
        spawn_instance_with(&installed.kubeconfig, tmp.path(), large, &extra),
    ];
    let client = cluster.client();
    let caps: kube::Api<k8s_openapi::api::storage::v1::CSIStorageCapacity> =
        kube::Api::namespaced(client.clone(), &ns);
    let published = published(&caps, "hostpath-capacity", 2).await;
    println!("published: {published:?}");
    assert_eq!(published[0].0, large);
    assert!((200..=256).contains(&mib(&published[0].1)), "{published:?}");
    assert_eq!(published[1].0, small);
    assert!(mib(&published[1].1) <= 8, "{published:?}");

    // With capacity: the pod prefers the small node, the claim (64 MiB) does
    // not fit there, so the scheduler picks the large one.
    create_claim(&client, "big", "hostpath-capacity", "64Mi", json!({})).await;
    create_pod_preferring(&client, "big", small).await;
    assert_eq!(wait_scheduled(&client, "big").await, large);
    let pv = wait_bound(&client, "big").await;
    assert_eq!(affinity_values(&pv), [large]);
    assert!(host_path(&pv).starts_with(root_of(tmp.path(), large)));

    // The shipped class's provisioner (external-storage.io/hostpath, which
    // the instances also answer to) has no CSIDriver and cannot have one
    // (a `/` in the name): the scheduler follows the preference onto the
    // small node, and a 64 MiB volume lands on 8 MiB.
    create_claim(&client, "blind", "hostpath", "64Mi", json!({})).await;
    create_pod_preferring(&client, "blind", small).await;
    assert_eq!(wait_scheduled(&client, "blind").await, small);
    let pv = wait_bound(&client, "blind").await;
    assert_eq!(affinity_values(&pv), [small]);

    // The small node goes for good: its objects go with it (owned by the
    // Node, removed by the garbage collector), the large node's stay.
    e2e_support::cluster::kubectl(&admin, &["delete", "node", small]);
    wait_for("the deleted node's capacity objects are gone", || {
        let caps = caps.clone();
        async move {
            let items = caps.list(&Default::default()).await.ok()?.items;
            let hosts: Vec<String> = items
                .iter()
                .filter_map(|c| {
                    c.node_topology
                        .as_ref()?
                        .match_labels
                        .as_ref()?
                        .get("kubernetes.io/hostname")
                        .cloned()
                })
                .collect();
            (!hosts.iter().any(|h| h == small) && hosts.iter().any(|h| h == large)).then_some(())
        }
    })
    .await;

    cluster.assert_rbac(&installed);
}

/// Issue #19.3: a node the configuration lists with `paths: []` has no
/// storage. A claim selected for it is given back to the scheduler (the
/// selected-node annotation removed, a Warning naming the config entry),
/// not left waiting, and binds on a node with storage. The selected node is
/// set by hand: the real scheduler, left alone, may pick either node, and a
/// pod preferring the empty node would be sent back to it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_hostpath_a_node_without_storage_gives_its_claim_back() {
    use external_storage::annotations::SELECTED_NODE;
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let tmp = tempfile::tempdir().unwrap();
    let installed = cluster.install("hostpath");
    let (empty, full) = ("node-empty", "node-full");
    cluster.node(empty, empty).await;
    cluster.node(full, full).await;
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "nodePathMap:\n- node: DEFAULT_PATH_FOR_NON_LISTED_NODES\n  paths: [{}]\n\
             - node: {empty}\n  paths: []\n",
            root_of(tmp.path(), full).display()
        ),
    )
    .unwrap();
    let extra = ["--config", config.to_str().unwrap()];
    let _instances = [
        spawn_instance_with(&installed.kubeconfig, tmp.path(), empty, &extra),
        spawn_instance_with(&installed.kubeconfig, tmp.path(), full, &extra),
    ];

    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim = create(
        &claims(&client),
        json!({
            "metadata": {"name": "data", "annotations": {SELECTED_NODE: empty}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "hostpath",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }),
    )
    .await;
    let note = wait_warning(&client, "data", "asking the scheduler to pick another node").await;
    assert!(
        note.contains(&format!("`nodePathMap[1]` (node: {empty}) has `paths: []`")),
        "{note}"
    );
    wait_for("the selected-node annotation removed", || async {
        let claim = claims(&client).get("data").await.ok()?;
        (!claim
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(SELECTED_NODE))
        .then_some(())
    })
    .await;
    assert!(!root_of(tmp.path(), empty).exists());

    // The scheduler places the pod on the node with storage: bound there.
    create_pod_on(&client, "data", full).await;
    let pv = wait_bound(&client, "data").await;
    assert_eq!(wait_scheduled(&client, "data").await, full);
    assert_eq!(affinity_values(&pv), [full]);
    assert!(host_path(&pv).starts_with(root_of(tmp.path(), full)));
    cluster.assert_rbac(&installed);
}

/// Issue #19.3 with capacity-aware scheduling: capacity follows the
/// configuration. A node configured without storage publishes 0 for the
/// class, so the real scheduler does not put the claim there even when its
/// pod prefers that node; a node with two roots publishes the room of the
/// roomier one, and the volume goes to that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_capacity_follows_the_configuration() {
    let (none, two) = ("node-none", "node-two");
    let Some((cluster, installed, _)) = capacity_cluster([none, two]).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (small, large) = (tmp.path().join("small"), tmp.path().join("large"));
    let _mounts = [Tmpfs::mount(&small, "8m"), Tmpfs::mount(&large, "64m")];
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "nodePathMap:\n- node: {none}\n  paths: []\n- node: {two}\n  paths: [{}, {}]\n",
            small.display(),
            large.display()
        ),
    )
    .unwrap();
    let mut extra = capacity_flags(&installed.namespace).to_vec();
    extra.extend(["--config", config.to_str().unwrap()]);
    let _instances = [
        spawn_instance_with(&installed.kubeconfig, tmp.path(), none, &extra),
        spawn_instance_with(&installed.kubeconfig, tmp.path(), two, &extra),
    ];
    let client = cluster.client();
    let caps = kube::Api::namespaced(client.clone(), &installed.namespace);
    let published = published(&caps, "hostpath-capacity", 2).await;
    println!("published: {published:?}");
    // The API server writes 0Mi as 0.
    assert_eq!(published[0], (none.to_string(), "0".to_string()));
    assert_eq!(published[1].0, two);
    assert!((56..=64).contains(&mib(&published[1].1)), "{published:?}");

    create_claim(&client, "data", "hostpath-capacity", "16Mi", json!({})).await;
    create_pod_preferring(&client, "data", none).await;
    assert_eq!(wait_scheduled(&client, "data").await, two);
    let pv = wait_bound(&client, "data").await;
    assert_eq!(affinity_values(&pv), [two]);
    assert!(host_path(&pv).starts_with(&large), "{pv:?}");
    cluster.assert_rbac(&installed);
}

/// Issue #19.5: with `--delete-volumes-of-deleted-nodes-after`, a node
/// deleted for good takes its PV objects with it once the grace period is
/// over (never its data), with events on the PV and its claim; the
/// StatefulSet-style recovery then works: the claim is deleted and made
/// again under the same name, and its new pod and volume land on the node
/// that is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_hostpath_the_claim_of_a_deleted_node_is_made_again_elsewhere() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let installed = cluster.install("hostpath");
    cluster.node(PLAIN, PLAIN).await;
    cluster.node(FQDN.0, FQDN.1).await;
    let sweep = deleted_node_sweep_args(&installed.namespace);
    let extra: Vec<&str> = sweep.iter().map(String::as_str).collect();
    let doomed = spawn_instance_with(&installed.kubeconfig, tmp.path(), PLAIN, &extra);
    let _survivor = spawn_instance_with(&installed.kubeconfig, tmp.path(), FQDN.0, &extra);
    let (admin, client) = (cluster.admin_kubeconfig().to_path_buf(), cluster.client());

    // The scheduler places the pod on the plain node; its instance makes
    // the volume there.
    create_claim(&client, "data", "hostpath", "1Gi", json!({})).await;
    create_pod_on(&client, "data", PLAIN).await;
    let pv = wait_bound(&client, "data").await;
    assert_eq!(wait_scheduled(&client, "data").await, PLAIN);
    assert_eq!(affinity_values(&pv), [PLAIN]);
    let dir = host_path(&pv);
    std::fs::write(dir.join("file"), b"data").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();

    // The node goes for good, and its instance with it.
    drop(doomed);
    e2e_support::cluster::kubectl(&admin, &["delete", "node", PLAIN]);

    // After the grace period the surviving instance deletes the PV object:
    // pv-protection keeps it Terminating while the claim is bound to it.
    wait_pv_deleting(&client, &pv_name).await;
    let removed = wait_for("a DeletedNodeVolumeRemoved event on the PV", || async {
        events_about(&client, &pv_name)
            .await
            .into_iter()
            .find(|(_, reason, _)| reason == "DeletedNodeVolumeRemoved")
    })
    .await;
    assert_eq!(removed.0, "Normal");
    assert!(removed.2.contains(PLAIN), "{}", removed.2);
    let warning = wait_warning(&client, "data", "create it again").await;
    assert!(warning.contains(PLAIN), "{warning}");
    println!("on the PV: {}\non the claim: {warning}", removed.2);
    if cluster.is_real() {
        // The real pv-protection controller holds a PV while it is Bound.
        let held = pvs(&client).get(&pv_name).await.unwrap();
        assert!(held.metadata.deletion_timestamp.is_some());
        assert_eq!(
            held.status.and_then(|s| s.phase).as_deref(),
            Some("Bound"),
            "Terminating, still bound to the claim"
        );
    }

    // The recovery: delete the claim (and its pod), make it again.
    delete_claim(&client, "data").await;
    wait_for("claim data gone", || {
        let api = claims(&client);
        async move { api.get_opt("data").await.ok()?.is_none().then_some(()) }
    })
    .await;
    wait_pv_gone(&client, &pv_name).await;
    create_claim(&client, "data", "hostpath", "1Gi", json!({})).await;
    create_pod_on(&client, "data", FQDN.1).await;
    let again = wait_bound(&client, "data").await;
    assert_eq!(wait_scheduled(&client, "data").await, FQDN.0);
    assert_eq!(affinity_values(&again), [FQDN.1]);
    assert_ne!(again.metadata.name.as_deref(), Some(pv_name.as_str()));
    assert!(host_path(&again).starts_with(root_of(tmp.path(), FQDN.0)));
    // Only the PV object went: the deleted node's data was not touched.
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"data");
    cluster.assert_rbac(&installed);
}
