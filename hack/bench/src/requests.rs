//! API requests the provisioner made, per volume and by verb: the test
//! server's counters minus the requests the benchmark itself sent.

use std::collections::BTreeMap;

use kube_testserver::Stats;

/// Requests per volume, by verb (all resources summed), plus the total.
#[derive(Debug, Clone, Default)]
pub struct PerVolume {
    /// verb → requests per volume.
    pub by_verb: BTreeMap<String, f64>,
    /// resource → requests per volume.
    pub by_resource: BTreeMap<String, f64>,
    /// All requests per volume.
    pub total: f64,
}

/// Requests counted by the driver itself, subtracted from the server's counts.
#[derive(Debug, Clone, Default)]
pub struct Own(BTreeMap<(String, String), u64>);

impl Own {
    /// Records `n` requests of `verb` on `resource` sent by the driver.
    pub fn add(&mut self, verb: &str, resource: &str, n: u64) {
        *self.0.entry((verb.into(), resource.into())).or_default() += n;
    }
}

impl PerVolume {
    /// `(stats - own) / volumes`.
    pub fn compute(stats: &Stats, own: &Own, volumes: usize) -> Self {
        let mut out = Self::default();
        let n = volumes.max(1) as f64;
        for ((verb, res), count) in &stats.by_verb_resource {
            let mine = count.saturating_sub(
                own.0
                    .get(&(verb.clone(), res.clone()))
                    .copied()
                    .unwrap_or(0),
            );
            if mine == 0 {
                continue;
            }
            let per = mine as f64 / n;
            *out.by_verb.entry(verb.clone()).or_default() += per;
            *out.by_resource.entry(res.clone()).or_default() += per;
            out.total += per;
        }
        out
    }

    /// `verb=x.xx` pairs, for a table cell.
    pub fn verbs_cell(&self) -> String {
        self.by_verb
            .iter()
            .map(|(v, n)| format!("{v} {n:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
