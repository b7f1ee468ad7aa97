//! Fuzz targets for every parser of untrusted input (docs/security.md,
//! hole 8), as plain functions so that two drivers can run them: cargo-fuzz
//! (`libfuzzer/`, nightly, coverage-guided) and `fuzz-random` (stable,
//! random mutations of seed inputs; what CI runs). Each target's `check`
//! panics exactly when an invariant is broken; the drivers treat a panic as
//! a finding and keep the input.

pub mod class_params;
pub mod flex_reply;
pub mod local_volume_config;
pub mod mutate;
pub mod nfs_export_record;
pub mod path_pattern;

/// One fuzz target: its name (the cargo-fuzz binary's), the function under
/// test, seed inputs that reach its deeper branches, and tokens the random
/// driver splices in.
pub struct Target {
    /// The name, as `cargo fuzz list` prints it.
    pub name: &'static str,
    /// Runs one input; panics if an invariant is broken.
    pub check: fn(&[u8]),
    /// Inputs that parse, as starting points for mutation.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Fragments of the input language (keys, delimiters, tricky paths).
    pub tokens: &'static [&'static str],
}

/// Every target, in the order the drivers run them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "path_pattern",
        check: path_pattern::check,
        seeds: path_pattern::seeds,
        tokens: path_pattern::TOKENS,
    },
    Target {
        name: "class_params",
        check: class_params::check,
        seeds: class_params::seeds,
        tokens: class_params::TOKENS,
    },
    Target {
        name: "local_volume_config",
        check: local_volume_config::check,
        seeds: local_volume_config::seeds,
        tokens: local_volume_config::TOKENS,
    },
    Target {
        name: "flex_reply",
        check: flex_reply::check,
        seeds: flex_reply::seeds,
        tokens: flex_reply::TOKENS,
    },
    Target {
        name: "nfs_export_record",
        check: nfs_export_record::check,
        seeds: nfs_export_record::seeds,
        tokens: nfs_export_record::TOKENS,
    },
];

fn lines(seeds: &[&str]) -> Vec<Vec<u8>> {
    seeds.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_passes_its_own_check() {
        for t in TARGETS {
            let seeds = (t.seeds)();
            assert!(!seeds.is_empty(), "{} has no seed", t.name);
            for s in seeds {
                (t.check)(&s);
            }
        }
    }

    #[test]
    fn target_names_match_the_cargo_fuzz_harnesses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/libfuzzer/fuzz_targets");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.trim_end_matches(".rs").to_string()
            })
            .collect();
        files.sort();
        let mut names: Vec<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        assert_eq!(files, names);
    }
}
