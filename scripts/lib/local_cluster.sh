# Sourced by scripts/quickstart.sh, scripts/reproduce.sh and bench/'s
# overhead scripts: starts a coordinator and CPU worker daemons on loopback
# for this shell and stops them when the shell exits.
#
#   start_local_cluster BIN_DIR WORKERS TAG [SLOTS]
#
# BIN_DIR holds the built binaries (build_cluster_binaries builds them);
# WORKERS is how many daemons, SLOTS the assignments each runs at once
# (default 1; the daemon pins each slot's trainer to its share of the cores);
# TAG names the state folder (mktemp under $TMPDIR) that keeps their logs; worker N's ready file is $CLUSTER_STATE/worker-N.ready. Afterwards
# DFV_COORDINATOR is exported (HOST:PORT) and CLUSTER_STATE names the state
# folder. Extra flags for the coordinator and for every worker come from the
# arrays CLUSTER_COORDINATOR_ARGS and CLUSTER_WORKER_ARGS when set.
# An exit trap stops the daemons, workers first; a caller with an exit trap
# of its own sets it after this call and calls stop_local_cluster from it.

# The binaries a local cluster and its client run.
CLUSTER_TARGETS=(dfv-coordinator dfv-worker dfv-trainer dfvctl)

# Builds only those (not the tests or benches) into ${BUILD_DIR:-build}/bin
# with scripts/build.sh.
build_cluster_binaries() {
  BUILD_TARGETS="${CLUSTER_TARGETS[*]}" DFV_BUILD_TESTS=${DFV_BUILD_TESTS:-OFF} \
    BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh
}

cluster_pids=()
stop_local_cluster() {
  # Workers first, so they do not retry a coordinator that is gone.
  for ((i = ${#cluster_pids[@]} - 1; i >= 0; i--)); do kill -TERM "${cluster_pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cluster_pids=()
}

# Waits for a daemon's ready file (its bound address on the first line).
wait_ready() {
  local file=$1 pid=$2 name=$3
  for _ in $(seq 300); do
    if [ -s "$file" ]; then head -n1 "$file"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$CLUSTER_TAG: $name exited; its log:" >&2; cat "$CLUSTER_STATE/$name.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "$CLUSTER_TAG: $name is not ready after 30 s; its log is $CLUSTER_STATE/$name.log" >&2
  return 1
}

start_local_cluster() {
  local bin=$1 workers=$2 slots=${4:-1}
  CLUSTER_TAG=$3
  CLUSTER_STATE=$(mktemp -d "${TMPDIR:-/tmp}/dfv-$CLUSTER_TAG.XXXXXX")
  trap stop_local_cluster EXIT

  "$bin/dfv-coordinator" --listen 127.0.0.1:0 --data-dir "$CLUSTER_STATE/coordinator" \
    --ready-file "$CLUSTER_STATE/coordinator.ready" \
    ${CLUSTER_COORDINATOR_ARGS[@]+"${CLUSTER_COORDINATOR_ARGS[@]}"} 2>"$CLUSTER_STATE/coordinator.log" &
  cluster_pids+=($!)
  local coordinator
  coordinator=$(wait_ready "$CLUSTER_STATE/coordinator.ready" "${cluster_pids[-1]}" coordinator)
  echo "coordinator on $coordinator (logs in $CLUSTER_STATE)" >&2

  local n
  for ((n = 1; n <= workers; n++)); do
    "$bin/dfv-worker" --coordinator "$coordinator" --listen 127.0.0.1:0 --name "worker-$n" --slots "$slots" \
      --work-dir "$CLUSTER_STATE/worker-$n" --ready-file "$CLUSTER_STATE/worker-$n.ready" \
      ${CLUSTER_WORKER_ARGS[@]+"${CLUSTER_WORKER_ARGS[@]}"} 2>"$CLUSTER_STATE/worker-$n.log" &
    cluster_pids+=($!)
    wait_ready "$CLUSTER_STATE/worker-$n.ready" "${cluster_pids[-1]}" "worker-$n" >/dev/null
  done
  echo "$workers CPU worker(s) registered" >&2
  export DFV_COORDINATOR=$coordinator
}
