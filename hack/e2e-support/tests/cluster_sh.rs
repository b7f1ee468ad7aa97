//! `hack/cluster.sh up/node/token/restart/down` do what hack/README.md
//! says, on the real control plane. Runs only with `E2E_CLUSTER=real`
//! (hack/test.sh sets it for its real-control-plane tier): it needs the
//! Go-built binaries, which the default `cargo test` does not build.

use std::path::Path;
use std::process::Command;

use e2e_support::cluster::{cluster_sh, kubectl};
use e2e_support::Backend;

fn alive(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    (stat.split(' ').nth(2) != Some("Z")).then_some(pid)
}

fn kubectl_fails(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(!out.status.success(), "kubectl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cluster_sh_up_node_token_restart_down() {
    if Backend::from_env() != Backend::Real {
        eprintln!(
            "SKIP cluster_sh_up_node_token_restart_down: set E2E_CLUSTER=real (hack/test.sh does) to test hack/cluster.sh"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    cluster_sh(&["up", d]);
    let admin = dir.join("kubeconfig");

    // Cluster admin, the real apiserver, with the storage admission plugins.
    assert_eq!(kubectl(&admin, &["get", "--raw", "/readyz"]).trim(), "ok");
    let version = kubectl(&admin, &["get", "--raw", "/version"]);
    let pinned = cluster_sh(&["version"]);
    let kube = pinned.split_whitespace().nth(1).unwrap();
    assert!(
        version.contains(&format!("\"gitVersion\": \"{kube}\"")),
        "{version}"
    );

    // A Ready, untainted node with its hostname label.
    cluster_sh(&["node", d, "n1.example.com", "n1"]);
    let node = kubectl(
        &admin,
        &["get", "node", "n1.example.com", "-o",
          "jsonpath={.metadata.labels.kubernetes\\.io/hostname} {.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints}"],
    );
    assert_eq!(node.trim(), "n1 True");

    // A ServiceAccount kubeconfig: authenticated as the account, judged by RBAC.
    kubectl(
        &admin,
        &["create", "serviceaccount", "probe", "-n", "default"],
    );
    let sa = dir.join("sa.kubeconfig");
    std::fs::write(&sa, cluster_sh(&["token", d, "default", "probe"])).unwrap();
    let who = kubectl(
        &sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(who, "system:serviceaccount:default:probe");
    let denied = kubectl_fails(&sa, &["get", "persistentvolumes"]);
    assert!(denied.contains("forbidden"), "{denied}");

    // A restarted apiserver serves the same data.
    cluster_sh(&["restart", d]);
    let nodes = kubectl(&admin, &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.trim(), "node/n1.example.com");

    let pids: Vec<_> = ["etcd", "apiserver", "controller-manager", "scheduler"]
        .iter()
        .map(|n| alive(&dir.join(format!("{n}.pid"))).unwrap_or_else(|| panic!("{n} running")))
        .collect();
    cluster_sh(&["down", d]);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.split(' ').nth(2) == Some("Z")),
            "pid {pid} still running after down"
        );
    }
    let refused = kubectl_fails(
        &admin,
        &["get", "--raw", "/readyz", "--request-timeout", "2s"],
    );
    assert!(
        !refused.is_empty(),
        "kubectl says why the stopped apiserver did not answer"
    );
}
