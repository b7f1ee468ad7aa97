//! The provisioner's configuration (`--config`), in two stages: [`RawConfig`]
//! is exactly what the YAML says (unknown keys are errors), [`Config`] is
//! the validated result every other module uses.
//!
//! Two layouts are read, so the Go provisioner's ConfigMaps carry over
//! unchanged: a single YAML file with the keys at the top level, or a
//! directory (a ConfigMap mounted as a volume) with one file per key whose
//! content is that key's YAML value (`storageClassMap`, `useNodeNameOnly`, ...).
//! Every error names the key it is about, e.g.
//! `storageClassMap.fast-disks.volumeMode`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::NodeSelectorTerm;
use serde::Deserialize;

/// The cleaner run for block volumes when a class names none (shipped in the
/// image, see `local-volume/scripts/`).
pub const DEFAULT_BLOCK_CLEANER: &str = "/scripts/quick_reset.sh";

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending key (`storageClassMap.<class>.hostDir`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The configuration exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    /// StorageClass name → where its volumes are discovered.
    #[serde(default)]
    pub storage_class_map: BTreeMap<String, RawClass>,
    /// Node labels whose values are copied onto every PV.
    #[serde(default, rename = "nodeLabelsForPV")]
    pub node_labels_for_pv: Vec<String>,
    /// Extra labels for every PV.
    #[serde(default, rename = "labelsForPV")]
    pub labels_for_pv: BTreeMap<String, String>,
    /// Go duration (`5m0s`); see [`Config::min_resync_period`].
    #[serde(default)]
    pub min_resync_period: Option<String>,
    /// Cleaning in Kubernetes Jobs: not built; `true` is refused.
    #[serde(default)]
    pub use_job_for_cleaning: bool,
    /// Go provisioner: provisioner name without the node UID. Accepted; has
    /// no effect here (ownership is the node label, not the name).
    #[serde(default)]
    pub use_node_name_only: bool,
    /// Make the Node the owner of each PV (garbage-collected with the node).
    #[serde(default, rename = "setPVOwnerRef")]
    pub set_pv_owner_ref: bool,
    /// Alpha node-affinity annotation (Kubernetes < 1.10): `true` is refused.
    #[serde(default, rename = "useAlphaAPI")]
    pub use_alpha_api: bool,
    /// Tolerations of cleaning Jobs: only with `useJobForCleaning`.
    #[serde(default)]
    pub job_tolerations: Vec<serde_yaml::Value>,
}

/// One class's discovery settings exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawClass {
    /// Discovery directory on the host (goes into the PV's `local.path`).
    #[serde(default)]
    pub host_dir: String,
    /// The same directory as mounted in the provisioner's container
    /// (default: `hostDir`).
    #[serde(default)]
    pub mount_dir: Option<String>,
    /// Command cleaning a block volume; gets `LOCAL_PV_BLKDEVICE`.
    #[serde(default)]
    pub block_cleaner_command: Option<Vec<String>>,
    /// `Filesystem` (default) or `Block`.
    #[serde(default)]
    pub volume_mode: Option<String>,
    /// The PV's access mode (default `ReadWriteOnce`).
    #[serde(default)]
    pub access_mode: Option<String>,
    /// Filesystem kubelet formats a block device with (Filesystem mode).
    #[serde(default)]
    pub fs_type: Option<String>,
    /// Comma-separated globs of entry names to discover (default `*`).
    #[serde(default)]
    pub name_pattern: Option<String>,
    /// Extra node-selector terms added (ORed) to each PV's node affinity.
    #[serde(default)]
    pub selector: Option<Vec<NodeSelectorTerm>>,
}

/// `volumeMode` of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeMode {
    /// Mount points become filesystem PVs; block devices are formatted with
    /// `fsType` and mounted by kubelet.
    Filesystem,
    /// Block devices become raw block PVs.
    Block,
}

impl VolumeMode {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeMode::Filesystem => "Filesystem",
            VolumeMode::Block => "Block",
        }
    }
}

/// A validated class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassConfig {
    /// Discovery directory on the host.
    pub host_dir: PathBuf,
    /// The same directory in this process's mount namespace.
    pub mount_dir: PathBuf,
    /// Block cleaner command line (never empty).
    pub block_cleaner_command: Vec<String>,
    /// Volume mode of the PVs.
    pub volume_mode: VolumeMode,
    /// Access mode of the PVs.
    pub access_mode: String,
    /// `local.fsType` for block-backed Filesystem PVs.
    pub fs_type: Option<String>,
    /// Entry-name globs; an entry is discovered when one matches.
    pub name_patterns: Vec<glob::Pattern>,
    /// Extra node-selector terms.
    pub selector: Vec<NodeSelectorTerm>,
}

impl ClassConfig {
    /// Whether the entry `name` is to be discovered.
    pub fn matches(&self, name: &str) -> bool {
        self.name_patterns.iter().any(|p| p.matches(name))
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Class name → settings.
    pub classes: BTreeMap<String, ClassConfig>,
    /// Node labels copied onto PVs.
    pub node_labels_for_pv: Vec<String>,
    /// Extra PV labels.
    pub labels_for_pv: BTreeMap<String, String>,
    /// How long an unusable discovery entry stays quiet after it was
    /// reported (log + event) before it is reported again. Default 5 m.
    pub min_resync_period: Duration,
    /// Make the Node the owner of each PV.
    pub set_pv_owner_ref: bool,
    /// Accepted for compatibility; no effect.
    pub use_node_name_only: bool,
}

impl Config {
    /// Refuses a class whose discovery directory (as this container sees
    /// it, `mountDir`) resolves through symlinks to the host's own
    /// directories, or is, lies in or holds the provisioner's own state
    /// directory: discovery would offer its records as volumes and
    /// cleaning would delete them.
    pub fn check_state_dir(&self, state: &Path) -> Result<(), ConfigError> {
        let real_state = state.canonicalize().unwrap_or_else(|_| state.to_path_buf());
        for (name, class) in &self.classes {
            // Where the discovery directory really is (symlinks resolved).
            let real = external_storage::fields::resolved_volume_dir(&class.mount_dir)
                .map_err(|e| err(format!("storageClassMap.{name}.mountDir"), e.to_string()))?;
            if external_storage::fields::overlaps(&class.mount_dir, state)
                || external_storage::fields::overlaps(&real, &real_state)
            {
                return Err(err(
                    format!("storageClassMap.{name}.mountDir"),
                    format!(
                        "{} is, lies in or holds the provisioner's state directory {} (--state-dir): name a directory of its own",
                        class.mount_dir.display(),
                        state.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates `path`: a YAML file, or a directory with one file
    /// per key (a mounted ConfigMap).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| err("--config", format!("cannot read {shown}: {e}")))?;
        let value = if meta.is_dir() {
            read_dir_layout(path)?
        } else {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("--config", format!("cannot read {shown}: {e}")))?;
            serde_yaml::from_str(&text)
                .map_err(|e| err("--config", format!("{shown} is not YAML: {e}")))?
        };
        Config::from_value(value)
    }

    /// Validates an already-parsed YAML document.
    pub fn from_value(value: serde_yaml::Value) -> Result<Config, ConfigError> {
        let value = match value {
            serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
            v => v,
        };
        let raw: RawConfig = external_storage::fields::deserialize(value)
            .map_err(|(key, message)| err(key, message))?;
        Config::try_from(raw)
    }
}

/// A mounted ConfigMap: every regular file (symlinks followed, as the
/// kubelet makes them) not starting with `.` is a key.
fn read_dir_layout(dir: &Path) -> Result<serde_yaml::Value, ConfigError> {
    let mut map = serde_yaml::Mapping::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| err("--config", format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| err("--config", e.to_string()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| err(name.clone(), format!("cannot read: {e}")))?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| err(name.clone(), format!("not YAML: {e}")))?;
        map.insert(serde_yaml::Value::String(name), value);
    }
    Ok(serde_yaml::Value::Mapping(map))
}

/// A value that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (e.g. 5m0s, 30s, 1h)")]
pub struct NotAGoDuration(pub String);

/// Parses a Go duration: `5m0s`, `1h30m`, `10s`, `250ms`.
pub fn parse_go_duration(s: &str) -> Result<Duration, NotAGoDuration> {
    let bad = || NotAGoDuration(s.to_string());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return Err(bad()),
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A discovery directory: absolute, plain, clear of the host's own
/// directories (`external_storage::fields::volume_dir`).
fn volume_dir(key: &str, s: &str) -> Result<PathBuf, ConfigError> {
    external_storage::fields::volume_dir(s).map_err(|e| err(key, e.to_string()))
}

fn valid_class_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];
const OPERATORS: [&str; 6] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];

fn check_class(name: &str, raw: RawClass) -> Result<ClassConfig, ConfigError> {
    let key = |k: &str| format!("storageClassMap.{name}.{k}");
    if !valid_class_name(name) {
        return Err(err(
            format!("storageClassMap.{name}"),
            "not a valid StorageClass name (lowercase letters, digits, `-` and `.`)",
        ));
    }
    if raw.host_dir.is_empty() {
        return Err(err(
            key("hostDir"),
            "required: the discovery directory on the host",
        ));
    }
    let host_dir = volume_dir(&key("hostDir"), &raw.host_dir)?;
    let mount_dir = match raw.mount_dir.as_deref() {
        None | Some("") => host_dir.clone(),
        Some(m) => volume_dir(&key("mountDir"), m)?,
    };
    let block_cleaner_command = match raw.block_cleaner_command {
        None => vec![DEFAULT_BLOCK_CLEANER.to_string()],
        Some(c) if c.first().is_none_or(|p| p.is_empty()) => {
            return Err(err(
                key("blockCleanerCommand"),
                "must be a non-empty list whose first element is the program, e.g. [\"/scripts/shred.sh\", \"2\"]",
            ))
        }
        Some(c) => c,
    };
    let volume_mode = match raw.volume_mode.as_deref() {
        None | Some("") | Some("Filesystem") => VolumeMode::Filesystem,
        Some("Block") => VolumeMode::Block,
        Some(other) => {
            return Err(err(
                key("volumeMode"),
                format!("{other:?} is not allowed: use Filesystem or Block"),
            ))
        }
    };
    let access_mode = match raw.access_mode.as_deref() {
        None | Some("") => "ReadWriteOnce".to_string(),
        Some(m) if ACCESS_MODES.contains(&m) => m.to_string(),
        Some(other) => {
            return Err(err(
                key("accessMode"),
                format!(
                    "{other:?} is not allowed: use one of {}",
                    ACCESS_MODES.join(", ")
                ),
            ))
        }
    };
    let fs_type = raw.fs_type.filter(|f| !f.is_empty());
    if fs_type.is_some() && volume_mode == VolumeMode::Block {
        return Err(err(
            key("fsType"),
            "applies only to volumeMode Filesystem (kubelet formats block devices with it)",
        ));
    }
    let pattern_text = raw.name_pattern.unwrap_or_default();
    let pattern_text = if pattern_text.trim().is_empty() {
        "*".to_string()
    } else {
        pattern_text
    };
    let name_patterns = pattern_text
        .split(',')
        .map(|p| {
            glob::Pattern::new(p.trim())
                .map_err(|e| err(key("namePattern"), format!("{p:?} is not a glob: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let selector = raw.selector.unwrap_or_default();
    for (i, term) in selector.iter().enumerate() {
        let exprs = term.match_expressions.iter().flatten();
        let fields = term.match_fields.iter().flatten();
        let mut any = false;
        for r in exprs.chain(fields) {
            any = true;
            if !OPERATORS.contains(&r.operator.as_str()) {
                return Err(err(
                    format!("{}[{i}]", key("selector")),
                    format!(
                        "operator {:?} is not allowed: use one of {}",
                        r.operator,
                        OPERATORS.join(", ")
                    ),
                ));
            }
        }
        if !any {
            return Err(err(
                format!("{}[{i}]", key("selector")),
                "an empty node-selector term matches no node: give matchExpressions or matchFields",
            ));
        }
    }
    Ok(ClassConfig {
        host_dir,
        mount_dir,
        block_cleaner_command,
        volume_mode,
        access_mode,
        fs_type,
        name_patterns,
        selector,
    })
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.use_job_for_cleaning {
            return Err(err(
                "useJobForCleaning",
                "cleaning in Jobs is not built into this provisioner: volumes are cleaned by the \
                 provisioner pod itself; remove the key or set it to false",
            ));
        }
        if !raw.job_tolerations.is_empty() {
            return Err(err(
                "jobTolerations",
                "only used with useJobForCleaning, which this provisioner does not support; remove it",
            ));
        }
        if raw.use_alpha_api {
            return Err(err(
                "useAlphaAPI",
                "the alpha node-affinity annotation is gone since Kubernetes 1.10; remove the key",
            ));
        }
        if raw.storage_class_map.is_empty() {
            return Err(err(
                "storageClassMap",
                "required: at least one class with hostDir (and mountDir if it differs)",
            ));
        }
        let min_resync_period = match raw.min_resync_period.as_deref() {
            None | Some("") => Duration::from_secs(300),
            Some(s) => match parse_go_duration(s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err(err("minResyncPeriod", "must be greater than zero")),
                Err(e) => return Err(err("minResyncPeriod", e.to_string())),
            },
        };
        for (i, l) in raw.node_labels_for_pv.iter().enumerate() {
            if l.is_empty() || l.contains(char::is_whitespace) {
                return Err(err(
                    format!("nodeLabelsForPV[{i}]"),
                    format!("{l:?} is not a label key"),
                ));
            }
        }
        for (k, v) in &raw.labels_for_pv {
            if k.is_empty() || k.contains(char::is_whitespace) || v.len() > 63 {
                return Err(err(
                    format!("labelsForPV.{k}"),
                    "not a valid label (key without spaces, value at most 63 characters)",
                ));
            }
            if k == crate::labels::NODE_LABEL {
                return Err(err(
                    format!("labelsForPV.{k}"),
                    "reserved: the provisioner sets it to tell its nodes' PVs apart",
                ));
            }
        }
        let mut classes = BTreeMap::new();
        for (name, raw_class) in raw.storage_class_map {
            let class = check_class(&name, raw_class)?;
            classes.insert(name, class);
        }
        // Two PVs must never share a host path: no directory may be (inside)
        // another class's directory.
        let list: Vec<(&String, &ClassConfig)> = classes.iter().collect();
        for (i, (a, ca)) in list.iter().enumerate() {
            for (b, cb) in &list[i + 1..] {
                for (what, pa, pb) in [
                    ("hostDir", &ca.host_dir, &cb.host_dir),
                    ("mountDir", &ca.mount_dir, &cb.mount_dir),
                ] {
                    if pa.starts_with(pb) || pb.starts_with(pa) {
                        return Err(err(
                            format!("storageClassMap.{b}.{what}"),
                            format!(
                                "{} overlaps class {a}'s {} : every class needs its own directory",
                                pb.display(),
                                pa.display()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Config {
            classes,
            node_labels_for_pv: raw.node_labels_for_pv,
            labels_for_pv: raw.labels_for_pv,
            min_resync_period,
            set_pv_owner_ref: raw.set_pv_owner_ref,
            use_node_name_only: raw.use_node_name_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_value(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn go_provisioner_config_is_accepted_with_defaults() {
        let c = parse(
            r#"
storageClassMap:
  fast-disks:
    hostDir: /mnt/fast-disks
    mountDir: /mnt/fast-disks
    blockCleanerCommand: ["/scripts/shred.sh", "2"]
    volumeMode: Filesystem
    fsType: ext4
    namePattern: "nvme*,ssd?"
    selector:
      - matchExpressions:
          - key: topology.kubernetes.io/zone
            operator: In
            values: [a]
  local-storage:
    hostDir: /mnt/disks
nodeLabelsForPV: [topology.kubernetes.io/zone]
labelsForPV: {team: storage}
minResyncPeriod: 1m30s
useNodeNameOnly: true
setPVOwnerRef: true
useJobForCleaning: false
"#,
        )
        .unwrap();
        let fast = &c.classes["fast-disks"];
        assert_eq!(fast.block_cleaner_command, ["/scripts/shred.sh", "2"]);
        assert_eq!(fast.fs_type.as_deref(), Some("ext4"));
        assert!(fast.matches("nvme0n1") && fast.matches("ssd1") && !fast.matches("ssd12"));
        assert_eq!(fast.selector.len(), 1);
        let local = &c.classes["local-storage"];
        assert_eq!(local.mount_dir, PathBuf::from("/mnt/disks"));
        assert_eq!(local.block_cleaner_command, [DEFAULT_BLOCK_CLEANER]);
        assert_eq!(local.volume_mode, VolumeMode::Filesystem);
        assert_eq!(local.access_mode, "ReadWriteOnce");
        assert!(local.matches("anything"));
        assert_eq!(c.min_resync_period, Duration::from_secs(90));
        assert!(c.set_pv_owner_ref && c.use_node_name_only);
    }

    fn key_of(yaml: &str) -> (String, String) {
        let e = parse(yaml).unwrap_err();
        (e.key.clone(), e.to_string())
    }

    #[test]
    fn every_error_names_its_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("storageClassMap: {fast: {hostDirr: /x}}", "storageClassMap.fast.hostDirr", "unknown field `hostDirr`"),
            ("storageClassMap: {fast: {hostDir: /x}}\nnodeLabels: []", "nodeLabels", "unknown field `nodeLabels`"),
            ("storageClassMap: {fast: {hostDir: /x, volumeMode: Raw}}", "storageClassMap.fast.volumeMode", "Filesystem or Block"),
            ("storageClassMap: {fast: {hostDir: x}}", "storageClassMap.fast.hostDir", "absolute"),
            ("storageClassMap: {fast: {mountDir: /x}}", "storageClassMap.fast.hostDir", "required"),
            ("storageClassMap: {fast: {hostDir: /x, blockCleanerCommand: []}}", "storageClassMap.fast.blockCleanerCommand", "non-empty"),
            ("storageClassMap: {fast: {hostDir: /x, accessMode: RWO}}", "storageClassMap.fast.accessMode", "ReadWriteOnce"),
            ("storageClassMap: {fast: {hostDir: /x, volumeMode: Block, fsType: ext4}}", "storageClassMap.fast.fsType", "Filesystem"),
            ("storageClassMap: {fast: {hostDir: /x, namePattern: \"[\"}}", "storageClassMap.fast.namePattern", "glob"),
            ("storageClassMap: {fast: {hostDir: /x, selector: [{}]}}", "storageClassMap.fast.selector[0]", "empty"),
            ("storageClassMap: {fast: {hostDir: /x, selector: [{matchExpressions: [{key: k, operator: Is}]}]}}", "storageClassMap.fast.selector[0]", "operator"),
            ("storageClassMap: {Fast: {hostDir: /x}}", "storageClassMap.Fast", "StorageClass name"),
            ("storageClassMap: {a: {hostDir: /x}, b: {hostDir: /x/y}}", "storageClassMap.b.hostDir", "overlaps"),
            ("storageClassMap: {fast: {hostDir: /x, volumeMode: 3}}", "storageClassMap.fast.volumeMode", "invalid type"),
            ("storageClassMap: {fast: {hostDir: /x}}\nminResyncPeriod: soon", "minResyncPeriod", "duration"),
            ("storageClassMap: {fast: {hostDir: /x}}\nuseJobForCleaning: true", "useJobForCleaning", "not built"),
            ("storageClassMap: {fast: {hostDir: /x}}\nuseAlphaAPI: true", "useAlphaAPI", "1.10"),
            ("storageClassMap: {fast: {hostDir: /x}}\nsetPVOwnerRef: maybe", "setPVOwnerRef", "boolean"),
            ("nodeLabelsForPV: []", "storageClassMap", "required"),
        ];
        for (yaml, key, needle) in cases {
            let (k, msg) = key_of(yaml);
            assert_eq!(&k, key, "{yaml}: {msg}");
            assert!(msg.contains(needle), "{yaml}: {msg}");
            assert!(msg.contains(&format!("`{key}`")), "{msg}");
        }
    }

    #[test]
    fn configmap_directory_layout_is_read_key_by_key() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("storageClassMap"),
            "fast:\n  hostDir: /mnt/fast\n  mountDir: /fast\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("useNodeNameOnly"), "true").unwrap();
        std::fs::write(tmp.path().join(".hidden"), "garbage: [").unwrap();
        let c = Config::load(tmp.path()).unwrap();
        assert_eq!(c.classes["fast"].mount_dir, PathBuf::from("/fast"));
        assert!(c.use_node_name_only);
        std::fs::write(tmp.path().join("bogusKey"), "1").unwrap();
        let e = Config::load(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("unknown field `bogusKey`"), "{e}");
    }

    #[test]
    fn the_shipped_configmap_is_valid() {
        let text = include_str!("../../deploy/local-volume/02-configmap.yaml");
        let cm: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for (k, v) in cm["data"].as_mapping().unwrap() {
            std::fs::write(tmp.path().join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
        }
        let c = Config::load(tmp.path()).unwrap();
        assert_eq!(
            c.classes["fast-disks"].host_dir,
            PathBuf::from("/mnt/fast-disks")
        );
        assert_eq!(c.node_labels_for_pv, ["topology.kubernetes.io/zone"]);
    }

    #[test]
    fn discovery_directories_keep_clear_of_the_host_and_of_the_state() {
        for (class, key) in [
            ("  hostDir: /dev/disk/by-id\n", "hostDir"),
            ("  hostDir: /mnt/disks\n  mountDir: /etc\n", "mountDir"),
            ("  hostDir: /var/lib\n", "hostDir"),
            ("  hostDir: /proc\n", "hostDir"),
        ] {
            let e = parse(&format!("storageClassMap:\n fast:\n{class}")).unwrap_err();
            assert_eq!(e.key, format!("storageClassMap.fast.{key}"), "{class}");
            assert!(e.message.contains("the host's own files"), "{e}");
        }
        let c = parse("storageClassMap:\n fast:\n  hostDir: /mnt/disks\n").unwrap();
        c.check_state_dir(Path::new("/var/lib/local-volume"))
            .unwrap();
        for state in ["/mnt/disks", "/mnt/disks/.state", "/mnt"] {
            let e = c.check_state_dir(Path::new(state)).unwrap_err();
            assert_eq!(e.key, "storageClassMap.fast.mountDir", "{state}");
            assert!(e.message.contains("state directory"), "{e}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_go_duration("1h1m1s").unwrap(),
            Duration::from_secs(3661)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("5"), Err(NotAGoDuration("5".into())));
        assert_eq!(parse_go_duration("5d"), Err(NotAGoDuration("5d".into())));
        assert!(parse_go_duration("").is_err());
    }
}
