//! The volume roots of this node, as the configuration in force says: one
//! [`Root`] per configured path (opened when the configuration is taken, at
//! start or on a reload), which of them a claim of a class may use, which
//! one a new volume goes to, and which one an existing PV lives in.
//!
//! The choice between several roots is [`choose`], a pure function: the
//! root with the most room, where room is free space minus what is promised
//! to the quota'd volumes already there (`capacity::available`, the same
//! figure the capacity publisher reports); ties go to the root listed
//! first. local-path-provisioner picks at random, which fills one disk while
//! another stays empty.
//!
//! A PV is found in its root by the root recorded on it (or, for PVs made
//! before roots were recorded, the root its path lies under). A PV whose
//! root is no longer configured is never deleted: that root is not open,
//! so its ownership records cannot be checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use external_storage::PersistentVolume;

use crate::config::{Config, NoStorage};
use hostfs::root::{Root, STATE_DIR};

/// Where the project id of each quota-enforced PV of `root` is recorded.
pub fn projects_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join("projects")
}

/// Why a configured root cannot be opened, or a PV has no open root here.
/// Each message ends with what was (not) done and what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A root the configuration gives this node cannot be opened.
    #[error("cannot open volume root {}: {source}", path.display())]
    Open {
        /// The configured root.
        path: PathBuf,
        /// Why it does not open.
        #[source]
        source: hostfs::root::RootError,
    },
    /// A configured root resolves (through symlinks) to the host's own
    /// directories.
    #[error("volume root {}: {why}", path.display())]
    Resolved {
        /// The configured root.
        path: PathBuf,
        /// What it resolves to and why that is refused.
        why: String,
    },
    /// The root recorded on the PV is not in this node's configuration.
    #[error(
        "its root {recorded} is not in this node's configuration (roots in force: {in_force}): \
         it was removed from the nodePathMap, so its ownership records cannot be checked; \
         nothing was deleted: put the path back into the configuration, or remove the data \
         and the PV by hand"
    )]
    RootNotConfigured {
        /// The root the PV names.
        recorded: String,
        /// This node's roots, comma-separated (`none` for none).
        in_force: String,
    },
    /// The PV (made before roots were recorded) lies under no configured root.
    #[error(
        "{} lies under none of this node's roots ({in_force}): if its root was removed from \
         the configuration, nothing was deleted: put the path back, or remove the data and \
         the PV by hand",
        path.display()
    )]
    UnderNoRoot {
        /// The PV's path.
        path: PathBuf,
        /// This node's roots, comma-separated (`none` for none).
        in_force: String,
    },
    /// The PV's path is its root itself, or not below it.
    #[error("{} does not lie under its root {}", path.display(), root.display())]
    NotBelowRoot {
        /// The PV's path.
        path: PathBuf,
        /// The root it names.
        root: PathBuf,
    },
}

/// A configuration and the roots it gives this node, opened.
pub struct Layout {
    /// The configuration in force.
    pub config: Config,
    roots: BTreeMap<PathBuf, Arc<Root>>,
}

impl Layout {
    /// Opens every root `config` gives `node`, reusing those `previous`
    /// already has open. Fails, naming the path, if one cannot be opened
    /// (then nothing changes: the caller keeps the previous layout).
    pub fn open(
        config: Config,
        node: &str,
        previous: Option<&Layout>,
    ) -> Result<Layout, LayoutError> {
        let mut roots = BTreeMap::new();
        for path in config.roots_of(node) {
            let root = match previous.and_then(|p| p.roots.get(&path)) {
                Some(r) => r.clone(),
                None => {
                    // Where it really lands: a symlink to /etc is refused.
                    external_storage::fields::resolved_volume_dir(&path).map_err(|e| {
                        LayoutError::Resolved {
                            path: path.clone(),
                            why: e.to_string(),
                        }
                    })?;
                    Arc::new(Root::open(&path).map_err(|source| LayoutError::Open {
                        path: path.clone(),
                        source,
                    })?)
                }
            };
            roots.insert(path, root);
        }
        Ok(Layout { config, roots })
    }

    /// One already opened root on every node (no configuration file).
    pub fn single(root: Root) -> Layout {
        let path = root.path().to_path_buf();
        Layout {
            config: Config::single_root(&path),
            roots: BTreeMap::from([(path, Arc::new(root))]),
        }
    }

    /// Every open root.
    pub fn roots(&self) -> impl Iterator<Item = &Arc<Root>> {
        self.roots.values()
    }

    /// The roots a claim of `class` may use on `node`, in configured order;
    /// [`NoStorage`] names the entry that gives it none.
    pub fn candidates(&self, class: &str, node: &str) -> Result<Vec<Arc<Root>>, NoStorage> {
        let paths = self.config.map_for(class).paths_of(node)?;
        Ok(paths
            .iter()
            .filter_map(|p| self.roots.get(p).cloned())
            .collect())
    }

    /// The open root of a PV and its directory relative to that root.
    /// `recorded` is the root the PV names (its root annotation), if any.
    pub fn find(
        &self,
        host_path: &Path,
        recorded: Option<&str>,
    ) -> Result<(Arc<Root>, String), LayoutError> {
        let in_force = || {
            let list: Vec<_> = self.roots.keys().map(|p| p.display().to_string()).collect();
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        };
        let root = match recorded {
            Some(r) => {
                self.roots
                    .get(Path::new(r))
                    .ok_or_else(|| LayoutError::RootNotConfigured {
                        recorded: r.to_string(),
                        in_force: in_force(),
                    })?
            }
            None => self
                .roots
                .iter()
                .find(|(p, _)| host_path.starts_with(p))
                .map(|(_, r)| r)
                .ok_or_else(|| LayoutError::UnderNoRoot {
                    path: host_path.to_path_buf(),
                    in_force: in_force(),
                })?,
        };
        let rel = host_path
            .strip_prefix(root.path())
            .ok()
            .and_then(|r| r.to_str())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| LayoutError::NotBelowRoot {
                path: host_path.to_path_buf(),
                root: root.path().to_path_buf(),
            })?;
        Ok((root.clone(), rel.to_string()))
    }
}

/// The layout in force, replaced as a whole on a reload; a provision or
/// delete works with the one it started with.
pub struct Roots {
    current: RwLock<Arc<Layout>>,
}

impl Roots {
    /// Starts with `layout`.
    pub fn new(layout: Layout) -> Self {
        Roots {
            current: RwLock::new(Arc::new(layout)),
        }
    }

    /// The layout in force.
    pub fn current(&self) -> Arc<Layout> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `layout` in force.
    pub fn replace(&self, layout: Layout) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(layout);
    }
}

/// The root a PV names (its root annotation's value), if any.
pub fn recorded_root<'a>(pv: &'a PersistentVolume, annotation: &str) -> Option<&'a str> {
    pv.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
        .map(String::as_str)
}

/// Which of several roots a new volume goes to, given each one's room in
/// bytes (`None`: it could not be read). The most room wins; ties go to
/// the first; a root whose room is unknown is taken only when no room is
/// known. `None` only for no roots.
pub fn choose(rooms: &[Option<u64>]) -> Option<usize> {
    if rooms.is_empty() {
        return None;
    }
    let mut best: Option<(usize, u64)> = None;
    for (i, room) in rooms.iter().enumerate() {
        if let Some(r) = *room {
            if best.is_none_or(|(_, b)| r > b) {
                best = Some((i, r));
            }
        }
    }
    Some(best.map_or(0, |(i, _)| i))
}

/// The room of `root`: free bytes minus the unused limits of its quota'd
/// volumes (what `capacity` publishes), or `None` if it cannot be read.
pub fn room(root: &Path) -> Option<u64> {
    let free = match crate::capacity::free_bytes(root) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(root = %root.display(), error = %e, "cannot read the free space of a root");
            return None;
        }
    };
    let usage: Vec<_> = hostfs::quota::UsageCollector::new(root, projects_dir(root))
        .sample()
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    Some(crate::capacity::available(free, &usage))
}

/// The root among `candidates` with the most room (see [`choose`]).
pub fn pick(candidates: &[Arc<Root>]) -> Option<Arc<Root>> {
    let rooms: Vec<_> = candidates.iter().map(|r| room(r.path())).collect();
    let i = choose(&rooms)?;
    if candidates.len() > 1 {
        tracing::info!(root = %candidates[i].path().display(), ?rooms, "chose the root with the most room");
    }
    Some(candidates[i].clone())
}

/// What a class can still get on a node: the most room among the roots the
/// layout gives it there (a new volume goes to that root), 0 when it has
/// none. `room` reads one root (see [`room`]).
pub fn class_room(
    layout: &Layout,
    class: &str,
    node: &str,
    room: impl Fn(&Path) -> Option<u64>,
) -> u64 {
    (layout.candidates(class, node).ok().into_iter().flatten())
        .filter_map(|r| room(r.path()))
        .max()
        .unwrap_or(0)
}

/// Per-class room from the configuration in force, for the capacity
/// publisher: a node without storage for a class publishes 0 for it, so the
/// scheduler does not send that class's claims there.
pub struct ClassRooms {
    /// The roots in force.
    pub roots: Arc<Roots>,
    /// This node.
    pub node: String,
}

impl std::fmt::Debug for ClassRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassRooms")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl crate::capacity::ClassRoom for ClassRooms {
    fn room(&self, class: &str) -> u64 {
        class_room(&self.roots.current(), class, &self.node, room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_with_the_most_room_wins_ties_go_to_the_first() {
        const G: u64 = 1 << 30;
        for (rooms, want) in [
            (vec![], None),
            (vec![Some(0)], Some(0)),
            (vec![None], Some(0)),
            (vec![Some(G), Some(2 * G)], Some(1)),
            (vec![Some(2 * G), Some(G)], Some(0)),
            (vec![Some(G), Some(G)], Some(0)),
            (vec![Some(G), Some(3 * G), Some(3 * G)], Some(1)),
            (vec![None, Some(0)], Some(1)),
            (vec![None, None], Some(0)),
            (vec![Some(5), None, Some(7)], Some(2)),
        ] {
            assert_eq!(choose(&rooms), want, "{rooms:?}");
        }
    }

    #[test]
    fn promised_quota_room_counts_against_a_root() {
        // The figure choose() compares is capacity's: free minus promised.
        use hostfs::quota::Usage;
        let promised = Usage {
            used_bytes: 1 << 30,
            limit_bytes: 4 << 30,
        };
        assert_eq!(crate::capacity::available(10 << 30, &[promised]), 7 << 30);
    }

    fn layout(text: &str, node: &str) -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let text = text.replace("$T", tmp.path().to_str().unwrap());
        let layout = Layout::open(Config::parse(&text).unwrap(), node, None).unwrap();
        (tmp, layout)
    }

    #[test]
    fn pvs_are_found_in_their_root_and_never_in_a_removed_one() {
        let (tmp, l) = layout(
            "nodePathMap:\n- node: n1\n  paths: [$T/a, $T/b]\n- node: n2\n  paths: [$T/c]\n",
            "n1",
        );
        let t = tmp.path();
        assert_eq!(l.roots().count(), 2, "only n1's roots are opened");
        let (root, rel) = l.find(&t.join("b/ns/x"), None).unwrap();
        assert_eq!((root.path(), rel.as_str()), (t.join("b").as_path(), "ns/x"));
        let b = t.join("b").display().to_string();
        let (root, _) = l.find(&t.join("b/ns/x"), Some(&b)).unwrap();
        assert_eq!(root.path(), t.join("b"));
        let e = l.find(&t.join("c/x"), None).err().unwrap();
        assert!(matches!(e, LayoutError::UnderNoRoot { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("lies under none of this node's roots"), "{e}");
        let c = t.join("c").display().to_string();
        let e = l.find(&t.join("c/x"), Some(&c)).err().unwrap();
        assert!(matches!(e, LayoutError::RootNotConfigured { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("removed from the nodePathMap") && e.contains("nothing was deleted"),
            "{e}"
        );
        // A recorded root the path does not lie under, or the root itself.
        assert!(matches!(
            l.find(&t.join("a/x"), Some(&b)),
            Err(LayoutError::NotBelowRoot { .. })
        ));
        assert!(matches!(
            l.find(&t.join("b"), None),
            Err(LayoutError::NotBelowRoot { .. })
        ));
    }

    #[test]
    fn a_class_has_the_room_of_its_roomiest_root_and_none_without_storage() {
        let (tmp, l) = layout(
            "nodePathMap:\n- node: n1\n  paths: [$T/a, $T/b]\nstorageClassConfigs:\n  none:\n    nodePathMap:\n    - node: n1\n      paths: []\n",
            "n1",
        );
        let b = tmp.path().join("b");
        let fake = |p: &Path| Some(if p == b { 7 } else { 3 });
        assert_eq!(class_room(&l, "any", "n1", fake), 7);
        assert_eq!(class_room(&l, "none", "n1", fake), 0);
        assert_eq!(class_room(&l, "any", "n2", fake), 0, "n2 is not listed");
        assert_eq!(class_room(&l, "any", "n1", |_| None), 0);
    }

    #[test]
    fn candidates_follow_the_class_and_an_empty_entry_is_no_storage() {
        let (_tmp, l) = layout(
            "nodePathMap:\n- node: n1\n  paths: [$T/a, $T/b]\nstorageClassConfigs:\n  one:\n    nodePathMap:\n    - node: n1\n      paths: [$T/b]\n  none:\n    nodePathMap:\n    - node: n1\n      paths: []\n",
            "n1",
        );
        assert_eq!(l.candidates("any", "n1").unwrap().len(), 2);
        let one = l.candidates("one", "n1").unwrap();
        assert!(one.len() == 1 && one[0].path().ends_with("b"));
        let e = l.candidates("none", "n1").err().unwrap().0;
        assert!(e.contains("storageClassConfigs.none.nodePathMap[0]"), "{e}");
    }
}
