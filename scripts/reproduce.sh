#!/usr/bin/env bash
# The reproduction table (docs/reproduction.md): trains every job file in
# examples/reproduction/ through the whole service, on a local coordinator and
# one CPU worker daemon with --parallel slots (default: one per core; each
# slot's trainer is pinned to its share of the cores, and one thread trains
# these small networks as fast as two on the 2-core machines, see
# bench/step_vs_python.sh), downloads each run, and renders the table from the runs' report.json with the published
# figures and the targets beside them (scripts/reproduction_table.py).
# Each run is an ordinary `dfvctl submit --follow`, so this is also a long
# end-to-end test of the service: it exits non-zero if a job does not end
# SUCCEEDED or its report lacks a field the table needs.
#
#   scripts/reproduce.sh [--only REGEX] [--out DIR] [--parallel N] [--docs] [-- dfvctl submit args...]
#
#   --only REGEX  run only the job files whose name matches (grep -E)
#   --parallel N  jobs trained at once (default: the cores this script may use)
#   --out DIR     folder for the runs and the table (default runs/reproduction-<time>)
#   --docs        also write the table to docs/reproduction.md
set -euo pipefail
cd "$(dirname "$0")/.."
only=. out="runs/reproduction-$(date +%Y%m%d-%H%M%S)" docs=0 parallel=$(nproc) submit_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --docs) docs=1; shift ;;
    --) shift; submit_args=("$@"); break ;;
    *) echo "reproduce: unknown argument $1 (known: --only, --out, --parallel, --docs, --)" >&2; exit 2 ;;
  esac
done
if ! [[ "$parallel" =~ ^[1-9][0-9]*$ ]]; then
  echo "reproduce: --parallel takes a positive count of jobs, not '$parallel'" >&2
  exit 2
fi

scripts/install-deps.sh --reproduce
# shellcheck source=scripts/lib/local_cluster.sh
source scripts/lib/local_cluster.sh
build_cluster_binaries
bin="${BUILD_DIR:-build}/bin"

mapfile -t files < <(ls examples/reproduction/*.yaml | grep -E -- "$only" || true)
if [ ${#files[@]} -eq 0 ]; then
  echo "reproduce: no job file in examples/reproduction/ matches '$only'" >&2
  exit 2
fi

start_local_cluster "$bin" 1 reproduce "$parallel"
mkdir -p "$out"
rm -f "$out/.failed"
started=$(date +%s)
# Up to $parallel follows at once; the worker's slots run them side by side.
# The waits name the follows: the cluster's daemons are this shell's children too.
follows=()
for file in "${files[@]}"; do
  while [ ${#follows[@]} -ge "$parallel" ]; do
    wait -n "${follows[@]}" || true
    still=()
    for pid in "${follows[@]}"; do kill -0 "$pid" 2>/dev/null && still+=("$pid"); done
    follows=(${still[@]+"${still[@]}"})
  done
  name=$(basename "$file" .yaml)
  echo "reproduce: $name ($(date +%H:%M:%S))" >&2
  (
    if ! "$bin/dfvctl" submit --follow "$file" --download "$out/$name" "${submit_args[@]}" > "$out/$name.log" 2>&1; then
      echo "reproduce: $name did not succeed; its output is $out/$name.log" >&2
      echo "$name" >> "$out/.failed"
    fi
  ) &
  follows+=($!)
done
for pid in "${follows[@]}"; do wait "$pid" 2>/dev/null || true; done
seconds=$(($(date +%s) - started))
failed=()
[ -f "$out/.failed" ] && mapfile -t failed < "$out/.failed"
rm -f "$out/.failed"

# The table checks every run's report for the fields it shows.
if ! python3 scripts/reproduction_table.py --total-seconds "$seconds" --parallel "$parallel" "$out" > "$out/reproduction.md"; then
  failed+=("the table")
fi
[ "$docs" = 1 ] && cp "$out/reproduction.md" docs/reproduction.md
echo "reproduce: ${#files[@]} runs in ${seconds}s; table in $out/reproduction.md" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "reproduce: FAILED: ${failed[*]}" >&2
  exit 1
fi
