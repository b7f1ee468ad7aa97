//! Hole 11 of docs/security.md: whatever a tenant leaves in its volume is
//! removed completely, and nothing outside is touched, on the removal paths
//! that live here: the bounded tree removal every provisioner uses
//! (`tree::remove_contents`), a volume's delete and its archive through
//! `Root` (hostpath's delete and `onDelete: archive`), and the archive
//! retention sweep. The contents are `hostfs::hostile`'s (non-UTF-8 and
//! control-byte names, mode-000 trees, other owners, fifo, socket, device
//! node, a hard link and symlinks out), plus a symlink swapped in and out of
//! a directory the removal walks, and a volume of many small files in
//! constant memory. Needs root.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hostfs::hostile::{self, SwapRace};
use hostfs::root::{Deleted, Release, Root};

fn fd(path: &Path) -> OwnedFd {
    std::fs::File::open(path).unwrap().into()
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn the_tree_removal_empties_a_hostile_volume_and_touches_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let planted = hostile::plant(&volume, &tmp.path().join("outside"));
    assert!(planted.top_level >= 14, "{planted:?}");
    assert_eq!(planted.secret_links(), 2, "the hard link was planted");

    let removed = hostfs::tree::remove_contents(std::os::fd::AsFd::as_fd(&fd(&volume)))
        .expect("removed completely");
    assert!(removed.files >= 15 && removed.dirs >= 6, "{removed:?}");
    assert!(is_empty(&volume), "the volume is empty");
    planted.assert_outside_intact();
    assert_eq!(planted.secret_links(), 1, "only the volume's link went");
}

#[test]
fn a_symlink_swapped_in_during_the_walk_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let planted = hostile::plant(&volume, &tmp.path().join("outside"));
    for round in 0..10 {
        let race = SwapRace::start(&volume, &planted.outside);
        // The race is running before the walk starts.
        while race.swaps() < 100 {
            std::thread::yield_now();
        }
        let during = hostfs::tree::remove_contents(std::os::fd::AsFd::as_fd(&fd(&volume)));
        let swaps = race.stop();
        assert!(swaps >= 100, "round {round}: {swaps} swaps");
        // Whatever the race left (a re-created name, an entry skipped as
        // swapped) goes on a calm second pass.
        if let Err(e) = &during {
            eprintln!("round {round}: during the race: {e}");
        }
        hostfs::tree::remove_contents(std::os::fd::AsFd::as_fd(&fd(&volume)))
            .expect("a calm pass finishes");
        assert!(is_empty(&volume), "round {round}");
        planted.assert_outside_intact();
    }
}

#[test]
fn delete_and_archive_of_a_hostile_volume_then_the_retention_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    let root = Root::open(&root_dir).unwrap();
    let outside = tmp.path().join("outside");

    // Delete (hostpath's default).
    let path = root.create_volume("pvc-1", "pvc-1", 0o777).unwrap();
    let planted = hostile::plant(&path, &outside);
    assert_eq!(
        root.release_volume("pvc-1", "pvc-1", Release::Delete)
            .unwrap(),
        Deleted::Removed
    );
    assert!(!path.exists());
    planted.assert_outside_intact();
    assert_eq!(planted.secret_links(), 1);

    // Archive, then the sweep past its retention.
    let path = root.create_volume("ns/pvc-2", "pvc-2", 0o777).unwrap();
    let outside2 = tmp.path().join("outside2");
    let planted = hostile::plant(&path, &outside2);
    let then = SystemTime::now() - Duration::from_secs(3600);
    let archived = match root
        .release_volume(
            "ns/pvc-2",
            "pvc-2",
            Release::Archive {
                now: then,
                retention: Some(Duration::from_secs(60)),
            },
        )
        .unwrap()
    {
        Deleted::Archived(rec) => rec,
        other => panic!("not archived: {other:?}"),
    };
    let archive = root_dir.join(&archived.name);
    assert!(archive.join("link-to-dir").is_symlink(), "moved whole");
    planted.assert_outside_intact();
    let projects = tmp.path().join("projects");
    std::fs::create_dir(&projects).unwrap();
    let removed =
        hostfs::archive::sweep(root.archives(), &root_dir, &projects, SystemTime::now()).unwrap();
    assert_eq!(removed, vec![archived.name.clone()]);
    assert!(!archive.exists(), "the archive is gone");
    planted.assert_outside_intact();
    assert_eq!(planted.secret_links(), 1);
}

/// 100,000 files by default (a few seconds here); `HOSTILE_FILES=1000000`
/// runs the million.
#[test]
fn many_small_files_are_removed_in_constant_memory() {
    let files: u64 = std::env::var("HOSTILE_FILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("volume");
    hostile::many_files(&volume.join("a"), files / 2);
    hostile::many_files(&volume.join("b/c"), files - files / 2);
    let before = hostile::peak_rss_kib();
    let removed = hostfs::tree::remove_contents(std::os::fd::AsFd::as_fd(&fd(&volume)))
        .expect("removed completely");
    let grew = hostile::peak_rss_kib().saturating_sub(before);
    println!("{files} files removed; peak RSS grew {grew} KiB");
    assert_eq!(removed.files, files);
    assert!(is_empty(&volume));
    assert!(grew < 4 * 1024, "memory grew {grew} KiB for {files} files");
}
