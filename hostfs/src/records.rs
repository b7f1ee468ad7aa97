//! The ownership records of a root, held in memory.
//!
//! Why: every volume creation checks that its path nests with no recorded,
//! retained or archived volume, and every removal that its tree holds no
//! other recorded volume. Read from disk, that is one file per volume on
//! every claim: quadratic, and at 10,000 volumes most of the provisioner's
//! CPU (issue 16's 10,000-claim run spent its time in `openat`/`read` of
//! record files). Here the records of a root are read once and kept,
//! updated by the writes of this process.
//!
//! One index per root path per process ([`RecordIndex::for_root`]), shared
//! by every `Root` opened on that path (a configuration reload opens a new
//! one while the old may still finish a claim), and its lock is the one
//! that makes "check nesting, then write the record" a single step. A
//! change made by another process (never done by the shipped manifests:
//! one instance per root) is noticed by the record directories' change
//! times, and the index is read again; a change within the same clock tick
//! as one of ours could be missed until the next change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cap_std::fs::Dir;

use crate::op::{io_err, OpError};
use crate::stamp::DirStamp;

/// The records of one record directory: PV name → relative path.
#[derive(Debug, Default)]
pub(crate) struct Records {
    stamp: Option<DirStamp>,
    by_pv: HashMap<String, String>,
}

impl Records {
    /// The records, read again from `dir` under `root` if it changed since
    /// they were read.
    fn refresh(&mut self, root: &Dir, dir: &str) -> Result<(), OpError> {
        let now = DirStamp::of(root, dir).map_err(io_err("stat ownership records", dir))?;
        if self.stamp == Some(now) {
            return Ok(());
        }
        let mut by_pv = HashMap::new();
        for entry in root
            .read_dir(dir)
            .map_err(io_err("list ownership records", dir))?
        {
            let entry = entry.map_err(io_err("list ownership records", dir))?;
            let pv = entry.file_name().to_string_lossy().to_string();
            let rel = root
                .read_to_string(format!("{dir}/{pv}"))
                .map_err(io_err("read ownership record", dir))?;
            by_pv.insert(pv, rel);
        }
        self.by_pv = by_pv;
        self.stamp = Some(now);
        Ok(())
    }

    /// After a write of ours to `dir`: the directory's new stamp is ours,
    /// not a sign of another writer. `change` is applied to the map.
    fn wrote(&mut self, root: &Dir, dir: &str, change: impl FnOnce(&mut HashMap<String, String>)) {
        change(&mut self.by_pv);
        // A failed stat leaves the index to be read again next time.
        self.stamp = DirStamp::of(root, dir).ok();
    }

    /// (PV, relative path) of every record.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_pv
            .iter()
            .map(|(pv, rel)| (pv.as_str(), rel.as_str()))
    }

    /// The recorded path of `pv`, if any.
    #[cfg(test)]
    fn get(&self, pv: &str) -> Option<&str> {
        self.by_pv.get(pv).map(String::as_str)
    }
}

/// The volume records and the retained records of one root.
#[derive(Debug, Default)]
pub(crate) struct RecordIndex {
    /// `<state>/volumes`: the volumes we own.
    pub(crate) volumes: Records,
    /// `<state>/retained`: volumes given up with `onDelete: retain`.
    pub(crate) retained: Records,
}

/// The record directories, relative to the root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dirs {
    /// Where the volume records live.
    pub(crate) volumes: &'static str,
    /// Where the retained records live.
    pub(crate) retained: &'static str,
}

impl RecordIndex {
    /// The index shared by every `Root` of this process on `path` (the
    /// canonical path, so two spellings of one directory share it).
    pub(crate) fn for_root(path: &Path) -> Arc<Mutex<RecordIndex>> {
        static INDEXES: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<RecordIndex>>>>> =
            OnceLock::new();
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut all = INDEXES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.entry(key).or_default().clone()
    }

    /// Both record sets, up to date with the directories.
    pub(crate) fn refresh(&mut self, root: &Dir, dirs: Dirs) -> Result<(), OpError> {
        self.volumes.refresh(root, dirs.volumes)?;
        self.retained.refresh(root, dirs.retained)
    }

    /// Our record of `pv` at `rel` was written.
    pub(crate) fn recorded(&mut self, root: &Dir, dirs: Dirs, pv: &str, rel: &str) {
        self.volumes.wrote(root, dirs.volumes, |m| {
            m.insert(pv.to_string(), rel.to_string());
        });
    }

    /// `pv`'s retained record at `rel` was written.
    pub(crate) fn retained(&mut self, root: &Dir, dirs: Dirs, pv: &str, rel: &str) {
        self.retained.wrote(root, dirs.retained, |m| {
            m.insert(pv.to_string(), rel.to_string());
        });
    }

    /// Our record of `pv` was removed.
    pub(crate) fn removed(&mut self, root: &Dir, dirs: Dirs, pv: &str) {
        self.volumes.wrote(root, dirs.volumes, |m| {
            m.remove(pv);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    const DIRS: Dirs = Dirs {
        volumes: "v",
        retained: "r",
    };

    fn root() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_ambient_dir(t.path(), ambient_authority()).unwrap();
        d.create_dir("v").unwrap();
        d.create_dir("r").unwrap();
        (t, d)
    }

    #[test]
    fn reads_the_records_once_and_follows_our_own_writes() {
        let (_t, d) = root();
        d.write("v/pv-1", "a/b").unwrap();
        let mut ix = RecordIndex::default();
        ix.refresh(&d, DIRS).unwrap();
        assert_eq!(ix.volumes.get("pv-1"), Some("a/b"));

        d.write("v/pv-2", "c").unwrap();
        ix.recorded(&d, DIRS, "pv-2", "c");
        d.remove_file("v/pv-1").unwrap();
        ix.removed(&d, DIRS, "pv-1");
        // Proof that the index, not the disk, answers: a record file's
        // content changed in place (no directory change) is not re-read.
        d.write("v/pv-2", "changed-in-place").unwrap();
        ix.refresh(&d, DIRS).unwrap();
        let mut all: Vec<_> = ix.volumes.iter().collect();
        all.sort();
        assert_eq!(all, vec![("pv-2", "c")]);
    }

    #[test]
    fn a_record_added_by_someone_else_is_seen() {
        let (_t, d) = root();
        let mut ix = RecordIndex::default();
        ix.refresh(&d, DIRS).unwrap();
        assert_eq!(ix.volumes.iter().count(), 0);
        // Another process's write: the directory's stamp changes. Wait for
        // the coarse file-time clock to move on, so the stamp must differ
        // (a barrier on the stamp itself, not a fixed sleep).
        let before = DirStamp::of(&d, "v").unwrap();
        let mut n = 0;
        while DirStamp::of(&d, "v").unwrap() == before {
            d.write(format!("v/other-{n}"), "x").unwrap();
            n += 1;
        }
        d.write("r/kept", "y").unwrap();
        ix.refresh(&d, DIRS).unwrap();
        assert_eq!(ix.volumes.iter().count(), n);
        assert_eq!(ix.retained.get("kept"), Some("y"));
    }

    #[test]
    fn every_root_on_one_path_shares_one_index() {
        let t = tempfile::tempdir().unwrap();
        let a = RecordIndex::for_root(t.path());
        let b = RecordIndex::for_root(&t.path().join("."));
        assert!(Arc::ptr_eq(&a, &b));
        let other = tempfile::tempdir().unwrap();
        assert!(!Arc::ptr_eq(&a, &RecordIndex::for_root(other.path())));
    }
}
