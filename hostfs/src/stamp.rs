//! When a directory last changed: what the in-memory record caches (this
//! crate's ownership records, nfs's export records) compare to notice a
//! change they did not make.
//!
//! A directory's mtime and ctime move when an entry is added, removed or
//! renamed into it; its inode tells a directory replaced under the same
//! name. The kernel's file times come from a coarse clock (a few
//! milliseconds), so two changes within one tick leave one stamp: a cache
//! that took the stamp after its own write may miss another process's
//! write in the same tick, until the next change.

use std::io;

use cap_std::fs::{Dir, MetadataExt};

/// A directory's inode, mtime and ctime at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirStamp {
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    /// The stamp of `dir` (relative to `root`, not followed if a symlink).
    pub fn of(root: &Dir, dir: &str) -> io::Result<DirStamp> {
        let m = root.symlink_metadata(dir)?;
        Ok(DirStamp {
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    #[test]
    fn an_entry_added_or_a_directory_replaced_changes_the_stamp() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_ambient_dir(t.path(), ambient_authority()).unwrap();
        d.create_dir("r").unwrap();
        let first = DirStamp::of(&d, "r").unwrap();
        assert_eq!(DirStamp::of(&d, "r").unwrap(), first, "nothing changed");
        // Entries until the coarse clock moves on: the stamp must follow.
        let mut n = 0;
        while DirStamp::of(&d, "r").unwrap() == first {
            d.write(format!("r/e-{n}"), "x").unwrap();
            n += 1;
        }
        // A new directory under the same name has another inode.
        let before = DirStamp::of(&d, "r").unwrap();
        d.rename("r", &d, "old").unwrap();
        d.create_dir("r").unwrap();
        assert_ne!(DirStamp::of(&d, "r").unwrap().ino, before.ino);
        assert!(DirStamp::of(&d, "missing").is_err());
    }
}
