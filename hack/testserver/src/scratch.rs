//! The server's scratch directory (its kubeconfigs), named after the owning
//! process so that directories of processes that ended without dropping
//! their server can be found and removed.
//!
//! Why: tests keep one server in a `static` for a whole test binary, and
//! statics are never dropped, so every such run used to leave a
//! `kube-testserver-*` directory in the temporary directory. Each new server
//! now removes the directories of processes that no longer exist; it never
//! touches a directory whose process is alive, nor any name it did not make.

use std::path::{Path, PathBuf};

const PREFIX: &str = "kube-testserver-";

/// Creates `<parent>/kube-testserver-<pid>-<uuid>` after removing the
/// directories left in `parent` by processes that are gone.
pub fn create_in(parent: &Path) -> std::io::Result<PathBuf> {
    sweep(parent, |pid| Path::new(&format!("/proc/{pid}")).exists());
    let dir = parent.join(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The process id in a scratch directory's name, if it is one of ours.
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, id) = rest.split_once('-')?;
    uuid::Uuid::parse_str(id).ok()?;
    pid.parse().ok()
}

/// Removes every scratch directory in `parent` whose owner is not alive.
/// Best effort: a directory that cannot be read or removed is left.
fn sweep(parent: &Path, alive: impl Fn(u32) -> bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner) else {
            continue;
        };
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && !alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(owner(&format!("{PREFIX}42-{id}")), Some(42));
        assert_eq!(owner(&format!("{PREFIX}{id}")), None, "old names");
        assert_eq!(owner(&format!("{PREFIX}42-not-a-uuid")), None);
        assert_eq!(owner(&format!("other-42-{id}")), None);
    }

    #[test]
    fn only_directories_of_dead_processes_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let id = || uuid::Uuid::new_v4();
        let dead = parent.path().join(format!("{PREFIX}7-{}", id()));
        let live = parent.path().join(format!("{PREFIX}8-{}", id()));
        let foreign = parent.path().join(format!("{PREFIX}{}", id()));
        let file = parent.path().join(format!("{PREFIX}7-{}", id()));
        for d in [&dead, &live, &foreign] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("kubeconfig"), "x").unwrap();
        }
        std::fs::write(&file, "not a directory").unwrap();
        sweep(parent.path(), |pid| pid == 8);
        assert!(!dead.exists());
        assert!(live.join("kubeconfig").exists());
        assert!(foreign.join("kubeconfig").exists());
        assert!(file.exists());
    }

    #[test]
    fn a_new_directory_names_this_process_and_survives_its_own_sweep() {
        let parent = tempfile::tempdir().unwrap();
        let first = create_in(parent.path()).unwrap();
        let second = create_in(parent.path()).unwrap();
        assert_eq!(
            owner(first.file_name().unwrap().to_str().unwrap()),
            Some(std::process::id())
        );
        assert!(first.is_dir() && second.is_dir() && first != second);
    }
}
