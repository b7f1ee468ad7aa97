//! Cleaning a released volume, the only code that destroys data.
//!
//! Filesystem volumes: everything *inside* the mount point is removed
//! through directory handles, never by path, iteratively with bounded
//! descriptors and memory (`hostfs::tree`: a tenant's tree may be
//! deeper than the fd limit). Each directory is opened with `O_NOFOLLOW`, so
//! a symlink planted by a workload is unlinked, never followed; a directory
//! on another device or at the root of any mount is never entered, and its
//! presence fails the cleaning, so the PV is kept and an event says which
//! mount to remove.
//!
//! Block volumes: the class's `blockCleanerCommand` runs with
//! `LOCAL_PV_BLKDEVICE=<device path>`, in its own process group, under a
//! timeout that kills the whole group; its output is logged. Before it runs,
//! the device is opened with `O_EXCL` and refused on `EBUSY`: the kernel then
//! vouches that nothing holds it (a mount in *any* mount namespace, a
//! device-mapper/MD/LVM member, swap, another exclusive opener), which this
//! container's own mount table cannot tell (docs/security.md, hole 5). The
//! check's descriptor is closed before the cleaner starts, because the
//! shipped cleaners' `wipefs` and `blkdiscard` take their own exclusive open
//! (they no longer pass `--force`, which turned it off).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt as _};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cap_fs_ext::DirExt;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use hostfs::tree::TreeError;

use crate::scan::{dev_parts, MountTable};
use external_storage::text::tail;

/// Why a volume was not cleaned.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// The entry is no longer a mount point / block device.
    #[error("{path}: {reason}")]
    Gone {
        /// Container path of the entry.
        path: String,
        /// What it is now.
        reason: String,
    },
    /// Something inside could not be removed; the rest was.
    #[error("cleaning {path} left {count} item(s) behind, first: {first}")]
    Incomplete {
        /// Container path of the volume.
        path: String,
        /// How many failures.
        count: usize,
        /// The first one, with its cause.
        first: String,
    },
    /// The block device is mounted, so wiping it would corrupt a live filesystem.
    #[error("block device {path} is mounted at {at}: refusing to wipe it; unmount it first")]
    Mounted {
        /// Device path.
        path: String,
        /// A mount point of it.
        at: String,
    },
    /// Something holds the block device (`O_EXCL` open got `EBUSY`).
    #[error("block device {path} is in use (mounted in some mount namespace, or held by device-mapper, MD, swap or another exclusive opener): refusing to wipe it; release it first")]
    Busy {
        /// Device path.
        path: String,
    },
    /// The block device could not be opened for the exclusivity check.
    #[error("block device {path} cannot be opened exclusively: {source}; not wiped")]
    Open {
        /// Device path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The cleaner command did not succeed.
    #[error("block cleaner {command:?} for {path} {outcome}; output: {output}")]
    Command {
        /// Command line.
        command: Vec<String>,
        /// Device path.
        path: String,
        /// `exited with status N`, `timed out after ...`, `could not start: ...`.
        outcome: String,
        /// Tail of stdout+stderr.
        output: String,
    },
    /// I/O error opening the volume.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Which path.
        path: String,
        /// The filesystem error.
        #[source]
        source: io::Error,
    },
}

/// What a filesystem cleaning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Files, symlinks and other non-directories unlinked.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
}

/// Removes everything inside the mount point `<mount_dir>/<entry>`.
pub fn clean_filesystem(
    mount_dir: &Path,
    entry: &str,
    mounts: &MountTable,
) -> Result<Removed, CleanError> {
    let path = mount_dir.join(entry);
    let shown = path.display().to_string();
    let io_err = |op| {
        let shown = shown.clone();
        move |source| CleanError::Io {
            op,
            path: shown,
            source,
        }
    };
    if entry.is_empty() || entry.contains('/') || entry == "." || entry == ".." {
        return Err(CleanError::Gone {
            path: shown,
            reason: "not a discovery entry name".into(),
        });
    }
    let parent = Dir::open_ambient_dir(mount_dir, ambient_authority()).map_err(io_err("open"))?;
    let volume = parent
        .open_dir_nofollow(entry)
        .map_err(|e| CleanError::Gone {
            path: shown.clone(),
            reason: format!("cannot open it as a directory without following symlinks: {e}"),
        })?;
    // Checked after opening: if it was unmounted in between, the handle is
    // on the directory under it and this check fails.
    if !mounts.is_mount_point(&path) {
        return Err(CleanError::Gone {
            path: shown,
            reason: "no longer a mount point: nothing is cleaned on the disk below it".into(),
        });
    }
    // Iterative, bounded descriptors and memory (a tenant's tree may be
    // deeper than the fd limit); mounts inside are never entered.
    match hostfs::tree::remove_contents(volume.as_fd()) {
        Ok(r) => Ok(Removed {
            files: r.files,
            dirs: r.dirs,
        }),
        Err(TreeError::Incomplete { count, first, .. }) => Err(CleanError::Incomplete {
            path: shown,
            count,
            first,
        }),
        Err(e @ TreeError::Walk(_)) => Err(CleanError::Io {
            op: "clean",
            path: shown,
            source: io::Error::other(e),
        }),
    }
}

/// Runs `command` on the block device at `device` (the discovery entry,
/// usually a symlink) with a `timeout`. Returns the command's output.
pub async fn clean_block(
    command: &[String],
    device: &Path,
    mounts: &MountTable,
    timeout: Duration,
) -> Result<String, CleanError> {
    let shown = device.display().to_string();
    let meta = std::fs::metadata(device).map_err(|e| CleanError::Gone {
        path: shown.clone(),
        reason: format!("cannot stat: {e}"),
    })?;
    if !meta.file_type().is_block_device() {
        return Err(CleanError::Gone {
            path: shown,
            reason: "no longer a block device".into(),
        });
    }
    let (major, minor) = dev_parts(meta.rdev());
    if let Some(at) = mounts.mounts_of_device(major, minor).first() {
        return Err(CleanError::Mounted {
            path: shown,
            at: at.display().to_string(),
        });
    }
    check_exclusive(device)?;
    let fail = |outcome: String, output: String| CleanError::Command {
        command: command.to_vec(),
        path: shown.clone(),
        outcome,
        output,
    };
    let (program, args) = command
        .split_first()
        .ok_or_else(|| fail("is empty".into(), String::new()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("LOCAL_PV_BLKDEVICE", device)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = external_storage::process::spawn(&mut cmd)
        .await
        .map_err(|e| fail(format!("could not start: {e}"), String::new()))?;
    let pid = child.id();
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(fail(format!("failed: {e}"), String::new())),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The cleaner's children (dd, shred) are in its group.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return Err(fail(
                format!("timed out after {timeout:?} (killed)"),
                String::new(),
            ));
        }
    };
    let text = format!(
        "{}{}{}",
        tail(&output.stdout, 2000),
        if output.stderr.is_empty() { "" } else { "\n" },
        tail(&output.stderr, 2000)
    );
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::info!(device = %shown, "cleaner: {line}");
    }
    if output.status.success() {
        Ok(text)
    } else {
        Err(fail(format!("exited with {}", output.status), text))
    }
}

/// Opens the block device at `device` with `O_EXCL` (and closes it):
/// `EBUSY` means something holds it, and it must not be wiped.
pub fn check_exclusive(device: &Path) -> Result<(), CleanError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = device.display().to_string();
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_EXCL | nix::libc::O_CLOEXEC)
        .open(device)
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
            Err(CleanError::Busy { path: shown })
        }
        Err(source) => Err(CleanError::Open {
            path: shown,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::process::Command;

    /// A loop device over a new image file, detached on drop.
    struct LoopDevice(String);

    impl LoopDevice {
        /// Attaches a `len`-byte image at `image`; `None`, saying why the
        /// test skips, where no loop device can be had.
        fn attach(image: &Path, len: u64) -> Option<LoopDevice> {
            std::fs::File::create(image).unwrap().set_len(len).unwrap();
            let out = Command::new("losetup")
                .args(["--find", "--show"])
                .arg(image)
                .output();
            match out {
                Ok(o) if o.status.success() => Some(LoopDevice(
                    String::from_utf8_lossy(&o.stdout).trim().to_string(),
                )),
                _ => {
                    eprintln!("SKIP: no loop device available (losetup failed; not root?)");
                    None
                }
            }
        }
    }

    impl Drop for LoopDevice {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }

    /// A tmpfs mounted at `path`, unmounted on drop.
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        fn mount(path: &Path) -> Option<Tmpfs> {
            std::fs::create_dir_all(path).unwrap();
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("SKIP: cannot mount tmpfs at {} (not root?)", path.display());
                return None;
            }
            Some(Tmpfs(path.to_path_buf()))
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    /// docs/security.md, hole 11: a volume a tenant filled with hostile
    /// contents (hostfs::hostile) is cleaned completely, nothing outside
    /// touched (the hard link is skipped, loudly: a mount is its own
    /// filesystem, so nothing outside it can be linked from inside).
    #[test]
    fn a_hostile_filesystem_volume_is_cleaned_completely() {
        let tmp = tempfile::tempdir().unwrap();
        let disks = tmp.path().join("disks");
        let Some(_vol) = Tmpfs::mount(&disks.join("vol")) else {
            panic!("cannot mount a tmpfs: this test needs root");
        };
        let vol = disks.join("vol");
        let planted = hostfs::hostile::plant(&vol, &tmp.path().join("outside"));
        let mounts = MountTable::read().unwrap();
        let removed = clean_filesystem(&disks, "vol", &mounts).unwrap();
        assert!(removed.files >= 14 && removed.dirs >= 8, "{removed:?}");
        assert_eq!(std::fs::read_dir(&vol).unwrap().count(), 0);
        planted.assert_outside_intact();
    }

    #[test]
    fn removes_contents_without_following_links_or_crossing_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let disks = tmp.path().join("disks");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("precious"), b"keep").unwrap();
        std::fs::write(outside.join("dir/also"), b"keep").unwrap();
        let Some(_vol) = Tmpfs::mount(&disks.join("vol")) else {
            return;
        };
        let vol = disks.join("vol");
        std::fs::create_dir_all(vol.join("a/b/c")).unwrap();
        std::fs::write(vol.join("a/b/c/f"), b"data").unwrap();
        std::fs::write(vol.join("top"), b"data").unwrap();
        symlink(&outside, vol.join("a/escape")).unwrap();
        symlink(outside.join("precious"), vol.join("link")).unwrap();
        let mounts = MountTable::read().unwrap();
        let removed = clean_filesystem(&disks, "vol", &mounts).unwrap();
        assert_eq!(removed, Removed { files: 4, dirs: 3 });
        assert_eq!(std::fs::read_dir(&vol).unwrap().count(), 0);
        assert!(vol.is_dir(), "the mount point itself stays");
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
        assert_eq!(std::fs::read(outside.join("dir/also")).unwrap(), b"keep");

        // A filesystem mounted inside the volume is neither entered nor removed.
        let Some(inner) = Tmpfs::mount(&vol.join("inner")) else {
            return;
        };
        std::fs::write(vol.join("inner/f"), b"other fs").unwrap();
        std::fs::write(vol.join("mine"), b"x").unwrap();
        let mounts = MountTable::read().unwrap();
        let e = clean_filesystem(&disks, "vol", &mounts).unwrap_err();
        assert!(
            e.to_string()
                .contains("inner (at depth 1): a filesystem is mounted here"),
            "{e}"
        );
        assert_eq!(std::fs::read(vol.join("inner/f")).unwrap(), b"other fs");
        assert!(!vol.join("mine").exists(), "the rest is still cleaned");
        drop(inner);
    }

    #[test]
    fn a_plain_directory_or_a_symlinked_entry_is_never_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(plain.join("f"), b"keep").unwrap();
        symlink(&plain, tmp.path().join("link")).unwrap();
        // Even if the table (wrongly) listed them, nothing is removed.
        let mounts = MountTable::from_entries([(tmp.path().join("link"), "0:1".to_string())]);
        assert!(matches!(
            clean_filesystem(tmp.path(), "plain", &mounts),
            Err(CleanError::Gone { .. })
        ));
        assert!(matches!(
            clean_filesystem(tmp.path(), "link", &mounts),
            Err(CleanError::Gone { .. })
        ));
        assert!(matches!(
            clean_filesystem(tmp.path(), "..", &mounts),
            Err(CleanError::Gone { .. })
        ));
        assert_eq!(std::fs::read(plain.join("f")).unwrap(), b"keep");
    }

    #[tokio::test]
    async fn block_cleaner_gets_the_device_is_killed_on_timeout_and_refuses_mounted_devices() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(device) = LoopDevice::attach(&tmp.path().join("img"), 4 << 20) else {
            return;
        };
        let dev = device.0.clone();
        let link = tmp.path().join("disk");
        symlink(&dev, &link).unwrap();
        let none = MountTable::default();
        let echo = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo cleaning $LOCAL_PV_BLKDEVICE".into(),
        ];
        let out = clean_block(&echo, &link, &none, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out, format!("cleaning {}", link.display()));

        let marker = tmp.path().join("survived");
        let slow = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("sleep 1 && touch {}", marker.display()),
        ];
        let started = std::time::Instant::now();
        let e = clean_block(&slow, &link, &none, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_millis(900));
        let fail = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo nope >&2; exit 3".into(),
        ];
        let e = clean_block(&fail, &link, &none, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("nope") && e.to_string().contains("3"),
            "{e}"
        );

        let meta = std::fs::metadata(&dev).unwrap();
        let (major, minor) = dev_parts(meta.rdev());
        let mounted =
            MountTable::from_entries([(PathBuf::from("/mnt/x"), format!("{major}:{minor}"))]);
        let e = clean_block(&echo, &link, &mounted, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(e, CleanError::Mounted { .. }), "{e}");
        // The killed group's `sleep` never got to touch the marker.
        std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
        assert!(
            !marker.exists(),
            "the cleaner's children must be killed with it"
        );
    }

    #[tokio::test]
    async fn block_cleaner_refuses_non_devices_and_reports_command_failures() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        let cmd = vec!["/bin/true".to_string()];
        let e = clean_block(
            &cmd,
            &tmp.path().join("file"),
            &MountTable::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, CleanError::Gone { .. }), "{e}");
        // /dev/null is a character device, not a block device.
        let e = clean_block(
            &cmd,
            Path::new("/dev/null"),
            &MountTable::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("no longer a block device"), "{e}");
    }

    /// Hole 5 of docs/security.md: a device mounted where this process's
    /// mount table does not show it (another mount namespace: the host's, or
    /// another pod's) or held by another exclusive opener is refused by the
    /// kernel's `O_EXCL`, and the shipped cleaner (no `--force`) refuses it
    /// too when run by hand.
    #[tokio::test]
    async fn a_device_in_use_anywhere_is_never_wiped() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(device) = LoopDevice::attach(&tmp.path().join("img"), 16 << 20) else {
            return;
        };
        let dev = device.0.clone();
        // Dropped before `device`: unmount, then detach.
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let _unmount = Unmount(mnt.clone());
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok(Command::new("mkfs.ext4").args(["-q", "-F", &dev])));
        assert!(ok(Command::new("mount").arg(&dev).arg(&mnt)));
        std::fs::write(mnt.join("tenant"), b"live").unwrap();

        let marker = tmp.path().join("wiped");
        let wipe = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ];
        // The mount table we pass knows nothing of the mount, as when the
        // device is mounted in another mount namespace.
        let invisible = MountTable::default();
        let e = clean_block(&wipe, Path::new(&dev), &invisible, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(e, CleanError::Busy { .. }), "{e}");
        assert!(!marker.exists(), "the cleaner must not run");

        // The shipped cleaner, run by hand on the mounted device, refuses.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/quick_reset.sh");
        let out = Command::new(&script)
            .env("LOCAL_PV_BLKDEVICE", &dev)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "quick_reset.sh must refuse a mounted device"
        );
        assert_eq!(std::fs::read(mnt.join("tenant")).unwrap(), b"live");

        // Unmounted but held exclusively by another opener: refused too.
        assert!(ok(Command::new("umount").arg(&mnt)));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _held = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_EXCL)
                .open(&dev)
                .unwrap();
            let e = clean_block(&wipe, Path::new(&dev), &invisible, Duration::from_secs(10))
                .await
                .unwrap_err();
            assert!(matches!(e, CleanError::Busy { .. }), "{e}");
            assert!(!marker.exists());
        }
        // Released: the cleaner runs, and the script wipes the signature.
        clean_block(&wipe, Path::new(&dev), &invisible, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(marker.exists());
        e2e_support::run_ok(Command::new(&script).env("LOCAL_PV_BLKDEVICE", &dev));
        let probe = Command::new("wipefs")
            .args(["--no-act", &dev])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&probe.stdout).contains("ext4"),
            "the signature is gone"
        );
    }
}
