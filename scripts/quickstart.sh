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

# Daemon state and logs for this run; the job's results go to runs/.
state=$(mktemp -d "${TMPDIR:-/tmp}/dfv-quickstart.XXXXXX")
pids=()
stop_daemons() {
  # Workers first, so they do not retry a coordinator that is gone.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_daemons EXIT

# Waits for a daemon's ready file (its bound address on the first line).
wait_ready() {
  local file=$1 pid=$2 name=$3
  for _ in $(seq 300); do
    if [ -s "$file" ]; then head -n1 "$file"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "quickstart: $name exited; its log:" >&2; cat "$state/$name.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "quickstart: $name is not ready after 30 s; its log is $state/$name.log" >&2
  return 1
}

"$bin/dfv-coordinator" --listen 127.0.0.1:0 --data-dir "$state/coordinator" \
  --ready-file "$state/coordinator.ready" 2>"$state/coordinator.log" &
pids+=($!)
coordinator=$(wait_ready "$state/coordinator.ready" "${pids[-1]}" coordinator)
echo "coordinator on $coordinator (logs in $state)" >&2

for n in 1 2; do
  "$bin/dfv-worker" --coordinator "$coordinator" --listen 127.0.0.1:0 --name "worker-$n" --slots 1 \
    --work-dir "$state/worker-$n" --ready-file "$state/worker-$n.ready" 2>"$state/worker-$n.log" &
  pids+=($!)
  wait_ready "$state/worker-$n.ready" "${pids[-1]}" "worker-$n" >/dev/null
done
echo "2 CPU workers registered" >&2

export DFV_COORDINATOR=$coordinator
"$bin/dfvctl" workers >&2
"$bin/dfvctl" submit --follow examples/cycle_vae_fashion.yaml \
  --download "runs/cycle_vae_fashion-$(date +%Y%m%d-%H%M%S)" "$@"
