#!/usr/bin/env bash
# What the service adds on top of the trainer (issue 17, "Service overhead"),
# on loopback. A benchmark, not a test. Three parts:
#
#  1. The same job trained by `dfv-trainer train` (local, no service) and
#     through a real dfv-coordinator + one dfv-worker (1 slot) with dfvctl:
#     vae on Fashion-MNIST (sprites 28x28 when it is not installed), STEPS
#     steps of batch 64, train.threads 0, metrics every 10 steps, grids every
#     200, evaluation off (the default). For each run the trainer's own
#     training time (report.json wall_seconds: first step to the last
#     checkpoint, process start and evaluation excluded) and the whole
#     command's wall time; the order flips every round. Prints the median
#     of each and the ratios service/local (target: < 1.02).
#  2. dfv_bench_overhead latency: 100 one-step jobs one after the other on an
#     idle cluster, SubmitJob return -> RUNNING and -> the step-1 metrics row
#     at a watcher, and the trainer process started on its own; p50/p99
#     (target: p99 < 100 ms to the first step).
#  3. dfv_bench_overhead upload: a 200 MiB checkpoint uploaded 5 times through
#     the daemon's GrpcCoordinatorLink into a real coordinator; MB/s
#     (target: median >= 500 MB/s).
#
#   bench/overhead.sh [ROUNDS] [STEPS] [PARTS]   (default 3 rounds of 400 steps, parts "1 2 3";
#                                                  PARTS 1 runs part 1 alone)
#
# Time: part 1 about 2 x ROUNDS x (STEPS x ~0.03 s + ~5 s) on the 2-core
# development machine; part 2 about a minute; part 3 about 20 s. Other work on
# the machine skews every figure: the load average is printed before and
# after each part. Extra flags for dfv_bench_overhead: DFV_OVERHEAD_FLAGS.
#
# Environment: BUILD_DIR (default build; configured here when it has no
# build.ninja).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-400}
parts=${3:-1 2 3}
build_dir=${BUILD_DIR:-build}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

# shellcheck source=scripts/lib/local_cluster.sh
source scripts/lib/local_cluster.sh
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" \
  --target "${CLUSTER_TARGETS[@]}" dfv_bench_overhead >/dev/null
bin=$(cd "$build_dir/bin" && pwd)

work=$(mktemp -d)
CLUSTER_STATE=""
cleanup() {
  stop_local_cluster
  rm -rf "$work" "$CLUSTER_STATE"
}
trap cleanup EXIT

echo "machine: $(nproc) cores"
part1() {
echo "== 1. the same job locally and through the service; load before: $(uptime)"
CLUSTER_COORDINATOR_ARGS=(--metrics-listen "")
CLUSTER_WORKER_ARGS=(--metrics-listen "" --trainer "$bin/dfv-trainer")
start_local_cluster "$bin" 1 overhead
trap cleanup EXIT
coordinator=$DFV_COORDINATOR

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]; then
  dataset="{kind: fashion_mnist, path: /usr/share/datasets/fashion-mnist}"
else
  dataset="{kind: sprites, image_size: 28, channels: 1, sprites_train: 4096, sprites_test: 256, seed: 3}"
fi
cat >"$work/job.yaml" <<EOF
name: overhead
model: vae
dataset: $dataset
train: {epochs: 1000, max_steps: $steps, batch_size: 64, lr: 1.0e-3, seed: 1, threads: 0, log_every_steps: 10}
checkpoint: {every_steps: 0}
samples: {every_steps: 200, grids: [reconstruction, random]}
EOF
echo "job: vae, $dataset, $steps steps, batch 64, metrics every 10 steps, grids every 200"

now() { date +%s.%N; }
wall_of() { jq -r .wall_seconds "$1/report.json"; }

run() {  # MODE (local | service) ROUND
  local mode=$1 dir="$work/run-$2-$1" start end
  start=$(now)
  if [ "$mode" = local ]; then
    "$bin/dfv-trainer" train "$work/job.yaml" --out "$dir" >"$dir.out" 2>&1 ||
      { echo "the local run failed:" >&2; cat "$dir.out" >&2; exit 1; }
  else
    "$bin/dfvctl" --coordinator "$coordinator" submit "$work/job.yaml" --follow --download "$dir" >"$dir.out" 2>&1 ||
      { echo "the job failed:" >&2; cat "$dir.out" >&2; exit 1; }
  fi
  end=$(now)
  local train command
  train=$(wall_of "$dir")
  command=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  printf '%-8s round %d  training %.3f s  whole command %.3f s\n' "$mode" "$2" "$train" "$command"
  echo "$mode $train $command" >>"$work/results"
}

for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then run local "$round"; run service "$round"; else run service "$round"; run local "$round"; fi
done
echo "load after: $(uptime)"
median_of() {  # MODE FIELD
  awk -v mode="$1" -v f="$2" '$1 == mode { print $f }' "$work/results" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
awk -v st="$(median_of service 2)" -v lt="$(median_of local 2)" -v sc="$(median_of service 3)" \
  -v lc="$(median_of local 3)" 'BEGIN {
  printf "median training time: service %.3f s, local %.3f s, ratio %.4f (target < 1.02)\n", st, lt, st / lt
  printf "median whole command: service %.3f s, local %.3f s, ratio %.4f (submit to results downloaded vs process start to exit)\n", sc, lc, sc / lc }'
stop_local_cluster
}

has_part() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
if has_part 1; then part1; fi
# (Each part is looked for on its own: one pattern for "2 then 3" cannot
# match "1 2 3", whose space between 2 and 3 both would need.)
if has_part 2 && has_part 3; then
  only=""
elif has_part 2; then
  only="--only latency"
elif has_part 3; then
  only="--only upload"
else
  exit 0
fi
echo
echo "== 2 and 3. latency and upload; load before: $(uptime)"
# shellcheck disable=SC2086
"$bin/dfv_bench_overhead" --coordinator "$bin/dfv-coordinator" --worker "$bin/dfv-worker" \
  --trainer "$bin/dfv-trainer" $only ${DFV_OVERHEAD_FLAGS:-}
