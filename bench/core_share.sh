#!/usr/bin/env bash
# Two single-rank jobs side by side on one worker daemon with 2 slots (issue
# 17, core sharing): a benchmark, not a test. Both jobs have train.threads 0.
# "shared": the daemon pins each trainer to its slot's half of its cores
# (the default; each trainer then runs cores/2 threads); "unshared": the
# daemon runs with --no-core-share, so each trainer takes all the cores
# (the behaviour before core sharing). Rounds alternate the two, starting
# with a different one each round. For each job, the median samples/s over
# its metrics.csv rows (the first left out); per mode, the median over
# rounds of the two jobs' sum, and the ratio shared/unshared.
#
#   bench/core_share.sh [ROUNDS] [STEPS] [MODEL]   (default 3 rounds, 600 steps, vae;
#                                                  CORE_SHARE_ONLY=shared|unshared runs one mode)
#
# Time: about ROUNDS x 2 x (2 x STEPS x the model's step) on the 2-core
# development machine. Other work skews it: the load average is printed.
#
# Environment: BUILD_DIR (default build; configured here when it has no
# build.ninja).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-600}
model=${3:-vae}
build_dir=${BUILD_DIR:-build}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
# The cluster's binaries, named once in scripts/lib/local_cluster.sh (this
# script starts its own daemons: one worker with 2 slots, with and without
# core sharing).
# shellcheck source=scripts/lib/local_cluster.sh
source scripts/lib/local_cluster.sh
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" --target "${CLUSTER_TARGETS[@]}" >/dev/null
bin=$(cd "$build_dir/bin" && pwd)

work=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

wait_for_file() {  # PATH LOG
  for _ in $(seq 300); do
    if [ -s "$1" ]; then return 0; fi
    sleep 0.1
  done
  echo "no ready file $1; log:" >&2
  cat "$2" >&2
  exit 1
}

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  dataset="{kind: fashion_mnist, path: /usr/share/datasets/fashion-mnist}"
else
  dataset="{kind: sprites, image_size: 28, channels: 1, sprites_train: 4096, sprites_test: 256, seed: 3}"
fi
cat >"$work/job.yaml" <<EOF
name: core-share
model: $model
dataset: $dataset
train: {epochs: 1000, max_steps: $steps, batch_size: 64, lr: 1.0e-3, seed: 1, threads: 0, log_every_steps: $(( steps / 6 > 0 ? steps / 6 : 1 ))}
checkpoint: {every_steps: 0}
samples: {every_steps: 0}
EOF

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
samples_per_second() {  # CSV: the median of samples_per_second, rows after the first
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "samples_per_second") c = i; next }
           NR > 2 && c { print $c }' "$1" | median
}

run() {  # MODE (shared | unshared) ROUND
  local mode=$1 dir="$work/$2-$1" flags=()
  [ "$mode" = unshared ] && flags=(--no-core-share)
  mkdir -p "$dir"
  "$bin/dfv-coordinator" --listen 127.0.0.1:0 --data-dir "$dir/coordinator" --ready-file "$dir/coordinator.ready" \
    --metrics-listen "" 2>"$dir/coordinator.log" &
  pids+=($!)
  wait_for_file "$dir/coordinator.ready" "$dir/coordinator.log"
  local coordinator
  coordinator=$(head -n1 "$dir/coordinator.ready")
  "$bin/dfv-worker" --coordinator "$coordinator" --name share --slots 2 --work-dir "$dir/worker" \
    --trainer "$bin/dfv-trainer" --ready-file "$dir/worker.ready" --metrics-listen "" "${flags[@]}" \
    2>"$dir/worker.log" &
  pids+=($!)
  wait_for_file "$dir/worker.ready" "$dir/worker.log"
  local jobs=()
  for j in a b; do
    "$bin/dfvctl" --coordinator "$coordinator" submit "$work/job.yaml" --follow --download "$dir/$j" \
      >"$dir/$j.out" 2>&1 &
    jobs+=($!)
  done
  for pid in "${jobs[@]}"; do wait "$pid" || { echo "a $mode job failed:" >&2; cat "$dir"/*.out >&2; exit 1; }; done
  stop_all
  local a b
  a=$(samples_per_second "$dir/a/metrics.csv")
  b=$(samples_per_second "$dir/b/metrics.csv")
  printf '%-8s round %d  job a %8.1f  job b %8.1f  sum %8.1f samples/s  (%s)\n' "$mode" "$2" "$a" "$b" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN { print a + b }')" \
    "$(grep -ho 'threads: .*' "$dir/a.out" 2>/dev/null | head -n1 || true)"
  echo "$mode $a $b" >>"$work/results"
}

echo "machine: $(nproc) cores; $model, $steps steps of batch 64 per job, two jobs at once on one 2-slot worker"
echo "load before: $(uptime)"
for round in $(seq "$rounds"); do
  if [ -n "${CORE_SHARE_ONLY:-}" ]; then run "$CORE_SHARE_ONLY" "$round"; continue; fi
  if [ $((round % 2)) -eq 1 ]; then run unshared "$round"; run shared "$round"; else run shared "$round"; run unshared "$round"; fi
done
echo "load after: $(uptime)"
[ -n "${CORE_SHARE_ONLY:-}" ] && exit 0
sum_median() { awk -v m="$1" '$1 == m { print $2 + $3 }' "$work/results" | median; }
awk -v s="$(sum_median shared)" -v u="$(sum_median unshared)" 'BEGIN {
  printf "median of the two jobs together: shared %.1f samples/s, unshared %.1f samples/s, ratio %.2f\n", s, u, s / u }'
