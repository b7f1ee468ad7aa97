//! Archives of deleted volumes (`onDelete: archive`): the volume directory
//! is renamed to `archived-<pv>-<UTC time>` at the top of its root, and an
//! archive record is written in the root's state directory.
//!
//! Why at the top and named by the PV: a volume's path may be nested
//! (`pathPattern: {{ .PVC.Namespace }}/{{ .PVC.Name }}`); an archive name
//! built from that path would either contain `/` (csi-driver-nfs #522: the
//! rename fails) or collide with a new claim of the same name. The PV name
//! is unique, the rename stays on one filesystem (it is a `renameat` inside
//! the root), and a new claim's directory cannot land in an archive: the
//! roots refuse any path that nests with one.
//!
//! Why records: the retention sweep ([`Archives::expired`],
//! [`Archives::remove`]) deletes only directories that have a record made
//! here, never a directory that merely looks like an archive (an operator's
//! copy, a tenant's path): a directory named `archived-…` without a record
//! is never touched. The record is written before the rename, so a crash
//! between the two leaves a record of a missing directory (removed by the
//! next sweep, harmlessly), never an archive nobody knows of.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, Permissions, PermissionsExt};

use crate::op::{io_err, OpError};

/// The prefix of every archive name.
pub const PREFIX: &str = "archived-";

/// One archive and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// The archive directory's name, at the top of the root.
    pub name: String,
    /// The PV whose volume it was.
    pub pv: String,
    /// The volume's path relative to the root before it was archived.
    pub from: String,
    /// When it was archived (seconds since the epoch).
    pub archived_at: u64,
    /// When the sweep may remove it (seconds since the epoch); `None`: never.
    pub expires_at: Option<u64>,
}

impl ArchiveRecord {
    /// How long the archive is kept, in words for an event.
    pub fn kept(&self) -> &'static str {
        match self.expires_at {
            Some(_) => "until its archiveRetention has passed",
            None => "until removed by hand",
        }
    }

    fn render(&self) -> String {
        let mut s = format!(
            "pv={}\nfrom={}\narchived={}\n",
            self.pv, self.from, self.archived_at
        );
        if let Some(e) = self.expires_at {
            s.push_str(&format!("expires={e}\n"));
        }
        s
    }

    fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut rec = ArchiveRecord {
            name: name.to_string(),
            pv: String::new(),
            from: String::new(),
            archived_at: 0,
            expires_at: None,
        };
        for line in text.lines() {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {line:?} is not key=value"))?;
            let secs = || {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}={v:?} is not a time"))
            };
            match k {
                "pv" => rec.pv = v.to_string(),
                "from" => rec.from = v.to_string(),
                "archived" => rec.archived_at = secs()?,
                "expires" => rec.expires_at = Some(secs()?),
                _ => return Err(format!("unknown key {k:?}")),
            }
        }
        if rec.pv.is_empty() || rec.from.is_empty() {
            return Err("pv or from missing".into());
        }
        Ok(rec)
    }
}

/// The name of the archive of `pv` made at `at`:
/// `archived-<pv>-<YYYYMMDD>T<HHMMSS>Z`.
pub fn archive_name(pv: &str, at: SystemTime) -> String {
    let time: chrono::DateTime<chrono::Utc> = at.into();
    format!("{PREFIX}{pv}-{}", time.format("%Y%m%dT%H%M%SZ"))
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Whether `name` can be an archive name (one segment, our prefix).
fn is_archive_name(name: &str) -> bool {
    name.starts_with(PREFIX) && !name.contains('/') && name.len() > PREFIX.len()
}

/// The archives of one root: their directories at its top, their records
/// in `<state dir>/archives/`.
pub struct Archives {
    root: Dir,
    records: String,
}

impl Archives {
    /// The archives of the root open at `root`, with records under
    /// `<state_dir>/archives` (created if missing, mode of the state dir).
    pub fn open(root: &Dir, state_dir: &str) -> Result<Self, OpError> {
        let records = format!("{state_dir}/archives");
        root.create_dir_all(&records)
            .map_err(io_err("create archive records", &records))?;
        let root = root.try_clone().map_err(io_err("open root", "."))?;
        Ok(Archives { root, records })
    }

    /// Moves the directory `leaf` of `parent` (the volume at `from` of
    /// `pv`) to a new archive; the record is written first. Returns the
    /// archive's record.
    pub fn move_in(
        &self,
        parent: &Dir,
        leaf: &str,
        from: &str,
        pv: &str,
        now: SystemTime,
        retention: Option<Duration>,
    ) -> Result<ArchiveRecord, OpError> {
        let name = archive_name(pv, now);
        let rec = ArchiveRecord {
            name: name.clone(),
            pv: pv.to_string(),
            from: from.to_string(),
            archived_at: seconds(now),
            expires_at: retention.map(|r| seconds(now) + r.as_secs()),
        };
        if self.root.symlink_metadata(&name).is_ok() {
            return Err(io_err("archive", &name)(io::Error::from(
                io::ErrorKind::AlreadyExists,
            )));
        }
        let record = format!("{}/{name}", self.records);
        self.root
            .write(&record, rec.render())
            .map_err(io_err("write archive record", &name))?;
        parent
            .rename(leaf, &self.root, &name)
            .map_err(io_err("archive", from))?;
        // Nobody but root reaches an archive (a volume is often 0777).
        let archive = self
            .root
            .open_dir_nofollow(&name)
            .map_err(io_err("open archive", &name))?;
        archive
            .set_permissions(".", Permissions::from_mode(0o700))
            .map_err(io_err("chmod archive", &name))?;
        Ok(rec)
    }

    /// Every archive record. Records that cannot be read are returned as
    /// errors beside the good ones (and their archives are never removed).
    pub fn list(&self) -> Result<(Vec<ArchiveRecord>, Vec<String>), OpError> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for entry in self
            .root
            .read_dir(&self.records)
            .map_err(io_err("list archive records", &self.records))?
        {
            let entry = entry.map_err(io_err("list archive records", &self.records))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !is_archive_name(&name) {
                bad.push(format!("{name}: not an archive name"));
                continue;
            }
            let text = self
                .root
                .read_to_string(format!("{}/{name}", self.records))
                .map_err(io_err("read archive record", &name))?;
            match ArchiveRecord::parse(&name, &text) {
                Ok(r) => good.push(r),
                Err(why) => bad.push(format!("{name}: {why}")),
            }
        }
        good.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((good, bad))
    }

    /// The archives whose retention has passed at `now`.
    pub fn expired(&self, now: SystemTime) -> Result<Vec<ArchiveRecord>, OpError> {
        let now = seconds(now);
        Ok(self
            .list()?
            .0
            .into_iter()
            .filter(|r| r.expires_at.is_some_and(|e| e <= now))
            .collect())
    }

    /// The names of every recorded archive (for the roots' nesting check).
    pub fn names(&self) -> Result<Vec<String>, OpError> {
        Ok(self.list()?.0.into_iter().map(|r| r.name).collect())
    }

    /// Removes an archive made here (its tree, without following symlinks,
    /// with bounded descriptors), then its record. A missing directory is
    /// not an error.
    pub fn remove(&self, rec: &ArchiveRecord) -> Result<(), OpError> {
        if !is_archive_name(&rec.name) {
            return Err(io_err("remove archive", &rec.name)(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        let record = format!("{}/{}", self.records, rec.name);
        // Only an archive with our record is ever removed.
        self.root
            .symlink_metadata(&record)
            .map_err(io_err("read archive record", &rec.name))?;
        crate::tree::remove_dir_all_at(self.root.as_fd(), &rec.name)
            .map_err(|e| io_err("remove archive", &rec.name)(io::Error::other(e)))?;
        self.root
            .remove_file(&record)
            .map_err(io_err("remove archive record", &rec.name))
    }
}

/// Why a retention sweep stopped (the next one tries again).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Listing, removing an archive or its record failed.
    #[error("archive sweep: {0}")]
    Archive(#[from] OpError),
    /// Freeing the archive's quota project id failed.
    #[error("archive sweep: {0}")]
    Quota(#[from] crate::quota::QuotaError),
}

/// The retention sweep: removes the archives whose retention has passed at
/// `now` and frees their quota project ids (kept while the archive's files
/// carried them) in `projects` on the filesystem of `root`. Returns the
/// names of the removed archives; stops at the first failure (the next
/// sweep tries again).
pub fn sweep(
    archives: &Archives,
    root: &std::path::Path,
    projects: &std::path::Path,
    now: SystemTime,
) -> Result<Vec<String>, SweepError> {
    let mut removed = Vec::new();
    for rec in archives.expired(now)? {
        archives.remove(&rec)?;
        crate::quota::free_project(projects, root, &rec.pv)?;
        tracing::info!(
            archive = rec.name,
            pv = rec.pv,
            "archive past its retention removed"
        );
        removed.push(rec.name);
    }
    Ok(removed)
}

/// Runs `sweep` (a provisioner's [`sweep`] of its roots) at once and then
/// every `interval` (at least a second), on a thread of its own: the sweep
/// is blocking file-system work. A failed sweep is logged and tried again
/// at the next interval.
pub fn spawn_sweeper<F>(interval: Duration, sweep: F) -> std::thread::JoinHandle<()>
where
    F: Fn() -> Result<Vec<String>, SweepError> + Send + 'static,
{
    let interval = interval.max(Duration::from_secs(1));
    std::thread::Builder::new()
        .name("archive-sweep".into())
        .spawn(move || loop {
            if let Err(e) = sweep() {
                tracing::warn!(error = %e, "archive sweep failed; trying again later");
            }
            std::thread::sleep(interval);
        })
        .expect("spawn the archive sweep thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn setup() -> (tempfile::TempDir, Dir, Archives) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let archives = Archives::open(&dir, ".state").unwrap();
        (tmp, dir, archives)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn names_are_flat_and_carry_the_pv_and_the_utc_time() {
        assert_eq!(
            archive_name("pvc-1", at(1_700_000_000)),
            "archived-pvc-1-20231114T221320Z"
        );
        assert!(is_archive_name("archived-pvc-1-20231114T221320Z"));
        for bad in ["archived-", "pvc-1", "archived-a/b", "x-archived-a"] {
            assert!(!is_archive_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_nested_volume_is_archived_at_the_top_and_expires_after_its_retention() {
        let (tmp, dir, archives) = setup();
        std::fs::create_dir_all(tmp.path().join("ns/claim")).unwrap();
        std::fs::write(tmp.path().join("ns/claim/data"), "keep me").unwrap();
        let parent = dir.open_dir("ns").unwrap();
        let rec = archives
            .move_in(
                &parent,
                "claim",
                "ns/claim",
                "pvc-1",
                at(1000),
                Some(Duration::from_secs(60)),
            )
            .unwrap();
        assert_eq!(rec.expires_at, Some(1060));
        assert!(!tmp.path().join("ns/claim").exists());
        let mode = std::fs::metadata(tmp.path().join(&rec.name)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o700
        );
        let moved = tmp.path().join(&rec.name).join("data");
        assert_eq!(std::fs::read_to_string(moved).unwrap(), "keep me");
        assert_eq!(archives.list().unwrap().0, vec![rec.clone()]);
        assert_eq!(archives.names().unwrap(), vec![rec.name.clone()]);

        assert!(archives.expired(at(1059)).unwrap().is_empty());
        let due = archives.expired(at(1060)).unwrap();
        assert_eq!(due, vec![rec.clone()]);
        archives.remove(&due[0]).unwrap();
        assert!(!tmp.path().join(&rec.name).exists());
        assert!(archives.list().unwrap().0.is_empty());
    }

    #[test]
    fn an_archive_without_a_record_is_never_removed_and_bad_records_are_reported() {
        let (tmp, dir, archives) = setup();
        // Looks like an archive, was not made here.
        std::fs::create_dir(tmp.path().join("archived-pvc-x-20200101T000000Z")).unwrap();
        let forged = ArchiveRecord {
            name: "archived-pvc-x-20200101T000000Z".into(),
            pv: "pvc-x".into(),
            from: "x".into(),
            archived_at: 0,
            expires_at: Some(0),
        };
        assert!(archives.remove(&forged).is_err());
        assert!(tmp.path().join(&forged.name).exists());
        assert!(archives.expired(at(u64::MAX / 2)).unwrap().is_empty());

        dir.write(
            ".state/archives/archived-pvc-y-1",
            "pv=pvc-y\nfrom=y\narchived=soon\n",
        )
        .unwrap();
        dir.write(".state/archives/junk", "pv=a\nfrom=b\narchived=1\n")
            .unwrap();
        let (good, bad) = archives.list().unwrap();
        assert!(good.is_empty());
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("is not a time")), "{bad:?}");
        assert!(
            bad.iter().any(|b| b.contains("not an archive name")),
            "{bad:?}"
        );
    }

    #[test]
    fn an_archive_is_never_written_over() {
        let (tmp, dir, archives) = setup();
        std::fs::create_dir(tmp.path().join("v")).unwrap();
        std::fs::create_dir(tmp.path().join(archive_name("pvc-1", at(5)))).unwrap();
        let e = archives
            .move_in(&dir, "v", "v", "pvc-1", at(5), None)
            .unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::AlreadyExists);
        assert!(tmp.path().join("v").exists());
        assert!(archives.list().unwrap().0.is_empty());
    }

    #[test]
    fn a_retention_free_archive_never_expires() {
        let (tmp, dir, archives) = setup();
        std::fs::create_dir(tmp.path().join("v")).unwrap();
        archives
            .move_in(&dir, "v", "v", "pvc-1", at(5), None)
            .unwrap();
        assert!(archives.expired(at(u64::MAX / 2)).unwrap().is_empty());
    }
}
