#!/usr/bin/env bash
# The cost of the worker's /metrics on the training step (a benchmark, not a
# test): one coordinator and one worker daemon on loopback run the same short
# job again and again, alternately with a scraper reading the worker's
# /metrics every second (as Prometheus would) and without one; the order
# flips every round so a drift of the machine's load hits both alike.
#
# For each run it reads the job's metrics.csv (downloaded with dfvctl): the
# median over the log windows (the first one, warm-up, left out) of
# step_time_seconds (the training step itself, as the trainer times it) and
# of 1 / samples_per_second * batch (the wall time per step, data loading and
# reporting included). It prints every run, then the median of each per mode
# and the ratios scraped / not scraped. The issue's target: < 1.01.
#
#   bench/metrics_overhead.sh [ROUNDS] [STEPS]      (default 5 rounds of 3000 steps)
#
# Time: about 25 s per run of 3000 steps on the 2-core development machine
# (2 runs per round), plus the build of dfv-coordinator, dfv-worker, dfv-trainer and
# dfvctl when they are not built. Other work on the machine skews the
# figures: check `uptime` first.
#
# Environment: BUILD_DIR (default build; configured here when it has no
# build.ninja).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
steps=${2:-3000}
build_dir=${BUILD_DIR:-build}
batch=16
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

# shellcheck source=scripts/lib/local_cluster.sh
source scripts/lib/local_cluster.sh
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" --target "${CLUSTER_TARGETS[@]}" >/dev/null
bin=$build_dir/bin

start_local_cluster "$bin" 1 metrics-overhead
coordinator=$DFV_COORDINATOR
work=$(mktemp -d)
cleanup() {
  stop_local_cluster
  rm -rf "$work" "$CLUSTER_STATE"
}
trap cleanup EXIT
metrics=$(sed -n 's/^metrics //p' "$CLUSTER_STATE/worker-1.ready")
[ -n "$metrics" ] || { echo "the worker serves no /metrics" >&2; exit 1; }

cat >"$work/job.yaml" <<EOF
name: metrics-overhead
model: vae
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 2048, sprites_test: 64, seed: 3}
train: {epochs: 1000, max_steps: $steps, batch_size: $batch, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: 100}
checkpoint: {every_steps: 0}
samples: {every_steps: 0}
EOF

# The median of column NAME of a metrics.csv, rows after the first; with
# INVERT, of BATCH / value (samples/s -> seconds per step).
column_median() {  # CSV NAME [INVERT]
  awk -F, -v name="$2" -v invert="${3:-}" -v batch="$batch" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) col = i; next }
    NR > 2 && col { v = $col; if (invert) v = batch / v; print v }' "$1" |
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

scrapes=0
run() {  # MODE (scraped | plain) ROUND
  local mode=$1 dir="$work/run-$2-$1" scraper=""
  if [ "$mode" = scraped ]; then
    ( while true; do curl -sf "http://$metrics/metrics" >/dev/null || exit 1; sleep 1; done ) &
    scraper=$!
  fi
  local started=$SECONDS
  "$bin/dfvctl" --coordinator "$coordinator" submit "$work/job.yaml" --follow --download "$dir" >"$dir.out" 2>&1 ||
    { echo "the job failed:" >&2; cat "$dir.out" >&2; exit 1; }
  if [ -n "$scraper" ]; then
    kill "$scraper" 2>/dev/null && wait "$scraper" 2>/dev/null || true
    scrapes=$((scrapes + SECONDS - started))
  fi
  local step wall
  step=$(column_median "$dir/metrics.csv" step_time_seconds)
  wall=$(column_median "$dir/metrics.csv" samples_per_second invert)
  printf '%-8s round %d  step_time %.6f s  wall/step %.6f s\n' "$mode" "$2" "$step" "$wall"
  echo "$mode $step $wall" >>"$work/results"
}

echo "load before: $(uptime)"
echo "worker /metrics at $metrics; $rounds rounds of $steps steps (vae, sprites 28x28, batch $batch, 1 thread)"
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then run plain "$round"; run scraped "$round"; else run scraped "$round"; run plain "$round"; fi
done
echo "load after: $(uptime)"
sample=$(curl -sf "http://$metrics/metrics" | wc -c)
echo "one scrape: $sample bytes; about $scrapes scrapes in the scraped runs"

median_of() {  # MODE FIELD
  awk -v mode="$1" -v f="$2" '$1 == mode { print $f }' "$work/results" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
awk -v sp="$(median_of scraped 2)" -v pp="$(median_of plain 2)" -v sw="$(median_of scraped 3)" \
  -v pw="$(median_of plain 3)" 'BEGIN {
  printf "median step_time: scraped %.6f s, plain %.6f s, ratio %.4f\n", sp, pp, sp / pp
  printf "median wall/step: scraped %.6f s, plain %.6f s, ratio %.4f\n", sw, pw, sw / pw
  printf "target: ratio < 1.01 (metrics cost under 1%% of step time)\n" }'
