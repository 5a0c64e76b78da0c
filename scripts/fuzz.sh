#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ for a chosen time and prints, per
# target, the executions, coverage, corpus growth and findings.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        (default 60)
#
# Configures and builds build-fuzz/ with clang (DFV_BUILD_FUZZERS=ON: ASan,
# UBSan and libFuzzer) when needed. Each target runs on a fresh copy of its
# seed corpus (fuzz/corpus/<name>), so the tree is never modified; what a run
# finds (crash-*, leak-*, timeout-*, oom-* inputs) and the grown corpus stay
# under build-fuzz/fuzz-runs/<name>/. A target stops at its first finding.
# Exit status: 0 when no target found anything, 1 when one did, 2 when the
# tools are missing.
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz); FUZZ_TARGETS (default: every
# target, e.g. "jobspec idx"); FUZZ_SKIP (targets to leave out); FUZZ_JOBS
# (build jobs, default nproc).
# The checkpoint targets link LibTorch: their first build compiles the torch
# parts of dfv again with clang (about 25 translation units, ~5 CPU-minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
# Every target: one fuzz/<name>_fuzzer.cc each.
all_targets=$(ls fuzz/*_fuzzer.cc | sed 's|fuzz/||; s|_fuzzer\.cc$||' | tr '\n' ' ')
targets=""
for t in ${FUZZ_TARGETS:-$all_targets}; do
  [[ " ${FUZZ_SKIP:-} " == *" $t "* ]] || targets+="$t "
done

if ! command -v clang++ >/dev/null 2>&1 || ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang and clang++ are needed (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
if [ ! -f "$build_dir/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDFV_BUILD_FUZZERS=ON -DDFV_BUILD_TESTS=OFF -DDFV_BUILD_BENCH=OFF >/dev/null
fi
build_targets=()
for t in $targets; do
  [ -f "fuzz/${t}_fuzzer.cc" ] || { echo "fuzz: no target '$t' (have: $all_targets)" >&2; exit 2; }
  build_targets+=("${t}_fuzzer")
done
cmake --build "$build_dir" -j "${FUZZ_JOBS:-$(nproc)}" --target "${build_targets[@]}"

runs_dir="$build_dir/fuzz-runs"
summary=()
found_any=0
for t in $targets; do
  run="$runs_dir/$t"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/findings"
  cp -r "fuzz/corpus/$t/." "$run/corpus/"
  seeds=$(find "$run/corpus" -type f | wc -l)
  echo "fuzz: $t for ${seconds}s on $seeds seeds (log: $run/log)"
  # The checkpoint targets (LibTorch) run without leak detection: LibTorch
  # 1.13's zip reader leaks 152 bytes for each archive whose directory it
  # cannot read (fuzz/known/README.md), which would end every run at once.
  leaks=1
  case "$t" in checkpoint*) leaks=0 ;; esac
  asan_options="detect_leaks=$leaks${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  # Scratch files (the targets that read files) on tmpfs when there is one,
  # in a folder of this run's, removed after it (a crash leaves the target's
  # own scratch folder behind).
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    scratch=$(mktemp -d /dev/shm/dfv-fuzz-run.XXXXXX)
  else
    scratch=$(mktemp -d "$run/scratch.XXXXXX")
  fi
  start=$(date +%s)
  set +e
  ASAN_OPTIONS="$asan_options" TMPDIR="$scratch" "$build_dir/fuzz/${t}_fuzzer" "$run/corpus" \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -detect_leaks="$leaks" \
    -print_final_stats=1 -artifact_prefix="$run/findings/" >"$run/log" 2>&1
  rc=$?
  set -e
  rm -rf "$scratch"
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -1)
  # The last status line: "#N DONE cov: C ft: F corp: U/Bb ..." (or the
  # last progress line when the run stopped on a finding).
  last=$(grep -E '^#[0-9]+' "$run/log" | grep -E ' cov: ' | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  # Crashes (failed checks and sanitizer reports among them), leaks,
  # timeouts and out-of-memory; slow-unit-* files (inputs over 10 s) are
  # only reported.
  findings=$(find "$run/findings" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)
  slow=$(find "$run/findings" -type f -name 'slow-unit-*' | wc -l)
  [ "$slow" -eq 0 ] || echo "fuzz: $t: $slow inputs took over 10 s (slow-unit-* in $run/findings)" >&2
  if [ "$findings" -gt 0 ] || [ "$rc" -ne 0 ]; then
    found_any=1
    echo "fuzz: $t FOUND something (exit $rc): $(ls "$run/findings" | tr '\n' ' ')" >&2
    grep -E 'ERROR: |fuzz check failed|runtime error|SUMMARY' "$run/log" | head -5 >&2 || true
  fi
  summary+=("$(printf '%-19s %6ss %12s %9s %6s %7s %6s -> %-6s %8s' "$t" "$elapsed" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "${corp:-?}" "$findings")")
done

printf '\n%-19s %7s %12s %9s %6s %7s %16s %8s\n' target time executions exec/s cov features "corpus" findings
for line in "${summary[@]}"; do echo "$line"; done
if [ "$found_any" -ne 0 ]; then
  echo "fuzz: findings are under $runs_dir/*/findings; replay one with $build_dir/fuzz/<target>_fuzzer FILE" >&2
  exit 1
fi
