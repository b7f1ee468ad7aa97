//! Removing a tenant's directory tree with bounded file descriptors and
//! memory, shared by every provisioner that deletes volume contents
//! (hostpath, nfs, local-volume; they may not depend on each other, so it
//! lives here).
//!
//! Why not `remove_dir_all`: recursive removal (std's, cap-std's, a
//! recursive walk) holds one descriptor, and a stack frame with the name,
//! per level. A tenant's 100,000-level tree then exhausts the descriptor
//! limit (or the stack), the volume is never cleaned, and a DaemonSet that
//! retries cleaning at start crash-loops (docs/security.md, hole 6).
//!
//! How: [`remove_contents`] walks down with `openat(O_NOFOLLOW |
//! O_DIRECTORY)` holding only the current directory, and back up through
//! `..`, keeping a depth counter instead of a path stack. Each directory is
//! scanned afresh after coming back to it; a subdirectory is first tried
//! with `rmdir` and only entered when that says it is not empty, so an
//! emptied child is removed by its parent's next scan without remembering
//! its name. At most three descriptors are open at any time; memory is
//! constant except for the set of entries that could not be removed (capped
//! at [`MAX_FAILURES`], beyond which the removal stops).
//!
//! Guarantees: symlinks are unlinked, never followed; a directory on
//! another device, or the root of any mount (also a bind mount of the same
//! filesystem, through `statx`'s `STATX_ATTR_MOUNT_ROOT`), is never entered
//! and is reported; a directory swapped between the `stat` and the open is
//! detected (device and inode must match) and skipped; the walk never goes
//! above the root: every `..` is compared with the root's identity, and a
//! tree that changes shape under it so that the depth no longer matches
//! stops the removal with an error instead of guessing.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Entries that could not be removed after which the removal gives up (each
/// one is remembered so the rescans skip it).
pub const MAX_FAILURES: usize = 10_000;

/// What a removal removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Files, symlinks and other non-directories unlinked.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
    /// The deepest level reached below the root (1 = its children).
    pub max_depth: u64,
}

/// Why a removal did not empty the root.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Some entries could not be removed (the rest were); retrying helps
    /// only once the cause (a mount inside, a busy file) is gone.
    #[error("{count} item(s) could not be removed, first: {first}")]
    Incomplete {
        /// What was removed.
        removed: Removed,
        /// How many entries failed.
        count: usize,
        /// The first failure, with its cause.
        first: String,
    },
    /// The root itself could not be read, or the tree changed shape under
    /// the walk so that it could not be sure where it was; nothing outside
    /// the root was touched. Retrying is safe.
    #[error("{0}")]
    Walk(String),
}

type Id = (u64, u64);

fn id_of(st: &nix::sys::stat::FileStat) -> Id {
    (st.st_dev, st.st_ino)
}

fn is_dir(st: &nix::sys::stat::FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

/// Whether `name` in `dir` is the root of a mount (`STATX_ATTR_MOUNT_ROOT`);
/// `false` where the kernel does not report it (before Linux 5.8), where
/// the device check still catches mounts of other filesystems.
#[allow(unsafe_code)]
fn is_mount_root(dir: BorrowedFd<'_>, name: &CStr) -> bool {
    // SAFETY: an all-zero `struct statx` is a valid value of the type.
    let mut stx: nix::libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `stx` is a live `struct statx` the
    // kernel fills; `dir` is an open descriptor for the call.
    let rc = unsafe {
        nix::libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            nix::libc::AT_SYMLINK_NOFOLLOW,
            nix::libc::STATX_TYPE,
            &mut stx,
        )
    };
    let flag = nix::libc::STATX_ATTR_MOUNT_ROOT as u64;
    rc == 0 && stx.stx_attributes_mask & flag != 0 && stx.stx_attributes & flag != 0
}

struct Walk {
    removed: Removed,
    failed: HashSet<Id>,
    count: usize,
    first: Option<String>,
}

impl Walk {
    /// Records a failure of `name`, `depth` levels below the root.
    fn fail(&mut self, id: Id, depth: u64, name: &CStr, why: impl std::fmt::Display) {
        self.failed.insert(id);
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!(
                "{} (at depth {depth}): {why}",
                name.to_string_lossy()
            ));
        }
    }
}

/// What one scan of a directory found to do next.
enum Next {
    /// Enter this non-empty subdirectory (name, its identity).
    Descend(CString, Id),
    /// Nothing left that can be removed here; `stuck` if entries remain.
    Done { stuck: bool },
}

fn scan(cur: &OwnedFd, root_dev: u64, depth: u64, w: &mut Walk) -> Result<Next, TreeError> {
    let walk_err = |what: &str, e: Errno| TreeError::Walk(format!("{what} at depth {depth}: {e}"));
    let mut stream = nix::dir::Dir::openat(
        cur.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| walk_err("listing", e))?;
    let mut stuck = false;
    for entry in stream.iter() {
        let entry = entry.map_err(|e| walk_err("reading an entry", e))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = match fstatat(cur.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => {
                w.fail((u64::MAX, entry.ino()), depth + 1, name, e);
                stuck = true;
                continue;
            }
        };
        let id = id_of(&st);
        if w.failed.contains(&id) {
            stuck = true;
            continue;
        }
        if !is_dir(&st) {
            match unlinkat(cur.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
                Ok(()) => w.removed.files += 1,
                Err(Errno::ENOENT) => {}
                Err(e) => {
                    w.fail(id, depth + 1, name, e);
                    stuck = true;
                }
            }
            continue;
        }
        if is_mount_root(cur.as_fd(), name) || st.st_dev != root_dev {
            w.fail(
                id,
                depth + 1,
                name,
                "a filesystem is mounted here; unmount it (it is not cleaned)",
            );
            stuck = true;
            continue;
        }
        match unlinkat(cur.as_fd(), name, UnlinkatFlags::RemoveDir) {
            Ok(()) => w.removed.dirs += 1,
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTEMPTY | Errno::EEXIST) => {
                return Ok(Next::Descend(name.to_owned(), id));
            }
            Err(e) => {
                w.fail(id, depth + 1, name, e);
                stuck = true;
            }
        }
        if w.count >= MAX_FAILURES {
            break;
        }
    }
    Ok(Next::Done { stuck })
}

/// Removes everything inside the directory open at `root` (which stays),
/// with at most three descriptors open and constant memory besides the
/// failures (see the module docs). `Ok` only when the root is empty.
pub fn remove_contents(root: BorrowedFd<'_>) -> Result<Removed, TreeError> {
    let root_st = fstat(root).map_err(|e| TreeError::Walk(format!("stat of the root: {e}")))?;
    let root_id = id_of(&root_st);
    let mut cur: OwnedFd = root
        .try_clone_to_owned()
        .map_err(|e| TreeError::Walk(format!("dup of the root: {e}")))?;
    let mut depth: u64 = 0;
    let mut w = Walk {
        removed: Removed::default(),
        failed: HashSet::new(),
        count: 0,
        first: None,
    };
    loop {
        if w.count >= MAX_FAILURES {
            break;
        }
        match scan(&cur, root_st.st_dev, depth, &mut w)? {
            Next::Descend(name, id) => {
                let child = match openat(
                    cur.as_fd(),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => continue,
                    Err(e) => {
                        w.fail(id, depth + 1, &name, e);
                        continue;
                    }
                };
                match fstat(child.as_fd()) {
                    Ok(st) if id_of(&st) == id => {}
                    _ => {
                        w.fail(id, depth + 1, &name, "replaced while being opened; skipped");
                        continue;
                    }
                }
                cur = child;
                depth += 1;
                w.removed.max_depth = w.removed.max_depth.max(depth);
            }
            Next::Done { stuck } => {
                if depth == 0 {
                    break;
                }
                let here = fstat(cur.as_fd())
                    .map_err(|e| TreeError::Walk(format!("stat at depth {depth}: {e}")))?;
                if stuck {
                    // Left non-empty: the parent must not enter it again.
                    w.failed.insert(id_of(&here));
                }
                let parent = openat(
                    cur.as_fd(),
                    "..",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| TreeError::Walk(format!("going up from depth {depth}: {e}")))?;
                let up = fstat(parent.as_fd()).map_err(|e| {
                    TreeError::Walk(format!("stat going up from depth {depth}: {e}"))
                })?;
                depth -= 1;
                if (id_of(&up) == root_id) != (depth == 0) {
                    return Err(TreeError::Walk(format!(
                        "the tree changed shape while it was being removed (back at the root \
                         {} at depth {depth}); stopped, nothing outside it was touched; retry",
                        if depth == 0 { "not" } else { "already" }
                    )));
                }
                cur = parent;
            }
        }
    }
    match w.first {
        None => Ok(w.removed),
        Some(first) => Err(TreeError::Incomplete {
            removed: w.removed,
            count: w.count,
            first,
        }),
    }
}

/// Removes the directory `name` inside the directory open at `parent` and
/// everything in it, never following a symlink (one in its place is
/// refused with `ENOTDIR`/`ELOOP`). A missing `name` is not an error.
pub fn remove_dir_all_at(parent: BorrowedFd<'_>, name: &str) -> Result<Removed, TreeError> {
    let fd = match openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Removed::default()),
        Err(e) => {
            return Err(TreeError::Walk(format!(
                "opening {name} without following symlinks: {e}"
            )))
        }
    };
    let mut removed = remove_contents(fd.as_fd())?;
    drop(fd);
    match unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) => removed.dirs += 1,
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(TreeError::Walk(format!("removing {name} itself: {e}"))),
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn open(p: &std::path::Path) -> OwnedFd {
        std::fs::File::open(p).unwrap().into()
    }

    #[test]
    fn removes_files_dirs_and_links_without_following_them_out() {
        let tmp = tempfile::tempdir().unwrap();
        let (vol, outside) = (tmp.path().join("vol"), tmp.path().join("outside"));
        std::fs::create_dir_all(vol.join("a/b/c")).unwrap();
        std::fs::create_dir_all(vol.join("empty")).unwrap();
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("precious"), b"keep").unwrap();
        std::fs::write(outside.join("dir/also"), b"keep").unwrap();
        std::fs::write(vol.join("a/b/c/f"), b"x").unwrap();
        std::fs::write(vol.join("top"), b"x").unwrap();
        symlink(&outside, vol.join("a/escape")).unwrap();
        symlink(outside.join("precious"), vol.join("a/b/link")).unwrap();
        let r = remove_contents(open(&vol).as_fd()).unwrap();
        assert_eq!((r.files, r.dirs, r.max_depth), (4, 4, 3), "{r:?}");
        assert_eq!(std::fs::read_dir(&vol).unwrap().count(), 0);
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
        assert_eq!(std::fs::read(outside.join("dir/also")).unwrap(), b"keep");
        // Idempotent.
        assert_eq!(
            remove_contents(open(&vol).as_fd()).unwrap(),
            Removed::default()
        );
    }

    #[test]
    fn a_directory_by_name_goes_and_a_symlink_in_its_place_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("v/x/y")).unwrap();
        std::fs::create_dir(tmp.path().join("target")).unwrap();
        std::fs::write(tmp.path().join("target/keep"), b"k").unwrap();
        symlink(tmp.path().join("target"), tmp.path().join("link")).unwrap();
        let parent = open(tmp.path());
        let r = remove_dir_all_at(parent.as_fd(), "v").unwrap();
        assert_eq!(r.dirs, 3);
        assert!(!tmp.path().join("v").exists());
        assert!(remove_dir_all_at(parent.as_fd(), "link").is_err());
        assert!(tmp.path().join("target/keep").exists());
        assert_eq!(
            remove_dir_all_at(parent.as_fd(), "gone").unwrap(),
            Removed::default()
        );
    }

    #[test]
    fn entries_that_cannot_go_are_reported_and_the_rest_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(vol.join("deep/stuck")).unwrap();
        std::fs::create_dir_all(vol.join("other/sub")).unwrap();
        std::fs::write(vol.join("other/sub/f"), b"x").unwrap();
        // A mount inside (root only), or else an immutable-free stand-in:
        // a tmpfs mount is the realistic case.
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(vol.join("deep/stuck"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !mounted {
            println!("SKIP: cannot mount a tmpfs here (not root?)");
            return;
        }
        std::fs::write(vol.join("deep/stuck/on-the-mount"), b"m").unwrap();
        let e = remove_contents(open(&vol).as_fd()).unwrap_err();
        let _ = std::process::Command::new("umount")
            .arg(vol.join("deep/stuck"))
            .status();
        match e {
            TreeError::Incomplete {
                removed,
                count,
                first,
            } => {
                assert_eq!(count, 1, "{first}");
                assert!(
                    first.contains("stuck") && first.contains("mount"),
                    "{first}"
                );
                assert_eq!((removed.files, removed.dirs), (1, 2), "{removed:?}");
            }
            other => panic!("{other}"),
        }
        assert!(!vol.join("other").exists());
        assert!(vol.join("deep/stuck").exists(), "the mount point stays");
    }
}
