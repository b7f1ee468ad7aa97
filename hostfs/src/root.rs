//! The provisioner's root directory, and the only code that touches it.
//!
//! Every operation goes through a `cap_std::fs::Dir` handle on the root, so no
//! path can resolve outside it, and each path segment below the root is opened
//! with `open_dir_nofollow`, so a symlink anywhere on the way (for example one
//! planted by a workload inside its own volume, above another volume's
//! directory) is refused instead of followed.
//!
//! Ownership is recorded outside the volumes: `<root>/.hostpath-provisioner/volumes/<pv>`
//! holds the relative path of the directory made for that PV. Workloads cannot
//! reach that file, so a directory is deleted only when its record names it;
//! a directory without a record is never deleted.
//!
//! Volumes never nest: a path that is an ancestor or a descendant of another
//! recorded volume's path is refused at creation (checked against every
//! record, under a lock, so two claims provisioned at once cannot both pass;
//! the records are held in memory by the private `records` module, read
//! from disk once), and a volume that contains another recorded volume
//! (left by an older version) is never removed. Otherwise the outer
//! volume's user could swap the inner directory for a symlink before the
//! inner pod mounts it, and deleting the outer volume would delete the
//! inner one's data.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use cap_fs_ext::DirExt;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, Permissions, PermissionsExt};

use crate::archive::{ArchiveRecord, Archives};
use crate::intent::{Claimant, Pending, PendingRecords};
use crate::records::{Dirs, RecordIndex};
use crate::relpath::check_relative;

/// The root's bookkeeping directory (never a volume).
pub const STATE_DIR: &str = ".hostpath-provisioner";
/// Mode of the root and of the intermediate directories a `pathPattern`
/// makes: anyone may traverse (the kubelet, a pod's non-root user reaching
/// its own volume), nobody but root may list which volumes exist.
pub const ROOT_MODE: u32 = 0o711;
const RECORDS: &str = ".hostpath-provisioner/volumes";
/// Records of volumes given up with `onDelete: retain`: their directories
/// stay, are never deleted by us, and no new volume may nest with them.
const RETAINED: &str = ".hostpath-provisioner/retained";
/// Pending records (module [`crate::intent`]): volumes being made whose PV
/// is not known to be saved.
const PENDING: &str = ".hostpath-provisioner/pending";
const DIRS: Dirs = Dirs {
    volumes: RECORDS,
    retained: RETAINED,
};

/// What can go wrong on the root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The relative path is not acceptable.
    #[error("path `{0}` is not allowed: {1}")]
    BadPath(String, String),
    /// A segment of the path is a symlink or not a directory.
    #[error("refusing `{path}`: `{segment}` is a symlink or not a directory")]
    NotADirectory {
        /// The whole relative path.
        path: String,
        /// The offending segment.
        segment: String,
    },
    /// The directory exists but was made for another PV (or by someone else).
    #[error("directory `{path}` already exists and is not owned by {pv}; remove it or change pathPattern")]
    Taken {
        /// The relative path.
        path: String,
        /// The PV that asked for it.
        pv: String,
    },
    /// The path is inside another volume's directory, or contains one.
    #[error("directory `{path}` nests with volume {other} at `{other_path}`: volumes must not be inside each other; change pathPattern or the claim's values")]
    Nested {
        /// The relative path asked for.
        path: String,
        /// The PV whose directory it nests with.
        other: String,
        /// That PV's recorded path.
        other_path: String,
    },
    /// An I/O error, with the operation and the path.
    #[error(transparent)]
    Io(#[from] crate::op::OpError),
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> RootError + 'a {
    let op = crate::op::io_err(op, path);
    move |e| RootError::Io(op(e))
}

/// What [`Root::delete_volume`] (or its archive and retain forms) did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The directory and its record were removed.
    Removed,
    /// The directory was moved to this archive; its record now describes
    /// the archive.
    Archived(ArchiveRecord),
    /// The directory was left in place and its record moved to the
    /// retained records: never deleted by us, never reused.
    Retained,
    /// Nothing was recorded for this PV: nothing of ours to delete.
    NotOurs,
    /// The record names another path than the PV: data left alone.
    Mismatch {
        /// What the record says.
        recorded: String,
    },
}

/// What [`Root::discard_pending`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Discarded {
    /// The pending record is gone, and the volume with it (as said).
    Done(Deleted),
    /// No pending record for this PV (saved, or already discarded).
    NotPending,
    /// The pending record names another claim UID (shown): nothing touched.
    OtherClaim(String),
}

/// The root directory under which every volume of this node lives.
pub struct Root {
    path: PathBuf,
    dir: Dir,
    /// The records of this root, shared by every `Root` of this process on
    /// the same path. Its lock serializes creations: the nesting check and
    /// the record write are one step.
    index: Arc<Mutex<RecordIndex>>,
    /// Archives of deleted volumes, at the top of the root.
    archives: Archives,
}

/// Who a new volume directory belongs to; `None` keeps the creator's
/// (root's) user or group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    /// The owning user ID.
    pub uid: Option<u32>,
    /// The owning group ID.
    pub gid: Option<u32>,
}

/// What to do with a volume's directory when its PV is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Remove it.
    Delete,
    /// Leave it in place, given up.
    Retain,
    /// Move it to an archive made at `now`, kept for `retention`.
    Archive {
        /// The archive's time (its name and the start of its retention).
        now: std::time::SystemTime,
        /// How long the sweep keeps it; `None`: forever.
        retention: Option<std::time::Duration>,
    },
}

/// Whether `a` and `b` are the same path or one lies inside the other,
/// compared segment by segment (`a/b` nests with `a`, `ab` does not).
pub fn nests(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split('/'), b.split('/'));
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) if p == q => continue,
            (Some(_), Some(_)) => return false,
            _ => return true,
        }
    }
}

impl Root {
    /// Opens (creating if needed) the root directory and its state
    /// directory, and sets their modes: the root [`ROOT_MODE`] (others may
    /// traverse to their volume but not list the volumes), the state
    /// directory `0700`.
    pub fn open(path: &Path) -> Result<Self, RootError> {
        let shown = path.display().to_string();
        std::fs::create_dir_all(path).map_err(io_err("create root", &shown))?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(io_err("open root", &shown))?;
        dir.set_permissions(".", Permissions::from_mode(ROOT_MODE))
            .map_err(io_err("chmod root", &shown))?;
        dir.create_dir_all(RECORDS)
            .map_err(io_err("create state dir", RECORDS))?;
        dir.set_permissions(STATE_DIR, Permissions::from_mode(0o700))
            .map_err(io_err("chmod state dir", STATE_DIR))?;
        dir.create_dir_all(RETAINED)
            .map_err(io_err("create state dir", RETAINED))?;
        dir.create_dir_all(PENDING)
            .map_err(io_err("create state dir", PENDING))?;
        let archives = Archives::open(&dir, STATE_DIR)?;
        Ok(Root {
            path: path.to_path_buf(),
            dir,
            index: RecordIndex::for_root(path),
            archives,
        })
    }

    /// The record index, locked and up to date with the record directories.
    fn index(&self) -> Result<MutexGuard<'_, RecordIndex>, RootError> {
        // A panic while holding the lock cannot leave a half-updated map
        // that disagrees with the disk for long: the next directory change
        // makes it read again. Used as is.
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.refresh(&self.dir, DIRS)?;
        Ok(index)
    }

    /// The archives of deleted volumes of this root.
    pub fn archives(&self) -> &Archives {
        &self.archives
    }

    /// Every ownership record: (PV, relative path).
    pub fn records(&self) -> Result<Vec<(String, String)>, RootError> {
        Ok(owned(self.index()?.volumes.iter()))
    }

    /// Every record of a retained volume: (PV, relative path).
    pub fn retained(&self) -> Result<Vec<(String, String)>, RootError> {
        Ok(owned(self.index()?.retained.iter()))
    }

    /// The first path other than `pv`'s volume that `rel` nests with: a
    /// recorded volume, a retained one, or an archive (named by its PV,
    /// `(archive) ` before the archive's name).
    fn nested_with(
        &self,
        index: &RecordIndex,
        rel: &str,
        pv: &str,
    ) -> Result<Option<(String, String)>, RootError> {
        let recorded = index.volumes.iter().filter(|(other, _)| *other != pv);
        if let Some((other, path)) = recorded
            .chain(index.retained.iter())
            .find(|(_, path)| nests(rel, path))
        {
            return Ok(Some((other.to_string(), path.to_string())));
        }
        Ok(self
            .archives
            .names()?
            .into_iter()
            .find(|name| nests(rel, name))
            .map(|name| (format!("(archive) {name}"), name)))
    }

    fn pending_records(&self) -> PendingRecords<'_> {
        PendingRecords::new(&self.dir, PENDING)
    }

    /// Records that a volume is being made for `pv` on behalf of
    /// `claimant` (call before [`create_volume`](Self::create_volume); a
    /// later call refreshes its time).
    pub fn mark_pending(&self, pv: &str, claimant: &Claimant) -> Result<(), RootError> {
        Ok(self.pending_records().record(pv, claimant)?)
    }

    /// The PV of `pv` is saved: its pending record goes (idempotent).
    pub fn mark_saved(&self, pv: &str) -> Result<(), RootError> {
        self.pending_records().clear(pv)?;
        Ok(())
    }

    /// Every pending record of this root.
    pub fn pending(&self) -> Result<Vec<Pending>, RootError> {
        Ok(self.pending_records().list()?)
    }

    /// Removes the volume of `pv` and its records, if and only if its
    /// pending record names `claim_uid` (and, for the directory, its
    /// ownership record names it: [`release_volume`](Self::release_volume)).
    pub fn discard_pending(&self, pv: &str, claim_uid: &str) -> Result<Discarded, RootError> {
        let records = self.pending_records();
        let Some(pending) = records.read(pv)? else {
            return Ok(Discarded::NotPending);
        };
        if claim_uid.is_empty() || pending.claimant.uid != claim_uid {
            return Ok(Discarded::OtherClaim(pending.claimant.uid));
        }
        let record = record_name(pv)?;
        let outcome = match self.dir.read_to_string(&record) {
            Ok(rel) => self.release_volume(&rel, pv, Release::Delete)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Deleted::NotOurs,
            Err(e) => return Err(io_err("read ownership record", pv)(e)),
        };
        records.clear(pv)?;
        Ok(Discarded::Done(outcome))
    }

    /// The root's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of a relative volume path.
    pub fn host_path(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Makes the directory `rel` for `pv` with `mode` and records ownership.
    /// Idempotent for the same PV and path; refuses a directory that exists
    /// without our record, or one recorded for another PV.
    pub fn create_volume(&self, rel: &str, pv: &str, mode: u32) -> Result<PathBuf, RootError> {
        self.create_volume_owned(rel, pv, mode, Owner::default())
    }

    /// [`create_volume`](Self::create_volume), with the directory given to
    /// `owner` (through the opened directory, never a path that could be
    /// swapped for a symlink) before its mode is set, so set-id bits in
    /// `mode` survive the change of owner.
    pub fn create_volume_owned(
        &self,
        rel: &str,
        pv: &str,
        mode: u32,
        owner: Owner,
    ) -> Result<PathBuf, RootError> {
        validate(rel)?;
        let record = record_name(pv)?;
        let mut index = self.index()?;
        if let Some((other, other_path)) = self.nested_with(&index, rel, pv)? {
            return Err(if other_path == rel {
                RootError::Taken {
                    path: rel.to_string(),
                    pv: pv.to_string(),
                }
            } else {
                RootError::Nested {
                    path: rel.to_string(),
                    other,
                    other_path,
                }
            });
        }
        let (parent, leaf) = self.open_parent(rel, true)?;
        match self.dir.read_to_string(&record) {
            Ok(recorded) if recorded == rel => {}
            Ok(recorded) => {
                return Err(RootError::BadPath(
                    rel.to_string(),
                    format!("{pv} already owns directory `{recorded}`"),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if parent.symlink_metadata(leaf).is_ok() {
                    return Err(RootError::Taken {
                        path: rel.to_string(),
                        pv: pv.to_string(),
                    });
                }
                // Record first: a crash between the two leaves a record of a
                // missing directory (harmless), never an unrecorded directory.
                self.dir
                    .write(&record, rel)
                    .map_err(io_err("write ownership record", rel))?;
                index.recorded(&self.dir, DIRS, pv, rel);
            }
            Err(e) => return Err(io_err("read ownership record", rel)(e)),
        }
        match parent.create_dir(leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", rel)(e)),
        }
        let volume = parent
            .open_dir_nofollow(leaf)
            .map_err(|_| RootError::NotADirectory {
                path: rel.to_string(),
                segment: leaf.to_string(),
            })?;
        if owner.uid.is_some() || owner.gid.is_some() {
            // The handle may be an O_PATH one, which fchown refuses:
            // fchownat on the handle itself (AT_EMPTY_PATH) does the same.
            nix::unistd::fchownat(
                &volume,
                "",
                owner.uid.map(nix::unistd::Uid::from_raw),
                owner.gid.map(nix::unistd::Gid::from_raw),
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| io_err("chown (needs the CHOWN capability)", rel)(io::Error::from(e)))?;
        }
        volume
            .set_permissions(".", Permissions::from_mode(mode))
            .map_err(io_err("chmod", rel))?;
        Ok(self.host_path(rel))
    }

    /// Removes the directory `rel` of `pv` if and only if our record for `pv`
    /// names exactly `rel`. Symlinks inside are removed, never followed.
    pub fn delete_volume(&self, rel: &str, pv: &str) -> Result<Deleted, RootError> {
        self.release_volume(rel, pv, Release::Delete)
    }

    /// Deletes, retains or archives the directory `rel` of `pv`, if and only
    /// if our record for `pv` names exactly `rel` (otherwise nothing is
    /// touched: [`Deleted::NotOurs`], [`Deleted::Mismatch`]).
    pub fn release_volume(&self, rel: &str, pv: &str, how: Release) -> Result<Deleted, RootError> {
        let record = record_name(pv)?;
        let recorded = match self.dir.read_to_string(&record) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A record written before a volume that was never made.
                self.pending_records().clear(pv)?;
                return Ok(Deleted::NotOurs);
            }
            Err(e) => return Err(io_err("read ownership record", rel)(e)),
        };
        if recorded != rel {
            return Ok(Deleted::Mismatch { recorded });
        }
        validate(rel)?;
        // Removing (or moving) a tree that holds another volume would
        // delete (or hide) its data. (Not locked for the removal itself: a
        // creation inside `rel` meanwhile is refused, since `rel`'s record
        // stays until the tree is gone.)
        let inside = self
            .index()?
            .volumes
            .iter()
            .find(|(other, path)| *other != pv && path.len() > rel.len() && nests(rel, path))
            .map(|(other, path)| (other.to_string(), path.to_string()));
        if let Some((other, other_path)) = inside {
            return Err(RootError::Nested {
                path: rel.to_string(),
                other,
                other_path,
            });
        }
        let outcome = match how {
            Release::Retain => {
                let kept = format!("{RETAINED}/{pv}");
                let mut index = self.index()?;
                self.dir
                    .write(&kept, rel)
                    .map_err(io_err("write retained record", rel))?;
                index.retained(&self.dir, DIRS, pv, rel);
                Deleted::Retained
            }
            Release::Delete | Release::Archive { .. } => match self.open_parent(rel, false) {
                // Iterative, bounded descriptors and memory: a tenant's
                // tree may be deeper than the fd limit (docs/security.md,
                // hole 6).
                Ok((parent, leaf)) => match how {
                    Release::Archive { now, retention } => {
                        if parent.symlink_metadata(leaf).is_err() {
                            Deleted::Removed
                        } else {
                            Deleted::Archived(
                                self.archives
                                    .move_in(&parent, leaf, rel, pv, now, retention)?,
                            )
                        }
                    }
                    _ => {
                        crate::tree::remove_dir_all_at(parent.as_fd(), leaf)
                            .map_err(|e| io_err("remove", rel)(io::Error::other(e)))?;
                        Deleted::Removed
                    }
                },
                // The parent chain is gone: so is the directory.
                Err(RootError::Io(e)) if e.source.kind() == io::ErrorKind::NotFound => {
                    Deleted::Removed
                }
                Err(e) => return Err(e),
            },
        };
        let mut index = self.index()?;
        self.dir
            .remove_file(&record)
            .map_err(io_err("remove ownership record", rel))?;
        index.removed(&self.dir, DIRS, pv);
        drop(index);
        self.pending_records().clear(pv)?;
        Ok(outcome)
    }

    /// Opens every segment of `rel` but the last without following symlinks,
    /// creating missing ones when `create` is set.
    fn open_parent<'a>(&self, rel: &'a str, create: bool) -> Result<(Dir, &'a str), RootError> {
        let mut segments: Vec<&str> = rel.split('/').collect();
        let leaf = segments.pop().expect("validated paths are non-empty");
        let mut dir = self.dir.try_clone().map_err(io_err("open root", rel))?;
        for segment in segments {
            if create {
                match dir.create_dir(segment) {
                    Ok(()) => dir
                        .set_permissions(segment, Permissions::from_mode(ROOT_MODE))
                        .map_err(io_err("chmod", rel))?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err("create", rel)(e)),
                }
            }
            dir = match dir.open_dir_nofollow(segment) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(io_err("open", rel)(e))
                }
                Err(_) => {
                    return Err(RootError::NotADirectory {
                        path: rel.to_string(),
                        segment: segment.to_string(),
                    })
                }
            };
        }
        Ok((dir, leaf))
    }
}

fn owned<'a>(records: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    records
        .map(|(pv, rel)| (pv.to_string(), rel.to_string()))
        .collect()
}

fn validate(rel: &str) -> Result<(), RootError> {
    check_relative(rel).map_err(|e| RootError::BadPath(rel.to_string(), e.why.to_string()))?;
    if rel.split('/').next() == Some(STATE_DIR) {
        return Err(RootError::BadPath(
            rel.to_string(),
            format!("`{STATE_DIR}` is the provisioner's own state directory"),
        ));
    }
    Ok(())
}

fn record_name(pv: &str) -> Result<String, RootError> {
    if pv.is_empty() || pv.contains('/') || pv.starts_with('.') {
        return Err(RootError::BadPath(pv.to_string(), "not a PV name".into()));
    }
    Ok(format!("{RECORDS}/{pv}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    fn root() -> (tempfile::TempDir, Root) {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::open(&tmp.path().join("root")).unwrap();
        (tmp, root)
    }

    fn claimant(uid: &str) -> Claimant {
        Claimant {
            namespace: "ns".into(),
            name: "claim".into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn a_volume_is_given_to_its_owner_before_its_mode_is_set() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::open(&tmp.path().join("root")).unwrap();
        let owner = Owner {
            uid: Some(4000),
            gid: Some(3000),
        };
        let p = root
            .create_volume_owned("ns/owned", "pvc-o", 0o2770, owner)
            .unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (4000, 3000));
        // The setgid bit survives: chown first, chmod after.
        assert_eq!(meta.mode() & 0o7777, 0o2770);
        // Only the group: the user stays the creator's.
        let p = root
            .create_volume_owned(
                "ns/group-only",
                "pvc-g",
                0o770,
                Owner {
                    uid: None,
                    gid: Some(3000),
                },
            )
            .unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (nix::unistd::geteuid().as_raw(), 3000)
        );
    }

    #[test]
    fn a_pending_volume_is_discarded_only_for_its_claim_uid_and_only_while_pending() {
        let (_t, root) = root();
        root.mark_pending("pvc-1", &claimant("u1")).unwrap();
        let p = root.create_volume("ns/claim", "pvc-1", 0o770).unwrap();
        std::fs::write(p.join("data"), "x").unwrap();
        assert_eq!(root.pending().unwrap().len(), 1);
        assert_eq!(
            root.discard_pending("pvc-1", "u2").unwrap(),
            Discarded::OtherClaim("u1".into())
        );
        assert_eq!(
            root.discard_pending("pvc-1", "").unwrap(),
            Discarded::OtherClaim("u1".into())
        );
        assert!(p.join("data").exists());
        // Saved: never discarded again.
        root.mark_saved("pvc-1").unwrap();
        assert!(root.pending().unwrap().is_empty());
        assert_eq!(
            root.discard_pending("pvc-1", "u1").unwrap(),
            Discarded::NotPending
        );
        assert!(p.join("data").exists());
        // Pending again (a crash before the mark): discarded, records too.
        root.mark_pending("pvc-1", &claimant("u1")).unwrap();
        assert_eq!(
            root.discard_pending("pvc-1", "u1").unwrap(),
            Discarded::Done(Deleted::Removed)
        );
        assert!(!p.exists());
        assert!(root.records().unwrap().is_empty() && root.pending().unwrap().is_empty());
        // Pending, but the crash came before the directory: only the record goes.
        root.mark_pending("pvc-2", &claimant("u2")).unwrap();
        assert_eq!(
            root.discard_pending("pvc-2", "u2").unwrap(),
            Discarded::Done(Deleted::NotOurs)
        );
        assert!(root.pending().unwrap().is_empty());
    }

    #[test]
    fn deleting_a_volume_clears_its_pending_record() {
        let (_t, root) = root();
        root.mark_pending("pvc-1", &claimant("u1")).unwrap();
        root.create_volume("a", "pvc-1", 0o770).unwrap();
        assert_eq!(root.delete_volume("a", "pvc-1").unwrap(), Deleted::Removed);
        assert!(root.pending().unwrap().is_empty());
        root.mark_pending("pvc-2", &claimant("u2")).unwrap();
        assert_eq!(root.delete_volume("b", "pvc-2").unwrap(), Deleted::NotOurs);
        assert!(root.pending().unwrap().is_empty());
    }

    #[test]
    fn create_sets_mode_and_is_idempotent() {
        let (_t, root) = root();
        let p = root.create_volume("ns/claim", "pvc-1", 0o770).unwrap();
        assert_eq!(p, root.path().join("ns/claim"));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o770);
        std::fs::write(p.join("data"), b"x").unwrap();
        root.create_volume("ns/claim", "pvc-1", 0o770).unwrap();
        assert!(p.join("data").exists(), "a retry must not touch the data");
    }

    #[test]
    fn the_root_and_intermediate_directories_cannot_be_listed_by_others() {
        let (_t, root) = root();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(root.path()), 0o711);
        assert_eq!(mode(&root.path().join(STATE_DIR)), 0o700);
        root.create_volume("ns/claim", "pvc-1", 0o770).unwrap();
        assert_eq!(mode(&root.path().join("ns")), 0o711);
        assert_eq!(mode(&root.path().join("ns/claim")), 0o770);
    }

    #[test]
    fn existing_unrecorded_or_foreign_directory_is_refused() {
        let (_t, root) = root();
        std::fs::create_dir_all(root.path().join("someone-elses")).unwrap();
        assert!(matches!(
            root.create_volume("someone-elses", "pvc-1", 0o777),
            Err(RootError::Taken { .. })
        ));
        root.create_volume("shared", "pvc-2", 0o777).unwrap();
        assert!(matches!(
            root.create_volume("shared", "pvc-3", 0o777),
            Err(RootError::Taken { .. })
        ));
    }

    #[test]
    fn symlink_on_the_way_is_refused() {
        let (t, root) = root();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, root.path().join("link")).unwrap();
        assert!(matches!(
            root.create_volume("link/claim", "pvc-1", 0o777),
            Err(RootError::NotADirectory { .. })
        ));
        assert!(!outside.join("claim").exists());
        symlink(&outside, root.path().join("leaf")).unwrap();
        assert!(root.create_volume("leaf", "pvc-2", 0o777).is_err());
    }

    #[test]
    fn delete_removes_only_recorded_directories_and_never_follows_links_out() {
        let (t, root) = root();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("precious"), b"keep").unwrap();

        let p = root.create_volume("ns/claim", "pvc-1", 0o777).unwrap();
        std::fs::create_dir(p.join("sub")).unwrap();
        symlink(&outside, p.join("sub/escape")).unwrap();
        symlink(outside.join("precious"), p.join("file-link")).unwrap();
        assert_eq!(
            root.delete_volume("ns/claim", "pvc-1").unwrap(),
            Deleted::Removed
        );
        assert!(!p.exists());
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
        // Second delete: the record is gone, nothing of ours left.
        assert_eq!(
            root.delete_volume("ns/claim", "pvc-1").unwrap(),
            Deleted::NotOurs
        );

        std::fs::create_dir_all(root.path().join("manual")).unwrap();
        assert_eq!(
            root.delete_volume("manual", "pvc-9").unwrap(),
            Deleted::NotOurs
        );
        assert!(root.path().join("manual").exists());

        root.create_volume("a", "pvc-2", 0o777).unwrap();
        assert_eq!(
            root.delete_volume("b", "pvc-2").unwrap(),
            Deleted::Mismatch {
                recorded: "a".into()
            }
        );
        assert!(root.path().join("a").exists());
    }

    #[test]
    fn a_parent_swapped_for_a_symlink_stops_the_delete() {
        let (t, root) = root();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(outside.join("claim")).unwrap();
        std::fs::write(outside.join("claim/precious"), b"keep").unwrap();
        root.create_volume("ns/claim", "pvc-1", 0o777).unwrap();
        std::fs::remove_dir_all(root.path().join("ns")).unwrap();
        symlink(&outside, root.path().join("ns")).unwrap();
        assert!(root.delete_volume("ns/claim", "pvc-1").is_err());
        assert!(outside.join("claim/precious").exists());
    }

    #[test]
    fn nesting_is_segment_wise() {
        assert!(nests("a", "a"));
        assert!(nests("a", "a/b"));
        assert!(nests("ns/a/b/c", "ns/a"));
        assert!(!nests("a", "ab"));
        assert!(!nests("ns/a", "ns/b"));
        assert!(!nests("ns/ab/c", "ns/a"));
    }

    /// Hole 2 of docs/security.md: a claim whose path lands inside another
    /// volume (or around it) would let the outer owner swap the inner
    /// directory for a symlink to `/`, and deleting the outer volume would
    /// delete the inner data.
    #[test]
    fn a_volume_inside_or_around_another_is_refused() {
        let (_t, root) = root();
        let outer = root.create_volume("ns/a", "pvc-outer", 0o777).unwrap();
        std::fs::write(outer.join("mine"), b"outer").unwrap();
        let e = root
            .create_volume("ns/a/b", "pvc-inner", 0o777)
            .unwrap_err();
        assert!(
            matches!(&e, RootError::Nested { other, .. } if other == "pvc-outer"),
            "{e}"
        );
        assert!(
            !outer.join("b").exists(),
            "nothing made inside the outer volume"
        );
        assert!(matches!(
            root.create_volume("ns/a/b/c/d", "pvc-deeper", 0o777),
            Err(RootError::Nested { .. })
        ));
        // Around: a new volume that would contain an existing one.
        root.create_volume("team/x/data", "pvc-x", 0o777).unwrap();
        assert!(matches!(
            root.create_volume("team/x", "pvc-around", 0o777),
            Err(RootError::Nested { .. })
        ));
        assert!(matches!(
            root.create_volume("team", "pvc-top", 0o777),
            Err(RootError::Nested { .. })
        ));
        // No record was written for any refused claim.
        let mut pvs: Vec<_> = root.records().unwrap().into_iter().map(|r| r.0).collect();
        pvs.sort();
        assert_eq!(pvs, ["pvc-outer", "pvc-x"]);
        // Siblings and prefixes that are not path ancestors are fine.
        root.create_volume("ns/ab", "pvc-sib", 0o777).unwrap();
        root.create_volume("team/x2", "pvc-x2", 0o777).unwrap();
        // The same PV retrying its own path is not nesting.
        root.create_volume("ns/a", "pvc-outer", 0o777).unwrap();
    }

    #[test]
    fn a_second_root_on_the_same_path_sees_the_first_ones_volumes() {
        // A configuration reload opens a new Root while the old one may
        // still be finishing a claim: both check against the same records.
        let (_t, first) = root();
        first.create_volume("ns/a", "pvc-a", 0o777).unwrap();
        let second = Root::open(first.path()).unwrap();
        assert!(matches!(
            second.create_volume("ns/a/b", "pvc-b", 0o777),
            Err(RootError::Nested { .. })
        ));
        assert_eq!(
            second.delete_volume("ns/a", "pvc-a").unwrap(),
            Deleted::Removed
        );
        first.create_volume("ns/a/b", "pvc-b", 0o777).unwrap();
    }

    #[test]
    fn a_volume_holding_another_recorded_volume_is_never_removed() {
        let (_t, root) = root();
        // As an older version could have left them, before this process
        // read the records: nested volumes, both recorded.
        let outer = root.path().join("ns/a");
        let inner = outer.join("b");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(inner.join("precious"), b"inner").unwrap();
        let records = root.path().join(".hostpath-provisioner/volumes");
        std::fs::write(records.join("pvc-outer"), "ns/a").unwrap();
        std::fs::write(records.join("pvc-inner"), "ns/a/b").unwrap();
        assert!(matches!(
            root.delete_volume("ns/a", "pvc-outer"),
            Err(RootError::Nested { .. })
        ));
        assert_eq!(std::fs::read(inner.join("precious")).unwrap(), b"inner");
        // Once the inner volume is gone, the outer can go.
        assert_eq!(
            root.delete_volume("ns/a/b", "pvc-inner").unwrap(),
            Deleted::Removed
        );
        assert_eq!(
            root.delete_volume("ns/a", "pvc-outer").unwrap(),
            Deleted::Removed
        );
        assert!(!outer.exists());
    }

    #[test]
    fn state_dir_and_bad_paths_are_rejected() {
        let (_t, root) = root();
        for bad in [".hostpath-provisioner/volumes", "../x", "/abs", "a//b"] {
            assert!(matches!(
                root.create_volume(bad, "pvc-1", 0o777),
                Err(RootError::BadPath(..))
            ));
        }
        assert!(root.create_volume("ok", "../pvc", 0o777).is_err());
    }

    #[test]
    fn an_archived_volume_moves_to_the_top_and_its_path_is_free_again() {
        let (_tmp, root) = root();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        root.create_volume("ns/claim", "pvc-1", 0o777).unwrap();
        std::fs::write(root.host_path("ns/claim/data"), "old").unwrap();
        let how = Release::Archive {
            now,
            retention: None,
        };
        let Deleted::Archived(rec) = root.release_volume("ns/claim", "pvc-1", how).unwrap() else {
            panic!("not archived")
        };
        assert_eq!(rec.name, "archived-pvc-1-20231114T221320Z");
        assert_eq!(rec.from, "ns/claim");
        let archived = root.host_path(&rec.name).join("data");
        assert_eq!(std::fs::read_to_string(archived).unwrap(), "old");
        assert!(root.records().unwrap().is_empty());
        // A retry after the archive was made finds nothing of ours.
        assert_eq!(
            root.release_volume("ns/claim", "pvc-1", how).unwrap(),
            Deleted::NotOurs
        );
        // The same claim made again gets a fresh directory at the old path...
        root.create_volume("ns/claim", "pvc-2", 0o777).unwrap();
        assert!(!root.host_path("ns/claim/data").exists());
        // ...but nothing may land in or around the archive.
        for rel in [rec.name.clone(), format!("{}/inside", rec.name)] {
            let e = root.create_volume(&rel, "pvc-3", 0o777).unwrap_err();
            assert!(
                matches!(e, RootError::Nested { .. } | RootError::Taken { .. }),
                "{rel}: {e}"
            );
        }
    }

    #[test]
    fn a_retained_volume_stays_is_never_deleted_and_blocks_its_path() {
        let (_tmp, root) = root();
        root.create_volume("keep", "pvc-1", 0o777).unwrap();
        std::fs::write(root.host_path("keep/data"), "mine").unwrap();
        assert_eq!(
            root.release_volume("keep", "pvc-1", Release::Retain)
                .unwrap(),
            Deleted::Retained
        );
        assert_eq!(
            root.retained().unwrap(),
            vec![("pvc-1".to_string(), "keep".to_string())]
        );
        assert_eq!(
            root.delete_volume("keep", "pvc-1").unwrap(),
            Deleted::NotOurs
        );
        assert_eq!(
            std::fs::read_to_string(root.host_path("keep/data")).unwrap(),
            "mine"
        );
        for rel in ["keep", "keep/sub"] {
            assert!(root.create_volume(rel, "pvc-2", 0o777).is_err(), "{rel}");
        }
    }
}
