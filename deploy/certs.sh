#!/usr/bin/env bash
# Makes the certificates of a dfv test cluster with openssl:
#
#   deploy/certs.sh DIR [WORKER[=SANS] ...]
#
# In DIR (created, mode 0700):
#   ca.pem, ca.key                  the cluster CA (kept and reused when both exist, so a later run
#                                   adds workers or renews certificates under the same CA; keep
#                                   ca.key off the cluster's machines)
#   coordinator.pem, coordinator.key  the coordinator's server certificate, CN "coordinator", SANs
#                                   DNS:coordinator, DNS:localhost, IP:127.0.0.1 and $DFV_CERT_SANS
#   worker-NAME.pem, worker-NAME.key  one per WORKER: CN = the worker's name (its identity at the
#                                   coordinator), SANs DNS:NAME, DNS:localhost, IP:127.0.0.1 and
#                                   the SANS after '=' (for its TLS health service)
#   submitter.token, viewer.token, auth.txt  bearer tokens for dfvctl and the coordinator's
#                                   --auth-file (deploy/tokens.sh; existing tokens are kept)
#
# Environment:
#   DFV_CERT_SANS  extra SANs of the coordinator, comma-separated: "IP:198.18.0.1,DNS:coord.lan"
#   DFV_CERT_DAYS  validity in days (default 365)
#   DFV_CERT_GROUP a numeric group id: the coordinator's and workers' keys (and auth.txt) get
#                  that group and mode 0640, for daemons in containers that run as that gid
#                  and read the files through bind mounts (deploy/docker-compose.yml: 10001)
#
# Every run issues the coordinator's certificate and the named workers' anew (fresh keys and
# serials); files are replaced by renames, so running daemons pick them up at their next
# --tls-refresh without a restart. Keys are 0600, certificates 0644.
set -euo pipefail

usage() {
  echo "usage: $0 DIR [WORKER[=SANS] ...]   (SANS like IP:198.18.0.11,DNS:host1)" >&2
  exit 2
}
[[ $# -ge 1 ]] || usage
dir=$1
shift
days=${DFV_CERT_DAYS:-365}
[[ $days =~ ^[0-9]+$ && $days -gt 0 ]] || { echo "$0: DFV_CERT_DAYS must be a positive integer" >&2; exit 2; }
[[ -z ${DFV_CERT_GROUP:-} || ${DFV_CERT_GROUP} =~ ^[0-9]+$ ]] || { echo "$0: DFV_CERT_GROUP must be a numeric group id" >&2; exit 2; }
command -v openssl >/dev/null || { echo "$0: openssl not found" >&2; exit 1; }

umask 077
mkdir -p "$dir"
chmod 700 "$dir"
tmp=$(mktemp -d "$dir/.certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A SAN list must be comma-separated TYPE:VALUE items with TYPE DNS or IP.
check_sans() {
  local sans=$1 item
  [[ -z $sans ]] && return 0
  IFS=',' read -ra items <<<"$sans"
  for item in "${items[@]}"; do
    if ! [[ $item =~ ^(DNS:[A-Za-z0-9.-]+|IP:[0-9A-Fa-f.:]+)$ ]]; then
      echo "$0: '$item' is not DNS:NAME or IP:ADDRESS" >&2
      exit 2
    fi
  done
}

new_key() {  # new_key PATH
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

serial() { echo "0x$(openssl rand -hex 16)"; }

# issue NAME CN EXTENDED_KEY_USAGE SANS: NAME.key and NAME.pem signed by the CA, put in place by
# renames (the key first).
issue() {
  local name=$1 cn=$2 eku=$3 sans=$4
  new_key "$tmp/$name.key"
  openssl req -new -key "$tmp/$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    echo "subjectAltName=$sans"
    echo "subjectKeyIdentifier=hash"
    echo "authorityKeyIdentifier=keyid"
  } >"$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
    -days "$days" -sha256 -extfile "$tmp/$name.ext" -out "$tmp/$name.pem" 2>/dev/null
  chmod 600 "$tmp/$name.key"
  if [[ -n ${DFV_CERT_GROUP:-} ]]; then
    chgrp "$DFV_CERT_GROUP" "$tmp/$name.key"
    chmod 640 "$tmp/$name.key"
  fi
  chmod 644 "$tmp/$name.pem"
  mv -f "$tmp/$name.key" "$dir/$name.key"
  mv -f "$tmp/$name.pem" "$dir/$name.pem"
}

check_sans "${DFV_CERT_SANS:-}"
workers=()
for spec in "$@"; do
  name=${spec%%=*}
  if ! [[ $name =~ ^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$ ]]; then
    echo "$0: worker name '$name' must be 1-64 letters, digits, '.', '_' or '-' (not starting with '.')" >&2
    exit 2
  fi
  [[ $spec == *=* ]] && check_sans "${spec#*=}"
  workers+=("$spec")
done

if [[ -f $dir/ca.pem && -f $dir/ca.key ]]; then
  echo "reusing the CA in $dir/ca.pem"
else
  new_key "$tmp/ca.key"
  openssl req -x509 -new -key "$tmp/ca.key" -subj "/CN=dfv cluster CA" -days "$((days * 2))" -sha256 \
    -set_serial "$(serial)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$tmp/ca.pem"
  chmod 600 "$tmp/ca.key"
  chmod 644 "$tmp/ca.pem"
  mv -f "$tmp/ca.key" "$dir/ca.key"
  mv -f "$tmp/ca.pem" "$dir/ca.pem"
  echo "made the CA $dir/ca.pem"
fi

coordinator_sans="DNS:coordinator,DNS:localhost,IP:127.0.0.1"
[[ -n ${DFV_CERT_SANS:-} ]] && coordinator_sans+=",$DFV_CERT_SANS"
issue coordinator coordinator serverAuth "$coordinator_sans"
echo "issued $dir/coordinator.pem ($coordinator_sans)"

for spec in "${workers[@]}"; do
  name=${spec%%=*}
  sans="DNS:$name,DNS:localhost,IP:127.0.0.1"
  [[ $spec == *=* && -n ${spec#*=} ]] && sans+=",${spec#*=}"
  # clientAuth for its channel to the coordinator, serverAuth for its health service.
  issue "worker-$name" "$name" clientAuth,serverAuth "$sans"
  echo "issued $dir/worker-$name.pem (CN=$name)"
done

# Token files for dfvctl (submitter.token, viewer.token) and the coordinator's
# auth.txt: deploy/tokens.sh, which keeps tokens that already exist.
bash "$(dirname "$0")/tokens.sh" "$dir"
