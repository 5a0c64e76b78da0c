#!/usr/bin/env bash
# Every benchmark in bench/, one after the other, each with its defaults (a
# benchmark run, not a test): what issue 17's figures in the README come
# from. Each prints its own ratios, measured in the same run against its own
# baseline; this script only sequences them, prints the load average between
# them (other work on the machine skews every figure) and, at the end, which
# of them failed. The machine should be otherwise idle.
#
#   bench/all.sh
#
#   dfv_bench_deconv        transposed convolutions, stock vs oneDNN
#   step_vs_python.sh       the training step against the Python references
#   run.sh                  all-reduce throughput, 1 vs 2 ranks
#   overhead.sh             the service's overhead, submit-to-first-step,
#                           checkpoint upload
#   metrics_overhead.sh     the worker's /metrics on the step
#   core_share.sh           two jobs on one 2-slot worker, pinned or not
#   load.sh                 the coordinator under simulated load
#
# Each script's header says how long it takes; each step's seconds are
# printed after it.
# Environment: BUILD_DIR (default build), passed on to each.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
build_dir=${BUILD_DIR:-build}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
fi

failed=()
run() {  # NAME COMMAND...
  local name=$1 start
  shift
  echo "=== $name ($(date -u +%H:%M:%S); load: $(cut -d' ' -f1-3 /proc/loadavg))"
  start=$(date +%s)
  if ! "$@"; then failed+=("$name"); fi
  echo "=== $name: $(($(date +%s) - start)) s"
  echo
}

deconv() {
  cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" --target dfv_bench_deconv >/dev/null &&
    "$build_dir/bin/dfv_bench_deconv"
}

run deconv deconv
run step_vs_python bench/step_vs_python.sh
run run bench/run.sh
run overhead bench/overhead.sh
run metrics_overhead bench/metrics_overhead.sh
run core_share bench/core_share.sh
run load bench/load.sh
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "every benchmark ran"
