//! The deploy manifests against the code they configure: the driver
//! ConfigMap in `deploy/flex/02-driver.yaml` must carry the example driver
//! verbatim, and the Deployment must call it with flags the binary accepts.
//!
//! To regenerate the ConfigMap after editing the example driver:
//! `FLEX_UPDATE_MANIFESTS=1 cargo test -p flex-provisioner --test manifests`.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const HEADER: &str = "\
# The driver the provisioner runs, mounted at /opt/flex-driver/driver.
# This is flex/examples/example-driver.sh verbatim (a test in
# flex/tests/manifests.rs keeps the two identical). To plug in your own
# driver, replace `data.driver` (or point --driver at a hostPath or a file in
# your own image) and set --driver-name to your FlexVolume driver's name.
apiVersion: v1
kind: ConfigMap
metadata:
  name: flex-driver
  namespace: flex-provisioner
data:
  driver: |
";

fn render(script: &str) -> String {
    let mut out = HEADER.to_string();
    for line in script.split_inclusive('\n') {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str("    ");
            out.push_str(line);
        }
    }
    out
}

#[test]
fn the_driver_configmap_is_the_example_driver() {
    let script = std::fs::read_to_string(repo().join("flex/examples/example-driver.sh")).unwrap();
    let path = repo().join("deploy/flex/02-driver.yaml");
    let want = render(&script);
    if std::env::var_os("FLEX_UPDATE_MANIFESTS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "{} is stale: run FLEX_UPDATE_MANIFESTS=1 cargo test -p flex-provisioner --test manifests",
        path.display()
    );
    // and YAML reads it back byte for byte
    let v: serde_json::Value = serde_yaml::from_str(&have).unwrap();
    assert_eq!(v["data"]["driver"].as_str().unwrap(), script);
}

#[test]
fn the_deployment_flags_are_accepted_by_the_binary() {
    let text = std::fs::read_to_string(repo().join("deploy/flex/03-deployment.yaml")).unwrap();
    let d: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--driver=/opt/flex-driver/driver"));
    let mode = &d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"];
    assert_eq!(mode.as_u64(), Some(0o555), "the driver must be executable");
    // --help exits 0 only if every flag parses; use the real flags with --help
    // appended, which clap validates up to the help request.
    e2e_support::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_flex-provisioner"))
            .args(&args)
            .arg("--help"),
    );
}
