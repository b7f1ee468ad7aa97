//! The seccomp profile the NFS container runs under, shipped inside the
//! binary, and `install-seccomp-profile`, which writes it where the kubelet
//! reads `Localhost` profiles.
//!
//! Why a profile of our own: Ganesha's VFS FSAL identifies every object it
//! serves by a kernel file handle from `name_to_handle_at(2)`. containerd's
//! default profile (`RuntimeDefault`) up to v1.6.21 and v1.7.2 allows that
//! syscall only to containers holding `CAP_SYS_ADMIN`, so under it every
//! `AddExport` fails with `EPERM`. Unconfined or `CAP_SYS_ADMIN` would
//! fix that by giving up far more than the one syscall; the profile in
//! `seccomp/nfs-ganesha.json` is instead the runtime default as containerd
//! applies it to this container's capabilities (`DAC_READ_SEARCH` brings
//! `open_by_handle_at`; no `SYS_ADMIN`: `clone` without namespace flags,
//! `clone3` answered `ENOSYS`), plus `name_to_handle_at` (which later
//! containerd releases allow to everyone), with `ptrace` left out and
//! `socket` refused for `AF_ALG` and `AF_VSOCK` as current releases do.
//! docs/security.md has the reasoning; the unit tests below pin what it
//! allows and refuses.
//!
//! The kubelet reads a `Localhost` profile from its own disk
//! (`<kubelet root>/seccomp/<localhostProfile>`), so the StatefulSet's init
//! container runs [`install`] into a hostPath of that directory. The write
//! never follows a symlink it did not expect: the profile's directory is
//! opened with `O_NOFOLLOW`, the file is written to a fresh temporary name
//! (`O_EXCL`) and renamed over the old one, so the kubelet never reads half
//! a profile and a planted link cannot redirect the write elsewhere on the
//! host.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

/// The profile (OCI runtime-spec `LinuxSeccomp` JSON, what containerd and
/// CRI-O read for `type: Localhost`).
pub const PROFILE: &str = include_str!("../seccomp/nfs-ganesha.json");

/// The subdirectory of the kubelet's seccomp directory the profile goes to.
pub const PROFILE_DIR: &str = "external-storage";

/// The profile's file name in [`PROFILE_DIR`].
pub const PROFILE_FILE: &str = "nfs-ganesha.json";

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The profile was written (new, or replacing a different one).
    Written(PathBuf),
    /// The file already held exactly this profile; nothing was written.
    Unchanged(PathBuf),
}

/// Why the profile could not be installed. Retrying helps only once the
/// directory is fixed (mounted, writable, not a symlink).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The given seccomp directory cannot be opened as a directory.
    #[error("opening the seccomp directory {path}: {source}")]
    OpenRoot {
        /// The directory given with `--dir`.
        path: String,
        /// Missing, not a directory, no permission.
        #[source]
        source: io::Error,
    },
    /// `<dir>/external-storage` is a symlink or not a directory.
    #[error(
        "{path} is not a plain directory (a symlink or a file?): refusing to write through it"
    )]
    NotADirectory {
        /// The refused path.
        path: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path it was applied to.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Writes [`PROFILE`] to `dir/external-storage/nfs-ganesha.json`
/// (directory mode 0755, file mode 0644), atomically and idempotently.
///
/// `dir` itself is the operator's (`/var/lib/kubelet/seccomp` mounted into
/// the init container) and may be reached through symlinks; below it,
/// nothing is followed: a symlinked `external-storage` is refused, and a
/// symlink in place of the file is replaced, never written through.
pub fn install(dir: &Path) -> Result<Installed, InstallError> {
    let root = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| InstallError::OpenRoot {
        path: dir.display().to_string(),
        source: e.into(),
    })?;
    let sub_path = dir.join(PROFILE_DIR);
    let io = |op: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |e: Errno| InstallError::Io {
            op,
            path,
            source: e.into(),
        }
    };
    match nix::sys::stat::mkdirat(&root, PROFILE_DIR, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(io("mkdir", &sub_path)(e)),
    }
    let sub = match nix::fcntl::openat(
        &root,
        PROFILE_DIR,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(InstallError::NotADirectory {
                path: sub_path.display().to_string(),
            })
        }
        Err(e) => return Err(io("open", &sub_path)(e)),
    };
    let target = sub_path.join(PROFILE_FILE);
    if current(&sub)?.as_deref() == Some(PROFILE.as_bytes()) {
        return Ok(Installed::Unchanged(target));
    }
    let tmp = format!(".{PROFILE_FILE}.{}.tmp", std::process::id());
    let tmp_path = sub_path.join(&tmp);
    // A leftover of an earlier run that died with this pid (a container's
    // pid is often the same every time).
    let _ = nix::unistd::unlinkat(&sub, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    let fd = nix::fcntl::openat(
        &sub,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(io("create", &tmp_path))?;
    let written = write_all(fd, PROFILE.as_bytes()).map_err(|source| InstallError::Io {
        op: "write",
        path: tmp_path.display().to_string(),
        source,
    });
    let renamed = written.and_then(|()| {
        nix::fcntl::renameat(&sub, tmp.as_str(), &sub, PROFILE_FILE).map_err(io("rename", &target))
    });
    if let Err(e) = renamed {
        let _ = nix::unistd::unlinkat(&sub, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    nix::unistd::fsync(sub.as_fd()).map_err(io("fsync", &sub_path))?;
    Ok(Installed::Written(target))
}

/// The installed profile's bytes, if the name is a regular file.
fn current(sub: &OwnedFd) -> Result<Option<Vec<u8>>, InstallError> {
    match nix::sys::stat::fstatat(sub, PROFILE_FILE, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(InstallError::Io {
                op: "stat",
                path: PROFILE_FILE.to_string(),
                source: e.into(),
            })
        }
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() => return Ok(None),
        Ok(_) => {}
    }
    let fd = match nix::fcntl::openat(
        sub,
        PROFILE_FILE,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // Replaced between the stat and the open: rewrite it.
        Err(_) => return Ok(None),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut File::from(fd), &mut bytes).map_err(|source| InstallError::Io {
        op: "read",
        path: PROFILE_FILE.to_string(),
        source,
    })?;
    Ok(Some(bytes))
}

fn write_all(fd: OwnedFd, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::from(fd);
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn profile() -> Value {
        serde_json::from_str(PROFILE).expect("the profile is JSON")
    }

    /// The rules naming `name` and their actions.
    fn rules(name: &str) -> Vec<Value> {
        profile()["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    fn allowed_unconditionally(name: &str) -> bool {
        rules(name)
            .iter()
            .any(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
    }

    #[test]
    fn profile_denies_by_default_on_the_default_architectures() {
        let p = profile();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            p["architectures"],
            serde_json::json!([
                "SCMP_ARCH_X86_64",
                "SCMP_ARCH_X86",
                "SCMP_ARCH_X32",
                "SCMP_ARCH_AARCH64",
                "SCMP_ARCH_ARM"
            ])
        );
        for r in p["syscalls"].as_array().unwrap() {
            let action = r["action"].as_str().unwrap();
            assert!(
                ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"].contains(&action),
                "{r}"
            );
            assert!(!r["names"].as_array().unwrap().is_empty(), "{r}");
        }
    }

    #[test]
    fn profile_allows_what_ganesha_needs() {
        for name in [
            "name_to_handle_at",
            "open_by_handle_at",
            "openat",
            "setfsuid",
            "setfsgid",
            "read",
            "write",
            "bind",
            "execve",
        ] {
            assert!(allowed_unconditionally(name), "{name}");
        }
    }

    #[test]
    fn profile_refuses_what_the_container_has_no_business_doing() {
        for name in [
            "mount",
            "umount2",
            "ptrace",
            "bpf",
            "kexec_load",
            "unshare",
            "setns",
            "init_module",
            "reboot",
            "io_uring_setup",
            "perf_event_open",
            "chroot",
        ] {
            assert!(
                rules(name).is_empty(),
                "{name} must fall to the default (EPERM)"
            );
        }
    }

    #[test]
    fn profile_keeps_the_defaults_argument_rules() {
        let clone = rules("clone");
        assert_eq!(clone.len(), 1, "{clone:?}");
        let arg = &clone[0]["args"][0];
        assert_eq!(arg["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(arg["index"], 0);
        // CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP must be clear.
        assert_eq!(arg["value"], 0x7E02_0000u64);
        assert_eq!(arg["valueTwo"], 0);
        let clone3 = rules("clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(
            clone3[0]["errnoRet"], 38,
            "ENOSYS, so libc falls back to clone"
        );
        assert!(rules("personality").iter().all(|r| r.get("args").is_some()));
        // socket: every family but AF_ALG (38) and AF_VSOCK (40).
        let socket = rules("socket");
        assert!(!socket.is_empty() && socket.iter().all(|r| r.get("args").is_some()));
        let admits = |family: u64| {
            socket.iter().any(|r| {
                let a = &r["args"][0];
                let v = a["value"].as_u64().unwrap();
                match a["op"].as_str().unwrap() {
                    "SCMP_CMP_LT" => family < v,
                    "SCMP_CMP_EQ" => family == v,
                    "SCMP_CMP_GT" => family > v,
                    op => panic!("unexpected {op}"),
                }
            })
        };
        for family in [1, 2, 10, 16, 39, 41] {
            assert!(admits(family), "family {family}");
        }
        for family in [38, 40] {
            assert!(!admits(family), "family {family}");
        }
    }

    fn read_installed(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(PROFILE_DIR).join(PROFILE_FILE)).unwrap()
    }

    #[test]
    fn install_writes_the_profile_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join(PROFILE_DIR).join(PROFILE_FILE);
        assert_eq!(
            install(tmp.path()).unwrap(),
            Installed::Written(target.clone())
        );
        assert_eq!(read_installed(tmp.path()), PROFILE);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            install(tmp.path()).unwrap(),
            Installed::Unchanged(target.clone())
        );
        // An outdated profile is replaced; no temporary file is left.
        std::fs::write(&target, "{}").unwrap();
        assert_eq!(
            install(tmp.path()).unwrap(),
            Installed::Written(target.clone())
        );
        assert_eq!(read_installed(tmp.path()), PROFILE);
        let names: Vec<_> = std::fs::read_dir(tmp.path().join(PROFILE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [PROFILE_FILE]);
    }

    #[test]
    fn install_refuses_a_symlinked_profile_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let seccomp = tmp.path().join("seccomp");
        std::fs::create_dir(&seccomp).unwrap();
        std::os::unix::fs::symlink(&elsewhere, seccomp.join(PROFILE_DIR)).unwrap();
        let e = install(&seccomp).unwrap_err();
        assert!(matches!(e, InstallError::NotADirectory { .. }), "{e}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn install_replaces_a_symlinked_file_without_writing_through_it() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let seccomp = tmp.path().join("seccomp");
        std::fs::create_dir_all(seccomp.join(PROFILE_DIR)).unwrap();
        let link = seccomp.join(PROFILE_DIR).join(PROFILE_FILE);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(install(&seccomp).unwrap(), Installed::Written(_)));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(read_installed(&seccomp), PROFILE);
    }

    #[test]
    fn install_reports_a_missing_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let e = install(&tmp.path().join("absent")).unwrap_err();
        assert!(matches!(e, InstallError::OpenRoot { .. }), "{e}");
    }
}
