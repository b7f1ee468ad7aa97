//! Tidy checks over the whole workspace (rust-analyzer's `tidy.rs` idea):
//! every Rust file opens with a `//!` doc saying why it exists; no crate's
//! top-level modules import each other in a cycle; and the shipped crates
//! spell no annotation, label or finalizer key that `annotations.rs`
//! names, outside that file and tests. They live in the lib's tests because
//! every workspace build runs them; they read files, never build anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's member directories, read from its Cargo.toml.
fn members() -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line");
    let list: Vec<String> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(list.len() >= 5, "members not parsed from {line:?}");
    list
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its trailing `#[cfg(test)] mod tests` and
/// without `//` comments (doc links are not imports).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn idents_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("");
                out.push(name);
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
                .unwrap_or(rest.len());
            out.push(&rest[..end]);
        }
    }
    out
}

/// Top-level module → the top-level modules it uses (`crate::x`, and
/// `super::x` from a file directly under `src/`).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if matches!(top.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).unwrap());
        let mut deps: Vec<&str> = idents_after(&text, "crate::");
        if rel.components().count() == 1 {
            deps.extend(idents_after(&text, "super::"));
        }
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(
            deps.into_iter()
                .filter(|d| !d.is_empty() && *d != top)
                .map(str::to_string),
        );
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let Some((w, _)) = t.g.get_key_value(w.as_str()) else {
                continue;
            };
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn every_file_has_a_module_doc() {
    let mut bad = Vec::new();
    for m in members() {
        let mut files = Vec::new();
        for dir in ["src", "tests", "examples", "benches"] {
            rust_files(&workspace().join(&m).join(dir), &mut files);
        }
        assert!(!files.is_empty(), "no Rust files found in {m}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            if !text.trim_start().starts_with("//!") {
                bad.push(f.display().to_string());
            }
        }
    }
    assert!(bad.is_empty(), "files without a leading //! doc: {bad:?}");
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut found = Vec::new();
    for m in members() {
        let graph = module_graph(&workspace().join(&m).join("src"));
        for c in cycles(&graph) {
            found.push(format!("{m}: {}", c.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import cycles: {found:?}");
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        idents_after("use crate::{x, y::Z};\ncrate::w::f()", "crate::"),
        ["x", "y", "w"]
    );
}

/// The key strings `annotations.rs` names (values of its `&str` constants
/// that contain a `/`).
fn known_keys() -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("lib/src/annotations.rs")).unwrap();
    let keys: Vec<String> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const") && l.contains(": &str"))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|v| v.contains('/'))
        .map(str::to_string)
        .collect();
    assert!(keys
        .iter()
        .any(|k| k == "volume.kubernetes.io/selected-node"));
    keys
}

#[test]
fn shipped_crates_spell_known_keys_only_through_annotations_rs() {
    let keys = known_keys();
    let mut bad = Vec::new();
    for m in members()
        .iter()
        .filter(|m| !m.starts_with("hack/") && *m != "fuzz")
    {
        let mut files = Vec::new();
        rust_files(&workspace().join(m).join("src"), &mut files);
        for f in files {
            if f.ends_with("lib/src/annotations.rs") {
                continue;
            }
            let text = code(&std::fs::read_to_string(&f).unwrap());
            for k in &keys {
                // As a literal, or inside a JSON pointer (`/` escaped as `~1`).
                let pointer = k.replace('/', "~1");
                if text.contains(&format!("\"{k}\"")) || text.contains(&pointer) {
                    bad.push(format!("{}: {k}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "use the constants of external_storage::annotations instead: {bad:?}"
    );
}

/// The package name of a member, from the `name = "…"` line of its
/// Cargo.toml's `[package]` table.
fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|n| n.trim_matches('"').to_string())
        .expect("a [package] name")
}

#[test]
fn no_provisioner_crate_depends_on_another() {
    // A provisioner is a member that ships an image (has a Dockerfile).
    let provisioners: Vec<(String, String)> = members()
        .into_iter()
        .filter(|m| workspace().join(m).join("Dockerfile").exists())
        .map(|m| {
            let manifest =
                std::fs::read_to_string(workspace().join(&m).join("Cargo.toml")).unwrap();
            (m, manifest)
        })
        .collect();
    assert!(
        provisioners.len() >= 4,
        "provisioners not found: {:?}",
        provisioners.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    let mut bad = Vec::new();
    for (dir, manifest) in &provisioners {
        for (other, other_manifest) in &provisioners {
            let name = package_name(other_manifest);
            if other == dir {
                continue;
            }
            let depends = manifest.lines().any(|l| {
                let l = l.trim();
                l.starts_with(&format!("{name} "))
                    || l.starts_with(&format!("{name}."))
                    || l.contains(&format!("\"../{other}\""))
            });
            if depends {
                bad.push(format!("{dir} depends on {other} ({name})"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "provisioner crates must not depend on each other; move what they share \
         to lib/ or hostfs/:\n{}",
        bad.join("\n")
    );
}
