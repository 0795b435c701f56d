#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes the vault owns, for a bounded time per target, and fails
# if any target finds a crash, a panic, a timeout or an out-of-memory.
#
#   bash tests/fuzz/run.sh                  every target, FUZZ_SECONDS (default 20) each
#   bash tests/fuzz/run.sh terms jwt        only these targets
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh a longer hunt
#
# Each target starts from a working corpus in tests/fuzz/corpus/<target> (not in git), seeded
# from the small hand-made valid inputs committed in tests/fuzz/seeds/<target>, and keeps what it
# learns there between runs. A finding is written to tests/fuzz/artifacts/<target>/. Replay it
# with the built target, `tests/fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>`,
# minimise it by adding `-minimize_crash=1 -runs=100000`, and make it a regression test in the
# main crate next to the parser.
#
# cargo-fuzz needs nightly compiler flags: they are enabled on the stable toolchain with
# RUSTC_BOOTSTRAP=1, as this script does. Needs network access to crates.io only, for cargo-fuzz
# and the fuzz crate's dependencies (pinned in tests/fuzz/Cargo.lock).
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
# No sanitizer: the vault forbids unsafe code, so what fuzzing finds here are panics, overflows,
# hangs and runaway allocations, which libFuzzer catches on its own, and AddressSanitizer would
# only cost build time and executions. FUZZ_SANITIZER=address turns it back on.
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
# The build is most of the script's time on a small machine, so it is made cheap by default:
# optimisation level 1, and sixteen codegen units so that the vault crate builds on every core,
# where cargo-fuzz would use level 3 and one unit (about 7 minutes from scratch on the 2-core
# development machine, against 12 seen with cargo-fuzz's own settings on a busier one). For a
# long hunt, FUZZ_OPT_LEVEL=3 may run faster once built.
FUZZ_OPT_LEVEL=${FUZZ_OPT_LEVEL:-1}
FUZZ_CODEGEN_UNITS=${FUZZ_CODEGEN_UNITS:-16}
# Every input gets at most this long and this much memory before it counts as a finding.
FUZZ_TIMEOUT_SECONDS=${FUZZ_TIMEOUT_SECONDS:-10}
FUZZ_RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-2048}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1

installed=$(cargo fuzz --version 2>/dev/null || true)
if [ "$installed" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

export CARGO_PROFILE_RELEASE_OPT_LEVEL=$FUZZ_OPT_LEVEL
fuzz() { cargo fuzz "$1" --fuzz-dir "$here" "${@:2}"; }

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(fuzz list)
fi

echo "== building ${#targets[@]} fuzz targets (sanitizer $FUZZ_SANITIZER, opt-level $FUZZ_OPT_LEVEL)"
# One build for every target: cargo shares the dependencies between them. The targets are then
# run as built (`cargo fuzz run` would check the build again before each one).
fuzz build --sanitizer "$FUZZ_SANITIZER" --debug-assertions --codegen-units "$FUZZ_CODEGEN_UNITS"
triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$here/target/$triple/release"

failed=()
for target in "${targets[@]}"; do
  corpus="$here/corpus/$target"
  found="$here/artifacts/$target"
  mkdir -p "$corpus" "$found"
  if [ -d "$here/seeds/$target" ]; then
    cp -n "$here/seeds/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  # libFuzzer reports every new input; that goes to a log, and only its summary is shown.
  log="$found/last-run.log"
  if "$bin/$target" "$corpus" -artifact_prefix="$found/" -max_total_time="$FUZZ_SECONDS" \
    -timeout="$FUZZ_TIMEOUT_SECONDS" -rss_limit_mb="$FUZZ_RSS_LIMIT_MB" -print_final_stats=1 \
    >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "== $target: ${FUZZ_SECONDS}s, $runs executions ($rate/s), nothing found"
  else
    echo "== $target: FOUND A PROBLEM (log: $log)"
    tail -n 40 "$log"
    failed+=("$target")
  fi
done

echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in tests/fuzz/artifacts/<target>/)"
  exit 1
fi
echo "fuzzing found nothing in ${#targets[@]} targets at ${FUZZ_SECONDS}s each."
echo "For a longer hunt: FUZZ_SECONDS=600 FUZZ_OPT_LEVEL=3 bash tests/fuzz/run.sh [TARGET...]"
