//! `enforceCapacity`: a project quota of the claim's size on its directory.
//!
//! Linux enforces directory sizes only through *project quotas* on XFS or
//! ext4, and only when the filesystem is mounted with project quota
//! accounting (`prjquota` / `pquota`). We check that from the mount table
//! before promising anything, and fail with a message that says what to
//! change when it is not the case.
//!
//! Project ids and limits are set through the kernel interfaces, not a tool:
//! the directory is opened without following symlinks, tagged with
//! `FS_IOC_FSSETXATTR` (project id + `PROJINHERIT`), and its limit set with
//! `quotactl_fd(Q_SETQUOTA, PRJQUOTA)` on that same descriptor. The Go
//! anchors pasted the (claim-derived) path into an `xfs_quota -c` command
//! string (as this code did before), where a space starts new options;
//! here no claim-derived text is parsed by anything (docs/security.md,
//! hole 3). `quotactl_fd` needs Linux
//! 5.14 or later; an older kernel gets an error saying so.
//!
//! Project ids are allocated per PV, lowest free from [`FIRST_PROJECT_ID`],
//! and kept in `<root>/.hostpath-provisioner/projects/<pv>` so a restart or a
//! resize reuses the same id. Free means: recorded for no other volume of
//! the root, not handed out by this process on the same filesystem (two
//! roots may share one), and carried by no file on it (the kernel's quota
//! says so); one allocation at a time ([`allocate`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The first project id we hand out (low ids are often used by hand).
pub const FIRST_PROJECT_ID: u32 = 100_000;

/// Why quotas cannot be enforced on the root, or setting one failed.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The mount table could not be read or the root is on no mount.
    #[error("cannot find the mount of {path}: {why}")]
    MountUnknown {
        /// The volume root whose mount was looked for.
        path: PathBuf,
        /// Why its mount could not be found (canonicalizing, the mount table).
        why: String,
    },
    /// The filesystem type has no project quotas.
    #[error(
        "enforceCapacity needs project quotas, but {mount_point} is {fs_type}; \
         put the root on XFS or ext4 mounted with prjquota, or set enforceCapacity: \"false\""
    )]
    UnsupportedFilesystem {
        /// Where the root's filesystem is mounted.
        mount_point: PathBuf,
        /// Its type.
        fs_type: String,
    },
    /// The filesystem is XFS/ext4 but quota accounting is off.
    #[error(
        "enforceCapacity needs project quotas, but {fs_type} at {mount_point} is not mounted \
         with prjquota (options: {options}); remount it with -o prjquota (and, for ext4, \
         `tune2fs -O quota,project`), or set enforceCapacity: \"false\""
    )]
    NotEnabled {
        /// Where the root's filesystem is mounted.
        mount_point: PathBuf,
        /// Its type.
        fs_type: String,
        /// The mount and superblock options seen.
        options: String,
    },
    /// The kernel refused to tag the directory or set its limit.
    #[error("{action} {dir}: {source}")]
    Kernel {
        /// What was being done (`set project id`, `set limit`, ...).
        action: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The OS error (ENOSYS: kernel older than 5.14, no `quotactl_fd`).
        #[source]
        source: std::io::Error,
    },
    /// The project id state could not be read or written.
    #[error("project id state {path}: {source}")]
    State {
        /// The state file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One mounted filesystem, as far as quotas care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFacts {
    /// Mount point.
    pub mount_point: PathBuf,
    /// Filesystem type (`xfs`, `ext4`, ...).
    pub fs_type: String,
    /// Per-mount and superblock options, comma-joined.
    pub options: String,
}

/// Project quotas that were checked to work on one filesystem.
#[derive(Debug, Clone)]
pub struct ProjectQuotas {
    mount: MountFacts,
}

/// Decides from the mount facts whether project quotas are on.
pub fn check(mount: MountFacts) -> Result<ProjectQuotas, QuotaError> {
    match mount.fs_type.as_str() {
        "xfs" | "ext4" => {}
        _ => {
            return Err(QuotaError::UnsupportedFilesystem {
                mount_point: mount.mount_point,
                fs_type: mount.fs_type,
            })
        }
    }
    let on = mount
        .options
        .split(',')
        .any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce"));
    if !on {
        return Err(QuotaError::NotEnabled {
            mount_point: mount.mount_point,
            fs_type: mount.fs_type,
            options: mount.options,
        });
    }
    Ok(ProjectQuotas { mount })
}

/// Finds the mount holding `path` in this process's mount table.
pub fn mount_of(path: &Path) -> Result<MountFacts, QuotaError> {
    let unknown = |why: String| QuotaError::MountUnknown {
        path: path.to_path_buf(),
        why,
    };
    let path = path.canonicalize().map_err(|e| unknown(e.to_string()))?;
    let infos = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| unknown(e.to_string()))?;
    infos
        .into_iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .map(|m| {
            let mut options: Vec<String> = Vec::new();
            for (k, v) in m.mount_options.iter().chain(m.super_options.iter()) {
                options.push(match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                });
            }
            MountFacts {
                mount_point: m.mount_point,
                fs_type: m.fs_type,
                options: options.join(","),
            }
        })
        .ok_or_else(|| unknown("no mount contains it".into()))
}

impl ProjectQuotas {
    /// Checks that the filesystem holding `root` enforces project quotas.
    pub fn detect(root: &Path) -> Result<Self, QuotaError> {
        check(mount_of(root)?)
    }

    /// The filesystem that was checked.
    pub fn mount(&self) -> &MountFacts {
        &self.mount
    }

    /// Tags `dir` with `project` and sets its hard block limit to `bytes`.
    /// `dir` is opened with `O_NOFOLLOW`: a symlink in its place is refused.
    pub fn set_limit(&self, dir: &Path, project: u32, bytes: u64) -> Result<(), QuotaError> {
        let f = open_dir_nofollow(dir)?;
        set_project(f.as_fd(), dir, project)?;
        let mut q = block_limit(bytes);
        quotactl_project(f.as_fd(), libc::Q_SETQUOTA, project, &mut q).map_err(|source| {
            QuotaError::Kernel {
                action: "set the project quota limit (quotactl_fd) on",
                dir: dir.to_path_buf(),
                source,
            }
        })
    }

    /// Removes the limit of `project` (a deleted volume's): `dir` is any
    /// directory on the filesystem (the root). Its usage is the kernel's
    /// and drops to 0 with the volume's files.
    pub fn clear_limit(&self, dir: &Path, project: u32) -> Result<(), QuotaError> {
        let f = open_dir_nofollow(dir)?;
        let mut q = block_limit(0);
        quotactl_project(f.as_fd(), libc::Q_SETQUOTA, project, &mut q).map_err(|source| {
            QuotaError::Kernel {
                action: "clear the project quota limit (quotactl_fd) on",
                dir: dir.to_path_buf(),
                source,
            }
        })
    }
}

/// What the kernel's quota says about one project: bytes charged to it and
/// its hard limit (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in use (`dqb_curspace`).
    pub used_bytes: u64,
    /// The hard block limit in bytes (`dqb_bhardlimit` × 1 KiB), 0 if none.
    pub limit_bytes: u64,
}

/// `quotactl_fd(2)` on the directory open at `fd` for project `project`.
fn quotactl_project(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    project: u32,
    q: &mut libc::dqblk,
) -> std::io::Result<()> {
    // SAFETY: quotactl_fd(2) reads (Q_SETQUOTA) or writes (Q_GETQUOTA) one
    // `struct if_dqblk` at `q`, a live, properly laid out `libc::dqblk`;
    // the fd is open for the call.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            fd.as_raw_fd(),
            libc::QCMD(cmd, PRJQUOTA) as libc::c_uint,
            project as libc::c_int,
            q as *mut libc::dqblk,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The quota of `project` on the filesystem holding `dir` (any directory
/// on it, opened without following symlinks): `Q_GETQUOTA`, no `du`.
pub fn usage(dir: &Path, project: u32) -> Result<Usage, QuotaError> {
    let f = open_dir_nofollow(dir)?;
    let mut q = block_limit(0);
    match quotactl_project(f.as_fd(), libc::Q_GETQUOTA, project, &mut q) {
        Ok(()) => {}
        // XFS answers ENOENT for an id it keeps no quota record for:
        // nothing charged, no limit.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Ok(Usage {
                used_bytes: 0,
                limit_bytes: 0,
            })
        }
        Err(source) => {
            return Err(QuotaError::Kernel {
                action: "read the project quota (quotactl_fd Q_GETQUOTA) on",
                dir: dir.to_path_buf(),
                source,
            })
        }
    }
    Ok(Usage {
        used_bytes: q.dqb_curspace,
        limit_bytes: q.dqb_bhardlimit.saturating_mul(1024),
    })
}

/// `PRJQUOTA` of `<linux/quota.h>`.
const PRJQUOTA: libc::c_int = 2;
/// `FS_XFLAG_PROJINHERIT` of `<linux/fs.h>`: new files and directories
/// inherit the directory's project id.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;
/// `FS_IOC_FSGETXATTR` = `_IOR('X', 31, struct fsxattr)`.
const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
/// `FS_IOC_FSSETXATTR` = `_IOW('X', 32, struct fsxattr)`.
const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

/// `struct fsxattr` of `<linux/fs.h>` (28 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// The `if_dqblk` that sets a hard block limit of `bytes` (rounded up to the
/// kernel's 1 KiB quota blocks) and no soft limit.
pub fn block_limit(bytes: u64) -> libc::dqblk {
    libc::dqblk {
        dqb_bhardlimit: bytes.div_ceil(1024),
        dqb_bsoftlimit: 0,
        dqb_curspace: 0,
        dqb_ihardlimit: 0,
        dqb_isoftlimit: 0,
        dqb_curinodes: 0,
        dqb_btime: 0,
        dqb_itime: 0,
        dqb_valid: libc::QIF_BLIMITS,
    }
}

fn open_dir_nofollow(dir: &Path) -> Result<File, QuotaError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|source| QuotaError::Kernel {
            action: "open (not following symlinks)",
            dir: dir.to_path_buf(),
            source,
        })
}

fn fsxattr(fd: BorrowedFd<'_>, dir: &Path) -> Result<FsXattr, QuotaError> {
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes one `struct fsxattr` (28 bytes, the
    // size encoded in the request) into `x`, which lives through the call.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            FS_IOC_FSGETXATTR as _,
            &mut x as *mut FsXattr,
        )
    };
    if rc != 0 {
        return Err(QuotaError::Kernel {
            action: "read the project id (FS_IOC_FSGETXATTR) of",
            dir: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(x)
}

/// Tags the directory open at `fd` with `project` and `PROJINHERIT`
/// (`FS_IOC_FSSETXATTR`); `dir` only names it in errors.
pub fn set_project(fd: BorrowedFd<'_>, dir: &Path, project: u32) -> Result<(), QuotaError> {
    let mut x = fsxattr(fd, dir)?;
    x.projid = project;
    x.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: FS_IOC_FSSETXATTR reads one `struct fsxattr` from `x`, which
    // lives through the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR as _, &x as *const FsXattr) };
    if rc != 0 {
        return Err(QuotaError::Kernel {
            action: "set the project id (FS_IOC_FSSETXATTR) of",
            dir: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The project id of `dir` and whether it has `PROJINHERIT` (symlinks are
/// not followed).
pub fn project_of(dir: &Path) -> Result<(u32, bool), QuotaError> {
    let f = open_dir_nofollow(dir)?;
    let x = fsxattr(f.as_fd(), dir)?;
    Ok((x.projid, x.xflags & FS_XFLAG_PROJINHERIT != 0))
}

/// Tags `dir` (opened without following symlinks) with `project`; the
/// first half of [`ProjectQuotas::set_limit`], usable where the kernel has
/// no quota support (XFS keeps project ids regardless).
pub fn tag_dir(dir: &Path, project: u32) -> Result<(), QuotaError> {
    let f = open_dir_nofollow(dir)?;
    set_project(f.as_fd(), dir, project)
}

/// Project ids this process handed out, by filesystem (`st_dev`): an id
/// is tagged onto its directory only after the allocation, so until then
/// neither the kernel nor another root's records on the same filesystem
/// show it taken.
static HANDED_OUT: std::sync::Mutex<BTreeMap<u64, BTreeSet<u32>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Returns the project id of `pv` on the filesystem of `root`, allocating
/// one if new (see [`allocate`]): no file on that filesystem may carry it
/// yet (`Q_GETQUOTA` charges it no inode and no byte), so another root on
/// the same filesystem, a retained or archived volume, or a directory
/// tagged by hand never shares it (openebs dynamic-localpv #155).
pub fn project_id(state_dir: &Path, root: &Path, pv: &str) -> Result<u32, QuotaError> {
    let dev = std::fs::metadata(root)
        .map_err(|source| QuotaError::State {
            path: root.to_path_buf(),
            source,
        })?
        .dev();
    allocate(state_dir, pv, dev, |id| carried(root, id))
}

/// The id recorded for `pv` in `state_dir`, else the lowest from
/// [`FIRST_PROJECT_ID`] that no record there holds, this process has not
/// handed out on filesystem `dev`, and `in_use` (files carry it) denies;
/// recorded before it is returned. One allocation at a time in this
/// process, so parallel provisioning never picks the same id twice.
pub fn allocate(
    state_dir: &Path,
    pv: &str,
    dev: u64,
    in_use: impl Fn(u32) -> Result<bool, QuotaError>,
) -> Result<u32, QuotaError> {
    let state = |source| QuotaError::State {
        path: state_dir.to_path_buf(),
        source,
    };
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.entry(dev).or_default();
    std::fs::create_dir_all(state_dir).map_err(state)?;
    let mut used = handed.clone();
    for entry in std::fs::read_dir(state_dir).map_err(state)? {
        let entry = entry.map_err(state)?;
        let id = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(id) = id {
            if entry.file_name() == pv {
                handed.insert(id);
                return Ok(id);
            }
            used.insert(id);
        }
    }
    let mut id = FIRST_PROJECT_ID;
    loop {
        if !used.contains(&id) {
            if !in_use(id)? {
                break;
            }
            tracing::warn!(project = id, "project id carried by files on this filesystem but recorded for no volume here: skipped");
        }
        id = id
            .checked_add(1)
            .ok_or_else(|| state(std::io::Error::other("no free project id left")))?;
    }
    std::fs::write(state_dir.join(pv), id.to_string()).map_err(state)?;
    handed.insert(id);
    Ok(id)
}

/// Whether files on the filesystem of `root` carry project `id` (inodes
/// or bytes charged to it).
fn carried(root: &Path, id: u32) -> Result<bool, QuotaError> {
    let f = open_dir_nofollow(root)?;
    let mut q = block_limit(0);
    match quotactl_project(f.as_fd(), libc::Q_GETQUOTA, id, &mut q) {
        Ok(()) => Ok(q.dqb_curinodes > 0 || q.dqb_curspace > 0),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(source) => Err(QuotaError::Kernel {
            action: "read the project quota (quotactl_fd Q_GETQUOTA) on",
            dir: root.to_path_buf(),
            source,
        }),
    }
}

/// Lets this process hand out `id` on the filesystem of `root` again (its
/// volume's files are gone).
fn forget_handed_out(root: &Path, id: u32) {
    if let Ok(m) = std::fs::metadata(root) {
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ids) = handed.get_mut(&m.dev()) {
            ids.remove(&id);
        }
    }
}

/// The project id recorded for `pv`, if any (never allocates).
pub fn recorded_project_id(state_dir: &Path, pv: &str) -> Result<Option<u32>, QuotaError> {
    match std::fs::read_to_string(state_dir.join(pv)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| QuotaError::State {
            path: state_dir.join(pv),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{s:?} is not a project id"),
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(QuotaError::State {
            path: state_dir.join(pv),
            source,
        }),
    }
}

/// Every `(pv, project id)` recorded in `state_dir`, sorted by PV name;
/// unreadable entries are skipped. An absent directory is no projects.
pub fn recorded_projects(state_dir: &Path) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = std::fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pv = e.file_name().into_string().ok()?;
            let id = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((pv, id))
        })
        .collect();
    out.sort();
    out
}

/// The `/metrics` collector of every quota-enforced volume: on each scrape,
/// `external_storage_volume_used_bytes{persistentvolume}` and
/// `external_storage_volume_capacity_bytes{persistentvolume}` straight from
/// the kernel's project quota (`Q_GETQUOTA` per recorded project id; no
/// `du`, no walk of the volume). Volumes without a recorded project (no
/// `enforceCapacity`), and every volume while the root's filesystem has no
/// project quotas, are not exported.
#[derive(Debug, Clone)]
pub struct UsageCollector {
    root: PathBuf,
    state_dir: PathBuf,
}

/// Name of the used-bytes gauge family.
pub const USED_BYTES_METRIC: &str = "external_storage_volume_used_bytes";
/// Name of the capacity-bytes gauge family (the quota's hard limit).
pub const CAPACITY_BYTES_METRIC: &str = "external_storage_volume_capacity_bytes";

impl UsageCollector {
    /// Volumes under `root` whose project ids are recorded in `state_dir`.
    pub fn new(root: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        UsageCollector {
            root: root.into(),
            state_dir: state_dir.into(),
        }
    }

    /// `(pv, usage)` of every recorded project the kernel answers for.
    pub fn sample(&self) -> Vec<(String, Usage)> {
        if ProjectQuotas::detect(&self.root).is_err() {
            return Vec::new();
        }
        recorded_projects(&self.state_dir)
            .into_iter()
            .filter_map(|(pv, id)| match usage(&self.root, id) {
                Ok(u) => Some((pv, u)),
                Err(e) => {
                    tracing::warn!(pv, project = id, error = %e, "cannot read the volume's quota");
                    None
                }
            })
            .collect()
    }
}

impl prometheus_client::collector::Collector for UsageCollector {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        encode_usage(encoder, &self.sample())
    }
}

/// The usage gauges of volumes in several roots whose set can change (a
/// provisioner whose configuration is reloaded): `sources` is asked at each
/// scrape which roots are in force. One collector for all of them, because
/// each metric family may appear only once on `/metrics`.
pub struct UsageMetrics {
    sources: Box<dyn Fn() -> Vec<UsageCollector> + Send + Sync>,
}

impl UsageMetrics {
    /// Gauges of the roots `sources` names at each scrape.
    pub fn new(sources: impl Fn() -> Vec<UsageCollector> + Send + Sync + 'static) -> Self {
        UsageMetrics {
            sources: Box::new(sources),
        }
    }
}

impl std::fmt::Debug for UsageMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMetrics").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for UsageMetrics {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let samples: Vec<_> = (self.sources)().iter().flat_map(|c| c.sample()).collect();
        encode_usage(encoder, &samples)
    }
}

/// Writes the two gauge families for `samples`.
fn encode_usage(
    mut encoder: prometheus_client::encoding::DescriptorEncoder,
    samples: &[(String, Usage)],
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::metrics::MetricType;
    for (name, help, pick) in [
        (
            USED_BYTES_METRIC,
            "Bytes used by the volume, from its project quota",
            (|u: &Usage| u.used_bytes) as fn(&Usage) -> u64,
        ),
        (
            CAPACITY_BYTES_METRIC,
            "Hard limit of the volume's project quota in bytes",
            |u: &Usage| u.limit_bytes,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (pv, u) in samples {
            let labels = [("persistentvolume", pv.as_str())];
            ConstGauge::new(pick(u)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// Forgets the project id of a deleted PV.
pub fn release_project_id(state_dir: &Path, pv: &str) -> Result<(), QuotaError> {
    match std::fs::remove_file(state_dir.join(pv)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(QuotaError::State {
            path: state_dir.join(pv),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Frees the project id of `pv` once its files are gone (deleted, or an
/// archive swept): clears the id's limit on the filesystem of `root` (best
/// effort, see [`clear_project_limit`]) and forgets the id recorded in
/// `state_dir`. Nothing to do for a PV without a recorded id.
pub fn free_project(state_dir: &Path, root: &Path, pv: &str) -> Result<(), QuotaError> {
    let id = recorded_project_id(state_dir, pv)?;
    if let Some(id) = id {
        clear_project_limit(root, id, pv);
    }
    release_project_id(state_dir, pv)?;
    if let Some(id) = id {
        forget_handed_out(root, id);
    }
    Ok(())
}

/// Removes the quota limit of a deleted volume's project (its files are
/// gone, so its usage is 0), so the id is free of any limit before it is
/// handed out again. Best effort: a failure is logged, the delete goes on
/// (the next owner of the id sets its own limit anyway).
pub fn clear_project_limit(root: &Path, project: u32, pv: &str) {
    match ProjectQuotas::detect(root).and_then(|q| q.clear_limit(root, project)) {
        Ok(()) => tracing::info!(pv, project, "project quota removed"),
        Err(e) => tracing::warn!(pv, project, error = %e, "could not clear the project quota"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(fs: &str, options: &str) -> MountFacts {
        MountFacts {
            mount_point: "/data".into(),
            fs_type: fs.into(),
            options: options.into(),
        }
    }

    #[test]
    fn only_xfs_and_ext4_with_project_accounting_qualify() {
        assert!(check(facts("xfs", "rw,relatime,prjquota")).is_ok());
        assert!(check(facts("ext4", "rw,prjquota")).is_ok());
        let e = check(facts("ext4", "rw,relatime")).unwrap_err();
        assert!(matches!(e, QuotaError::NotEnabled { .. }));
        assert!(e.to_string().contains("remount it with -o prjquota"));
        let e = check(facts("tmpfs", "rw")).unwrap_err();
        assert!(e.to_string().contains("/data is tmpfs"), "{e}");
    }

    #[test]
    fn limits_are_whole_kilobyte_blocks_rounded_up_with_no_soft_limit() {
        let q = block_limit(1 << 30);
        assert_eq!(q.dqb_bhardlimit, 1 << 20);
        assert_eq!(q.dqb_bsoftlimit, 0);
        assert_eq!(q.dqb_valid, libc::QIF_BLIMITS);
        assert_eq!(block_limit(1).dqb_bhardlimit, 1);
        assert_eq!(block_limit(1025).dqb_bhardlimit, 2);
        assert_eq!(
            block_limit(u64::MAX).dqb_bhardlimit,
            u64::MAX.div_ceil(1024)
        );
    }

    #[test]
    fn fsxattr_matches_the_kernel_layout() {
        // The ioctl numbers encode a 28-byte argument.
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!((FS_IOC_FSGETXATTR >> 16) & 0x3fff, 28);
        assert_eq!((FS_IOC_FSSETXATTR >> 16) & 0x3fff, 28);
        assert_eq!(FS_IOC_FSGETXATTR >> 30, 2, "_IOR");
        assert_eq!(FS_IOC_FSSETXATTR >> 30, 1, "_IOW");
        assert_eq!(
            libc::QCMD(libc::Q_SETQUOTA, PRJQUOTA),
            0x8000_0802_u32 as i32
        );
    }

    #[test]
    fn a_symlink_in_place_of_the_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("link")).unwrap();
        let e = tag_dir(&tmp.path().join("link"), 100_001).unwrap_err();
        assert!(matches!(e, QuotaError::Kernel { .. }), "{e}");
        assert!(e.to_string().contains("not following symlinks"), "{e}");
    }

    /// A filesystem id of its own per test (tests share the process's
    /// handed-out set).
    fn dev() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn free(_: u32) -> Result<bool, QuotaError> {
        Ok(false)
    }

    #[test]
    fn project_ids_are_stable_lowest_free_and_released() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("projects");
        let fs = dev();
        assert_eq!(allocate(&d, "pv-a", fs, free).unwrap(), FIRST_PROJECT_ID);
        assert_eq!(
            allocate(&d, "pv-b", fs, free).unwrap(),
            FIRST_PROJECT_ID + 1
        );
        assert_eq!(allocate(&d, "pv-a", fs, free).unwrap(), FIRST_PROJECT_ID);
        release_project_id(&d, "pv-a").unwrap();
        release_project_id(&d, "pv-a").unwrap();
        // Released but still handed out by this process on this filesystem
        // (only free_project, after the files are gone, gives it back).
        assert_eq!(
            allocate(&d, "pv-c", fs, free).unwrap(),
            FIRST_PROJECT_ID + 2
        );
        HANDED_OUT
            .lock()
            .unwrap()
            .get_mut(&fs)
            .unwrap()
            .remove(&FIRST_PROJECT_ID);
        assert_eq!(allocate(&d, "pv-d", fs, free).unwrap(), FIRST_PROJECT_ID);
    }

    #[test]
    fn parallel_allocations_and_two_roots_of_one_filesystem_never_share_an_id() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = dev();
        let roots = [tmp.path().join("a/projects"), tmp.path().join("b/projects")];
        let ids: Vec<u32> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|i| {
                    let d = &roots[i % 2];
                    s.spawn(move || allocate(d, &format!("pv-{i}"), fs, free).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: BTreeSet<u32> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), 32, "{ids:?}");
        // Another filesystem has its own ids.
        let other = tmp.path().join("c/projects");
        assert_eq!(
            allocate(&other, "pv-x", dev(), free).unwrap(),
            FIRST_PROJECT_ID
        );
    }

    #[test]
    fn an_id_carried_by_files_is_never_handed_out() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("projects");
        // Files on the filesystem carry the first two ids (a retained
        // volume of another root, a directory tagged by hand).
        let carried = |id: u32| Ok(id < FIRST_PROJECT_ID + 2);
        assert_eq!(
            allocate(&d, "pv-a", dev(), carried).unwrap(),
            FIRST_PROJECT_ID + 2
        );
        let broken = |_: u32| -> Result<bool, QuotaError> {
            Err(QuotaError::State {
                path: "/x".into(),
                source: std::io::Error::other("no quota"),
            })
        };
        assert!(
            allocate(&d, "pv-b", dev(), broken).is_err(),
            "never a guess"
        );
        assert_eq!(recorded_project_id(&d, "pv-b").unwrap(), None);
    }

    #[test]
    fn recorded_projects_are_listed_and_read_without_allocating() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("projects");
        assert_eq!(recorded_projects(&d), vec![]);
        assert_eq!(recorded_project_id(&d, "pv-a").unwrap(), None);
        allocate(&d, "pv-b", dev(), free).unwrap();
        allocate(&d, "pv-a", dev(), free).unwrap();
        std::fs::write(d.join("junk"), "not a number").unwrap();
        assert_eq!(
            recorded_projects(&d),
            vec![
                ("pv-a".to_string(), FIRST_PROJECT_ID + 1),
                ("pv-b".to_string(), FIRST_PROJECT_ID)
            ]
        );
        assert_eq!(
            recorded_project_id(&d, "pv-a").unwrap(),
            Some(FIRST_PROJECT_ID + 1)
        );
        assert!(recorded_project_id(&d, "junk").is_err());
        assert_eq!(recorded_projects(&d).len(), 2, "nothing was allocated");
    }

    #[test]
    fn the_usage_collector_exports_nothing_where_quotas_are_off() {
        // This machine's filesystems have no project quotas: the families
        // are declared, with no samples (never a made-up number). The
        // values themselves are checked on a quota kernel (tests/capacity.rs
        // in hack/test-quota-vm.sh).
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("projects");
        allocate(&d, "pv-a", dev(), free).unwrap();
        let c = UsageCollector::new(tmp.path(), &d);
        if ProjectQuotas::detect(tmp.path()).is_ok() {
            return;
        }
        assert!(c.sample().is_empty());
        let m = external_storage::Metrics::with_registry(|r| r.register_collector(Box::new(c)));
        let text = m.encode();
        assert!(
            text.contains("# TYPE external_storage_volume_used_bytes gauge"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE external_storage_volume_capacity_bytes gauge"),
            "{text}"
        );
        assert!(!text.contains("persistentvolume=\"pv-a\""), "{text}");
    }

    #[test]
    fn several_roots_share_one_set_of_metric_families() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        let m = UsageMetrics::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec![
                UsageCollector::new(&pa, pa.join("projects")),
                UsageCollector::new(&pb, pb.join("projects")),
            ]
        });
        let m = external_storage::Metrics::with_registry(|r| r.register_collector(Box::new(m)));
        let text = m.encode();
        for family in [USED_BYTES_METRIC, CAPACITY_BYTES_METRIC] {
            let declared = format!("# TYPE {family} gauge");
            assert_eq!(text.matches(&declared).count(), 1, "{text}");
        }
        m.encode();
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the roots in force are asked at every scrape"
        );
    }

    #[test]
    fn this_machines_root_filesystem_is_detected_honestly() {
        // The CI machine's / is ext4 without prjquota: detection must refuse
        // with a message naming the mount, not pretend to enforce.
        let tmp = tempfile::tempdir().unwrap();
        match ProjectQuotas::detect(tmp.path()) {
            Ok(_) => println!("project quotas are enabled here; enforcement is possible"),
            Err(e) => {
                println!("quota enforcement unavailable here: {e}");
                assert!(matches!(
                    e,
                    QuotaError::NotEnabled { .. } | QuotaError::UnsupportedFilesystem { .. }
                ));
            }
        }
    }
}
