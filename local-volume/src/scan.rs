//! Reading the host: the mount table, the discovery directories, sizes.
//!
//! A directory counts as a volume only when the mount table (this process's
//! `/proc/self/mountinfo`) lists it as a mount point: a plain directory on
//! the root disk is never offered, and never cleaned. A block device (usually
//! a symlink to one) counts as a block-backed volume; its size comes from
//! sysfs (`/sys/dev/block/<major>:<minor>/size`, 512-byte sectors), so no
//! ioctl and no open of the device is needed.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::config::{ClassConfig, VolumeMode};
use crate::pv::Found;

/// The mount points of this process's mount namespace.
#[derive(Clone, Debug, Default)]
pub struct MountTable {
    points: HashSet<PathBuf>,
    by_device: HashMap<String, Vec<PathBuf>>,
}

impl MountTable {
    /// Reads `/proc/self/mountinfo`.
    pub fn read() -> io::Result<MountTable> {
        let infos = procfs::process::Process::myself()
            .and_then(|p| p.mountinfo())
            .map_err(|e| io::Error::other(format!("reading /proc/self/mountinfo: {e}")))?;
        Ok(MountTable::from_entries(
            infos.0.into_iter().map(|m| (m.mount_point, m.majmin)),
        ))
    }

    /// From `(mount point, "major:minor")` pairs.
    pub fn from_entries(entries: impl IntoIterator<Item = (PathBuf, String)>) -> MountTable {
        let mut t = MountTable::default();
        for (point, majmin) in entries {
            t.by_device.entry(majmin).or_default().push(point.clone());
            t.points.insert(point);
        }
        t
    }

    /// Whether `path` is a mount point.
    pub fn is_mount_point(&self, path: &Path) -> bool {
        self.points.contains(path)
    }

    /// Mount points strictly below `path`.
    pub fn mounts_under(&self, path: &Path) -> Vec<PathBuf> {
        self.points
            .iter()
            .filter(|p| p.as_path() != path && p.starts_with(path))
            .cloned()
            .collect()
    }

    /// Where the block device `major:minor` is mounted.
    pub fn mounts_of_device(&self, major: u64, minor: u64) -> &[PathBuf] {
        self.by_device
            .get(&format!("{major}:{minor}"))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Number of mount points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// `major:minor` of a device number.
pub fn dev_parts(rdev: u64) -> (u64, u64) {
    (
        u64::from(nix::sys::stat::major(rdev) as u32),
        u64::from(nix::sys::stat::minor(rdev) as u32),
    )
}

/// Size in bytes of block device `rdev`, from sysfs.
pub fn block_device_bytes(rdev: u64) -> io::Result<u64> {
    let (major, minor) = dev_parts(rdev);
    let path = format!("/sys/dev/block/{major}:{minor}/size");
    let text = std::fs::read_to_string(&path)?;
    let sectors: u64 = text
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{path}: not a number: {text:?}")))?;
    Ok(sectors * 512)
}

/// Total size in bytes of the filesystem mounted at `path`.
pub fn filesystem_bytes(path: &Path) -> io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    Ok(s.blocks() as u64 * s.fragment_size() as u64)
}

/// What a discovery entry is, when it is not a usable volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unusable {
    /// Entry name.
    pub entry: String,
    /// Why it is not offered, and what to do.
    pub reason: String,
}

/// The result of reading one class's discovery directory.
#[derive(Clone, Debug, Default)]
pub struct ClassScan {
    /// Usable volumes.
    pub found: Vec<Found>,
    /// Entries that are not volumes.
    pub unusable: Vec<Unusable>,
}

/// Where a usable volume's entry points, as [`classify`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A mount point.
    MountPoint,
    /// A block device (or a symlink to one) with this device number.
    BlockDevice(u64),
}

/// Why a discovery entry is not a volume; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum NotAVolume {
    /// The entry cannot be examined.
    #[error("cannot stat: {0}")]
    Stat(#[source] io::Error),
    /// A symlink to a directory (only block devices are linked).
    #[error(
        "a symlink to a directory: link block devices only; mount a filesystem on a directory \
         here instead"
    )]
    LinkToDirectory,
    /// A symlink to a file, socket or other non-device.
    #[error("a symlink to something that is not a block device")]
    LinkToOther,
    /// A symlink whose target does not resolve.
    #[error("a dangling symlink: {0}")]
    Dangling(#[source] io::Error),
    /// A directory that nothing is mounted on.
    #[error(
        "a plain directory, not a mount point: mount a filesystem on it (see the README) to \
         offer it"
    )]
    PlainDirectory,
    /// A regular file or anything else.
    #[error("neither a mount point nor a block device")]
    Neither,
}

/// What the entry at `path` (in a discovery directory) is: a mount point, a
/// block device, or why neither.
pub fn classify(path: &Path, mounts: &MountTable) -> Result<EntryKind, NotAVolume> {
    let lmeta = std::fs::symlink_metadata(path).map_err(NotAVolume::Stat)?;
    let ft = lmeta.file_type();
    if ft.is_symlink() {
        return match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_block_device() => Ok(EntryKind::BlockDevice(m.rdev())),
            Ok(m) if m.is_dir() => Err(NotAVolume::LinkToDirectory),
            Ok(_) => Err(NotAVolume::LinkToOther),
            Err(e) => Err(NotAVolume::Dangling(e)),
        };
    }
    if ft.is_block_device() {
        return Ok(EntryKind::BlockDevice(lmeta.rdev()));
    }
    if ft.is_dir() {
        return if mounts.is_mount_point(path) {
            Ok(EntryKind::MountPoint)
        } else {
            Err(NotAVolume::PlainDirectory)
        };
    }
    Err(NotAVolume::Neither)
}

/// Reads the discovery directory of `class`. Fails only when the directory
/// itself cannot be listed.
pub fn scan_class(name: &str, class: &ClassConfig, mounts: &MountTable) -> io::Result<ClassScan> {
    let mut entries: Vec<String> = std::fs::read_dir(&class.mount_dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| class.matches(n))
        .collect();
    entries.sort();
    let mut scan = ClassScan::default();
    for entry in entries {
        let path = class.mount_dir.join(&entry);
        let result = match classify(&path, mounts) {
            Ok(EntryKind::MountPoint) if class.volume_mode == VolumeMode::Block => {
                Err("a mount point in a Block class: link a block device here instead".to_string())
            }
            Ok(EntryKind::MountPoint) => filesystem_bytes(&path)
                .map(|b| (true, b))
                .map_err(|e| format!("cannot statfs the mount point: {e}")),
            Ok(EntryKind::BlockDevice(rdev)) => block_device_bytes(rdev)
                .map(|b| (false, b))
                .map_err(|e| format!("cannot read the device size from sysfs: {e}")),
            Err(reason) => Err(reason.to_string()),
        };
        match result {
            Ok((filesystem, bytes)) => scan.found.push(Found {
                class: name.to_string(),
                entry,
                filesystem,
                bytes,
            }),
            Err(reason) => scan.unusable.push(Unusable { entry, reason }),
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn mount_table_lookups() {
        let t = MountTable::from_entries([
            (PathBuf::from("/"), "8:1".to_string()),
            (PathBuf::from("/mnt/disks/a"), "0:50".to_string()),
            (PathBuf::from("/mnt/disks/a/inner"), "0:51".to_string()),
            (PathBuf::from("/data"), "8:1".to_string()),
        ]);
        assert!(t.is_mount_point(Path::new("/mnt/disks/a")));
        assert!(!t.is_mount_point(Path::new("/mnt/disks")));
        assert_eq!(
            t.mounts_under(Path::new("/mnt/disks/a")),
            vec![PathBuf::from("/mnt/disks/a/inner")]
        );
        assert_eq!(t.mounts_of_device(8, 1).len(), 2);
        assert!(t.mounts_of_device(7, 0).is_empty());
    }

    #[test]
    fn plain_directories_files_and_bad_links_are_not_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("plain");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        symlink(&dir, tmp.path().join("dirlink")).unwrap();
        symlink(tmp.path().join("nowhere"), tmp.path().join("dangling")).unwrap();
        let empty = MountTable::default();
        let e = classify(&dir, &empty).unwrap_err();
        assert!(matches!(e, NotAVolume::PlainDirectory), "{e}");
        assert!(e.to_string().contains("not a mount point"), "{e}");
        let e = classify(&tmp.path().join("file"), &empty).unwrap_err();
        assert!(matches!(e, NotAVolume::Neither), "{e}");
        let e = classify(&tmp.path().join("dirlink"), &empty).unwrap_err();
        assert!(matches!(e, NotAVolume::LinkToDirectory), "{e}");
        let e = classify(&tmp.path().join("dangling"), &empty).unwrap_err();
        assert!(matches!(e, NotAVolume::Dangling(_)), "{e}");
        assert!(e.to_string().contains("dangling"), "{e}");
        let t = MountTable::from_entries([(dir.clone(), "0:1".to_string())]);
        assert!(matches!(classify(&dir, &t), Ok(EntryKind::MountPoint)));
    }

    #[test]
    fn this_machines_root_filesystem_and_mount_table_are_read() {
        let t = MountTable::read().unwrap();
        assert!(t.is_mount_point(Path::new("/")), "/ must be a mount point");
        assert!(filesystem_bytes(Path::new("/")).unwrap() > 0);
    }
}
