//! The Go anchor of `bench --cluster real`: the program under
//! `hack/bench/anchor/` (a minimal hostpath provisioner on
//! `sigs.k8s.io/sig-storage-lib-external-provisioner/v13`), built with the
//! Go module proxy and cached by the hash of its sources, so a run measures
//! the Go controller library next to ours without a network fetch each time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The anchor module's directory in this checkout.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("anchor")
}

/// The library version the anchor's `go.mod` pins.
pub fn library_version() -> String {
    let go_mod = std::fs::read_to_string(source_dir().join("go.mod")).unwrap_or_default();
    go_mod
        .lines()
        .find_map(|l| {
            let l = l.trim().trim_start_matches("require").trim();
            l.strip_prefix("sigs.k8s.io/sig-storage-lib-external-provisioner/v13 ")
                .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// FNV-1a over the anchor's sources (`go.mod`, `go.sum`, `main.go`).
fn source_hash() -> anyhow::Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in ["go.mod", "go.sum", "main.go"] {
        let p = source_dir().join(f);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(h)
}

/// The anchor binary: `<cache>/bench-anchor-<hash>/anchor`, where `<cache>`
/// is `hack/cluster.sh`'s (`$EXTERNAL_STORAGE_CACHE`, else
/// `$XDG_CACHE_HOME/external-storage`, else `~/.cache/external-storage`);
/// built with `go build -trimpath` when missing.
pub fn locate_or_build() -> anyhow::Result<PathBuf> {
    let cache = match std::env::var_os("EXTERNAL_STORAGE_CACHE") {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(x) => PathBuf::from(x).join("external-storage"),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".cache/external-storage"),
        },
    };
    let dir = cache.join(format!("bench-anchor-{:016x}", source_hash()?));
    let exe = dir.join("anchor");
    if exe.exists() {
        return Ok(exe);
    }
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("anchor.tmp.{}", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.current_dir(source_dir())
        .args(["build", "-trimpath", "-o"])
        .arg(&tmp)
        .arg(".");
    eprintln!(
        "building the Go anchor (module proxy; a cold build takes minutes): {cmd:?} in {}",
        source_dir().display()
    );
    let status = cmd.status().context("running go (Go 1.26+ is needed)")?;
    if !status.success() {
        bail!("could not build the Go anchor; run {cmd:?} by hand");
    }
    std::fs::rename(&tmp, &exe)?;
    Ok(exe)
}
