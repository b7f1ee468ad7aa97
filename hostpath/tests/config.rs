//! End-to-end, against kube-testserver: the configuration file (`--config`,
//! issue #19 items 2 and 3). A reload changes the path map without a
//! restart, a bad one is refused with an event on the ConfigMap and the old
//! one stays in force, a PV whose root was removed is not deleted, two roots
//! on one node give the volume to the one with more room, and a node
//! configured without storage gives its claims back to the scheduler.

use std::path::{Path, PathBuf};

use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/hostpath";
const NODE: &str = "node-1";
const CONFIG_MAP: &str = "hostpath-provisioner-config";
const ROOT_ANNOTATION: &str = hostpath_provisioner::provisioner::ROOT_ANNOTATION;

struct Env {
    ts: TestServer,
    client: Client,
    tmp: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let ts = TestServer::start().await.expect("start kube-testserver");
        let client = ts.client().await;
        for node in [NODE, "node-2"] {
            create_node(&client, node).await;
        }
        let tmp = tempfile::tempdir().unwrap();
        Env { ts, client, tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn config_file(&self, node: &str) -> PathBuf {
        self.path(&format!("config-{node}.yaml"))
    }

    /// Writes `node`'s configuration (`$T` is the temporary directory), the
    /// way the kubelet updates a ConfigMap volume: a new file swapped in.
    fn write_config(&self, node: &str, text: &str) {
        let text = text.replace("$T", self.tmp.path().to_str().unwrap());
        let file = self.config_file(node);
        let new = file.with_extension("new");
        std::fs::write(&new, text).unwrap();
        std::fs::rename(&new, &file).unwrap();
    }

    fn spawn(&self, node: &str) -> Binary {
        let log_dir = self.path(&format!("logs-{node}"));
        std::fs::create_dir_all(&log_dir).unwrap();
        let (config, unused) = (self.config_file(node), self.path("unused"));
        let mut args = vec!["--node-name", node];
        args.extend(QUICK_RETRIES);
        args.extend([
            "--config",
            config.to_str().unwrap(),
            "--config-poll-interval",
            "200ms",
            "--config-map-name",
            CONFIG_MAP,
            // Not a real root: with --config it must not be used.
            "--root",
            unused.to_str().unwrap(),
        ]);
        Binary::spawn(
            env!("CARGO_BIN_EXE_hostpath-provisioner"),
            &self.ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
            &args,
            &log_dir,
        )
    }

    async fn class(&self, name: &str) {
        create_class(&self.client, name, PROVISIONER, "Delete", true, json!({})).await;
    }

    async fn claim_on(&self, name: &str, class: &str, node: &str) -> PersistentVolume {
        create_claim(&self.client, name, class, "1Gi", json!({})).await;
        create_pod_for(&self.client, name, node).await;
        wait_bound(&self.client, name).await
    }

    async fn wait_event(&self, name: &str, reason: &str) -> String {
        wait_for(&format!("a {reason} event about {name}"), || async {
            events_about(&self.client, name)
                .await
                .into_iter()
                .find(|(_, r, _)| r == reason)
                .map(|(_, _, note)| note)
        })
        .await
    }
}

fn host_path(pv: &PersistentVolume) -> PathBuf {
    PathBuf::from(&pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path)
}

fn recorded_root(pv: &PersistentVolume) -> String {
    pv.metadata.annotations.as_ref().unwrap()[ROOT_ANNOTATION].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_root_refuses_a_bad_config_and_never_deletes_from_a_removed_root() {
    let env = Env::start().await;
    let (a, b) = (env.path("a"), env.path("b"));
    env.write_config(NODE, "nodePathMap:\n- node: node-1\n  paths: [$T/a]\n");
    let bin = env.spawn(NODE);
    env.class("hostpath").await;
    env.class("on-b").await;
    let first = env.claim_on("first", "hostpath", NODE).await;
    assert!(host_path(&first).starts_with(&a), "{first:?}");
    assert_eq!(recorded_root(&first), a.display().to_string());
    assert!(
        !env.path("unused").exists(),
        "--root is not used with --config"
    );

    // Refused: a relative path. Named in a Warning on the ConfigMap and in
    // the log; the old configuration stays in force.
    env.write_config(NODE, "nodePathMap:\n- node: node-1\n  paths: [relative]\n");
    let note = wait_warning(&env.client, CONFIG_MAP, "new configuration refused").await;
    assert!(note.contains("nodePathMap[0].paths[0]"), "{note}");
    assert!(
        bin.log().contains("new configuration refused"),
        "{}",
        bin.log()
    );
    let second = env.claim_on("second", "hostpath", NODE).await;
    assert!(host_path(&second).starts_with(&a), "{second:?}");
    // Refused: a root over the host's own files (docs/security.md), named
    // in a Warning; the old configuration still provisions into a.
    env.write_config(
        NODE,
        "nodePathMap:\n- node: node-1\n  paths: [$T/a, /etc]\n",
    );
    let note = wait_warning(&env.client, CONFIG_MAP, "the host's own files").await;
    assert!(
        note.contains("nodePathMap[0].paths[1]") && note.contains("/etc"),
        "{note}"
    );
    let after = env.claim_on("after-etc", "hostpath", NODE).await;
    assert!(host_path(&after).starts_with(&a), "{after:?}");

    // Accepted: a second root for class on-b; new claims of it land there.
    env.write_config(
        NODE,
        "nodePathMap:\n- node: node-1\n  paths: [$T/a]\n\
         storageClassConfigs:\n  on-b:\n    nodePathMap:\n    - node: node-1\n      paths: [$T/b]\n",
    );
    let note = env.wait_event(CONFIG_MAP, "ConfigReloaded").await;
    assert!(note.contains("storageClassConfigs added: on-b"), "{note}");
    let third = env.claim_on("third", "on-b", NODE).await;
    assert!(host_path(&third).starts_with(&b), "{third:?}");
    assert_eq!(recorded_root(&third), b.display().to_string());

    // Root a removed: its PV is not deleted, a Warning says why.
    env.write_config(NODE, "nodePathMap:\n- node: node-1\n  paths: [$T/b]\n");
    wait_for("the reload that removes root a", || async {
        (events_about(&env.client, CONFIG_MAP).await.iter())
            .any(|(_, r, n)| r == "ConfigReloaded" && n.contains("nodePathMap changed"))
            .then_some(())
    })
    .await;
    let pv_name = first.metadata.name.clone().unwrap();
    delete_claim(&env.client, "first").await;
    let note = wait_warning(&env.client, &pv_name, "nothing was deleted").await;
    assert!(note.contains("removed from the nodePathMap"), "{note}");
    assert!(host_path(&first).is_dir(), "data of a removed root stays");
    assert!(pvs(&env.client).get_opt(&pv_name).await.unwrap().is_some());
    // Put back: the PV and its directory go.
    env.write_config(
        NODE,
        "nodePathMap:\n- node: node-1\n  paths: [$T/a, $T/b]\n",
    );
    wait_pv_gone(&env.client, &pv_name).await;
    assert!(!host_path(&first).exists());
    assert_rbac_allows(&env.ts, PROVISIONER_USER, &deploy_dir("hostpath"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_roots_on_a_node_the_volume_goes_to_the_one_with_more_room() {
    let env = Env::start().await;
    // The small one listed first: not the first, the roomier one wins.
    let _mounts = [
        Tmpfs::mount(&env.path("small"), "8m"),
        Tmpfs::mount(&env.path("large"), "64m"),
    ];
    env.write_config(
        NODE,
        "nodePathMap:\n- node: DEFAULT_PATH_FOR_NON_LISTED_NODES\n  paths: [$T/small, $T/large]\n",
    );
    let _bin = env.spawn(NODE);
    env.class("hostpath").await;
    let pv = env.claim_on("data", "hostpath", NODE).await;
    assert!(host_path(&pv).starts_with(env.path("large")), "{pv:?}");
    assert_eq!(recorded_root(&pv), env.path("large").display().to_string());
    // Fill the large one beyond the small one's room: the next goes small.
    let filler = env.path("large/filler");
    std::fs::write(&filler, vec![0u8; 60 << 20]).unwrap();
    let pv = env.claim_on("next", "hostpath", NODE).await;
    assert!(host_path(&pv).starts_with(env.path("small")), "{pv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_configured_without_storage_gives_the_claim_back_to_the_scheduler() {
    let env = Env::start().await;
    let config = "nodePathMap:\n- node: DEFAULT_PATH_FOR_NON_LISTED_NODES\n  paths: [$T/root]\n\
                  - node: node-1\n  paths: []\n";
    env.write_config(NODE, config);
    env.write_config("node-2", config);
    let _bins = [env.spawn(NODE), env.spawn("node-2")];
    env.class("hostpath").await;
    create_claim(&env.client, "data", "hostpath", "1Gi", json!({})).await;
    create_pod_for(&env.client, "data", NODE).await;
    let note = wait_warning(
        &env.client,
        "data",
        "asking the scheduler to pick another node",
    )
    .await;
    assert!(
        note.contains("`nodePathMap[1]` (node: node-1) has `paths: []`"),
        "{note}"
    );
    assert!(!Path::new(&env.path("root")).join("default").exists());
}
