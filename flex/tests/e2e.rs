//! End-to-end: the real `flex-provisioner` binary against kube-testserver,
//! calling the example driver (`examples/example-driver.sh`) and small
//! failing drivers written into temporary directories. Every distinct
//! failure of a driver call is asserted through its Warning event.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/flex";
const DRIVER_NAME: &str = "example.com/dir";
const EXE: &str = env!("CARGO_BIN_EXE_flex-provisioner");

fn example_driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/example-driver.sh")
}

fn write_driver(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

struct Env {
    ts: TestServer,
    client: Client,
    tmp: tempfile::TempDir,
    provisioner: Binary,
}

impl Env {
    /// A test server and the binary running `driver` (from `make_driver`,
    /// given the temp dir) with `extra` flags.
    async fn start(make_driver: impl FnOnce(&Path) -> PathBuf, extra: &[&str]) -> Env {
        let ts = TestServer::start().await.expect("start kube-testserver");
        let client = ts.client().await;
        let tmp = tempfile::tempdir().unwrap();
        let driver = make_driver(tmp.path());
        let mut args = vec![
            "--driver",
            driver.to_str().unwrap(),
            "--driver-name",
            DRIVER_NAME,
            "--retry-interval-start",
            "200ms",
            "--retry-interval-max",
            "1s",
        ];
        args.extend_from_slice(extra);
        let provisioner = Binary::spawn(
            EXE,
            &ts.kubeconfig_as(PROVISIONER_USER).unwrap(),
            &args,
            tmp.path(),
        );
        Env {
            ts,
            client,
            tmp,
            provisioner,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `(op, request)` of every driver call the recording wrapper saw.
    fn calls(&self) -> Vec<(String, BTreeMap<String, String>)> {
        std::fs::read_to_string(self.path("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (op, json) = l.split_once(' ').expect("op json");
                (
                    op.to_string(),
                    serde_json::from_str(json).expect("request is JSON"),
                )
            })
            .collect()
    }
}

/// The example driver behind a wrapper that records each call.
fn recording_example_driver(dir: &Path) -> PathBuf {
    write_driver(
        dir,
        "driver",
        &format!(
            "printf '%s %s\\n' \"$1\" \"$2\" >> {}\nexec {} \"$@\"",
            dir.join("calls.log").display(),
            example_driver().display()
        ),
    )
}

fn flex_options(pv: &PersistentVolume) -> BTreeMap<String, String> {
    let flex = pv.spec.as_ref().unwrap().flex_volume.as_ref().unwrap();
    assert_eq!(flex.driver, DRIVER_NAME);
    flex.options.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_and_delete_through_the_example_driver_with_leader_election() {
    // Leader election stays on (the default): the binary elects itself
    // against the test server before it provisions anything.
    let env = Env::start(recording_example_driver, &[]).await;
    let base = env.path("base");
    let base_s = base.to_str().unwrap();
    create_class(
        &env.client,
        "dir",
        PROVISIONER,
        "Delete",
        false,
        json!({"baseDir": base_s}),
    )
    .await;
    create_class(
        &env.client,
        "loop",
        PROVISIONER,
        "Delete",
        false,
        json!({"baseDir": base_s, "type": "loop"}),
    )
    .await;
    create_claim(&env.client, "files", "dir", "1Gi", json!({})).await;
    create_claim(&env.client, "image", "loop", "64Mi", json!({})).await;

    let pv = wait_bound(&env.client, "files").await;
    let name = pv.metadata.name.clone().unwrap();
    let opts = flex_options(&pv);
    let dir = base.join(&name);
    assert_eq!(
        opts,
        BTreeMap::from([
            ("path".to_string(), dir.display().to_string()),
            ("type".to_string(), "directory".to_string()),
        ])
    );
    assert!(dir.is_dir());
    std::fs::write(dir.join("data"), b"payload").unwrap();
    let ann = pv.metadata.annotations.clone().unwrap();
    assert_eq!(ann["pv.kubernetes.io/provisioned-by"], PROVISIONER);
    assert_eq!(ann["kubernetes.io/createdby"], "flex-dynamic-provisioner");
    assert_eq!(
        pv.spec.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        "1Gi"
    );

    let ipv = wait_bound(&env.client, "image").await;
    let iname = ipv.metadata.name.clone().unwrap();
    let img = base.join(format!("{iname}.img"));
    assert_eq!(flex_options(&ipv)["path"], img.display().to_string());
    assert_eq!(flex_options(&ipv)["type"], "loop");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);

    // What the driver was asked: the seed's keys and the claim's.
    let calls = env.calls();
    let (_, req) = calls
        .iter()
        .find(|(op, r)| op == "provision" && r["kubernetes.io/pvOrVolumeName"] == name)
        .expect("a provision call for the PV");
    assert_eq!(req["baseDir"], base_s);
    assert_eq!(req["requestBytes"], (1u64 << 30).to_string());
    assert_eq!(req["requestGiB"], "1");
    assert_eq!(req["kubernetes.io/storageRequest"], "1Gi");
    assert_eq!(req["kubernetes.io/pvc.namespace"], "default");
    assert_eq!(req["kubernetes.io/pvc.name"], "files");
    assert_eq!(req["kubernetes.io/accessModes"], "ReadWriteOnce");
    assert_eq!(req["kubernetes.io/storageClass"], "dir");
    assert_eq!(format!("pvc-{}", req["kubernetes.io/pvc.uid"]), name);

    delete_claim(&env.client, "files").await;
    delete_claim(&env.client, "image").await;
    wait_pv_gone(&env.client, &name).await;
    wait_pv_gone(&env.client, &iname).await;
    assert!(!dir.exists(), "the directory and its data are gone");
    assert!(!img.exists(), "the image is gone");
    assert_eq!(
        std::fs::read_dir(base.join(".flex-example"))
            .unwrap()
            .count(),
        0,
        "no ownership records left"
    );
    // delete got exactly the PV's options plus the PV name
    let calls = env.calls();
    let deletes: Vec<_> = calls.iter().filter(|(op, _)| op == "delete").collect();
    let mut expected = opts.clone();
    expected.insert("kubernetes.io/pvOrVolumeName".into(), name.clone());
    assert!(
        deletes.iter().any(|(_, r)| *r == expected),
        "delete called with {expected:?}; calls: {deletes:?}"
    );
    assert!(
        env.provisioner.log().contains("directory"),
        "driver stderr is logged"
    );
    // Every API call the binary made is allowed by deploy/flex's RBAC.
    assert_rbac_allows(&env.ts, PROVISIONER_USER, &deploy_dir("flex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_data() {
    let env = Env::start(recording_example_driver, &["--leader-elect=false"]).await;
    let base = env.path("base");
    create_class(
        &env.client,
        "keep",
        PROVISIONER,
        "Retain",
        false,
        json!({"baseDir": base.to_str().unwrap()}),
    )
    .await;
    create_claim(&env.client, "kept", "keep", "1Gi", json!({})).await;
    let pv = wait_bound(&env.client, "kept").await;
    let name = pv.metadata.name.clone().unwrap();
    let dir = PathBuf::from(&flex_options(&pv)["path"]);
    std::fs::write(dir.join("data"), b"keep me").unwrap();
    delete_claim(&env.client, "kept").await;
    wait_pv_phase(&env.client, &name, "Released").await;
    // A claim provisioned afterwards proves the provisioner saw the
    // Released PV and moved on.
    create_claim(&env.client, "after", "keep", "1Gi", json!({})).await;
    wait_bound(&env.client, "after").await;
    assert_eq!(std::fs::read(dir.join("data")).unwrap(), b"keep me");
    assert!(pvs(&env.client).get_opt(&name).await.unwrap().is_some());
    assert!(env.calls().iter().all(|(op, _)| op != "delete"));
}

/// A driver whose behaviour is chosen by the class parameter `mode`.
fn failing_driver(dir: &Path) -> PathBuf {
    let d = dir.display();
    write_driver(
        dir,
        "driver",
        &format!(
            r#"
pv=$(printf '%s' "$2" | sed -n 's/.*"kubernetes.io\/pvOrVolumeName":"\([^"]*\)".*/\1/p')
echo "$1 $pv" >> {d}/calls.txt
case "$1 $2" in
  provision*'"mode":"timeout"'*) sleep 60 & echo $! > {d}/timeout.pid; echo 'still working' >&2; wait ;;
  provision*'"mode":"badjson"'*) echo 'this is not json' ;;
  provision*'"mode":"exit"'*) echo 'backend exploded' >&2; exit 3 ;;
  provision*'"mode":"notsupported"'*) echo '{{"status":"Not supported","message":"this backend cannot provision"}}' ;;
  provision*'"mode":"huge"'*) yes '{{"status":"Success"}}' ;;
  provision*'"mode":"failure"'*) echo '{{"status":"Failure","message":"pool is full"}}'; exit 1 ;;
  provision*'"mode":"nodelete"'*) echo '{{"status":"Success","options":{{"id":"v1"}}}}' ;;
  delete*) echo '{{"status":"Not supported"}}' ;;
esac
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_driver_failure_gives_its_own_warning() {
    let env = Env::start(
        failing_driver,
        &[
            "--leader-elect=false",
            "--driver-timeout",
            "1s",
            "--worker-threads",
            "8",
        ],
    )
    .await;
    let cases = [
        ("timeout", "driver `provision` timed out after 1s and was killed"),
        ("badjson", "driver `provision` printed an invalid reply: stdout is not one JSON object"),
        ("exit", "driver `provision` exited with status 3 without a JSON reply"),
        ("notsupported", "infeasible: driver does not support `provision` (replied \"Not supported\"): this backend cannot provision"),
        ("huge", "driver `provision` wrote more than 65536 bytes to stdout and was killed"),
        ("failure", "driver `provision` replied Failure (exit status 1): pool is full"),
    ];
    for (mode, _) in cases {
        create_class(
            &env.client,
            mode,
            PROVISIONER,
            "Delete",
            false,
            json!({"mode": mode}),
        )
        .await;
        create_claim(&env.client, mode, mode, "1Gi", json!({})).await;
    }
    let mut notes = Vec::new();
    for (mode, needle) in cases {
        let note = wait_warning(&env.client, mode, needle).await;
        for (other, other_needle) in cases {
            if other != mode {
                assert!(!note.contains(other_needle), "{mode}: {note}");
            }
        }
        notes.push(note);
    }
    // stderr reaches the event (and the log)
    assert!(
        notes[2].ends_with("; driver stderr: backend exploded"),
        "{}",
        notes[2]
    );
    assert!(
        notes[0].contains("driver stderr: still working"),
        "{}",
        notes[0]
    );
    assert!(env.provisioner.log().contains("backend exploded"));
    // the timed-out driver's background child was killed with its group
    let pid: i32 = std::fs::read_to_string(env.path("timeout.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        &format!("timed-out driver's child {pid} to be gone"),
        || async move {
            let gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(s) => s
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z'),
            };
            gone.then_some(())
        },
    )
    .await;
    // retries use the same PV name, so drivers can be idempotent
    let failure_uid = claims(&env.client)
        .get("failure")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let want = format!("provision pvc-{failure_uid}");
    wait_for("a retried provision call with the same PV name", || async {
        let calls = std::fs::read_to_string(env.path("calls.txt")).unwrap_or_default();
        (calls.lines().filter(|l| *l == want).count() >= 2).then_some(())
    })
    .await;
    assert_eq!(pv_names(&env.client).await, Vec::<String>::new());

    // A delete the driver does not support: Warning on the PV, PV kept.
    create_class(
        &env.client,
        "nodelete",
        PROVISIONER,
        "Delete",
        false,
        json!({"mode": "nodelete"}),
    )
    .await;
    create_claim(&env.client, "nodelete", "nodelete", "1Gi", json!({})).await;
    let pv = wait_bound(&env.client, "nodelete").await;
    assert_eq!(flex_options(&pv)["id"], "v1");
    let name = pv.metadata.name.unwrap();
    delete_claim(&env.client, "nodelete").await;
    let note = wait_warning(&env.client, &name, "driver does not support `delete`").await;
    assert!(note.contains("was not removed"), "{note}");
    assert!(pvs(&env.client).get_opt(&name).await.unwrap().is_some());
}

#[test]
fn a_missing_or_unusable_driver_fails_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let missing = tmp.path().join("missing");
    for (driver, needle) in [
        (missing.as_path(), "does not exist"),
        (plain.as_path(), "is not executable"),
        (tmp.path(), "is not a regular file"),
    ] {
        let out = Command::new(EXE)
            .args([
                "--driver",
                driver.to_str().unwrap(),
                "--driver-name",
                DRIVER_NAME,
            ])
            .args([
                "--kubeconfig",
                "/nonexistent/kubeconfig",
                "--metrics-address",
                "",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("the driver cannot be used"), "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(stderr.contains(&driver.display().to_string()), "{stderr}");
    }
}
