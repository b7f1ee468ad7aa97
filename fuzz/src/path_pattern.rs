//! `pathPattern` rendering plus the path checks (hostpath): whatever the
//! class's pattern and the claim's values, rendering never panics, and a
//! rendered path never escapes the root (absolute, `..`, `.`, empty
//! segments, NUL) nor carries a `/` from a value the class did not allow;
//! the nesting relation is symmetric and reflexive.

use hostfs::root::nests;
use hostpath_provisioner::pattern::{check_relative, PathPattern, PatternInput};
use std::collections::BTreeMap;

/// One input; panics if an invariant is broken.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // pattern \x01 label value \x01 annotation value \x01 allow-slash flag
    let mut parts = text.split('\u{1}');
    let pattern = parts.next().unwrap_or_default();
    let label = parts.next().unwrap_or_default().to_string();
    let annotation = parts.next().unwrap_or_default().to_string();
    let allow = parts.next().is_some_and(|f| f.starts_with('y'));
    let Ok(p) = PathPattern::parse(pattern) else {
        return;
    };
    let p = p.allow_slash_in_values(allow);
    let labels = BTreeMap::from([("l".to_string(), label.clone())]);
    let annotations = BTreeMap::from([("a".to_string(), annotation.clone())]);
    let input = PatternInput {
        pv_name: "pvc-0000",
        namespace: "ns",
        name: "claim",
        labels: Some(&labels),
        annotations: Some(&annotations),
    };
    if let Ok(rel) = p.render(&input) {
        assert!(check_relative(&rel).is_ok(), "{rel:?}");
        assert!(!rel.starts_with('/') && !rel.contains('\0'), "{rel:?}");
        assert!(
            rel.split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "{rel:?}"
        );
        if !allow {
            // A value with a slash may only be in the output if the pattern
            // does not use it: then changing the value changes nothing.
            for (slashed, swap_label) in [(&label, true), (&annotation, false)] {
                if !slashed.contains('/') {
                    continue;
                }
                let q = BTreeMap::from([(
                    (if swap_label { "l" } else { "a" }).to_string(),
                    "q".to_string(),
                )]);
                let swapped = PatternInput {
                    labels: Some(if swap_label { &q } else { &labels }),
                    annotations: Some(if swap_label { &annotations } else { &q }),
                    ..input.clone()
                };
                assert_eq!(
                    p.render(&swapped).ok().as_deref(),
                    Some(rel.as_str()),
                    "a value with `/` was used"
                );
            }
        }
        assert!(nests(&rel, &rel));
        let other = format!("{rel}/x");
        assert!(nests(&rel, &other) && nests(&other, &rel));
    }
}

/// Patterns users write, with values that contain separators.
pub fn seeds() -> Vec<Vec<u8>> {
    crate::lines(&[
        "{{ .PVName }}",
        "{{ .PVC.Namespace }}/{{ .PVC.Name }}\u{1}x\u{1}y\u{1}n",
        "{{ .PVC.Labels.l }}/{{ .PVC.Annotations.a }}\u{1}a/b\u{1}c\u{1}y",
        "{{ index .PVC.Labels \"l\" }}-data\u{1}../up\u{1}\u{1}n",
        "base/{{ .PVC.Annotations.a }}\u{1}\u{1}/abs\u{1}y",
    ])
}

/// Pattern syntax and hostile path pieces.
pub const TOKENS: &[&str] = &[
    "{{",
    "}}",
    " .PVName ",
    ".PVC.Namespace",
    ".PVC.Name",
    ".PVC.Labels.l",
    ".PVC.Annotations.a",
    "index .PVC.Labels \"l\"",
    "/",
    "//",
    "..",
    ".",
    "\0",
    "\u{1}",
    "y",
    " ",
];
