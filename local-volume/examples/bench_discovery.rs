//! Benchmark: how long the real binary takes to discover N tmpfs mounts (PVs
//! created), how long a steady-state discovery pass takes, and its memory.
//! Prints numbers; asserts nothing. Needs root (mounts N tmpfs, unmounted
//! again on exit).
//!
//! ```sh
//! cargo build --release -p local-volume-provisioner
//! cargo run --release -p local-volume-provisioner --example bench_discovery -- 500
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_support::{create_class, create_node, pvs, TestServer};
use serde_json::json;

struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    let exe = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("local-volume-provisioner"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "build the binary first: cargo build --release -p local-volume-provisioner"
            )
        })?;
    let tmp = tempfile::tempdir()?;
    let disks = tmp.path().join("disks");
    let mut mounts = Mounts(Vec::new());
    let t = Instant::now();
    for i in 0..n {
        let dir = disks.join(format!("vol{i:04}"));
        std::fs::create_dir_all(&dir)?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&dir)
            .status()?
            .success();
        anyhow::ensure!(ok, "mount tmpfs at {} failed (root needed)", dir.display());
        mounts.0.push(dir);
    }
    println!("mounted {n} tmpfs in {:?}", t.elapsed());

    let ts = TestServer::start().await?;
    let client = ts.client().await;
    create_node(&client, "node-1").await;
    create_class(
        &client,
        "local",
        "kubernetes.io/no-provisioner",
        "Delete",
        true,
        json!({}),
    )
    .await;
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storageClassMap:\n  local:\n    hostDir: {}\n",
            disks.display()
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let started = Instant::now();
    let mut child = Command::new(&exe)
        .arg("--kubeconfig")
        .arg(ts.kubeconfig_path())
        .args(["--node-name", "node-1", "--discovery-period", "1s"])
        .args(["--metrics-address", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let api = pvs(&client);
    loop {
        let have = api.list(&Default::default()).await?.items.len();
        if have >= n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "only {have}/{n} PVs after 5 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let to_all = started.elapsed();
    let passes = |text: &str| {
        (
            metric(
                text,
                "local_volume_provisioner_discovery_duration_seconds_sum",
            ),
            metric(
                text,
                "local_volume_provisioner_discovery_duration_seconds_count",
            ),
        )
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (sum1, count1) = passes(&get_metrics(port).await?);
    // Steady state: every volume has its PV; passes only re-read the host.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (sum2, count2) = passes(&get_metrics(port).await?);
    let pid = child.id();
    println!(
        "discovered {n} mounts -> {n} PVs in {to_all:?} (process start to last PV, incl. start-up)"
    );
    println!(
        "passes until then: {count1}, {:.1} ms in total (the first creates every PV)",
        sum1 * 1000.0
    );
    println!(
        "steady-state pass over {n} volumes: mean {:.2} ms ({} passes)",
        (sum2 - sum1) / (count2 - count1) * 1000.0,
        count2 - count1
    );
    println!(
        "RSS {} KiB now, peak {} KiB",
        rss_kib(pid, "VmRSS:"),
        rss_kib(pid, "VmHWM:")
    );
    let _ = child.kill();
    let _ = child.wait();
    drop(mounts);
    Ok(())
}

/// GET /metrics with a plain TCP request (no HTTP client dependency).
async fn get_metrics(port: u16) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
