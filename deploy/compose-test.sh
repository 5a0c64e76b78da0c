#!/usr/bin/env bash
# Checks the compose cluster for real: builds the images, starts the CPU
# profile of deploy/docker-compose.yml, trains a 2-rank job across the two
# worker containers, checks that Prometheus scraped it, kills a worker in the
# middle of a second job and sees that job resume from its checkpoint once the
# container is back, then removes everything it made.
#
#   deploy/compose-test.sh            (as root, or a member of the docker group)
#
# Needs Debian's docker.io and docker-compose (1.29), mmdebstrap when there is
# no debian:bookworm-slim image, openssl, curl, and build/bin/dfvctl on the host
# (scripts/build.sh); DFVCTL overrides the latter. Prints each phase's wall
# time, the job's result and the image sizes. Exit 0 only when every check passed.
#
# Environment: DFV_COMPOSE_PROJECT (default dfv-compose-test), DFV_PORT,
# DFV_METRICS_PORT, DFV_PROMETHEUS_PORT (host ports on 127.0.0.1, default 27070,
# 27071, 29090), KEEP=1 leaves the cluster running for a look (then remove it
# with `docker-compose -p PROJECT -f deploy/docker-compose.yml down -v`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

project=${DFV_COMPOSE_PROJECT:-dfv-compose-test}
export DFV_PORT=${DFV_PORT:-27070} DFV_METRICS_PORT=${DFV_METRICS_PORT:-27071}
export DFV_PROMETHEUS_PORT=${DFV_PROMETHEUS_PORT:-29090}
dfvctl_bin=${DFVCTL:-$root/build/bin/dfvctl}
# The client that came with the engine: Debian's docker.io puts it in
# /usr/bin; another docker in PATH may lack BuildKit (buildx).
docker=${DOCKER:-$([[ -x /usr/bin/docker ]] && echo /usr/bin/docker || command -v docker)}
compose_file=$root/deploy/docker-compose.yml
services=(coordinator prometheus worker-1 worker-2)

log() { echo "compose-test: $*"; }
die() {
  echo "compose-test: FAILED: $*" >&2
  exit 1
}

phase_names=()
phase_seconds=()
phase_start=$(date +%s)
phase_name=""
phase() {  # phase NAME: ends the previous phase, starts NAME
  local now
  now=$(date +%s)
  if [[ -n $phase_name ]]; then
    phase_names+=("$phase_name")
    phase_seconds+=($((now - phase_start)))
    log "phase '$phase_name' took $((now - phase_start)) s"
  fi
  phase_name=$1
  phase_start=$now
  [[ -n $1 ]] && log "== $1"
  return 0
}

[[ -x $dfvctl_bin ]] || die "$dfvctl_bin not found: build it first (scripts/build.sh) or set DFVCTL"
command -v docker-compose >/dev/null || die "docker-compose not found (apt-get install docker-compose)"
command -v curl >/dev/null || die "curl not found"

phase "engine"
if ! "$docker" info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
  # Every address the engine hands out comes from 198.18.0.0/15 (reserved
  # for benchmarking): its default bridge and the pool of compose networks.
  log "starting dockerd (log: /tmp/dfv-dockerd.log)"
  dockerd --bip 198.19.255.1/24 --default-address-pool base=198.19.0.0/17,size=24 >/tmp/dfv-dockerd.log 2>&1 &
  for _ in $(seq 60); do
    "$docker" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$docker" info >/dev/null 2>&1 || die "dockerd did not start; see /tmp/dfv-dockerd.log"
fi
if ! "$docker" image inspect debian:bookworm-slim >/dev/null 2>&1; then
  # No registry here: the base image is made from Debian's own archive
  # (real Debian packages, the minbase variant) and imported under the
  # public name, so the Dockerfiles stay the ones users build anywhere.
  command -v mmdebstrap >/dev/null || die "no debian:bookworm-slim image and no mmdebstrap to make one (apt-get install mmdebstrap)"
  log "no debian:bookworm-slim image and no registry: making it with mmdebstrap --variant=minbase bookworm"
  mmdebstrap --quiet --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm - "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" |
    "$docker" import --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
fi

phase "build images"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for image in coordinator worker prometheus; do
  log "building dfv/$image:dev (docker/$image.Dockerfile)"
  DOCKER_BUILDKIT=1 "$docker" build --quiet -f "docker/$image.Dockerfile" -t "dfv/$image:dev" \
    --build-arg REVISION="$revision" . >/dev/null || die "docker build of docker/$image.Dockerfile failed"
done

phase "certificates"
secrets=$(mktemp -d /tmp/dfv-compose-secrets.XXXXXX)
export DFV_SECRETS=$secrets
# The containers run as gid 10001; their keys and auth.txt are made readable by it.
DFV_CERT_GROUP=10001 deploy/certs.sh "$secrets" worker-1 worker-2 worker-gpu-0 worker-gpu-1 >/dev/null
chmod 0755 "$secrets"
dfvctl() {
  "$dfvctl_bin" --coordinator "127.0.0.1:$DFV_PORT" --tls-ca "$secrets/ca.pem" \
    --token-file "$secrets/submitter.token" "$@"
}
compose() { docker-compose -p "$project" -f "$compose_file" --profile cpu "$@"; }

cleanup() {
  local rc=$?
  if [[ ${KEEP:-0} == 1 && $rc -eq 0 ]]; then
    log "KEEP=1: the cluster stays up (project $project, secrets in $secrets)"
    return
  fi
  if [[ $rc -ne 0 ]]; then
    log "logs of the failed run:"
    compose logs --no-color --tail=40 2>&1 | sed 's/^/  /' || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$secrets" "${downloads:-}"
}
trap cleanup EXIT

phase "start"
log "Grafana (grafana/grafana-oss) is not started: its image comes from a registry this machine cannot reach; its provisioning is checked as files by tests/deploy"
compose up -d --no-build "${services[@]}" 2>&1 | sed 's/^/  /'
deadline=$(($(date +%s) + 180))
for service in "${services[@]}"; do
  container=$(compose ps -q "$service")
  [[ -n $container ]] || die "no container for $service"
  while true; do
    health=$("$docker" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$container")
    [[ $health == healthy ]] && break
    [[ $health == none ]] && die "$service has no healthcheck"
    [[ $(date +%s) -lt $deadline ]] || die "$service is $health after 180 s"
    sleep 1
  done
  log "$service: healthy"
done
workers=$(dfvctl workers)
echo "$workers" | sed 's/^/  /'
for name in worker-1 worker-2; do
  grep -q "$name" <<<"$workers" || die "$name did not register"
done

# The state of JOB (QUEUED, RUNNING, SUCCEEDED, ...).
job_state() { dfvctl get "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
# Waits until JOB is in STATE (fails on another final state or after SECONDS).
wait_state() {
  local job=$1 want=$2 seconds=$3 state
  local until=$(($(date +%s) + seconds))
  while true; do
    state=$(job_state "$job")
    [[ $state == "$want" ]] && return 0
    case $state in SUCCEEDED | FAILED | CANCELLED) die "$job ended $state, expected $want" ;; esac
    [[ $(date +%s) -lt $until ]] || die "$job is $state after $seconds s, expected $want"
    sleep 1
  done
}

phase "2-rank job"
job_args=(examples/vae_fashion.yaml --set resources.workers=2 --set evaluate=null
  --set train.log_every_steps=20 --set checkpoint.every_steps=100 --set samples.every_steps=100)
job=$(dfvctl submit "${job_args[@]}" --set name=compose-2rank --set train.max_steps=300)
log "submitted $job (vae, Fashion-MNIST, 2 ranks, 300 steps)"
wait_state "$job" SUCCEEDED 600
events=$(dfvctl watch "$job")
for name in worker-1 worker-2; do
  grep -q "$name" <<<"$events" || die "$job's events never name $name: the ranks did not span both containers"
done
log "$job SUCCEEDED on worker-1 and worker-2"
downloads=$(mktemp -d /tmp/dfv-compose-artifacts.XXXXXX)
dfvctl artifacts "$job" --download "$downloads" >/dev/null
for want in metrics.csv job.yaml report.json; do
  [[ -s $downloads/$want ]] || die "artifact $want missing from the download (or empty)"
done
[[ -f $downloads/trainer.log ]] || die "artifact trainer.log missing from the download"
ls "$downloads"/checkpoints/*.ckpt >/dev/null 2>&1 || die "no checkpoint downloaded"
ls "$downloads"/grids/*.png >/dev/null 2>&1 || die "no grid downloaded"
rows=$(($(wc -l <"$downloads/metrics.csv") - 1))
log "downloaded $(find "$downloads" -type f | wc -l) files: metrics.csv ($rows rows), $(ls "$downloads"/grids | wc -l) grids, $(ls "$downloads"/checkpoints | wc -l) checkpoints"
echo "  last metrics row: $(tail -n 1 "$downloads/metrics.csv")"

phase "prometheus"
query="count_over_time(dfv_job_training_metric{job_id=\"$job\"}[30m])"
until=$(($(date +%s) + 60))
while true; do
  answer=$(curl -fsS "http://127.0.0.1:$DFV_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$query" || true)
  series=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(len(d.get("data",{}).get("result",[])))' "$answer")
  [[ $series -gt 0 ]] && break
  [[ $(date +%s) -lt $until ]] || die "Prometheus has no dfv_job_training_metric series of $job: $answer"
  sleep 2
done
log "Prometheus scraped $series loss-term series of $job, e.g.:"
python3 -c '
import json, sys
for r in json.loads(sys.argv[1])["data"]["result"][:3]:
    m = r["metric"]
    print("  dfv_job_training_metric{job_id=%s,rank=%s,term=%s,worker=%s}: %s samples" % (
        m.get("job_id"), m.get("rank"), m.get("term"), m.get("worker"), r["value"][1]))' "$answer"
targets=$(curl -fsS "http://127.0.0.1:$DFV_PROMETHEUS_PORT/api/v1/targets")
up=$(python3 -c 'import json,sys; print(" ".join(sorted(t["labels"]["instance"]+"="+t["health"] for t in json.loads(sys.argv[1])["data"]["activeTargets"])))' "$targets")
log "targets: $up"

phase "worker killed mid-job"
job2=$(dfvctl submit "${job_args[@]}" --set name=compose-resume --set train.max_steps=1500)
log "submitted $job2 (1500 steps, a checkpoint every 100)"
until=$(($(date +%s) + 300))
while ! dfvctl artifacts "$job2" 2>/dev/null | grep -q 'checkpoints/step-'; do
  [[ $(date +%s) -lt $until ]] || die "$job2 uploaded no checkpoint in 300 s"
  sleep 1
done
log "$job2 uploaded $(dfvctl artifacts "$job2" | grep -c 'checkpoints/step-') checkpoint(s); killing worker-2"
compose kill -s SIGKILL worker-2 2>&1 | sed 's/^/  /'
kill_time=$(date +%s)
until=$(($(date +%s) + 60))
while [[ $(job_state "$job2") == RUNNING ]]; do
  [[ $(date +%s) -lt $until ]] || die "$job2 still RUNNING 60 s after worker-2 was killed"
  sleep 1
done
log "$job2 left RUNNING $(($(date +%s) - kill_time)) s after the kill ($(job_state "$job2")); restarting worker-2"
compose start worker-2 2>&1 | sed 's/^/  /'
wait_state "$job2" SUCCEEDED 900
events2=$(dfvctl watch "$job2")
resumed=$(grep -i 'resum' <<<"$events2" | head -n 3 || true)
[[ -n $resumed ]] || die "$job2's events say nothing of a resume from its checkpoint"
log "$job2 SUCCEEDED after the restart; its events:"
echo "$resumed" | sed 's/^/  /'

phase "down"
compose down -v --remove-orphans 2>&1 | sed 's/^/  /'
left=$( (
  "$docker" ps -aq --filter "label=com.docker.compose.project=$project"
  "$docker" volume ls -q --filter "label=com.docker.compose.project=$project"
  "$docker" network ls -q --filter "label=com.docker.compose.project=$project"
) | wc -l)
[[ $left -eq 0 ]] || die "docker-compose down -v left $left containers, volumes or networks of $project"
log "down -v left no container, volume or network of $project"
phase ""

echo
echo "compose-test: PASSED"
printf '  %-22s %6s\n' "phase" "wall s"
for i in "${!phase_names[@]}"; do
  printf '  %-22s %6s\n' "${phase_names[$i]}" "${phase_seconds[$i]}"
done
echo "  images:"
"$docker" image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E '^(dfv/|debian:bookworm-slim)' | sort |
  sed 's/^/    /' || true
