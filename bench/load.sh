#!/usr/bin/env bash
# The coordinator under load (issue 15): builds dfv-coordinator and
# dfv_bench_load, then plays 1,000 simulated workers, 2,000 jobs from 16
# submitters and 100 watchers against it on loopback. Extra flags go to
# dfv_bench_load (--workers, --jobs, --submitters, --watchers, --rows, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${DFV_BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target dfv-coordinator dfv_bench_load >/dev/null
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$build/bin/dfv_bench_load" --coordinator "$build/bin/dfv-coordinator" "$@"
