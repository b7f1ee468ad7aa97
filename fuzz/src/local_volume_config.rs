//! local-volume's configuration (the ConfigMap's YAML): any document is
//! either refused naming a key or validated; never a panic.

use local_volume_provisioner::config::Config;

/// One input; panics if an invariant is broken.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return;
    };
    if let Ok(config) = Config::from_value(value) {
        for class in config.classes.values() {
            assert!(class.host_dir.is_absolute(), "{:?}", class.host_dir);
            assert!(class.mount_dir.is_absolute(), "{:?}", class.mount_dir);
        }
    }
}

/// Configs in the shape of deploy/local-volume's ConfigMap.
pub fn seeds() -> Vec<Vec<u8>> {
    crate::lines(&[
        "storageClassMap:\n  fast-disks:\n    hostDir: /mnt/fast-disks\n    mountDir: /mnt/fast-disks\n",
        "storageClassMap:\n  block:\n    hostDir: /dev/disk/by-id\n    volumeMode: Block\n    blockCleanerCommand: [\"/scripts/quick_reset.sh\"]\n",
        "useNodeNameOnly: true\nminResyncPeriod: 5m\n",
    ])
}

/// Keys of the config and YAML structure.
pub const TOKENS: &[&str] = &[
    "storageClassMap:",
    "hostDir:",
    "mountDir:",
    "volumeMode:",
    "fsType:",
    "namePattern:",
    "blockCleanerCommand:",
    "useNodeNameOnly:",
    "minResyncPeriod:",
    "\n  ",
    "\n    ",
    ": ",
    "Block",
    "Filesystem",
    "/",
    "..",
    "relative/dir",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "- ",
];
