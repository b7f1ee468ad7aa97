//! Benchmark (not a test): the real `nfs-provisioner` with real Ganesha
//! against an in-process kube-testserver, measuring
//! - time from creating a claim to its export being reachable (`nfs-ls`
//!   through NFSv3 succeeds), over N claims;
//! - sequential write and read MB/s of one file through Ganesha with libnfs
//!   `nfs-cp` / `nfs-cat` (NFSv3 over loopback) vs. the same disk directly
//!   (page cache dropped before each step when `/proc/sys/vm/drop_caches`
//!   is writable).
//!
//! Run as root with the Ganesha packages installed (nfs/README.md):
//! ```text
//! cargo build --release -p nfs-provisioner --bin nfs-provisioner --example bench
//! target/release/examples/bench [claims=20] [MiB=256]
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_support::*;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

const NFS_PORT: u16 = 32049;
const MOUNT_PORT: u16 = 32048;

fn url(path: &str, file: &str) -> String {
    format!("nfs://127.0.0.1{path}/{file}?version=3&nfsport={NFS_PORT}&mountport={MOUNT_PORT}")
}

fn ok(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn must(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn drop_caches() -> bool {
    sync_disks();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn sync_disks() {
    let _ = Command::new("sync").status();
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// Kills, also on panic, the rpcbind the provisioner started: rpcbind drops
/// root, which clears the parent-death signal the other children keep.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(pid) = std::fs::read_to_string(self.0.join("rpcbind.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            return;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "rpcbind" {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let claims: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let mib: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(256);
    let exe: PathBuf = std::env::var_os("NFS_PROVISIONER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().expect("current exe");
            me.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .join("nfs-provisioner")
        });
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: build it (see the doc comment) or set NFS_PROVISIONER",
        exe.display()
    );

    let ts = TestServer::start().await?;
    let client = ts.client().await;
    let tmp = tempfile::tempdir()?;
    let _: Service = create(
        &kube::Api::namespaced(client.clone(), "default"),
        json!({"metadata": {"name": "nfs"}, "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": 2049}]}}),
    )
    .await;
    create_class(
        &client,
        "nfs",
        "external-storage.io/nfs",
        "Delete",
        false,
        json!({}),
    )
    .await;
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let root = tmp.path().join("export");
    let run = tmp.path().join("run");
    let _reaper = Reaper(run.clone());
    let start = Instant::now();
    let mut provisioner = Binary::spawn(
        exe.to_str().unwrap(),
        ts.kubeconfig_path(),
        &[
            "--export-root",
            root.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--server",
            "127.0.0.1",
            "--bind-address",
            "127.0.0.1",
            "--nfs-port",
            &NFS_PORT.to_string(),
            "--mount-port",
            &MOUNT_PORT.to_string(),
            "--grace-period",
            "0",
            "--metrics-address",
            &format!("127.0.0.1:{metrics}"),
            "--worker-threads",
            "8",
        ],
        tmp.path(),
    );
    wait_for("provisioner ready", || async {
        is_ready(metrics).then_some(())
    })
    .await;
    println!("server start to ready: {:?}", start.elapsed());

    // claim -> reachable export
    let mut times = Vec::new();
    let mut last_path = String::new();
    for i in 0..claims {
        let name = format!("bench-{i}");
        let t = Instant::now();
        create_claim(
            &client,
            &name,
            "nfs",
            "1Gi",
            json!({"accessModes": ["ReadWriteMany"]}),
        )
        .await;
        let pv = wait_bound(&client, &name).await;
        let path = pv.spec.unwrap().nfs.unwrap().path;
        let u =
            format!("nfs://127.0.0.1{path}?version=3&nfsport={NFS_PORT}&mountport={MOUNT_PORT}");
        while !ok(Command::new("nfs-ls").arg(&u)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(t.elapsed());
        last_path = path;
    }
    times.sort();
    println!(
        "claim -> reachable export ({claims} claims, sequential): min {:?}, median {:?}, max {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // sequential throughput, same disk
    let bytes = mib << 20;
    let data: Vec<u8> = (0..bytes).map(|i| (i as u8).wrapping_mul(131)).collect();
    let src = tmp.path().join("source.bin");
    std::fs::write(&src, &data)?;
    let direct = tmp.path().join("direct.bin");
    let cold = drop_caches();

    let t = Instant::now();
    let mut f = std::fs::File::create(&direct)?;
    f.write_all(&data)?;
    f.sync_all()?;
    let direct_write = t.elapsed();
    drop_caches();
    let t = Instant::now();
    let mut back = Vec::with_capacity(bytes);
    std::fs::File::open(&direct)?.read_to_end(&mut back)?;
    let direct_read = t.elapsed();
    assert_eq!(back.len(), bytes);

    drop_caches();
    let t = Instant::now();
    must(
        Command::new("nfs-cp")
            .arg(&src)
            .arg(url(&last_path, "nfs.bin")),
    );
    sync_disks();
    let nfs_write = t.elapsed();
    drop_caches();
    let t = Instant::now();
    must(
        Command::new("nfs-cat")
            .arg(url(&last_path, "nfs.bin"))
            .stdout(std::fs::File::create("/dev/null")?),
    );
    let nfs_read = t.elapsed();
    assert_eq!(
        std::fs::read(Path::new(&last_path).join("nfs.bin"))?.len(),
        bytes
    );

    println!(
        "sequential {mib} MiB ({}):",
        if cold {
            "page cache dropped before each step"
        } else {
            "page cache NOT dropped: reads may be cached"
        }
    );
    println!(
        "  direct to disk : write {:8.1} MB/s (incl. fsync), read {:8.1} MB/s",
        mbps(bytes, direct_write),
        mbps(bytes, direct_read)
    );
    println!(
        "  through Ganesha: write {:8.1} MB/s (nfs-cp, incl. sync), read {:8.1} MB/s (nfs-cat) (NFSv3, loopback)",
        mbps(bytes, nfs_write),
        mbps(bytes, nfs_read)
    );
    provisioner.terminate(Duration::from_secs(30));
    Ok(())
}
