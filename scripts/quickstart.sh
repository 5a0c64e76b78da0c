#!/usr/bin/env bash
# Installs what is missing, builds, and trains the main example job:
# cycle_vae on the real Fashion-MNIST, locally, leaving a run folder with
# PNG grids, checkpoints, metrics.csv and report.json. Extra arguments go to
# `dfv-worker train` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
DFV_BUILD_TESTS=${DFV_BUILD_TESTS:-OFF} BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh
exec "${BUILD_DIR:-build}/bin/dfv-worker" train --local examples/cycle_vae_fashion.yaml "$@"
