#!/usr/bin/env bash
# Runs every fuzz target (fuzz/src, crate external-storage-fuzz) for a fixed
# time each (default 30 s; FUZZ_SECONDS to change) and fails if any breaks an
# invariant. Two drivers, the same target functions:
#   - cargo-fuzz (libFuzzer, coverage-guided) when a nightly toolchain and
#     cargo-fuzz are installed (`cargo install cargo-fuzz --locked`); crashes
#     in fuzz/libfuzzer/artifacts/<target>/, corpus in fuzz/libfuzzer/corpus/;
#   - otherwise `fuzz-random` on stable: random mutations of each target's
#     seeds and corpus, no coverage feedback (weaker, but it runs everywhere,
#     CI included); crashes in fuzz/artifacts/<target>/.
# FUZZ_DRIVER=random forces the stable driver.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds="${FUZZ_SECONDS:-30}"
driver=${FUZZ_DRIVER:-}
if [ -z "$driver" ]; then
  if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1; then
    driver=libfuzzer
  else
    driver=random
    echo "fuzz: no nightly toolchain + cargo-fuzz here: using the stable random-mutation driver (no coverage guidance)"
  fi
fi

if [ "$driver" = random ]; then
  cd "$root"
  cargo build -q --locked -p external-storage-fuzz --bin fuzz-random
  exec "${CARGO_TARGET_DIR:-$root/target}/debug/fuzz-random" --seconds "$seconds"
fi

cd "$root/fuzz"
targets=$(cargo +nightly fuzz list --fuzz-dir libfuzzer)
total=0
for t in $targets; do
  echo "==> fuzz $t for ${seconds}s (cargo-fuzz)"
  start=$(date +%s)
  log="$root/fuzz/libfuzzer/target/fuzz-$t.log"
  mkdir -p "$root/fuzz/libfuzzer/target"
  rc=0
  cargo +nightly fuzz run --fuzz-dir libfuzzer "$t" -- -max_total_time="$seconds" -rss_limit_mb=1024 >"$log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+.*DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|thread .* panicked|Test unit written)" "$log" || true
  total=$((total + $(date +%s) - start))
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: $t FAILED (exit $rc); the input is in fuzz/libfuzzer/artifacts/$t/" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s without a crash (${total}s in total, builds included)"
