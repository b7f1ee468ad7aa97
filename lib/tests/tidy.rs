//! Tidy checks: every Rust file of the crate opens with a `//!` doc saying
//! why it exists (rust-analyzer's `tidy.rs` rule).

use std::path::Path;

fn visit(dir: &Path, bad: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, bad);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.trim_start().starts_with("//!") {
                bad.push(path.display().to_string());
            }
        }
    }
}

#[test]
fn every_file_has_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bad = Vec::new();
    for dir in ["src", "tests", "examples"] {
        visit(&root.join(dir), &mut bad);
    }
    assert!(bad.is_empty(), "files without a leading //! doc: {bad:?}");
}
