//! Capacity enforcement on a real filesystem: a loop-mounted ext4 with the
//! project-quota feature. Kernels without quota support (like our CI's:
//! CONFIG_QUOTA is off) refuse the mount; the test then prints why and checks
//! only that the provisioner's detection refuses the filesystem it can get.

use std::path::Path;
use std::process::Command;

use hostpath_provisioner::quota::{ProjectQuotas, QuotaError};

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Unmounts on drop.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn project_quota_on_a_loop_mounted_ext4() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("disk.img");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let img = image.to_str().unwrap();
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    run("mkfs.ext4", &["-q", "-F", "-O", "quota,project", img]).expect("mkfs.ext4 works here");
    let mounted = run(
        "mount",
        &["-o", "loop,prjquota", img, mnt.to_str().unwrap()],
    );
    if let Err(why) = mounted {
        println!(
            "skipping quota enforcement: this kernel cannot mount ext4 with project quotas ({why})"
        );
        // The same image without quota options mounts; detection must refuse it.
        run("mkfs.ext4", &["-q", "-F", img]).unwrap();
        run("mount", &["-o", "loop", img, mnt.to_str().unwrap()]).expect("plain ext4 loop mount");
        let _guard = Mount(&mnt);
        match ProjectQuotas::detect(&mnt) {
            Err(QuotaError::NotEnabled { fs_type, .. }) => assert_eq!(fs_type, "ext4"),
            other => panic!("detection must refuse ext4 without prjquota, got {other:?}"),
        }
        return;
    }
    let _guard = Mount(&mnt);
    let quotas = ProjectQuotas::detect(&mnt).expect("prjquota mount is detected");
    let dir = mnt.join("vol");
    std::fs::create_dir(&dir).unwrap();
    quotas
        .set_limit(&dir, 100_001, 8 << 20)
        .expect("xfs_quota sets the limit");
    let too_much = run(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}/f", dir.display()),
            "bs=1M",
            "count=16",
            "conv=fsync",
        ],
    );
    assert!(
        too_much.is_err(),
        "writing 16 MiB into an 8 MiB quota must fail"
    );
}
