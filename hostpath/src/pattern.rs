//! `pathPattern`: where a claim's directory goes under the root.
//!
//! The StorageClass parameter is a small template in the Go-template style
//! users know from local-path-provisioner (`{{ .PVC.Namespace }}/{{ .PVC.Name }}`),
//! but deliberately tiny: only field look-ups, no functions or pipelines, so a
//! class author cannot run code in the provisioner. The rendered path is then
//! checked to be a plain relative path that stays strictly under the root (no
//! `..`, no absolute path, no empty or `.` segments). Symlinks on the way are
//! refused later, when the directory is opened (see `hostfs::root`).
//!
//! A substituted value (a claim's labels and annotations are chosen by the
//! claim's author) may not contain `/` unless the class opts in with
//! `allowSlashInValues` ([`PathPattern::allow_slash_in_values`]): a slash
//! lets one tenant's claim pick a path inside another tenant's volume.
//! Nesting is refused in any case by `hostfs::root`; this check makes the usual
//! attempt fail early, with a message naming the value.

use std::collections::BTreeMap;
use std::fmt;

/// The default pattern: one directory per PV, named after it.
pub const DEFAULT_PATTERN: &str = "{{ .PVName }}";

/// What a pattern may refer to.
#[derive(Debug, Clone, Default)]
pub struct PatternInput<'a> {
    /// The PV name (`pvc-<claim uid>`).
    pub pv_name: &'a str,
    /// The claim's namespace.
    pub namespace: &'a str,
    /// The claim's name.
    pub name: &'a str,
    /// The claim's labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// The claim's annotations.
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

/// Why a pattern could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// `{{` without a matching `}}`.
    Unclosed,
    /// A field the template language does not know.
    UnknownField(String),
    /// A label or annotation the claim does not carry.
    MissingKey {
        /// `labels` or `annotations`.
        map: &'static str,
        /// The key looked up.
        key: String,
    },
    /// A substituted value contains `/` and the class does not allow it.
    SlashInValue {
        /// The field, as written in the pattern (e.g. `.PVC.Labels.dir`).
        field: String,
        /// Its value.
        value: String,
    },
    /// The rendered path is not a safe relative path.
    UnsafePath {
        /// The rendered path.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Unclosed => write!(f, "a `{{{{` has no matching `}}}}`"),
            PatternError::UnknownField(field) => write!(
                f,
                "unknown field `{field}`; allowed: .PVName, .PVC.Namespace, .PVC.Name, \
                 .PVC.Labels.<key>, .PVC.Annotations.<key>, index .PVC.Labels \"<key>\", \
                 index .PVC.Annotations \"<key>\""
            ),
            PatternError::MissingKey { map, key } => {
                write!(f, "the claim has no {map} key `{key}`")
            }
            PatternError::SlashInValue { field, value } => write!(
                f,
                "the value of {field} (`{value}`) contains `/`, which is not allowed \
                 unless the class sets allowSlashInValues: \"true\""
            ),
            PatternError::UnsafePath { path, why } => {
                write!(f, "rendered path `{path}` is not allowed: {why}")
            }
        }
    }
}

impl std::error::Error for PatternError {}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    PvName,
    Namespace,
    Name,
    Label(String),
    Annotation(String),
}

/// A parsed `pathPattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    pieces: Vec<Piece>,
    slash_in_values: bool,
}

impl PathPattern {
    /// Parses a pattern; unknown fields are errors, not empty strings.
    pub fn parse(src: &str) -> Result<Self, PatternError> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(PatternError::Unclosed)?;
            pieces.push(parse_action(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(PatternError::Unclosed);
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(PathPattern {
            pieces,
            slash_in_values: false,
        })
    }

    /// Lets substituted values contain `/` (class parameter
    /// `allowSlashInValues`); off by default.
    pub fn allow_slash_in_values(mut self, allow: bool) -> Self {
        self.slash_in_values = allow;
        self
    }

    /// Renders the pattern for one claim and checks the result is a safe
    /// relative path (returned without leading/trailing slashes).
    pub fn render(&self, input: &PatternInput<'_>) -> Result<String, PatternError> {
        let mut out = String::new();
        for piece in &self.pieces {
            let (field, value) = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::PvName => (".PVName".to_string(), input.pv_name),
                Piece::Namespace => (".PVC.Namespace".to_string(), input.namespace),
                Piece::Name => (".PVC.Name".to_string(), input.name),
                Piece::Label(k) => (
                    format!(".PVC.Labels.{k}"),
                    lookup(input.labels, "labels", k)?,
                ),
                Piece::Annotation(k) => (
                    format!(".PVC.Annotations.{k}"),
                    lookup(input.annotations, "annotations", k)?,
                ),
            };
            if value.contains('/') && !self.slash_in_values {
                return Err(PatternError::SlashInValue {
                    field,
                    value: value.to_string(),
                });
            }
            out.push_str(value);
        }
        check_relative(&out)?;
        Ok(out)
    }
}

fn lookup<'a>(
    map: Option<&'a BTreeMap<String, String>>,
    name: &'static str,
    key: &str,
) -> Result<&'a str, PatternError> {
    map.and_then(|m| m.get(key))
        .map(String::as_str)
        .ok_or_else(|| PatternError::MissingKey {
            map: name,
            key: key.to_string(),
        })
}

fn parse_action(action: &str) -> Result<Piece, PatternError> {
    let unknown = || PatternError::UnknownField(action.to_string());
    if let Some(args) = action.strip_prefix("index ") {
        let mut parts = args.trim().splitn(2, char::is_whitespace);
        let map = parts.next().ok_or_else(unknown)?;
        let key = parts.next().ok_or_else(unknown)?.trim();
        let key = key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .ok_or_else(unknown)?;
        return match map {
            ".PVC.Labels" => Ok(Piece::Label(key.to_string())),
            ".PVC.Annotations" => Ok(Piece::Annotation(key.to_string())),
            _ => Err(unknown()),
        };
    }
    match action {
        ".PVName" => Ok(Piece::PvName),
        ".PVC.Namespace" => Ok(Piece::Namespace),
        ".PVC.Name" => Ok(Piece::Name),
        _ => {
            if let Some(k) = action.strip_prefix(".PVC.Labels.") {
                Ok(Piece::Label(k.to_string()))
            } else if let Some(k) = action.strip_prefix(".PVC.Annotations.") {
                Ok(Piece::Annotation(k.to_string()))
            } else {
                Err(unknown())
            }
        }
    }
}

/// The rule every rendered path must pass (shared with the root's own
/// check, in `hostfs`).
pub use hostfs::relpath::check_relative;

impl From<hostfs::relpath::UnsafePath> for PatternError {
    fn from(e: hostfs::relpath::UnsafePath) -> Self {
        PatternError::UnsafePath {
            path: e.path,
            why: e.why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        labels: &'a BTreeMap<String, String>,
        annotations: &'a BTreeMap<String, String>,
    ) -> PatternInput<'a> {
        PatternInput {
            pv_name: "pvc-1234",
            namespace: "team-a",
            name: "data",
            labels: Some(labels),
            annotations: Some(annotations),
        }
    }

    fn maps() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let labels = BTreeMap::from([("app".to_string(), "db".to_string())]);
        let annotations = BTreeMap::from([
            ("example.com/dir".to_string(), "fast".to_string()),
            ("evil".to_string(), "../../etc".to_string()),
        ]);
        (labels, annotations)
    }

    #[test]
    fn default_pattern_is_the_pv_name() {
        let (l, a) = maps();
        let p = PathPattern::parse(DEFAULT_PATTERN).unwrap();
        assert_eq!(p.render(&input(&l, &a)).unwrap(), "pvc-1234");
    }

    #[test]
    fn renders_claim_fields_labels_and_annotations() {
        let (l, a) = maps();
        let p = PathPattern::parse(
            "{{ .PVC.Namespace }}/{{.PVC.Name}}-{{ .PVC.Labels.app }}/{{ index .PVC.Annotations \"example.com/dir\" }}",
        )
        .unwrap();
        assert_eq!(p.render(&input(&l, &a)).unwrap(), "team-a/data-db/fast");
    }

    #[test]
    fn unknown_fields_and_unclosed_actions_are_errors() {
        assert_eq!(
            PathPattern::parse("{{ .PVC.Spec }}"),
            Err(PatternError::UnknownField(".PVC.Spec".into()))
        );
        assert_eq!(
            PathPattern::parse("a/{{ .PVName"),
            Err(PatternError::Unclosed)
        );
        assert_eq!(PathPattern::parse("a}}"), Err(PatternError::Unclosed));
        assert!(PathPattern::parse("{{ printf \"%s\" .PVName }}").is_err());
    }

    #[test]
    fn missing_label_is_an_error_naming_the_key() {
        let (l, a) = maps();
        let p = PathPattern::parse("{{ .PVC.Labels.tier }}").unwrap();
        let err = p.render(&input(&l, &a)).unwrap_err();
        assert_eq!(err.to_string(), "the claim has no labels key `tier`");
    }

    #[test]
    fn a_slash_in_a_value_is_refused_unless_the_class_allows_it() {
        let (l, mut a) = maps();
        a.insert("dir".into(), "team-a/data".into());
        let p = PathPattern::parse("{{ .PVC.Namespace }}/{{ .PVC.Annotations.dir }}").unwrap();
        let e = p.render(&input(&l, &a)).unwrap_err();
        assert_eq!(
            e,
            PatternError::SlashInValue {
                field: ".PVC.Annotations.dir".into(),
                value: "team-a/data".into()
            }
        );
        assert!(e.to_string().contains("allowSlashInValues"), "{e}");
        // Literal slashes in the pattern are the class author's and fine.
        let (l2, a2) = maps();
        assert_eq!(
            PathPattern::parse("x/{{ .PVC.Labels.app }}/y")
                .unwrap()
                .render(&input(&l2, &a2))
                .unwrap(),
            "x/db/y"
        );
        let p = p.allow_slash_in_values(true);
        assert_eq!(p.render(&input(&l, &a)).unwrap(), "team-a/team-a/data");
    }

    #[test]
    fn escaping_paths_are_rejected_after_rendering() {
        let (l, a) = maps();
        let p = PathPattern::parse("x/{{ .PVC.Annotations.evil }}").unwrap();
        assert!(matches!(
            p.render(&input(&l, &a)),
            Err(PatternError::SlashInValue { .. })
        ));
        let p = p.allow_slash_in_values(true);
        assert!(matches!(
            p.render(&input(&l, &a)),
            Err(PatternError::UnsafePath { .. })
        ));
    }
}
