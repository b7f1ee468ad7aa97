//! A Ganesha that answers every probe but cannot export is not ready.
//!
//! On a real node, containerd's `RuntimeDefault` seccomp profile (before
//! 1.6.22/1.7.3, for a container without `CAP_SYS_ADMIN`) refuses
//! `name_to_handle_at`, so every `AddExport` of the VFS FSAL fails with
//! `EPERM` while NFS, MOUNT and D-Bus answer. The pod used to be Ready with
//! no records to re-add, and every claim then failed. Here Ganesha runs
//! behind a wrapper that installs a seccomp filter refusing exactly that
//! syscall with `EPERM` and then execs the real `ganesha.nfsd`: `/readyz`
//! must stay 503 and name the reason, and a claim must not be provisioned.
//! The same provisioner restarted without the filter becomes ready and
//! provisions the waiting claim.
//!
//! Needs root and real Ganesha, like `tests/e2e.rs` (one Ganesha at a time:
//! fixed ports, one rpcbind; cargo runs test binaries one after another).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::*;
use e2e_support::*;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/nfs";

/// `ganesha.nfsd` behind a classic-BPF seccomp filter: `name_to_handle_at`
/// fails with `EPERM`, everything else is allowed (what a container
/// runtime's profile without that syscall does to Ganesha).
const DENY_NAME_TO_HANDLE_AT: &str = r#"#!/usr/bin/env python3
import ctypes, os, platform, struct, sys
# (syscall number, AUDIT_ARCH) of name_to_handle_at
nr, arch = {"x86_64": (303, 0xC000003E), "aarch64": (264, 0xC00000B7)}[platform.machine()]
def insn(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
prog = b"".join([
    insn(LD_ABS, 4),           # seccomp_data.arch
    insn(JEQ, arch, 0, 3),     # another ABI: allow
    insn(LD_ABS, 0),           # seccomp_data.nr
    insn(JEQ, nr, 0, 1),
    insn(RET, 0x00050000 | 1), # SECCOMP_RET_ERRNO | EPERM
    insn(RET, 0x7FFF0000),     # SECCOMP_RET_ALLOW
])
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
buf = ctypes.create_string_buffer(prog, len(prog))
fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
ul = ctypes.c_ulong
if libc.prctl(38, ul(1), ul(0), ul(0), ul(0)) != 0:  # PR_SET_NO_NEW_PRIVS
    sys.exit("PR_SET_NO_NEW_PRIVS: " + os.strerror(ctypes.get_errno()))
if libc.prctl(22, ul(2), ctypes.byref(fprog), ul(0), ul(0)) != 0:  # PR_SET_SECCOMP, FILTER
    sys.exit("PR_SET_SECCOMP: " + os.strerror(ctypes.get_errno()))
os.execvp("ganesha.nfsd", ["ganesha.nfsd"] + sys.argv[1:])
"#;

/// The provisioner on `tmp`'s export root, its log in `tmp/<run>`.
fn spawn(kubeconfig: &Path, tmp: &Path, run: &str, metrics_port: u16, extra: &[&str]) -> Binary {
    let log_dir = tmp.join(run);
    std::fs::create_dir_all(&log_dir).unwrap();
    let root = tmp.join("export");
    std::fs::create_dir_all(&root).unwrap();
    let run_dir = tmp.join("run");
    Server {
        retry_interval_max: "1s",
        ..Server::new(&root, &run_dir, metrics_port)
    }
    .spawn(kubeconfig, &log_dir, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_ganesha_cannot_export() {
    preflight();
    let ts = TestServer::start().await.expect("start kube-testserver");
    let c = ts.client().await;
    let kubeconfig = ts.kubeconfig_as(PROVISIONER_USER).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    nfs_service(&c).await;
    create_class(&c, "nfs", PROVISIONER, "Delete", false, json!({})).await;
    let _reaper = Reaper(tmp.path().join("run"));

    let wrapper = tmp.path().join("ganesha-without-name-to-handle-at");
    std::fs::write(&wrapper, DENY_NAME_TO_HANDLE_AT).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut provisioner = spawn(
        &kubeconfig,
        tmp.path(),
        "denied",
        metrics_port,
        &["--ganesha-binary", wrapper.to_str().unwrap()],
    );

    // Ganesha runs and answers RPC...
    let nfs = SocketAddr::from(([127, 0, 0, 1], NFS_PORT));
    let mnt = SocketAddr::from(([127, 0, 0, 1], MOUNT_PORT));
    wait_for("Ganesha answering NFS and MOUNT", || async move {
        let timeout = Duration::from_secs(1);
        let v3 = nfs_provisioner::rpc::ping(nfs, nfs_provisioner::rpc::NFS_V3, timeout).await;
        let mount = nfs_provisioner::rpc::ping(mnt, nfs_provisioner::rpc::MOUNT_V3, timeout).await;
        (v3.is_ok() && mount.is_ok()).then_some(())
    })
    .await;
    // ...and /readyz says it cannot export.
    let body = wait_for("/readyz naming the failed export canary", || async move {
        match http_get(metrics_port, "/readyz") {
            Some((503, body)) if body.contains("cannot export") => Some(body),
            _ => None,
        }
    })
    .await;
    println!("/readyz while exports fail: {body}");
    assert!(
        body.contains("name_to_handle_at") && body.contains("AddExport"),
        "the reason names the syscall to check and Ganesha's answer: {body}"
    );

    // A claim made now is not provisioned, and readiness stays false over
    // many probe intervals (300 ms) and canary retries.
    create_claim(
        &c,
        "waiting",
        "nfs",
        "1Gi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let (code, _) = http_get(metrics_port, "/readyz").expect("/readyz answers");
        assert_eq!(code, 503, "ready although Ganesha cannot export");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pvs: Vec<PersistentVolume> = pvs(&c).list(&Default::default()).await.unwrap().items;
    assert!(pvs.is_empty(), "no volume while exports fail: {pvs:?}");
    let claim: PersistentVolumeClaim = kube::Api::namespaced(c.clone(), "default")
        .get("waiting")
        .await
        .unwrap();
    assert_eq!(
        claim.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    let log = provisioner.log();
    assert!(
        log.contains("NFS server not ready") && !log.contains("NFS server ready"),
        "{log}"
    );
    // The canary left nothing live and nothing in the volume namespace.
    assert!(
        nfs_ls("/", 4)
            .map(|l| !l.contains("canary"))
            .unwrap_or(true),
        "the canary is not in the NFSv4 pseudo root"
    );
    let status = provisioner
        .terminate(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");

    // Without the filter the same server becomes ready and provisions the
    // claim that waited.
    let mut provisioner = spawn(&kubeconfig, tmp.path(), "allowed", metrics_port, &[]);
    wait_ready(metrics_port).await;
    let pv = wait_bound(&c, "waiting").await;
    let path = nfs_path(&pv);
    nfs_write(&path, "f", b"exportable", tmp.path());
    assert_eq!(nfs_read(&path, "f").unwrap(), b"exportable");
    let status = provisioner
        .terminate(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}

fn nfs_ls(path: &str, version: u8) -> Result<String, String> {
    let out = run("nfs-ls", &[&url(path, "", version)]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
