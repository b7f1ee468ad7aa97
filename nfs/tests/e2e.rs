//! End-to-end: the real `nfs-provisioner` binary against kube-testserver,
//! running a real NFS-Ganesha (with rpcbind and its private D-Bus daemon),
//! checked with the real userspace NFS client from libnfs-utils (`nfs-cp`,
//! `nfs-cat`, `nfs-ls`; the kernel here has no NFS client).
//!
//! Needs root and the packages `nfs-ganesha nfs-ganesha-vfs rpcbind dbus
//! libnfs-utils` (hack/test.sh installs them). Only one Ganesha may run at a
//! time (fixed ports, one rpcbind), so the whole scenario is one test
//! function in phases; every process it starts dies with the provisioner
//! (the provisioner's children have PR_SET_PDEATHSIG), also on failure.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::*;
use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/nfs";

struct Env {
    ts: TestServer,
    kubeconfig: PathBuf,
    client: Client,
    tmp: tempfile::TempDir,
    metrics_port: u16,
}

impl Env {
    fn export_root(&self) -> PathBuf {
        self.tmp.path().join("export")
    }

    /// The provisioner, admitting only 127.0.0.1 (where the test's NFS
    /// client connects from).
    fn spawn(&self, run: &str) -> Binary {
        self.spawn_allowing(run, "127.0.0.1")
    }

    fn spawn_allowing(&self, run: &str, clients: &str) -> Binary {
        self.spawn_with(run, clients, &[])
    }

    /// The provisioner admitting `clients`, with `extra` arguments.
    fn spawn_with(&self, run: &str, clients: &str, extra: &[&str]) -> Binary {
        let log_dir = self.tmp.path().join(run);
        std::fs::create_dir_all(&log_dir).unwrap();
        let root = self.export_root();
        let run_dir = self.tmp.path().join("run");
        let extra: Vec<&str> = ["--archive-sweep-interval", "1s"]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        Server {
            allowed_clients: clients,
            ..Server::new(&root, &run_dir, self.metrics_port)
        }
        .spawn(&self.kubeconfig, &log_dir, &extra)
    }

    async fn wait_ready(&self) -> Duration {
        let start = Instant::now();
        wait_ready(self.metrics_port).await;
        start.elapsed()
    }

    async fn claim(&self, name: &str, class: &str) -> PersistentVolume {
        create_claim(
            &self.client,
            name,
            class,
            "1Gi",
            json!({"accessModes": ["ReadWriteMany"]}),
        )
        .await;
        wait_bound(&self.client, name).await
    }
}

fn nfs_ls(path: &str, version: u8) -> Result<String, String> {
    let out = run("nfs-ls", &[&url(path, "", version)]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn annotation(pv: &PersistentVolume, key: &str) -> Option<String> {
    pv.metadata.annotations.as_ref()?.get(key).cloned()
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_ganesha_end_to_end() {
    preflight();
    let ts = TestServer::start().await.expect("start kube-testserver");
    let client = ts.client().await;
    let env = Env {
        kubeconfig: ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
        ts,
        client,
        tmp: tempfile::tempdir().unwrap(),
        metrics_port: free_port(),
    };
    let c = &env.client;
    // The server address comes from this Service's ClusterIP.
    nfs_service(c).await;
    create_class(c, "nfs", PROVISIONER, "Delete", false, json!({})).await;

    let run_dir = env.tmp.path().join("run");
    let _reaper = Reaper(run_dir.clone());
    let mut provisioner = env.spawn("run1");
    let took = env.wait_ready().await;
    println!("first start: ready after {took:?}");

    // --- a claim becomes a reachable export; data lands in its directory
    let one = env.claim("one", "nfs").await;
    let one_path = nfs_path(&one);
    let one_dir = env
        .export_root()
        .canonicalize()
        .unwrap()
        .join(one.metadata.name.as_deref().unwrap());
    assert_eq!(one_path, one_dir.display().to_string());
    assert_eq!(
        one.spec.as_ref().unwrap().nfs.as_ref().unwrap().server,
        "127.0.0.1"
    );
    let identity =
        std::fs::read_to_string(env.export_root().join(".nfs-provisioner/identity")).unwrap();
    assert_eq!(
        annotation(&one, "nfs.external-storage.io/identity").as_deref(),
        Some(identity.trim())
    );
    assert_eq!(
        annotation(&one, "nfs.external-storage.io/export-id").as_deref(),
        Some("1")
    );
    assert_eq!(annotation(&one, "pv.beta.kubernetes.io/gid"), None);
    assert_eq!(
        std::fs::metadata(&one_dir).unwrap().permissions().mode() & 0o7777,
        0o777
    );
    let payload = data(1, 3 << 20);
    nfs_write(&one_path, "hello.bin", &payload, env.tmp.path());
    assert_eq!(
        std::fs::read(one_dir.join("hello.bin")).unwrap(),
        payload,
        "written through NFSv3, on disk"
    );
    assert_eq!(
        nfs_read(&one_path, "hello.bin").unwrap(),
        payload,
        "read back through NFSv3"
    );
    let v4 = nfs_ls(&one_path, 4).expect("NFSv4 listing of the export");
    assert!(v4.contains("hello.bin"), "{v4}");
    // Root squash is the default: the client's root wrote as nobody.
    assert_eq!(
        std::fs::metadata(one_dir.join("hello.bin")).unwrap().uid(),
        65534
    );
    assert!(
        nfs_ls("/", 4).is_ok(),
        "an allowed client may list the NFSv4 pseudo root"
    );

    // --- a second claim is a separate export; the root and state are not exported
    let two = env.claim("two", "nfs").await;
    let two_path = nfs_path(&two);
    assert_ne!(two_path, one_path);
    assert_eq!(
        annotation(&two, "nfs.external-storage.io/export-id").as_deref(),
        Some("2")
    );
    nfs_write(&two_path, "other.bin", &data(2, 4096), env.tmp.path());
    let listing = nfs_ls(&two_path, 3).unwrap();
    assert!(
        listing.contains("other.bin") && !listing.contains("hello.bin"),
        "{listing}"
    );
    assert!(!one_dir.join("other.bin").exists());
    let root = env
        .export_root()
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    assert!(
        nfs_ls(&root, 3).is_err(),
        "the export root itself must not be exported"
    );
    assert!(
        nfs_ls(&format!("{root}/.nfs-provisioner"), 3).is_err(),
        "the state dir must not be exported"
    );
    // The readiness canary (an export of .nfs-provisioner/canary added and
    // withdrawn before ready) leaves no export, and no directory a client
    // could see: not over NFSv3 or v4, not in the pseudo root's listing,
    // nothing beside the volumes.
    let canary = format!("{root}/.nfs-provisioner/canary");
    assert!(
        nfs_ls(&canary, 3).is_err(),
        "the canary is not exported (v3)"
    );
    assert!(
        nfs_ls(&canary, 4).is_err(),
        "the canary is not exported (v4)"
    );
    let pseudo = nfs_ls(&root, 4).expect("the pseudo directory of the export root");
    assert!(
        !pseudo.contains(".nfs-provisioner"),
        "the pseudo root shows no path to the canary: {pseudo}"
    );
    assert_eq!(
        std::fs::read_dir(Path::new(&canary)).unwrap().count(),
        0,
        "the canary directory stays empty"
    );
    let mut tops: Vec<String> = std::fs::read_dir(env.export_root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tops.sort();
    let mut expected = vec![".nfs-provisioner".to_string()];
    expected.extend([&one, &two].map(|pv| pv.metadata.name.clone().unwrap()));
    expected.sort();
    assert_eq!(tops, expected, "no canary beside the volumes");

    // --- GID allocation: group, setgid mode, annotation
    create_class(
        c,
        "nfs-gid",
        PROVISIONER,
        "Delete",
        false,
        json!({"gid": "allocate", "gidMin": "5000", "gidMax": "5010"}),
    )
    .await;
    let grp = env.claim("grp", "nfs-gid").await;
    assert_eq!(
        annotation(&grp, "pv.beta.kubernetes.io/gid").as_deref(),
        Some("5000")
    );
    let meta = std::fs::metadata(nfs_path(&grp)).unwrap();
    assert_eq!(meta.gid(), 5000);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2771);
    let grp2 = env.claim("grp2", "nfs-gid").await;
    assert_eq!(
        annotation(&grp2, "pv.beta.kubernetes.io/gid").as_deref(),
        Some("5001")
    );

    // --- rootSquash: root's files become the anonymous user's
    create_class(
        c,
        "nfs-squash",
        PROVISIONER,
        "Delete",
        false,
        json!({"rootSquash": "true"}),
    )
    .await;
    let sq = env.claim("sq", "nfs-squash").await;
    nfs_write(&nfs_path(&sq), "f", b"x", env.tmp.path());
    assert_eq!(
        std::fs::metadata(Path::new(&nfs_path(&sq)).join("f"))
            .unwrap()
            .uid(),
        65534
    );

    // --- bad parameters: a Warning naming the parameter, no volume
    create_class(
        c,
        "nfs-bad",
        PROVISIONER,
        "Delete",
        false,
        json!({"gid": "lots"}),
    )
    .await;
    create_claim(c, "bad", "nfs-bad", "1Gi", json!({})).await;
    let note = wait_warning(c, "bad", "gid").await;
    assert!(
        note.contains("allowed: none, allocate, or a GID number"),
        "{note}"
    );

    // --- enforceCapacity: enforced where the filesystem allows, else a clear error
    create_class(
        c,
        "nfs-quota",
        PROVISIONER,
        "Delete",
        false,
        json!({"enforceCapacity": "true"}),
    )
    .await;
    create_claim(c, "quota", "nfs-quota", "1Mi", json!({})).await;
    // Which outcome to expect comes from the mount's own options (findmnt),
    // not from the code under test: a detection that misjudged the mount
    // fails here either way.
    let mount = Command::new("findmnt")
        .args([
            "-n",
            "-o",
            "FSTYPE,OPTIONS",
            "--target",
            env.export_root().to_str().unwrap(),
        ])
        .output()
        .expect("findmnt (util-linux)");
    let mount = String::from_utf8_lossy(&mount.stdout).to_string();
    let (fstype, options) = mount.trim().split_once(' ').unwrap_or((mount.trim(), ""));
    let has_project_quota = matches!(fstype, "xfs" | "ext4")
        && options
            .split(',')
            .any(|o| matches!(o, "prjquota" | "pquota" | "prjjquota"));
    match has_project_quota {
        false => {
            let reason = format!("{fstype} with options {options}, no project quota");
            let note = wait_warning(c, "quota", "enforceCapacity").await;
            assert!(note.contains("project quota"), "{note}");
            let msg = format!(
                "SKIPPED: NFS quota enforcement NOT TESTED here: {reason}; nfs/tests/capacity.rs \
                 checks it through NFS in a VM with a quota-enabled kernel (hack/test-quota-vm.sh)"
            );
            println!("{msg}");
            eprintln!("{msg}");
        }
        true => {
            let pv = wait_bound(c, "quota").await;
            let big = data(3, 2 << 20);
            let local = env.tmp.path().join("big");
            std::fs::write(&local, &big).unwrap();
            let out = run(
                "nfs-cp",
                &[local.to_str().unwrap(), &url(&nfs_path(&pv), "big", 3)],
            );
            assert!(
                !out.status.success(),
                "a 2 MiB write into a 1 MiB quota must fail"
            );
        }
    }

    // --- SIGKILL and restart: Ganesha dies with us; volumes are exported again before ready
    provisioner.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while port_open(NFS_PORT) {
        assert!(
            Instant::now() < deadline,
            "Ganesha must die with the provisioner"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!is_ready(env.metrics_port));
    provisioner = env.spawn("run2");
    let took = env.wait_ready().await;
    println!("restart with 6 exports: ready after {took:?}");
    assert_eq!(
        nfs_read(&one_path, "hello.bin").expect("re-exported before ready"),
        payload
    );
    assert!(nfs_ls(&two_path, 3).unwrap().contains("other.bin"));

    // --- Ganesha crashes: restarted (with backoff), exports back, data readable
    let old = alive_pid(&run_dir.join("ganesha.pid"), "ganesha.nfsd").expect("ganesha runs");
    let _ = Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status();
    let pidfile = run_dir.join("ganesha.pid");
    let port = env.metrics_port;
    wait_for("a new ganesha.nfsd, ready", || {
        let pidfile = pidfile.clone();
        async move {
            let new = alive_pid(&pidfile, "ganesha.nfsd")?;
            (new != old && is_ready(port)).then_some(())
        }
    })
    .await;
    assert_eq!(
        nfs_read(&one_path, "hello.bin").expect("exported after the crash"),
        payload
    );

    // --- only listed clients may mount (docs/security.md, hole 1): the
    // server restarted admitting 127.0.0.2 only refuses this client
    // (127.0.0.1) everything: NFSv3 MOUNT, NFSv4 on the export, and the
    // NFSv4 pseudo root that would list every export.
    let status = provisioner
        .terminate(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    provisioner = env.spawn_allowing("run-narrow", "127.0.0.2");
    env.wait_ready().await;
    let record = env.export_root().join(format!(
        ".nfs-provisioner/exports/{}.conf",
        one.metadata.name.as_deref().unwrap()
    ));
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("Clients = 127.0.0.2;") && !text.contains("127.0.0.1"),
        "existing export files are rendered for the new list:\n{text}"
    );
    let e = nfs_read(&one_path, "hello.bin").expect_err("v3 from an unlisted client");
    assert!(e.contains("MNT3ERR_ACCES"), "{e}");
    let e = nfs_ls(&two_path, 3).expect_err("v3 listing from an unlisted client");
    assert!(e.contains("MNT3ERR_ACCES"), "{e}");
    let e = nfs_ls(&one_path, 4).expect_err("v4 from an unlisted client");
    assert!(e.contains("NFS4ERR_ACCESS"), "{e}");
    let e = nfs_ls("/", 4).expect_err("the pseudo root from an unlisted client");
    assert!(e.contains("NFS4ERR_ACCESS"), "{e}");
    let status = provisioner
        .terminate(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    // --- a Ganesha slow to start (as with thousands of exports) is waited
    // for while it works: here it computes for 3 s before it starts, far
    // past --start-timeout 1s; a fixed deadline restarted it forever.
    let slow = env.tmp.path().join("slow-ganesha");
    std::fs::write(
        &slow,
        "#!/usr/bin/env python3\nimport os, sys, time\nend = time.time() + 3\n\
         while time.time() < end:\n    pass\nos.execvp('ganesha.nfsd', ['ganesha.nfsd'] + sys.argv[1:])\n",
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let slow_arg = slow.to_str().unwrap();
    provisioner = env.spawn_with(
        "run3",
        "127.0.0.1",
        &["--ganesha-binary", slow_arg, "--start-timeout", "1s"],
    );
    let took = env.wait_ready().await;
    assert!(
        took >= Duration::from_secs(3),
        "the slow start ran: {took:?}"
    );
    let log = provisioner.log();
    assert!(
        !log.contains("not answering"),
        "not restarted while busy:\n{log}"
    );
    assert_eq!(
        nfs_read(&one_path, "hello.bin").expect("listed again: access is back"),
        payload
    );

    // --- Retain keeps the export and the data
    create_class(c, "nfs-keep", PROVISIONER, "Retain", false, json!({})).await;
    let kept = env.claim("kept", "nfs-keep").await;
    nfs_write(&nfs_path(&kept), "k", b"kept", env.tmp.path());
    delete_claim(c, "kept").await;
    wait_pv_phase(c, kept.metadata.name.as_deref().unwrap(), "Released").await;

    // --- a PV with another instance's identity is never deleted
    let foreign: PersistentVolume = create(
        &pvs(c),
        json!({
            "metadata": {"name": "foreign", "annotations": {
                "pv.kubernetes.io/provisioned-by": PROVISIONER,
                "nfs.external-storage.io/identity": "someone-else",
            }},
            "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "nfs",
                "nfs": {"server": "127.0.0.1", "path": two_path},
                "claimRef": {"namespace": "default", "name": "gone", "uid": "0000"},
            },
        }),
    )
    .await;
    wait_pv_phase(c, foreign.metadata.name.as_deref().unwrap(), "Released").await;

    // --- delete: the export goes first (client access fails), then the data
    let one_pv = one.metadata.name.clone().unwrap();
    delete_claim(c, "one").await;
    wait_pv_gone(c, &one_pv).await;
    let err = nfs_ls(&one_path, 3).expect_err("a deleted volume must not be reachable");
    println!("access to the deleted export: {}", err.trim());
    assert!(!one_dir.exists(), "the data must be removed");
    assert!(!env
        .export_root()
        .join(format!(".nfs-provisioner/exports/{one_pv}.conf"))
        .exists());

    // The provisioner acted on everything above; the Retained and the
    // foreign volume are intact.
    let after = env.claim("after", "nfs").await;
    assert_eq!(
        annotation(&after, "nfs.external-storage.io/export-id").as_deref(),
        Some("1"),
        "id 1 was freed"
    );
    assert_eq!(nfs_read(&nfs_path(&kept), "k").unwrap(), b"kept");
    assert!(pvs(c).get_opt("foreign").await.unwrap().is_some());
    assert!(nfs_ls(&two_path, 3).unwrap().contains("other.bin"));

    // --- onDelete: retain and archive take the data out of every export;
    // the retention sweep removes only the archives it recorded
    create_class(
        c,
        "nfs-retain",
        PROVISIONER,
        "Delete",
        false,
        json!({"onDelete": "retain"}),
    )
    .await;
    create_class(
        c,
        "nfs-archive",
        PROVISIONER,
        "Delete",
        false,
        json!({"onDelete": "archive", "archiveRetention": "2s"}),
    )
    .await;
    let root = env.export_root().canonicalize().unwrap();
    let fake = root.join("archived-pvc-fake-20200101T000000Z");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("f"), b"not yours").unwrap();

    let retained = env.claim("retained", "nfs-retain").await;
    let (retained_pv, retained_path) =
        (retained.metadata.name.clone().unwrap(), nfs_path(&retained));
    nfs_write(&retained_path, "r", b"retained", env.tmp.path());
    delete_claim(c, "retained").await;
    wait_pv_gone(c, &retained_pv).await;
    let note = wait_normal(c, &retained_pv, "VolumeRetained").await;
    assert!(note.contains(&retained_path), "{note}");
    nfs_ls(&retained_path, 3).expect_err("a retained volume is no longer exported");
    assert_eq!(
        std::fs::read(Path::new(&retained_path).join("r")).unwrap(),
        b"retained"
    );

    let old = env.claim("old", "nfs-archive").await;
    let (old_pv, old_path) = (old.metadata.name.clone().unwrap(), nfs_path(&old));
    nfs_write(&old_path, "a", b"archived", env.tmp.path());
    delete_claim(c, "old").await;
    wait_pv_gone(c, &old_pv).await;
    let note = wait_normal(c, &old_pv, "VolumeArchived").await;
    nfs_ls(&old_path, 3).expect_err("an archived volume is no longer exported");
    assert!(!Path::new(&old_path).exists());
    let archive = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("archived-{old_pv}-"))
        })
        .expect("the archive is at the top of the export root");
    assert!(note.contains(archive.to_str().unwrap()), "{note}");
    assert_eq!(std::fs::read(archive.join("a")).unwrap(), b"archived");
    wait_for("the archive removed after its 2 s retention", || async {
        (!archive.exists()).then_some(())
    })
    .await;
    assert_eq!(std::fs::read(fake.join("f")).unwrap(), b"not yours");
    assert_eq!(
        std::fs::read(Path::new(&retained_path).join("r")).unwrap(),
        b"retained"
    );

    // --- graceful shutdown stops Ganesha too
    let status = provisioner
        .terminate(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(
        !port_open(NFS_PORT),
        "Ganesha must be stopped with the provisioner"
    );
    assert_eq!(
        alive_pid(&run_dir.join("rpcbind.pid"), "rpcbind"),
        None,
        "our rpcbind is stopped too"
    );
    // Every API call the binary made is allowed by deploy/nfs's RBAC.
    assert_rbac_allows(&env.ts, PROVISIONER_USER, &deploy_dir("nfs"));
}
