//! The example driver (`examples/example-driver.sh`) on its own: the
//! guarantees the README promises for it (idempotent provision, deleting only
//! what it made) and its node side (mount/unmount), which the provisioner
//! end-to-end tests do not reach.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/example-driver.sh")
}

/// Runs the driver; returns (exit code, reply).
fn call(args: &[&str]) -> (i32, Value) {
    let out = Command::new(driver())
        .args(args)
        .env_remove("FLEX_EXAMPLE_BASE_DIR")
        .output()
        .unwrap();
    let reply = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reply is JSON ({e}): {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), reply)
}

/// A node-side call (init, mount, unmount) as the kubelet makes it: the
/// kubelet parses stdout and stderr together as the reply (FlexVolume's
/// driver call reads combined output), so the driver must print the JSON
/// reply and nothing else on either. A real kubelet showed the mount
/// failing with "invalid character 'e'" when the driver logged to stderr.
fn node_call(args: &[&str]) -> (i32, Value) {
    let out = Command::new(driver())
        .args(args)
        .env_remove("FLEX_EXAMPLE_BASE_DIR")
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "node-side `{}` wrote to stderr, which the kubelet reads as part of its reply: {:?}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    call(args)
}

fn provision(base: &Path, pv: &str, extra: Value) -> (i32, Value) {
    let mut req = json!({"baseDir": base.to_str().unwrap(), "kubernetes.io/pvOrVolumeName": pv, "requestBytes": "16777216"});
    req.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    call(&["provision", &req.to_string()])
}

fn delete(pv: &str, options: &Value) -> (i32, Value) {
    let mut req = options.clone();
    req["kubernetes.io/pvOrVolumeName"] = json!(pv);
    call(&["delete", &req.to_string()])
}

#[test]
fn provision_is_idempotent_and_delete_removes_only_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let (code, r) = provision(base, "pvc-a", json!({}));
    assert_eq!((code, r["status"].as_str()), (0, Some("Success")), "{r}");
    let opts = r["options"].clone();
    assert_eq!(
        opts,
        json!({"path": base.join("pvc-a").to_str().unwrap(), "type": "directory"})
    );
    std::fs::write(base.join("pvc-a/data"), b"x").unwrap();
    // a retry returns the same volume and keeps its data
    let (_, again) = provision(base, "pvc-a", json!({}));
    assert_eq!(again["options"], opts);
    assert!(base.join("pvc-a/data").exists());
    // the same PV name asked as another type is refused
    let (code, r) = provision(base, "pvc-a", json!({"type": "loop"}));
    assert_eq!((code, r["status"].as_str()), (1, Some("Failure")), "{r}");
    // a path that exists but was not made by the driver is not taken over
    std::fs::create_dir(base.join("pvc-manual")).unwrap();
    let (code, r) = provision(base, "pvc-manual", json!({}));
    assert_eq!(code, 1);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("not made by this driver"),
        "{r}"
    );
    // bad parameters name the parameter and the allowed values
    let (_, r) = provision(base, "pvc-b", json!({"type": "nfs"}));
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("parameter type: allowed directory, loop"),
        "{r}"
    );
    // a value the script cannot read is an error, never read as "absent"
    let (code, r) = call(&[
        "provision",
        &json!({"baseDir": "/tmp/a\"b", "kubernetes.io/pvOrVolumeName": "pvc-q"}).to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(
        r["message"].as_str().unwrap().contains("value of baseDir"),
        "{r}"
    );
    // delete with options that do not match the record deletes nothing
    let wrong = json!({"path": base.join("pvc-manual").to_str().unwrap(), "type": "directory"});
    let (code, r) = delete("pvc-a", &wrong);
    assert_eq!(code, 1, "{r}");
    assert!(base.join("pvc-manual").exists() && base.join("pvc-a/data").exists());
    // no record: nothing of ours, success, nothing touched
    let (code, _) = delete("pvc-manual", &wrong);
    assert_eq!(code, 0);
    assert!(base.join("pvc-manual").exists());
    // the real delete, twice (idempotent)
    assert_eq!(delete("pvc-a", &opts).0, 0);
    assert!(!base.join("pvc-a").exists());
    assert_eq!(delete("pvc-a", &opts).0, 0);
    // unknown commands are "Not supported"
    let (_, r) = call(&["attach", "{}"]);
    assert_eq!(r["status"], "Not supported");
}

#[test]
fn loop_images_have_the_requested_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, r) = provision(tmp.path(), "pvc-l", json!({"type": "loop"}));
    assert_eq!(code, 0, "{r}");
    let img = tmp.path().join("pvc-l.img");
    assert_eq!(r["options"]["path"], img.to_str().unwrap());
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 16 << 20);
    let (_, r) = provision(
        tmp.path(),
        "pvc-z",
        json!({"type": "loop", "requestBytes": "0"}),
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("needs a storage request"),
        "{r}"
    );
}

fn can_mount() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let ok = Command::new("mount")
        .arg("--bind")
        .args([&a, &b])
        .status()
        .map_err(|e| format!("mount: {e}"))?
        .success();
    if !ok {
        return Err("bind mounts are not permitted here".into());
    }
    let _ = Command::new("umount").arg(&b).status();
    Ok(())
}

/// Lazily unmounts a path when dropped, so a failing assertion does not leave
/// a mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn the_node_side_mounts_and_unmounts() {
    if let Err(why) = can_mount() {
        eprintln!("skipping the mount checks: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (_, r) = provision(&base, "pvc-d", json!({}));
    let mut opts = r["options"].clone();
    opts["kubernetes.io/readwrite"] = json!("rw");
    let mnt = tmp.path().join("mnt");
    let m = mnt.to_str().unwrap();
    let _guard = Unmount(mnt.clone());
    let (code, r) = node_call(&["mount", m, &opts.to_string()]);
    assert_eq!(code, 0, "{r}");
    std::fs::write(mnt.join("f"), b"through the mount").unwrap();
    assert_eq!(
        std::fs::read(base.join("pvc-d/f")).unwrap(),
        b"through the mount"
    );
    assert_eq!(node_call(&["unmount", m]).0, 0);
    assert!(!mnt.join("f").exists(), "unmounted");
    assert_eq!(node_call(&["unmount", m]).0, 0, "unmount is idempotent");

    // an ext4 image, mounted read-only when the kubelet asks for ro
    if Command::new("mkfs.ext4").arg("-V").output().is_err() {
        eprintln!("skipping the loop mount check: mkfs.ext4 is not installed");
        return;
    }
    let (code, r) = provision(&base, "pvc-e", json!({"type": "loop", "fsType": "ext4"}));
    assert_eq!(code, 0, "{r}");
    let mut opts = r["options"].clone();
    opts["kubernetes.io/readwrite"] = json!("ro");
    let (code, r) = call(&["mount", m, &opts.to_string()]);
    assert_eq!(code, 0, "{r}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(m))
        .expect("mounted");
    assert!(line.contains(" ext4 ro"), "{line}");
    assert_eq!(call(&["unmount", m]).0, 0);
    // an unformatted image cannot be mounted: a clear Failure
    let (_, r) = provision(&base, "pvc-f", json!({"type": "loop"}));
    let (code, r) = call(&["mount", m, &r["options"].to_string()]);
    assert_eq!(code, 1);
    assert!(
        r["message"].as_str().unwrap().contains("fsType: ext4"),
        "{r}"
    );
}

#[test]
fn node_side_calls_print_only_their_json_reply() {
    let (code, r) = node_call(&["init"]);
    assert_eq!(
        (code, &r["capabilities"]["attach"]),
        (0, &json!(false)),
        "{r}"
    );
    // a failure's cause is in the reply's message, not on stderr
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let opts = json!({"path": tmp.path().join("missing").to_str().unwrap(), "type": "loop"});
    let (code, r) = node_call(&["mount", mnt.to_str().unwrap(), &opts.to_string()]);
    assert_eq!((code, r["status"].as_str()), (1, Some("Failure")), "{r}");
    assert!(!r["message"].as_str().unwrap_or("").is_empty(), "{r}");
}
