//! Only the Nodes may mount (docs/security.md, "NFS only for nodes"): the
//! real binary with real NFS-Ganesha and no `--allowed-clients`, against
//! kube-testserver. The libnfs client connects from 127.0.0.1, which is no
//! Node's address at first: refused. A Node with that address added later
//! gets in, with no restart of Ganesha (the exports are updated in place);
//! deleted, it is cut off again.
//! Needs root and the Ganesha packages (hack/test.sh installs them).

mod common;

use std::time::Duration;

use common::*;
use e2e_support::*;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/nfs";

/// A Node whose InternalIP is `ip`.
async fn node_at(client: &kube::Client, name: &str, ip: &str) -> Node {
    create(
        &Api::all(client.clone()),
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "Hostname", "address": name},
                ],
            },
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_mount_and_the_list_follows_them_live() {
    preflight();
    let ts = TestServer::start().await.expect("start kube-testserver");
    let c = ts.client().await;
    let kubeconfig = ts.kubeconfig_as(PROVISIONER_USER).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("export");
    let run_dir = tmp.path().join("run");
    let _reaper = Reaper(run_dir.clone());
    let metrics_port = free_port();
    nfs_service(&c).await;
    create_class(&c, "nfs", PROVISIONER, "Delete", false, json!({})).await;
    // A node, but not at the client's address.
    node_at(&c, "node-a", "127.0.0.2").await;

    let server = Server {
        allowed_clients: "",
        ..Server::new(&root, &run_dir, metrics_port)
    };
    let log_dir = tmp.path().join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    let mut provisioner = server.spawn(&kubeconfig, &log_dir, &[]);
    wait_ready(metrics_port).await;
    let pid = alive_pid(&run_dir.join("ganesha.pid"), "ganesha.nfsd").expect("ganesha runs");

    create_claim(
        &c,
        "one",
        "nfs",
        "1Gi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    let pv = wait_bound(&c, "one").await;
    let path = nfs_path(&pv);
    let pv_name = pv.metadata.name.clone().unwrap();
    std::fs::write(root.join(&pv_name).join("hello"), b"hi").unwrap();
    let record = root.join(format!(".nfs-provisioner/exports/{pv_name}.conf"));
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("Clients = 127.0.0.2;"),
        "the node's address, and only it:\n{text}"
    );

    // 127.0.0.1 is no node: refused on NFSv3 and on the NFSv4 pseudo root.
    let e = nfs_read(&path, "hello").expect_err("v3 from a non-node address");
    assert!(e.contains("MNT3ERR_ACCES"), "{e}");
    let v4 = run("nfs-ls", &[&url("/", "", 4)]);
    assert!(
        !v4.status.success(),
        "the pseudo root from a non-node address"
    );

    // A node at 127.0.0.1 joins: it gets in, with the same Ganesha.
    node_at(&c, "node-b", "127.0.0.1").await;
    let got = wait_for("the new node may read", || {
        let path = path.clone();
        async move { nfs_read(&path, "hello").ok() }
    })
    .await;
    assert_eq!(got, b"hi");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("Clients = 127.0.0.1, 127.0.0.2;"), "{text}");
    assert_eq!(
        alive_pid(&run_dir.join("ganesha.pid"), "ganesha.nfsd"),
        Some(pid),
        "updated in place, not restarted"
    );
    // A claim made now admits both nodes too.
    create_claim(
        &c,
        "two",
        "nfs",
        "1Gi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    let two = nfs_path(&wait_bound(&c, "two").await);
    nfs_write(&two, "f", b"x", tmp.path());

    // The node is deleted: cut off, everywhere, still the same Ganesha.
    Api::<Node>::all(c.clone())
        .delete("node-b", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the deleted node refused", || {
        let path = path.clone();
        async move { nfs_read(&path, "hello").err() }
    })
    .await;
    for p in [&path, &two] {
        let e = nfs_read(p, "hello").expect_err("after the node left");
        assert!(e.contains("MNT3ERR_ACCES"), "{e}");
    }
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("Clients = 127.0.0.2;") && !text.contains("127.0.0.1"),
        "{text}"
    );
    assert_eq!(
        alive_pid(&run_dir.join("ganesha.pid"), "ganesha.nfsd"),
        Some(pid)
    );
    let status = provisioner
        .terminate(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}
