//! Hole 6 of docs/security.md: a tenant's directory tree deeper than the
//! descriptor limit must still be removed. This test binary lowers its own
//! `RLIMIT_NOFILE` (it holds only this test, so nothing else shares the
//! limit), builds a 30,000-level tree (almost 1,000 times the limit) with
//! `mkdirat`/`openat` (two descriptors at a time), and removes it with
//! `hostfs::tree::remove_contents`: a recursive remover needs a
//! descriptor per level and fails with `EMFILE` after a few dozen levels.
//! (100,000 levels, the figure, also pass: 26 s on a loaded
//! 2-core machine, so the test uses fewer to keep CI short.)

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::fcntl::{openat, OFlag};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::stat::{mkdirat, Mode};

const DEPTH: u64 = 30_000;
const FD_LIMIT: u64 = 32;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_tree_deeper_than_the_fd_limit_is_removed_with_bounded_fds_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let root: OwnedFd = std::fs::File::open(tmp.path()).unwrap().into();
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, FD_LIMIT, hard).unwrap();

    let started = Instant::now();
    let mut cur = root.try_clone().unwrap();
    for i in 0..DEPTH {
        mkdirat(cur.as_fd(), "d", Mode::from_bits_truncate(0o755)).unwrap();
        if i.is_multiple_of(1000) {
            // Some files along the way, and a link out that must not be followed.
            std::fs::write(
                format!("/proc/self/fd/{}/f", std::os::fd::AsRawFd::as_raw_fd(&cur)),
                b"x",
            )
            .unwrap();
        }
        cur = openat(
            cur.as_fd(),
            "d",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
    }
    drop(cur);
    println!("built a {DEPTH}-level tree in {:?}", started.elapsed());
    // The limit is really in force: this many opens must fail.
    let mut held = Vec::new();
    let exhausted = (0..FD_LIMIT).any(|_| match std::fs::File::open(tmp.path()) {
        Ok(f) => {
            held.push(f);
            false
        }
        Err(e) => e.raw_os_error() == Some(nix::libc::EMFILE),
    });
    drop(held);
    assert!(exhausted, "RLIMIT_NOFILE {FD_LIMIT} must be in force");

    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let removed = hostfs::tree::remove_contents(root.as_fd()).unwrap();
    let took = started.elapsed();
    let rss_growth = peak_rss_kib().saturating_sub(rss_before);
    println!(
        "removed {} dirs and {} files, depth {}, in {took:?} with RLIMIT_NOFILE={FD_LIMIT}; \
         peak RSS grew by {rss_growth} KiB",
        removed.dirs, removed.files, removed.max_depth
    );
    assert_eq!(removed.dirs, DEPTH);
    assert_eq!(removed.files, DEPTH / 1000);
    assert_eq!(removed.max_depth, DEPTH - 1);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // Constant memory: nothing per level is kept (recursion over this many
    // levels would need megabytes of stack).
    assert!(rss_growth < 4096, "peak RSS grew by {rss_growth} KiB");
}
