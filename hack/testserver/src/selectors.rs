//! Label and field selectors as used by list and watch.
//!
//! Parses the string forms (`a=b,c!=d,e in (f,g),!h`) and matches them
//! against JSON objects.

use serde_json::Value;

/// One label selector requirement.
#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    /// `k=v` / `k==v`
    Eq(String, String),
    /// `k!=v` (also matches objects without the key)
    NotEq(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)` (also matches objects without the key)
    NotIn(String, Vec<String>),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
}

/// A parsed label selector (ANDed requirements).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(pub Vec<Req>);

fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

impl LabelSelector {
    /// Parses a selector string.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_top(s) {
            if let Some(paren) = term.find('(') {
                let head = term[..paren].trim();
                let body = term[paren + 1..]
                    .trim()
                    .strip_suffix(')')
                    .ok_or_else(|| format!("unable to parse requirement: {term}"))?;
                let vals: Vec<String> = body
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                if let Some(k) = head.strip_suffix("notin") {
                    reqs.push(Req::NotIn(k.trim().to_string(), vals));
                } else if let Some(k) = head.strip_suffix("in") {
                    reqs.push(Req::In(k.trim().to_string(), vals));
                } else {
                    return Err(format!("unable to parse requirement: {term}"));
                }
            } else if let Some(k) = term.strip_prefix('!') {
                reqs.push(Req::NotExists(k.trim().to_string()));
            } else if let Some((k, v)) = term.split_once("!=") {
                reqs.push(Req::NotEq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = term.split_once("==") {
                reqs.push(Req::Eq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = term.split_once('=') {
                reqs.push(Req::Eq(k.trim().to_string(), v.trim().to_string()));
            } else {
                if term.contains(' ') {
                    return Err(format!("unable to parse requirement: {term}"));
                }
                reqs.push(Req::Exists(term.to_string()));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Matches a label map (`metadata.labels`, may be null).
    pub fn matches_labels(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.is_empty() || self.matches_labels(obj.pointer("/metadata/labels"))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON object (matchLabels/matchExpressions).
    pub fn from_json(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Req::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let vals: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                match e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                {
                    "In" => reqs.push(Req::In(key, vals)),
                    "NotIn" => reqs.push(Req::NotIn(key, vals)),
                    "Exists" => reqs.push(Req::Exists(key)),
                    "DoesNotExist" => reqs.push(Req::NotExists(key)),
                    _ => reqs.push(Req::In(key, vec![])),
                }
            }
        }
        LabelSelector(reqs)
    }
}

/// A parsed field selector: `path=value` / `path!=value` terms on dotted JSON paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a field selector. Any dotted field path is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in split_top(s) {
            if let Some((k, v)) = term.split_once("!=") {
                out.push((k.trim().to_string(), false, v.trim().to_string()));
            } else if let Some((k, v)) = term.split_once("==") {
                out.push((k.trim().to_string(), true, v.trim().to_string()));
            } else if let Some((k, v)) = term.split_once('=') {
                out.push((k.trim().to_string(), true, v.trim().to_string()));
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            }
        }
        Ok(FieldSelector(out))
    }

    /// Matches an object; missing fields compare as the empty string.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "node-a"}})
    }

    #[test]
    fn label_ops() {
        let o = obj(json!({"app": "web", "tier": "fe"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"));
        assert!(m("app in (web, db)"));
        assert!(!m("app notin (web,db)"));
        assert!(m("missing notin (a)"));
        assert!(m("tier"));
        assert!(!m("!tier"));
        assert!(m("!missing"));
        assert!(m("app=web,tier in (fe),!missing"));
        assert!(!m("app=web,tier=be"));
        assert!(m(""));
    }

    #[test]
    fn field_ops() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m("metadata.name=n1"));
        assert!(m("metadata.namespace==ns,spec.nodeName=node-a"));
        assert!(!m("spec.nodeName!=node-a"));
        assert!(m("spec.nodeName!="));
        assert!(FieldSelector::parse("bogus").is_err());
    }

    #[test]
    fn from_json_selector() {
        let s = LabelSelector::from_json(
            &json!({"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "c", "operator": "Exists"}]}),
        );
        assert!(s.matches(&obj(json!({"a": "b", "c": ""}))));
        assert!(!s.matches(&obj(json!({"a": "b"}))));
    }
}
