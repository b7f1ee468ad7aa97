//! Runs every fuzz target on the stable toolchain for a fixed time each,
//! feeding it random mutations of its seeds and of its cargo-fuzz corpus
//! (`fuzz/libfuzzer/corpus/<target>/`, when one exists). The first panic
//! stops the run: the input is written to `fuzz/artifacts/<target>/` and
//! the exit status is 1. hack/fuzz.sh uses this where cargo-fuzz (nightly)
//! is missing, which includes CI.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use external_storage_fuzz::{mutate::mutate, TARGETS};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Parser)]
#[command(about = "Random-mutation fuzzing of the provisioners' parsers (stable toolchain)")]
struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Only these targets (default: all).
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Random seed (default: from the clock; printed, to replay a run).
    #[arg(long)]
    seed: Option<u64>,
    /// The fuzz/ directory (corpus under libfuzzer/corpus, artifacts here).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR")))]
    dir: PathBuf,
}

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter(|d| d.len() <= external_storage_fuzz::mutate::MAX_LEN)
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for t in &args.targets {
        if !TARGETS.iter().any(|k| k.name == t) {
            bail!("no fuzz target {t}");
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("fuzz-random: seed {seed}, {} s per target", args.seconds);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = 0u64;
    for t in TARGETS {
        if !args.targets.is_empty() && !args.targets.iter().any(|n| n == t.name) {
            continue;
        }
        let mut pool = (t.seeds)();
        let from_corpus = corpus(&args.dir.join("libfuzzer/corpus").join(t.name));
        let corpus_len = from_corpus.len();
        pool.extend(from_corpus);
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let mut runs = 0u64;
        while Instant::now() < deadline {
            // Check the clock every 256 inputs: each run is microseconds.
            for _ in 0..256 {
                let input = mutate(&mut rng, &pool, t.tokens);
                if catch_unwind(AssertUnwindSafe(|| (t.check)(&input))).is_err() {
                    let out = args.dir.join("artifacts").join(t.name);
                    std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
                    let file = out.join(format!("crash-seed{seed}-run{runs}"));
                    std::fs::write(&file, &input)?;
                    bail!(
                        "{}: invariant broken after {runs} runs (seed {seed}); input: {} ({:?})",
                        t.name,
                        file.display(),
                        String::from_utf8_lossy(&input)
                    );
                }
                runs += 1;
            }
        }
        total += runs;
        println!(
            "fuzz-random: {} {runs} runs in {} s, no crash ({} seeds + {corpus_len} corpus inputs)",
            t.name,
            args.seconds,
            (t.seeds)().len()
        );
    }
    println!("fuzz-random: {total} runs in total, no crash");
    Ok(())
}
