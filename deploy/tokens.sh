#!/usr/bin/env bash
# Makes bearer tokens for a test cluster in DIR:
#   DIR/submitter.token, DIR/viewer.token  one token each (mode 0600), for
#                                          dfvctl --token-file / DFV_TOKEN_FILE
#   DIR/auth.txt                           their hashes and roles, for
#                                          dfv-coordinator --auth-file
# Existing token files are kept (so running it again does not lock clients
# out); auth.txt is rewritten from them. The hash is SHA-256 of the token
# (the first line of its file, without the newline), as
# `dfv-coordinator hash-token < FILE` prints it.
#
#   deploy/tokens.sh DIR
#
# DFV_CERT_GROUP (a numeric gid): auth.txt gets that group and mode 0640 (see deploy/certs.sh).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
umask 077

auth_tmp=$(mktemp "$dir/.auth.txt.XXXXXX")
trap 'rm -f "$auth_tmp"' EXIT
echo "# dfv-coordinator --auth-file: sha256:<SHA-256 of the token> ROLE NAME" >"$auth_tmp"
for role in submitter viewer; do
  token_file="$dir/$role.token"
  if [[ ! -s "$token_file" ]]; then
    openssl rand -hex 32 >"$token_file"
  fi
  chmod 0600 "$token_file"
  hash=$(head -n 1 "$token_file" | tr -d '\n' | openssl dgst -sha256 -r | cut -d' ' -f1)
  echo "sha256:$hash $role $role" >>"$auth_tmp"
done
chmod 0600 "$auth_tmp"
# Hashes only; readable by the containers' group when deploy/certs.sh is asked to.
if [[ -n ${DFV_CERT_GROUP:-} ]]; then
  chgrp "$DFV_CERT_GROUP" "$auth_tmp"
  chmod 0640 "$auth_tmp"
fi
mv "$auth_tmp" "$dir/auth.txt"
trap - EXIT
echo "tokens in $dir: submitter.token, viewer.token; coordinator: --auth-file $dir/auth.txt"
