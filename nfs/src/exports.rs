//! The export root: the pod's volume, and the only code that touches it.
//!
//! Layout:
//! ```text
//! <root>/<pv>/                              one directory per volume (exported)
//! <root>/.nfs-provisioner/identity          this instance's UUID (PV annotation)
//! <root>/.nfs-provisioner/exports/<pv>.conf the export record: a JSON comment
//!                                           line + the EXPORT block Ganesha reads
//! <root>/.nfs-provisioner/pending/<pv>      for whom a volume is being made,
//!                                           until its PV is saved
//!                                           (`hostfs::intent`)
//! <root>/.nfs-provisioner/clients           who the exports admit (saved list)
//! <root>/.nfs-provisioner/recovery/         NFSv4 client recovery state
//! <root>/.nfs-provisioner/canary/           empty; exported for a moment at
//!                                           every start to prove Ganesha can
//!                                           export (never a volume: volume
//!                                           names cannot start with a dot)
//! ```
//! The state directory is never exported (exports are `<root>/<pv>` only), so
//! clients cannot forge records. Everything goes through a `cap_std` handle on
//! the root; a volume directory is opened with `open_dir_nofollow`, so a
//! symlink planted in place of one is refused, and removal never follows
//! symlinks inside a volume. A directory is removed only when its record
//! exists: data this provisioner did not make is never deleted.
//!
//! The root also carries the server's [`ClientList`]: every export file is
//! rendered with it, and [`ExportRoot::open`] rewrites the files of existing
//! records whenever the list changed, so narrowing `--allowed-clients`
//! narrows every volume at the next start, not only new ones.
//!
//! The records are held in memory once read ([`ExportRoot::with_records`]):
//! every fresh claim allocates its export id and GID against all of them,
//! and reading one file per volume on every claim made provisioning
//! quadratic (the pattern issue 16 found in hostfs). This process is the
//! records' only writer; a change behind its back (an operator removing a
//! file) is noticed by the exports directory's stamp, and a damaged record
//! is read again on every call, so one fixed in place counts at once.

use std::collections::{btree_map, BTreeMap, BTreeSet};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use hostfs::archive::{ArchiveRecord, Archives};
use hostfs::stamp::DirStamp;

use crate::ganesha::{self, ClientList, ExportRecord};

/// The root's bookkeeping directory (never a volume, never exported).
pub const STATE_DIR: &str = ".nfs-provisioner";
const EXPORTS: &str = ".nfs-provisioner/exports";
const IDENTITY: &str = ".nfs-provisioner/identity";
const RECOVERY: &str = ".nfs-provisioner/recovery";
const CANARY: &str = ".nfs-provisioner/canary";
/// The client list the exports were last rendered for (read at a start
/// that cannot list the Nodes: the exports admit whom they admitted).
const CLIENTS: &str = ".nfs-provisioner/clients";
/// Pending records (`hostfs::intent`): volumes being made whose PV is not
/// known to be saved.
const PENDING: &str = ".nfs-provisioner/pending";

/// Export ids that are never handed out: 0 is Ganesha's pseudo root, 152
/// the anchor's pseudo-root fsid (`152.152`), 65535 the readiness canary
/// ([`ganesha::CANARY_EXPORT_ID`]).
pub const RESERVED_EXPORT_IDS: [u16; 3] = [0, 152, ganesha::CANARY_EXPORT_ID];

/// Directory mode without a GID: anyone may write (like the anchor).
pub const MODE_NO_GID: u32 = 0o777;
/// Directory mode with a GID: setgid so new files inherit the group; group
/// rwx; others only `x` (the kubelet stats the mount point).
pub const MODE_GID: u32 = 0o2771;

/// What can go wrong on the export root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The export root path cannot be used.
    #[error("export root {0}: {1}")]
    BadRoot(String, String),
    /// Not a PV name we make directories for.
    #[error("`{0}` is not a usable volume name: {1}")]
    BadName(String, String),
    /// The volume path exists but is a symlink or not a directory.
    #[error("refusing `{0}`: it is a symlink or not a directory")]
    NotADirectory(String),
    /// A directory of that name exists without our record.
    #[error("directory `{0}` already exists and was not made by this provisioner; remove it")]
    Taken(String),
    /// A record file is damaged.
    #[error("export record {file}: {why}")]
    BadRecord {
        /// The file.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// An I/O error, with the operation and the path.
    #[error(transparent)]
    Io(#[from] hostfs::op::OpError),
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> RootError + 'a {
    let op = hostfs::op::io_err(op, path);
    move |e| RootError::Io(op(e))
}

/// Lowest free export id from 1, skipping the reserved ones.
pub fn lowest_free_export_id(used: &BTreeSet<u16>) -> Option<u16> {
    (1..=u16::MAX).find(|id| !used.contains(id) && !RESERVED_EXPORT_IDS.contains(id))
}

/// Lowest GID in `min..=max` not in `used`.
pub fn lowest_free_gid(used: &BTreeSet<u32>, min: u32, max: u32) -> Option<u32> {
    (min..=max).find(|g| !used.contains(g))
}

/// Checks a PV name before it becomes a directory and a file name.
pub fn check_name(pv: &str) -> Result<(), RootError> {
    let bad = |why: &str| Err(RootError::BadName(pv.to_string(), why.to_string()));
    if pv.is_empty() || pv.len() > 253 {
        return bad("must be 1-253 characters");
    }
    if pv.starts_with('.') {
        return bad("must not start with a dot");
    }
    if !pv
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return bad("only lowercase letters, digits, '-' and '.' are allowed");
    }
    Ok(())
}

/// The export root.
pub struct ExportRoot {
    path: PathBuf,
    dir: Dir,
    /// Who may mount; changed live as Nodes come and go
    /// ([`ExportRoot::set_clients`]).
    clients: std::sync::RwLock<ClientList>,
    archives: Archives,
    cache: Mutex<RecordCache>,
}

/// The export records as last read or written, and the exports
/// directory's stamp at that moment (`None`: read again).
#[derive(Debug, Default)]
struct RecordCache {
    stamp: Option<DirStamp>,
    good: BTreeMap<String, ExportRecord>,
    /// Record files that could not be read or parsed, by PV name.
    damaged: BTreeSet<String>,
}

impl ExportRoot {
    /// Opens (creating if needed) the root and its state directories, and
    /// renders every readable record's export file again for `clients`
    /// (only files whose text changes are written).
    pub fn open(path: &Path, clients: ClientList) -> Result<Self, RootError> {
        let shown = path.display().to_string();
        ganesha::check_config_path(&shown)
            .map_err(|e| RootError::BadRoot(shown.clone(), e.to_string()))?;
        std::fs::create_dir_all(path).map_err(io_err("create", &shown))?;
        let path = path.canonicalize().map_err(io_err("resolve", &shown))?;
        let dir =
            Dir::open_ambient_dir(&path, ambient_authority()).map_err(io_err("open", &shown))?;
        for d in [EXPORTS, RECOVERY, PENDING] {
            dir.create_dir_all(d).map_err(io_err("create", d))?;
        }
        // Archives sit at the top of the root, never exported (exports are
        // `<root>/<pv>` of records only) and never a PV's name.
        let archives = Archives::open(&dir, STATE_DIR)?;
        let root = ExportRoot {
            path,
            dir,
            clients: std::sync::RwLock::new(clients.clone()),
            archives,
            cache: Mutex::default(),
        };
        root.render_records(&clients)?;
        root.write_atomic(CLIENTS, &clients.to_config_list())?;
        Ok(root)
    }

    /// The client list the exports of the root at `path` were last
    /// rendered for, if one was saved and reads back.
    pub fn saved_clients(path: &Path) -> Option<ClientList> {
        let text = std::fs::read_to_string(path.join(CLIENTS)).ok()?;
        if text.trim().is_empty() {
            return Some(ClientList::default());
        }
        ClientList::parse(&text).ok()
    }

    /// Renders every readable record's export file for `clients`, writing
    /// only the files whose text changes.
    fn render_records(&self, clients: &ClientList) -> Result<(), RootError> {
        let (records, _damaged) = self.records()?;
        for r in records {
            let rel = format!("{EXPORTS}/{}.conf", r.pv);
            let want = ganesha::export_file(&r, clients);
            if self.dir.read_to_string(&rel).ok().as_deref() != Some(want.as_str()) {
                self.write_atomic(&rel, &want)?;
            }
        }
        Ok(())
    }

    /// Makes `clients` the list every export admits: the export files are
    /// rendered again (new ones get it too); `Ok(false)` when it is the list
    /// already. Telling the live server is the caller's
    /// ([`crate::server::Server::set_clients`]); callers hold the server's
    /// ops lock, so no export is written with the old list meanwhile.
    pub fn set_clients(&self, clients: &ClientList) -> Result<bool, RootError> {
        if *self.clients.read().unwrap_or_else(|e| e.into_inner()) == *clients {
            return Ok(false);
        }
        // Files first: a write that fails (a full disk) leaves the old list
        // in memory, so the next call renders again instead of taking the
        // half-written files for done.
        self.render_records(clients)?;
        self.write_atomic(CLIENTS, &clients.to_config_list())?;
        *self.clients.write().unwrap_or_else(|e| e.into_inner()) = clients.clone();
        Ok(true)
    }

    /// The archives of deleted volumes (`onDelete: archive`).
    pub fn archives(&self) -> &Archives {
        &self.archives
    }

    /// Moves the directory of `pv` to a new archive made at `now`, kept for
    /// `retention`; `None` when there is no directory to archive. Like
    /// [`ExportRoot::remove_volume_dir`], a symlink in its place is refused.
    pub fn archive_volume_dir(
        &self,
        pv: &str,
        now: std::time::SystemTime,
        retention: Option<std::time::Duration>,
    ) -> Result<Option<ArchiveRecord>, RootError> {
        check_name(pv)?;
        match self.dir.symlink_metadata(pv) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("stat", pv)(e)),
            Ok(m) if !m.is_dir() => return Err(RootError::NotADirectory(pv.to_string())),
            Ok(_) => {}
        }
        let rec = self
            .archives
            .move_in(&self.dir, pv, pv, pv, now, retention)?;
        Ok(Some(rec))
    }

    /// Who may mount the exports of this root.
    pub fn clients(&self) -> ClientList {
        self.clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The root's (canonical) path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where Ganesha keeps NFSv4 recovery state.
    pub fn recovery_root(&self) -> PathBuf {
        self.path.join(RECOVERY)
    }

    /// Makes (idempotent) the readiness canary's directory, empty, mode
    /// 0700, and returns its absolute path. A symlink or file in its place
    /// is refused.
    pub fn canary_dir(&self) -> Result<String, RootError> {
        match self.dir.create_dir(CANARY) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", CANARY)(e)),
        }
        use nix::fcntl::OFlag;
        let fd = nix::fcntl::openat(
            self.dir.as_fd(),
            CANARY,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|_| RootError::NotADirectory(CANARY.to_string()))?;
        nix::sys::stat::fchmod(fd.as_fd(), nix::sys::stat::Mode::from_bits_truncate(0o700))
            .map_err(|e| io_err("chmod", CANARY)(e.into()))?;
        Ok(self.path.join(CANARY).display().to_string())
    }

    /// The absolute path of a volume's directory (= its export path).
    pub fn volume_path(&self, pv: &str) -> String {
        self.path.join(pv).display().to_string()
    }

    /// The absolute path of a volume's export file (what `AddExport` reads).
    pub fn record_path(&self, pv: &str) -> PathBuf {
        self.path.join(EXPORTS).join(format!("{pv}.conf"))
    }

    /// This instance's identity: a UUID made on first use and kept on the
    /// root, so it survives restarts and moves with the data.
    pub fn identity(&self) -> Result<String, RootError> {
        match self.dir.read_to_string(IDENTITY) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", IDENTITY)(e)),
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.write_atomic(IDENTITY, &id)?;
        Ok(id)
    }

    fn write_atomic(&self, rel: &str, content: &str) -> Result<(), RootError> {
        let tmp = format!("{rel}.tmp");
        self.dir
            .write(&tmp, content)
            .map_err(io_err("write", &tmp))?;
        self.dir
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err("sync", &tmp))?;
        self.dir
            .rename(&tmp, &self.dir, rel)
            .map_err(io_err("rename", rel))
    }

    /// Every readable record (by export id), and the files that are not.
    pub fn records(&self) -> Result<(Vec<ExportRecord>, Vec<RootError>), RootError> {
        self.with_records(|all| {
            let mut good: Vec<_> = all.cloned().collect();
            good.sort_by_key(|r| r.export_id);
            good
        })
    }

    /// `f` of every readable record (from memory, read again when the
    /// exports directory changed behind our back), and the errors of the
    /// record files that are damaged (each read again now). The records
    /// stay locked while `f` runs: keep it short.
    pub fn with_records<R>(
        &self,
        f: impl FnOnce(btree_map::Values<'_, String, ExportRecord>) -> R,
    ) -> Result<(R, Vec<RootError>), RootError> {
        let mut cache = self.cache();
        let now = DirStamp::of(&self.dir, EXPORTS).map_err(io_err("stat", EXPORTS))?;
        if cache.stamp != Some(now) {
            *cache = self.read_records()?;
            // The stamp from before the read: a change during it reads again.
            cache.stamp = Some(now);
        }
        let mut bad = Vec::new();
        for pv in std::mem::take(&mut cache.damaged) {
            match self.record(&pv) {
                Ok(Some(r)) => {
                    cache.good.insert(pv, r);
                }
                Ok(None) => {}
                Err(e) => {
                    bad.push(e);
                    cache.damaged.insert(pv);
                }
            }
        }
        Ok((f(cache.good.values()), bad))
    }

    fn cache(&self) -> MutexGuard<'_, RecordCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every record file from disk.
    fn read_records(&self) -> Result<RecordCache, RootError> {
        let mut read = RecordCache::default();
        let entries = self
            .dir
            .read_dir(EXPORTS)
            .map_err(io_err("list", EXPORTS))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", EXPORTS))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(pv) = name.strip_suffix(".conf") else {
                continue;
            };
            match self.record(pv) {
                Ok(Some(r)) => {
                    read.good.insert(pv.to_string(), r);
                }
                Ok(None) => {}
                Err(_) => {
                    read.damaged.insert(pv.to_string());
                }
            }
        }
        Ok(read)
    }

    /// Runs `write`, a change of ours to the exports directory, and applies
    /// `change` to the cache when it succeeded and the cache was up to date
    /// before it; otherwise the cache is read again at the next call.
    fn write_cached(
        &self,
        write: impl FnOnce() -> Result<(), RootError>,
        change: impl FnOnce(&mut RecordCache),
    ) -> Result<(), RootError> {
        let mut cache = self.cache();
        let before = DirStamp::of(&self.dir, EXPORTS).ok();
        let result = write();
        if result.is_ok() && before.is_some() && cache.stamp == before {
            change(&mut cache);
            cache.stamp = DirStamp::of(&self.dir, EXPORTS).ok();
        } else {
            cache.stamp = None;
        }
        result
    }

    /// The record of `pv`, if any.
    pub fn record(&self, pv: &str) -> Result<Option<ExportRecord>, RootError> {
        check_name(pv)?;
        let rel = format!("{EXPORTS}/{pv}.conf");
        let text = match self.dir.read_to_string(&rel) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &rel)(e)),
        };
        self.parse_record(pv, &rel, &text).map(Some)
    }

    /// The record in `text`, the file `rel` of `pv`, if it is one this
    /// root would export.
    fn parse_record(&self, pv: &str, rel: &str, text: &str) -> Result<ExportRecord, RootError> {
        let bad = |why: String| RootError::BadRecord {
            file: rel.to_string(),
            why,
        };
        let r = ganesha::parse_export_file(text).map_err(|e| bad(e.to_string()))?;
        if r.pv != pv || r.path != self.volume_path(pv) {
            return Err(bad(format!(
                "it names volume {} at {}, expected {pv} at {}",
                r.pv,
                r.path,
                self.volume_path(pv)
            )));
        }
        Ok(r)
    }

    /// Writes (atomically) the record of `r.pv`. A record that would not
    /// read back (a reserved export id, a path outside this root) is
    /// refused, so what memory holds is what the disk says.
    pub fn write_record(&self, r: &ExportRecord) -> Result<(), RootError> {
        check_name(&r.pv)?;
        let rel = format!("{EXPORTS}/{}.conf", r.pv);
        let text = ganesha::export_file(r, &self.clients());
        self.parse_record(&r.pv, &rel, &text)?;
        self.write_cached(
            || self.write_atomic(&rel, &text),
            |cache| {
                cache.damaged.remove(&r.pv);
                cache.good.insert(r.pv.clone(), r.clone());
            },
        )
    }

    /// Removes the record of `pv` (gone already is fine).
    pub fn remove_record(&self, pv: &str) -> Result<(), RootError> {
        check_name(pv)?;
        let rel = format!("{EXPORTS}/{pv}.conf");
        self.write_cached(
            || match self.dir.remove_file(&rel) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &rel)(e)),
                _ => Ok(()),
            },
            |cache| {
                cache.damaged.remove(pv);
                cache.good.remove(pv);
            },
        )
    }

    /// The pending records of this root (the provisioning intent, kept
    /// here instead of on the claim: `hostfs::intent`).
    pub fn pending_records(&self) -> hostfs::intent::PendingRecords<'_> {
        hostfs::intent::PendingRecords::new(&self.dir, PENDING)
    }

    /// Makes the directory of `pv` (idempotent), owned by root and `gid`,
    /// with [`MODE_GID`] or [`MODE_NO_GID`]. `fresh` says the record was just
    /// written: then an existing directory is someone else's and refused.
    pub fn create_volume_dir(
        &self,
        pv: &str,
        gid: Option<u32>,
        fresh: bool,
    ) -> Result<PathBuf, RootError> {
        check_name(pv)?;
        match self.dir.create_dir(pv) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fresh {
                    return Err(RootError::Taken(pv.to_string()));
                }
            }
            Err(e) => return Err(io_err("create", pv)(e)),
        }
        // O_NOFOLLOW | O_DIRECTORY: a symlink or file in its place is refused.
        use nix::fcntl::OFlag;
        let vol = nix::fcntl::openat(
            self.dir.as_fd(),
            pv,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|_| RootError::NotADirectory(pv.to_string()))?;
        let fd = vol.as_fd();
        // chown before chmod: chown may clear the setgid bit.
        nix::unistd::fchown(
            fd,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(gid.unwrap_or(0))),
        )
        .map_err(|e| io_err("chown", pv)(e.into()))?;
        let mode = if gid.is_some() { MODE_GID } else { MODE_NO_GID };
        nix::sys::stat::fchmod(fd, nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(|e| io_err("chmod", pv)(e.into()))?;
        Ok(self.path.join(pv))
    }

    /// Removes the directory of `pv` and everything in it; symlinks inside
    /// are removed, never followed; a symlink in its place is refused.
    pub fn remove_volume_dir(&self, pv: &str) -> Result<(), RootError> {
        check_name(pv)?;
        match self.dir.symlink_metadata(pv) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("stat", pv)(e)),
            Ok(m) if !m.is_dir() => return Err(RootError::NotADirectory(pv.to_string())),
            Ok(_) => {}
        }
        // Iterative, bounded descriptors and memory: a tenant's tree may be
        // deeper than the fd limit (docs/security.md, hole 6).
        hostfs::tree::remove_dir_all_at(self.dir.as_fd(), pv)
            .map(|_| ())
            .map_err(|e| io_err("remove", pv)(io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn root() -> (tempfile::TempDir, ExportRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let root = ExportRoot::open(&tmp.path().join("export"), clients("127.0.0.1")).unwrap();
        (tmp, root)
    }

    fn clients(s: &str) -> ClientList {
        ClientList::parse(s).unwrap()
    }

    fn record(root: &ExportRoot, pv: &str, id: u16) -> ExportRecord {
        ExportRecord {
            pv: pv.into(),
            export_id: id,
            path: root.volume_path(pv),
            root_squash: false,
            gid: None,
        }
    }

    #[test]
    fn export_ids_start_at_one_and_skip_152() {
        assert_eq!(lowest_free_export_id(&BTreeSet::new()), Some(1));
        assert_eq!(lowest_free_export_id(&[1, 2, 4].into()), Some(3));
        let used: BTreeSet<u16> = (1..152).collect();
        assert_eq!(lowest_free_export_id(&used), Some(153));
        let all: BTreeSet<u16> = (1..=u16::MAX).collect();
        assert_eq!(lowest_free_export_id(&all), None);
    }

    #[test]
    fn gids_are_lowest_free_in_range() {
        assert_eq!(lowest_free_gid(&BTreeSet::new(), 2000, 2001), Some(2000));
        assert_eq!(lowest_free_gid(&[2000].into(), 2000, 2001), Some(2001));
        assert_eq!(lowest_free_gid(&[2000, 2001].into(), 2000, 2001), None);
    }

    #[test]
    fn identity_is_made_once_and_kept() {
        let (tmp, root) = root();
        let id = root.identity().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(root.identity().unwrap(), id);
        let again = ExportRoot::open(&tmp.path().join("export"), clients("127.0.0.1")).unwrap();
        assert_eq!(again.identity().unwrap(), id);
    }

    #[test]
    fn records_round_trip_and_damaged_ones_are_reported_not_fatal() {
        let (_t, root) = root();
        root.write_record(&record(&root, "pvc-b", 2)).unwrap();
        root.write_record(&record(&root, "pvc-a", 1)).unwrap();
        assert_eq!(
            root.record("pvc-a").unwrap(),
            Some(record(&root, "pvc-a", 1))
        );
        assert_eq!(root.record("pvc-x").unwrap(), None);
        std::fs::write(root.record_path("pvc-c"), "garbage").unwrap();
        // a record copied from another volume does not count for this one
        std::fs::write(
            root.record_path("pvc-d"),
            ganesha::export_file(&record(&root, "pvc-a", 9), &root.clients()),
        )
        .unwrap();
        let (good, bad) = root.records().unwrap();
        assert_eq!(
            good.iter().map(|r| r.pv.as_str()).collect::<Vec<_>>(),
            ["pvc-a", "pvc-b"]
        );
        assert_eq!(bad.len(), 2, "{bad:?}");
        root.remove_record("pvc-a").unwrap();
        root.remove_record("pvc-a").unwrap();
        assert_eq!(root.record("pvc-a").unwrap(), None);
    }

    fn pvs(root: &ExportRoot) -> (Vec<String>, usize) {
        let (good, bad) = root.records().unwrap();
        (good.into_iter().map(|r| r.pv).collect(), bad.len())
    }

    #[test]
    fn a_record_that_would_not_read_back_is_not_written() {
        let (_t, root) = root();
        for id in [0, 152] {
            let err = root.write_record(&record(&root, "pvc-a", id)).unwrap_err();
            assert!(matches!(err, RootError::BadRecord { .. }), "{err}");
        }
        let mut elsewhere = record(&root, "pvc-a", 1);
        elsewhere.path = root.volume_path("pvc-b");
        assert!(root.write_record(&elsewhere).is_err());
        assert_eq!(root.record("pvc-a").unwrap(), None);
        assert_eq!(pvs(&root), (vec![], 0));
    }

    #[test]
    fn records_are_read_once_and_follow_our_own_writes() {
        let (_t, root) = root();
        root.write_record(&record(&root, "pvc-a", 1)).unwrap();
        assert_eq!(pvs(&root), (vec!["pvc-a".to_string()], 0));
        root.write_record(&record(&root, "pvc-b", 2)).unwrap();
        root.remove_record("pvc-a").unwrap();
        // Proof that memory, not the disk, answers: a record's content
        // changed in place (the directory unchanged) is not read again.
        std::fs::write(root.record_path("pvc-b"), "garbage").unwrap();
        assert_eq!(pvs(&root), (vec!["pvc-b".to_string()], 0));
    }

    #[test]
    fn a_record_removed_or_added_behind_our_back_is_seen() {
        let (_t, root) = root();
        root.write_record(&record(&root, "pvc-a", 1)).unwrap();
        assert_eq!(pvs(&root).0, ["pvc-a"]);
        let before = DirStamp::of(&root.dir, EXPORTS).unwrap();
        std::fs::remove_file(root.record_path("pvc-a")).unwrap();
        // Other records until the coarse file-time clock moves on, so the
        // directory's stamp must differ (a barrier on the stamp itself).
        let mut n = 0;
        while DirStamp::of(&root.dir, EXPORTS).unwrap() == before {
            let pv = format!("pvc-other-{n}");
            let text = ganesha::export_file(&record(&root, &pv, 10 + n), &root.clients());
            std::fs::write(root.record_path(&pv), text).unwrap();
            n += 1;
        }
        let (got, bad) = pvs(&root);
        assert_eq!((got.len(), bad), (usize::from(n), 0));
        assert!(!got.contains(&"pvc-a".to_string()), "{got:?}");
    }

    #[test]
    fn a_damaged_record_is_read_again_every_time_so_a_fix_counts_at_once() {
        let (_t, root) = root();
        root.write_record(&record(&root, "pvc-a", 1)).unwrap();
        std::fs::write(root.record_path("pvc-c"), "garbage").unwrap();
        assert_eq!(pvs(&root), (vec!["pvc-a".to_string()], 1));
        // Fixed in place: the directory does not change, the record counts.
        let fixed = ganesha::export_file(&record(&root, "pvc-c", 3), &root.clients());
        std::fs::write(root.record_path("pvc-c"), fixed).unwrap();
        assert_eq!(
            pvs(&root),
            (vec!["pvc-a".to_string(), "pvc-c".to_string()], 0)
        );
        // And a new id is allocated past both.
        let (r, _) = root
            .with_records(|all| all.map(|r| r.export_id).max())
            .unwrap();
        assert_eq!(r, Some(3));
    }

    #[test]
    fn reopening_with_another_client_list_rewrites_every_export_file() {
        let (tmp, root) = root();
        root.write_record(&record(&root, "pvc-a", 1)).unwrap();
        let file = root.record_path("pvc-a");
        assert!(std::fs::read_to_string(&file)
            .unwrap()
            .contains("Clients = 127.0.0.1;"));
        drop(root);
        let narrowed =
            ExportRoot::open(&tmp.path().join("export"), clients("10.1.0.0/16")).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("Clients = 10.1.0.0/16;"), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
        assert_eq!(
            narrowed.record("pvc-a").unwrap(),
            Some(record(&narrowed, "pvc-a", 1))
        );
    }

    #[test]
    fn a_new_client_list_rewrites_every_export_file_live() {
        let (_tmp, root) = root();
        root.write_record(&record(&root, "pvc-a", 1)).unwrap();
        let file = root.record_path("pvc-a");
        let nodes = clients("127.0.0.1").with_hosts(["10.0.0.7".parse().unwrap()]);
        assert!(root.set_clients(&nodes).unwrap(), "a change");
        assert!(!root.set_clients(&nodes).unwrap(), "the same list again");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("Clients = 10.0.0.7, 127.0.0.1;"), "{text}");
        // New records get the new list too.
        root.write_record(&record(&root, "pvc-b", 2)).unwrap();
        let text = std::fs::read_to_string(root.record_path("pvc-b")).unwrap();
        assert!(text.contains("Clients = 10.0.0.7, 127.0.0.1;"), "{text}");
        // Saved, so a start without the API server admits the same.
        assert_eq!(ExportRoot::saved_clients(root.path()), Some(nodes.clone()));
        // Nobody: no CLIENT block, the export's own None refuses all.
        assert!(root.set_clients(&ClientList::default()).unwrap());
        assert_eq!(
            ExportRoot::saved_clients(root.path()),
            Some(ClientList::default())
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("CLIENT"), "{text}");
        assert!(text.contains("Access_Type = None;"), "{text}");
        assert_eq!(
            root.record("pvc-a").unwrap(),
            Some(record(&root, "pvc-a", 1))
        );
    }

    /// docs/security.md, hole 11: nfs's delete and archive (and the
    /// retention sweep of its archives) of a volume a tenant filled with
    /// hostile contents remove all of it and nothing outside.
    #[test]
    fn a_hostile_volume_is_removed_or_archived_and_swept_leaving_the_outside_alone() {
        use hostfs::hostile;
        use std::time::{Duration, SystemTime};
        let (tmp, root) = root();
        let p = root.create_volume_dir("pvc-1", Some(4321), true).unwrap();
        let planted = hostile::plant(&p, &tmp.path().join("outside"));
        root.remove_volume_dir("pvc-1").unwrap();
        assert!(!p.exists());
        planted.assert_outside_intact();
        assert_eq!(planted.secret_links(), 1);

        let p = root.create_volume_dir("pvc-2", None, true).unwrap();
        let planted = hostile::plant(&p, &tmp.path().join("outside2"));
        let then = SystemTime::now() - Duration::from_secs(3600);
        let rec = root
            .archive_volume_dir("pvc-2", then, Some(Duration::from_secs(60)))
            .unwrap()
            .expect("archived");
        assert!(!p.exists());
        planted.assert_outside_intact();
        let projects = tmp.path().join("projects");
        std::fs::create_dir(&projects).unwrap();
        let swept =
            hostfs::archive::sweep(root.archives(), root.path(), &projects, SystemTime::now())
                .unwrap();
        assert_eq!(swept, vec![rec.name.clone()]);
        assert!(!root.path().join(&rec.name).exists());
        planted.assert_outside_intact();
        assert_eq!(planted.secret_links(), 1);
    }

    #[test]
    fn volume_dirs_get_group_and_mode() {
        let (_t, root) = root();
        let p = root.create_volume_dir("pvc-1", Some(4321), true).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.gid(), 4321);
        assert_eq!(m.permissions().mode() & 0o7777, MODE_GID);
        std::fs::write(p.join("f"), b"x").unwrap();
        // a retry after the record was written keeps the data
        root.create_volume_dir("pvc-1", Some(4321), false).unwrap();
        assert!(p.join("f").exists());
        let p = root.create_volume_dir("pvc-2", None, true).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o777
        );
        // an existing directory nobody recorded is not taken over
        std::fs::create_dir(root.path().join("pvc-3")).unwrap();
        assert!(matches!(
            root.create_volume_dir("pvc-3", None, true),
            Err(RootError::Taken(_))
        ));
    }

    #[test]
    fn names_that_could_escape_or_hit_the_state_dir_are_refused() {
        let (_t, root) = root();
        for bad in ["", ".nfs-provisioner", "../x", "a/b", "UPPER", ".."] {
            assert!(root.create_volume_dir(bad, None, true).is_err(), "{bad:?}");
            assert!(root.remove_volume_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn removal_never_follows_symlinks_out() {
        let (t, root) = root();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("precious"), b"keep").unwrap();
        let p = root.create_volume_dir("pvc-1", None, true).unwrap();
        std::fs::create_dir(p.join("sub")).unwrap();
        symlink(&outside, p.join("sub/escape")).unwrap();
        symlink(outside.join("precious"), p.join("link")).unwrap();
        root.remove_volume_dir("pvc-1").unwrap();
        assert!(!p.exists());
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
        root.remove_volume_dir("pvc-1").unwrap();
        // a symlink in place of a volume directory is refused, target kept
        symlink(&outside, root.path().join("pvc-2")).unwrap();
        assert!(matches!(
            root.remove_volume_dir("pvc-2"),
            Err(RootError::NotADirectory(_))
        ));
        assert!(matches!(
            root.create_volume_dir("pvc-2", None, false),
            Err(RootError::NotADirectory(_))
        ));
        assert!(outside.join("precious").exists());
    }
}
