//! The stable driver's input generator: random edits of seed inputs, in
//! the spirit of libFuzzer's mutators but without coverage feedback. It
//! finds what random structure-aware edits find (delimiters in odd places,
//! truncations, repeated and spliced fragments), not what only coverage
//! guidance reaches; docs/security.md says which driver ran.

use rand::seq::IndexedRandom;
use rand::Rng;

/// Longest input produced: parsers here read short texts (a class
/// parameter, a config, one reply), and longer inputs only slow the run.
pub const MAX_LEN: usize = 4096;

/// A new input: one of `pool` with 1 to 8 random edits, each an insertion
/// of a token or random bytes, a deletion, a byte flip, a duplication, a
/// splice with another pool entry, or a truncation.
pub fn mutate(rng: &mut impl Rng, pool: &[Vec<u8>], tokens: &[&str]) -> Vec<u8> {
    let mut data = pool.choose(rng).cloned().unwrap_or_default();
    for _ in 0..rng.random_range(1..=8) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..7) {
            0 => {
                if let Some(t) = tokens.choose(rng) {
                    data.splice(at..at, t.bytes());
                }
            }
            1 => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(at..at, bytes);
            }
            2 if !data.is_empty() => {
                let end = (at + rng.random_range(1..=16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            4 if !data.is_empty() => {
                let start = rng.random_range(0..data.len());
                let end = (start + rng.random_range(1..=32)).min(data.len());
                let piece = data[start..end].to_vec();
                data.splice(at..at, piece);
            }
            5 => {
                if let Some(other) = pool.choose(rng) {
                    let cut = rng.random_range(0..=other.len());
                    data.truncate(at);
                    data.extend_from_slice(&other[cut..]);
                }
            }
            _ => data.truncate(at),
        }
    }
    data.truncate(MAX_LEN);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn mutations_stay_bounded_and_vary() {
        let mut rng = StdRng::seed_from_u64(1);
        let pool = vec![b"{{ .PVName }}".to_vec()];
        let outs: std::collections::BTreeSet<Vec<u8>> = (0..200)
            .map(|_| mutate(&mut rng, &pool, &["/", ".."]))
            .collect();
        assert!(outs.len() > 100, "only {} distinct inputs", outs.len());
        assert!(outs.iter().all(|o| o.len() <= MAX_LEN));
        assert!(outs.iter().any(|o| o.windows(2).any(|w| w == b"..")));
    }

    #[test]
    fn an_empty_pool_still_yields_inputs() {
        let mut rng = StdRng::seed_from_u64(2);
        let outs: Vec<Vec<u8>> = (0..50).map(|_| mutate(&mut rng, &[], &["x"])).collect();
        assert!(outs.iter().any(|o| !o.is_empty()));
    }
}
