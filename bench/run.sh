#!/usr/bin/env bash
# Data-parallel benchmarks (not tests): builds bench/'s two programs and runs
# them, printing one table each. Every rank is a separate process launched by
# the program itself (rank 0 rendezvouses on 127.0.0.1:0 and hands the bound
# address to the others); each program measures both transports ranks on one
# host can use, in the same run: shared memory (what the trainer uses when
# every rank is on one host) and loopback Gloo.
#
#   dfv_bench_allreduce  For 1, 25 and 100 MiB of float32 gradients on 2 ranks,
#                        per transport: GradientReducer (25 MiB buckets,
#                        overlap off, driven through BeforeBackward/Synchronize
#                        over 1 MiB tensors) vs one flat
#                        Communicator::AllReduceSum of the same size;
#                        interleaved, 2 warm-up + 50 reps each; median
#                        seconds, GB/s and the ratio bucketed/flat
#                        (target: <= 1.10), then Gloo's flat time over shared
#                        memory's.
#   dfv_bench_scaling    samples/s of cycle_vae (Fashion-MNIST 28x28 when
#                        installed, else sprites): 1 process vs 2 processes of
#                        half the global batch (per transport overlap on and
#                        off, and no all-reduce at all: the ceiling the machine
#                        itself sets), one torch thread per process, 5 rounds;
#                        speedup (the median of each round's ratio to its own
#                        1-rank run; target: >= 1.8x) and the share of step
#                        time blocked in all-reduce. Twice: global batch 64
#                        (the examples' batch; 20 warm-up + 100 timed steps)
#                        and 256 (5 + 30 steps).
#
# Time: about 12 minutes of running on the 2-core development machine (the
# all-reduce bench ~1 minute, the scaling benches ~5 minutes each), plus the build
# of the two targets and what they link (a few minutes from a cold ccache,
# seconds when built). Other work on the machine skews both: check `uptime`
# first.
#
# Environment: BUILD_DIR (default build; configured here when it has no
# build.ninja). Both programs take flags (sizes, steps, rounds, ranks...):
# $BUILD_DIR/bin/dfv_bench_allreduce --help, dfv_bench_scaling --help.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" --target dfv_bench_allreduce dfv_bench_scaling

echo "load before: $(uptime)"
"$build_dir/bin/dfv_bench_allreduce"
echo
"$build_dir/bin/dfv_bench_scaling" --batch 64
echo
"$build_dir/bin/dfv_bench_scaling" --batch 256 --steps 30 --warmup 5
echo "load after: $(uptime)"
