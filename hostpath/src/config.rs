//! The optional configuration file (`--config`, mounted from a ConfigMap):
//! which directories of which node hold volumes, for every class and per
//! class. Its format is local-path-provisioner's `nodePathMap` (so an LPP
//! ConfigMap's `config.json` carries over), read as YAML (JSON is YAML).
//!
//! Two stages: [`RawConfig`] is exactly what the file says (unknown keys are
//! errors), [`Config`] the validated result. Every error names the field it
//! is about (`storageClassConfigs.fast.nodePathMap[1].paths[0]`). Paths are
//! checked here, before any of them is opened: absolute, normalized, not
//! `/` and clear of the host's own directories (`/proc`, `/sys`, `/dev`,
//! `/etc`, `/var/lib/kubelet`: not one, inside one or holding one), listed
//! once per entry, and no configured path nested in another one
//! anywhere in the file (the ownership records of one root must never lie
//! inside another root's volumes).
//!
//! Without a file the configuration is [`Config::single_root`]: the
//! `--root` directory on every node, exactly the behaviour before this file
//! existed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The `node` of the entry for every node not listed by name.
pub const DEFAULT_NODE: &str = "DEFAULT_PATH_FOR_NON_LISTED_NODES";

/// A configuration error, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config field `{field}`: {message}")]
pub struct ConfigError {
    /// Path of the offending field (`nodePathMap[0].paths[1]`).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// The configuration exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    /// Where volumes go on each node (classes without their own map).
    pub node_path_map: Option<Vec<RawEntry>>,
    /// StorageClass name → its own settings.
    #[serde(default)]
    pub storage_class_configs: BTreeMap<String, RawClass>,
}

/// One class's settings exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawClass {
    /// Replaces the top-level `nodePathMap` for this class.
    pub node_path_map: Option<Vec<RawEntry>>,
}

/// One `nodePathMap` entry exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    /// A Node's name, or [`DEFAULT_NODE`].
    #[serde(default)]
    pub node: String,
    /// The node's volume roots; empty: no storage on that node.
    pub paths: Option<Vec<String>>,
}

/// One validated `nodePathMap` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePaths {
    /// A Node's name, or [`DEFAULT_NODE`].
    pub node: String,
    /// The roots, in the order written (the tie-break of the root choice).
    pub paths: Vec<PathBuf>,
}

/// A validated `nodePathMap` and the field it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathMap {
    /// `nodePathMap` or `storageClassConfigs.<class>.nodePathMap`.
    pub field: String,
    /// The entries, as written.
    pub entries: Vec<NodePaths>,
}

/// Why a node has no storage for a class, naming the entry that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoStorage(pub String);

impl PathMap {
    /// The roots of `node`: its own entry, else the default entry. An entry
    /// with no paths, or no entry at all, is [`NoStorage`].
    pub fn paths_of(&self, node: &str) -> Result<&[PathBuf], NoStorage> {
        let find = |name: &str| self.entries.iter().position(|e| e.node == name);
        let (i, listed) = match (find(node), find(DEFAULT_NODE)) {
            (Some(i), _) => (i, true),
            (None, Some(i)) => (i, false),
            (None, None) => {
                return Err(NoStorage(format!(
                    "`{}` lists neither node {node} nor {DEFAULT_NODE}",
                    self.field
                )))
            }
        };
        let entry = &self.entries[i];
        if entry.paths.is_empty() {
            let how = if listed {
                format!("node: {node}")
            } else {
                format!("node: {DEFAULT_NODE}, and node {node} is not listed")
            };
            return Err(NoStorage(format!(
                "`{}[{i}]` ({how}) has `paths: []`: no storage on this node",
                self.field
            )));
        }
        Ok(&entry.paths)
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The map of classes without their own.
    pub node_path_map: PathMap,
    /// Class name → its own map.
    pub classes: BTreeMap<String, PathMap>,
}

impl Config {
    /// No configuration file: `root` on every node (the `--root` flag).
    pub fn single_root(root: &Path) -> Config {
        Config {
            node_path_map: PathMap {
                field: "--root".into(),
                entries: vec![NodePaths {
                    node: DEFAULT_NODE.into(),
                    paths: vec![root.to_path_buf()],
                }],
            },
            classes: BTreeMap::new(),
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {shown}: {e}")))?;
        Config::parse(&text).map_err(|e| {
            if e.field.is_empty() {
                err("--config", format!("{shown}: {}", e.message))
            } else {
                e
            }
        })
    }

    /// Validates the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| err("", format!("not YAML: {e}")))?;
        if value.is_null() {
            return Err(err("nodePathMap", "required, and the file is empty"));
        }
        let raw: RawConfig = external_storage::fields::deserialize(value)
            .map_err(|(field, message)| err(field, message))?;
        Config::try_from(raw)
    }

    /// The map that applies to `class`: its own, else the top-level one.
    pub fn map_for(&self, class: &str) -> &PathMap {
        self.classes.get(class).unwrap_or(&self.node_path_map)
    }

    /// Every root any class may use on `node` (the roots to open there).
    pub fn roots_of(&self, node: &str) -> BTreeSet<PathBuf> {
        std::iter::once(&self.node_path_map)
            .chain(self.classes.values())
            .filter_map(|m| m.paths_of(node).ok())
            .flatten()
            .cloned()
            .collect()
    }
}

/// What changed between two configurations, for the reload event.
pub fn summary(old: &Config, new: &Config) -> String {
    let mut parts = Vec::new();
    if old.node_path_map != new.node_path_map {
        parts.push("nodePathMap changed".to_string());
    }
    let (was, is): (BTreeSet<_>, BTreeSet<_>) =
        (old.classes.keys().collect(), new.classes.keys().collect());
    let list = |v: Vec<&&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let added: Vec<_> = is.difference(&was).collect();
    let removed: Vec<_> = was.difference(&is).collect();
    let changed: Vec<_> = is
        .intersection(&was)
        .filter(|c| old.classes[**c] != new.classes[**c])
        .collect();
    for (what, names) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !names.is_empty() {
            parts.push(format!("storageClassConfigs {what}: {}", list(names)));
        }
    }
    if parts.is_empty() {
        "no effective change".into()
    } else {
        parts.join("; ")
    }
}

/// A configured root: absolute, normalized (no `.`, `..`, `//` or trailing
/// `/`), not `/` itself, clear of the host's own directories
/// (`external_storage::fields::SYSTEM_DIRS`), valid UTF-8.
fn check_path(field: &str, path: &str) -> Result<PathBuf, ConfigError> {
    let normal =
        external_storage::fields::volume_dir(path).map_err(|e| err(field, e.to_string()))?;
    if normal.as_os_str() != path {
        return Err(err(
            field,
            format!("{path:?} is not normalized: write {:?}", normal.display()),
        ));
    }
    Ok(normal)
}

fn check_map(field: &str, raw: Vec<RawEntry>) -> Result<PathMap, ConfigError> {
    let mut entries: Vec<NodePaths> = Vec::new();
    for (i, e) in raw.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        if e.node.is_empty() {
            return Err(err(
                format!("{at}.node"),
                format!("required: a node name or {DEFAULT_NODE}"),
            ));
        }
        if let Some(k) = entries.iter().position(|x| x.node == e.node) {
            return Err(err(
                format!("{at}.node"),
                format!("{} is listed twice (also at {field}[{k}])", e.node),
            ));
        }
        let Some(raw_paths) = e.paths else {
            return Err(err(
                format!("{at}.paths"),
                "required (write `paths: []` for a node without storage)",
            ));
        };
        let mut paths = Vec::new();
        for (j, p) in raw_paths.iter().enumerate() {
            let pf = format!("{at}.paths[{j}]");
            let p = check_path(&pf, p)?;
            if let Some(k) = paths.iter().position(|q| q == &p) {
                return Err(err(
                    pf,
                    format!("{} is listed twice (also at {at}.paths[{k}])", p.display()),
                ));
            }
            paths.push(p);
        }
        entries.push(NodePaths {
            node: e.node,
            paths,
        });
    }
    Ok(PathMap {
        field: field.to_string(),
        entries,
    })
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let Some(top) = raw.node_path_map else {
            return Err(err(
                "nodePathMap",
                format!("required: a list of {{node, paths}} entries, e.g. one with node: {DEFAULT_NODE}"),
            ));
        };
        let node_path_map = check_map("nodePathMap", top)?;
        let mut classes = BTreeMap::new();
        for (name, class) in raw.storage_class_configs {
            let field = format!("storageClassConfigs.{name}");
            if name.is_empty() {
                return Err(err(field, "a class needs a name"));
            }
            let Some(map) = class.node_path_map else {
                return Err(err(format!("{field}.nodePathMap"), "required"));
            };
            classes.insert(name, check_map(&format!("{field}.nodePathMap"), map)?);
        }
        let config = Config {
            node_path_map,
            classes,
        };
        check_nesting(&config)?;
        Ok(config)
    }
}

/// No two different configured paths nest, anywhere in the file.
fn check_nesting(config: &Config) -> Result<(), ConfigError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for map in std::iter::once(&config.node_path_map).chain(config.classes.values()) {
        for (i, e) in map.entries.iter().enumerate() {
            for (j, p) in e.paths.iter().enumerate() {
                let field = format!("{}[{i}].paths[{j}]", map.field);
                let text = p.to_str().ok_or_else(|| err(&field, "not UTF-8"))?;
                if let Some((_, other)) = seen
                    .iter()
                    .find(|(q, _)| q != text && hostfs::root::nests(q, text))
                {
                    return Err(err(
                        field,
                        format!("{text} and the path at {other} lie one inside the other: volume roots must not nest"),
                    ));
                }
                seen.push((text.to_string(), field));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        Config::parse(text).unwrap_err().field
    }

    #[test]
    fn the_lpp_format_with_classes_parses() {
        let c = Config::parse(
            r#"{"nodePathMap":[
                {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/a"]},
                {"node":"n2","paths":["/mnt/d1","/mnt/d2"]},
                {"node":"n3","paths":[]}],
              "storageClassConfigs":{"fast":{"nodePathMap":[
                {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/mnt/ssd"]}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.map_for("other").paths_of("n1").unwrap(),
            [PathBuf::from("/opt/a")]
        );
        assert_eq!(c.map_for("other").paths_of("n2").unwrap().len(), 2);
        let e = c.map_for("other").paths_of("n3").unwrap_err().0;
        assert!(
            e.contains("`nodePathMap[2]` (node: n3) has `paths: []`"),
            "{e}"
        );
        assert_eq!(
            c.map_for("fast").paths_of("n3").unwrap(),
            [PathBuf::from("/mnt/ssd")]
        );
        let roots: Vec<_> = c.roots_of("n2").into_iter().collect();
        assert_eq!(roots, ["/mnt/d1", "/mnt/d2", "/mnt/ssd"].map(PathBuf::from));
        assert!(c.roots_of("n3").contains(Path::new("/mnt/ssd")));
    }

    #[test]
    fn an_unlisted_node_without_a_default_or_an_empty_default_has_no_storage() {
        let c = Config::parse("nodePathMap:\n- node: n1\n  paths: [/a]\n").unwrap();
        let e = c.map_for("x").paths_of("n2").unwrap_err().0;
        assert!(e.contains("lists neither node n2 nor DEFAULT"), "{e}");
        let c =
            Config::parse("nodePathMap:\n- node: DEFAULT_PATH_FOR_NON_LISTED_NODES\n  paths: []\n")
                .unwrap();
        let e = c.map_for("x").paths_of("n2").unwrap_err().0;
        assert!(e.contains("node n2 is not listed"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("nodePathMap: []\nbogus: 1\n", "bogus"),
            ("storageClassConfigs: {}\n", "nodePathMap"),
            ("nodePathMap:\n- paths: [/a]\n", "nodePathMap[0].node"),
            ("nodePathMap:\n- node: a\n", "nodePathMap[0].paths"),
            ("nodePathMap:\n- node: a\n  paths: [rel]\n", "nodePathMap[0].paths[0]"),
            ("nodePathMap:\n- node: a\n  paths: [/x/../y]\n", "nodePathMap[0].paths[0]"),
            ("nodePathMap:\n- node: a\n  paths: [/x/]\n", "nodePathMap[0].paths[0]"),
            ("nodePathMap:\n- node: a\n  paths: [/x/./y]\n", "nodePathMap[0].paths[0]"),
            ("nodePathMap:\n- node: a\n  paths: [/]\n", "nodePathMap[0].paths[0]"),
            ("nodePathMap:\n- node: a\n  paths: [/x, /x]\n", "nodePathMap[0].paths[1]"),
            (
                "nodePathMap:\n- node: a\n  paths: [/x]\n- node: a\n  paths: [/y]\n",
                "nodePathMap[1].node",
            ),
            ("nodePathMap:\n- node: a\n  paths: [/x, /x/y]\n", "nodePathMap[0].paths[1]"),
            (
                "nodePathMap: []\nstorageClassConfigs:\n  c:\n    nodePathMap:\n    - node: a\n      paths: [relative]\n",
                "storageClassConfigs.c.nodePathMap[0].paths[0]",
            ),
            (
                "nodePathMap:\n- node: a\n  paths: [/x/y]\nstorageClassConfigs:\n  c:\n    nodePathMap:\n    - node: b\n      paths: [/x]\n",
                "storageClassConfigs.c.nodePathMap[0].paths[0]",
            ),
            ("nodePathMap: []\nstorageClassConfigs:\n  c: {}\n", "storageClassConfigs.c.nodePathMap"),
            ("nodePathMap: [\n", ""),
            ("", "nodePathMap"),
            ("# only a comment\n", "nodePathMap"),
        ] {
            assert_eq!(field_of(text), field, "{text}");
        }
        // The host's own directories: not a root, inside one or holding one.
        for system in [
            "/etc",
            "/proc/1",
            "/sys",
            "/dev/shm",
            "/var/lib/kubelet/pods",
            "/var/lib",
        ] {
            let text = format!("nodePathMap:\n- node: a\n  paths: [/data, {system}]\n");
            let e = Config::parse(&text).unwrap_err();
            assert_eq!(e.field, "nodePathMap[0].paths[1]", "{system}");
            assert!(e.message.contains("the host's own files"), "{e}");
        }
        // Different directories that merely share a prefix do not nest,
        // and the same path for several nodes and classes is fine.
        Config::parse(
            "nodePathMap:\n- node: a\n  paths: [/x, /xy]\n- node: b\n  paths: [/x]\nstorageClassConfigs:\n  c:\n    nodePathMap:\n    - node: a\n      paths: [/x]\n",
        )
        .unwrap();
    }

    #[test]
    fn summary_says_what_changed() {
        let a = Config::parse("nodePathMap:\n- node: a\n  paths: [/x]\n").unwrap();
        let b = Config::parse(
            "nodePathMap:\n- node: a\n  paths: [/x, /y]\nstorageClassConfigs:\n  c:\n    nodePathMap: []\n",
        )
        .unwrap();
        assert_eq!(
            summary(&a, &b),
            "nodePathMap changed; storageClassConfigs added: c"
        );
        assert_eq!(
            summary(&b, &a),
            "nodePathMap changed; storageClassConfigs removed: c"
        );
    }
}
