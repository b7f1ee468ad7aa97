//! Durable per-volume state on the host, outside every volume: whether a
//! volume may hold a workload's data.
//!
//! The Go provisioner kept "cleaned" in memory and trusted the absence of a
//! PV, so a volume whose PV was deleted by hand (or whose cleaning status
//! went stale) was offered again with the previous tenant's data on it. Here
//! `<state-dir>/<pv-name>` records it:
//!
//! - [`VolumeState::Dirty`] is written *before* a PV is created for the
//!   volume: from then on it may hold data.
//! - [`VolumeState::Cleaned`] is written after a successful cleaning, with
//!   the UID of the PV that was released (empty when no PV existed).
//! - No file: never offered by this instance (a freshly prepared disk).
//!
//! A volume without a PV is offered again only when its state is not
//! `Dirty`; otherwise it is cleaned first. Workloads cannot reach these files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What is known about a volume's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeState {
    /// Never offered by this instance.
    Unknown,
    /// Offered (a PV exists or existed since the last cleaning).
    Dirty,
    /// Cleaned after PV `uid` was released (`""`: no PV existed).
    Cleaned {
        /// UID of the released PV that was cleaned.
        uid: String,
    },
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating) the state directory.
    pub fn open(dir: &Path) -> io::Result<StateDir> {
        std::fs::create_dir_all(dir)?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, pv: &str) -> io::Result<PathBuf> {
        if pv.is_empty() || pv.contains('/') || pv.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{pv:?} is not a PV name"),
            ));
        }
        Ok(self.dir.join(pv))
    }

    /// The state of the volume of PV `pv`.
    pub fn get(&self, pv: &str) -> io::Result<VolumeState> {
        match std::fs::read_to_string(self.file(pv)?) {
            Ok(s) => {
                let s = s.trim();
                Ok(match s.strip_prefix("cleaned ") {
                    Some(uid) => VolumeState::Cleaned {
                        uid: uid.to_string(),
                    },
                    None if s == "cleaned" => VolumeState::Cleaned { uid: String::new() },
                    // Anything else, including a torn write, counts as dirty.
                    None => VolumeState::Dirty,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(VolumeState::Unknown),
            Err(e) => Err(e),
        }
    }

    /// Records `state` durably (write, fsync, rename, fsync the directory).
    pub fn set(&self, pv: &str, state: &VolumeState) -> io::Result<()> {
        let text = match state {
            VolumeState::Unknown => {
                return match std::fs::remove_file(self.file(pv)?) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
            VolumeState::Dirty => "dirty".to_string(),
            VolumeState::Cleaned { uid } if uid.is_empty() => "cleaned".to_string(),
            VolumeState::Cleaned { uid } => format!("cleaned {uid}"),
        };
        let path = self.file(pv)?;
        let tmp = self.dir.join(format!(".{pv}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_garbage_is_dirty() {
        let tmp = tempfile::tempdir().unwrap();
        let s = StateDir::open(&tmp.path().join("state")).unwrap();
        assert_eq!(s.get("local-pv-1").unwrap(), VolumeState::Unknown);
        s.set("local-pv-1", &VolumeState::Dirty).unwrap();
        assert_eq!(s.get("local-pv-1").unwrap(), VolumeState::Dirty);
        let c = VolumeState::Cleaned { uid: "u-1".into() };
        s.set("local-pv-1", &c).unwrap();
        assert_eq!(s.get("local-pv-1").unwrap(), c);
        s.set("local-pv-1", &VolumeState::Cleaned { uid: String::new() })
            .unwrap();
        assert_eq!(
            s.get("local-pv-1").unwrap(),
            VolumeState::Cleaned { uid: String::new() }
        );
        std::fs::write(tmp.path().join("state/local-pv-2"), "cle").unwrap();
        assert_eq!(s.get("local-pv-2").unwrap(), VolumeState::Dirty);
        s.set("local-pv-2", &VolumeState::Unknown).unwrap();
        assert_eq!(s.get("local-pv-2").unwrap(), VolumeState::Unknown);
        assert!(s.get("../etc").is_err());
    }
}
