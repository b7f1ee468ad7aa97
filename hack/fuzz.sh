#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time each (default 30 s;
# FUZZ_SECONDS to change) and fails if any finds a crash. Needs a nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`); without
# them it says so and exits 0, so hack/test.sh stays runnable on stable-only
# machines (the report says the fuzzing was skipped). Crashes are kept in
# fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds="${FUZZ_SECONDS:-30}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped, no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped, cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
  exit 0
fi
cd "$root/fuzz"
targets=$(cargo +nightly fuzz list)
total=0
for t in $targets; do
  echo "==> fuzz $t for ${seconds}s"
  start=$(date +%s)
  log="$root/fuzz/target/fuzz-$t.log"
  mkdir -p "$root/fuzz/target"
  rc=0
  cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=1024 >"$log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+.*DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|thread .* panicked|Test unit written)" "$log" || true
  total=$((total + $(date +%s) - start))
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: $t FAILED (exit $rc); the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s without a crash (${total}s in total, builds included)"
