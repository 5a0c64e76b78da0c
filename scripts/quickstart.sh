#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job through the whole
# service on this machine: a coordinator and two CPU worker daemons on
# loopback, `dfvctl submit --follow` of examples/cycle_vae_fashion.yaml
# (cycle_vae on the real Fashion-MNIST) with live progress, the results
# downloaded into runs/<name>-<time>/, and the daemons stopped at the end.
# Extra arguments go to `dfvctl submit` (e.g. --set train.epochs=1).
# At the end it prints how long the command took to the first grid on disk
# and to SUCCEEDED.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
scripts/install-deps.sh
# shellcheck source=scripts/lib/local_cluster.sh
source scripts/lib/local_cluster.sh
build_cluster_binaries
built=$(date +%s)
bin="${BUILD_DIR:-build}/bin"

# A coordinator and two workers on loopback, stopped when this script exits;
# their logs stay in a folder under $TMPDIR. The job's results go to runs/.
start_local_cluster "$bin" 2 quickstart
"$bin/dfvctl" workers >&2
submit_out="$CLUSTER_STATE/submit.out"
"$bin/dfvctl" submit --follow examples/cycle_vae_fashion.yaml \
  --download "runs/cycle_vae_fashion-$(date +%Y%m%d-%H%M%S)" "$@" | tee "$submit_out"

# The job's events again from the coordinator (the live ones went to the
# terminal), each line starting with the event's local time (HH:MM:SS).
follow_log="$CLUSTER_STATE/events.log"
"$bin/dfvctl" watch "$(head -n1 "$submit_out")" >"$follow_log" 2>&1 || true
since_start() {
  local at
  at=$(grep -m1 -E "$1" "$follow_log" | cut -d' ' -f1) || true
  [ -n "$at" ] || { echo "-"; return; }
  local t
  t=$(date -d "$at" +%s)
  # An event before the start's clock time happened after midnight.
  [ "$t" -ge "$started" ] || t=$((t + 86400))
  echo "$((t - started)) s"
}
echo "quickstart: install and build $((built - started)) s; first grid on disk $(since_start ' artifact grid ') \
and SUCCEEDED $(since_start ' state SUCCEEDED') after the command started" >&2
