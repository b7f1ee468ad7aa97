//! Test fixture: what a hostile tenant leaves in its volume, for every test
//! of a path that removes volume data (hostpath delete and archive, nfs
//! delete and archive, local-volume cleaning, the archive retention sweep;
//! docs/security.md, hole 11). One fixture, so every path is tried with the
//! same contents. Built only for tests (`cfg(test)` or the `test-support`
//! feature); needs root (other owners, device nodes).
//!
//! [`plant`] fills a volume directory with names that are not UTF-8 or hold
//! newlines and control bytes, trees the owner cannot read (mode 000 at
//! several depths) and files of other owners, a fifo, a socket and a device
//! node, a hard link to a file outside the volume and symlinks out of it.
//! [`Planted::assert_outside_intact`] then checks that nothing outside was
//! touched. [`SwapRace`] swaps a directory of the volume with a symlink to
//! the outside in a tight loop (`renameat2(RENAME_EXCHANGE)`) while a
//! removal walks the volume: CVE-2022-21658's race.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd::{chown, mkfifo, Gid, Uid};

/// The content of the file outside the volume that a hard link and a
/// symlink in the volume point to.
pub const SECRET: &[u8] = b"outside the volume: never to be touched";

/// What [`plant`] put in a volume, and the outside it must leave alone.
#[derive(Debug)]
pub struct Planted {
    /// The directory outside the volume (holds `secret` and `dir/keep`).
    pub outside: PathBuf,
    /// Entries planted directly in the volume (its top level).
    pub top_level: usize,
    /// What could not be planted here and why (e.g. a hard link across
    /// filesystems); printed by [`plant`], so a skip is never silent.
    pub skipped: Vec<String>,
}

fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("planting {}: {e}", path.display()));
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("planting {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Fills `volume` with hostile contents; `outside` (created) is a
/// directory beside it, ideally on the same filesystem (for the hard link).
pub fn plant(volume: &Path, outside: &Path) -> Planted {
    mkdir(&outside.join("dir"));
    write(&outside.join("secret"), SECRET);
    write(&outside.join("dir/keep"), SECRET);
    let mut skipped = Vec::new();
    let v = |name: &[u8]| volume.join(OsStr::from_bytes(name));

    // Names: not UTF-8, a newline, control bytes and an escape sequence.
    write(&v(b"bad-\xff\xfe-utf8"), b"x");
    write(&v(b"new\nline"), b"x");
    write(&v(b"ctl-\x01\x1b[31m-\x7f"), b"x");
    mkdir(&v(b"dir-\xc3\x28\n"));
    write(&v(b"dir-\xc3\x28\n").join("f"), b"x");

    // Unreadable trees: mode 000 at depth 1 and deeper, with contents.
    let locked = volume.join("locked");
    mkdir(&locked.join("a/b/c"));
    write(&locked.join("a/b/c/file"), b"x");
    write(&locked.join("a/file"), b"x");
    chmod(&locked.join("a/b/c"), 0);
    chmod(&locked.join("a/b"), 0);
    chmod(&locked, 0);
    write(&volume.join("unreadable-file"), b"x");
    chmod(&volume.join("unreadable-file"), 0);

    // Other owners.
    let owned = volume.join("owned-by-4242");
    mkdir(&owned);
    write(&owned.join("f"), b"x");
    for p in [owned.join("f"), owned.clone()] {
        chown(&p, Some(Uid::from_raw(4242)), Some(Gid::from_raw(4242)))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    }
    chmod(&owned, 0o700);

    // Special files.
    mkfifo(&volume.join("fifo"), Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let sock =
        std::os::unix::net::UnixListener::bind(volume.join("socket")).expect("bind a socket");
    drop(sock);
    // A character device like /dev/null (1:3).
    if let Err(e) = mknod(
        &volume.join("device"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    ) {
        skipped.push(format!("device node: mknod: {e}"));
    }

    // Links out: a hard link to the secret, symlinks to it and its dir.
    if let Err(e) = std::fs::hard_link(outside.join("secret"), volume.join("hard-link")) {
        skipped.push(format!("hard link to a file outside: {e}"));
    }
    std::os::unix::fs::symlink(outside, volume.join("link-to-dir")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("secret"), volume.join("link-to-file"))
        .expect("symlink");
    mkdir(&volume.join("deep/er"));
    std::os::unix::fs::symlink(outside, volume.join("deep/er/link")).expect("symlink");

    for s in &skipped {
        eprintln!("hostile fixture: SKIPPED {s}");
    }
    let top_level = std::fs::read_dir(volume).expect("list the volume").count();
    Planted {
        outside: outside.to_path_buf(),
        top_level,
        skipped,
    }
}

impl Planted {
    /// Panics unless everything outside the volume is as planted.
    pub fn assert_outside_intact(&self) {
        for f in ["secret", "dir/keep"] {
            let p = self.outside.join(f);
            let got = std::fs::read(&p).unwrap_or_else(|e| panic!("{} is gone: {e}", p.display()));
            assert_eq!(got, SECRET, "{} was changed", p.display());
        }
        let mode = std::fs::metadata(self.outside.join("secret"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "the outside file's mode was changed");
        let entries = std::fs::read_dir(&self.outside).unwrap().count();
        assert_eq!(entries, 2, "the outside directory changed");
    }

    /// The outside file's link count (2 while the volume's hard link lives).
    pub fn secret_links(&self) -> u64 {
        std::fs::metadata(self.outside.join("secret"))
            .unwrap()
            .nlink()
    }
}

/// A thread that swaps the directory `<volume>/race` with a symlink to the
/// outside, atomically and as fast as it can, until stopped.
pub struct SwapRace {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SwapRace {
    /// Plants `<volume>/race` (a directory with files) and
    /// `<volume>/race-link` (a symlink to `outside`) and starts swapping
    /// them.
    pub fn start(volume: &Path, outside: &Path) -> SwapRace {
        let dir = volume.join("race");
        mkdir(&dir.join("sub"));
        for i in 0..50 {
            write(&dir.join(format!("f{i}")), b"x");
        }
        let link = volume.join("race-link");
        std::os::unix::fs::symlink(outside, &link).expect("symlink");
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), swaps.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                // Fails once the removal took either name: keep trying
                // until told to stop (a re-created name races again).
                if renameat2(
                    AT_FDCWD,
                    &dir,
                    AT_FDCWD,
                    &link,
                    RenameFlags::RENAME_EXCHANGE,
                )
                .is_ok()
                {
                    n.fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::yield_now();
                }
            }
        });
        SwapRace {
            stop,
            swaps,
            thread: Some(thread),
        }
    }

    /// How many swaps happened so far.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Stops the thread; returns the number of swaps.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the swapping thread");
        }
        self.swaps()
    }
}

impl Drop for SwapRace {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Makes `count` empty files in `dir` (a million-file volume).
pub fn many_files(dir: &Path, count: u64) {
    mkdir(dir);
    for i in 0..count {
        std::fs::File::create(dir.join(format!("{i:07}")))
            .unwrap_or_else(|e| panic!("file {i} in {}: {e}", dir.display()));
    }
}

/// This process's peak resident memory (VmHWM) in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
