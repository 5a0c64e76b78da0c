#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job through the whole
# service on this machine: a coordinator and two CPU worker daemons on
# loopback, `dfvctl submit --follow` of examples/cycle_vae_fashion.yaml
# (cycle_vae on the real Fashion-MNIST) with live progress, the results
# downloaded into runs/<name>-<time>/, and the daemons stopped at the end.
# Extra arguments go to `dfvctl submit` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
DFV_BUILD_TESTS=${DFV_BUILD_TESTS:-OFF} BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh
bin="${BUILD_DIR:-build}/bin"

# A coordinator and two workers on loopback, stopped when this script exits;
# their logs stay in a folder under $TMPDIR. The job's results go to runs/.
# shellcheck source=scripts/lib/local_cluster.sh
source scripts/lib/local_cluster.sh
start_local_cluster "$bin" 2 quickstart
"$bin/dfvctl" workers >&2
"$bin/dfvctl" submit --follow examples/cycle_vae_fashion.yaml \
  --download "runs/cycle_vae_fashion-$(date +%Y%m%d-%H%M%S)" "$@"
