#!/usr/bin/env bash
# The build stage of docker/coordinator.Dockerfile and docker/worker.Dockerfile
# (and, with a CUDA LibTorch, docker/worker-cuda.Dockerfile): builds dfv's four
# binaries from /src with ccache and lays out /out for the runtime stages:
#
#   /out/bin/NAME               dfv-coordinator, dfvctl, dfv-worker, dfv-trainer
#   /out/packages/NAME.txt      the Debian packages that provide the shared
#                               libraries NAME loads (from ldd and dpkg -S), so a
#                               runtime stage installs exactly those and no list
#                               of runtime libraries is written by hand
#
#   /out/lib/                   shared libraries under DFV_BUNDLE_PREFIX, which no
#                               package provides (a LibTorch unpacked from its zip)
#
# Environment: DFV_CMAKE_ARGS (extra configure arguments, e.g.
# -DCMAKE_PREFIX_PATH=/opt/libtorch for a LibTorch outside the system);
# DFV_BUNDLE_PREFIX (a folder whose libraries are copied, not installed).
set -euo pipefail
src=${SRC:-/src}
build=${BUILD:-/build}
out=${OUT:-/out}
targets=(dfv-coordinator dfvctl dfv-worker dfv-trainer)

export CCACHE_DIR=${CCACHE_DIR:-/root/.cache/ccache}
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
export CCACHE_BASEDIR=$src
# shellcheck disable=SC2086  # DFV_CMAKE_ARGS is a list of arguments
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDFV_BUILD_TESTS=OFF -DDFV_BUILD_BENCH=OFF \
  ${DFV_CMAKE_ARGS:-} >/dev/null
start=$(date +%s)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
echo "build.sh: built ${targets[*]} in $(($(date +%s) - start)) s; ccache: $(ccache -s | grep -iE 'hits|misses' | tr -s ' ' | paste -sd ';')"

# Which package owns each library file. ldd prints paths under /lib, which
# merged-/usr Debian registers under either /lib or /usr/lib, and
# alternatives (libblas.so.3 -> openblas) resolve only through realpath: each
# library is looked up under those names, in one dpkg-query call for all.
candidates() {  # candidates PATH: the names PATH may be registered under
  local path=$1 real
  real=$(realpath "$path")
  printf '%s\n' "$path" "$real" "${real/#\/usr\/lib\//\/lib\/}" "${path/#\/lib\//\/usr\/lib\/}"
}

mkdir -p "$out/bin" "$out/packages" "$out/lib"
bundle=${DFV_BUNDLE_PREFIX:-}
declare -A owner_of
for target in "${targets[@]}"; do
  install -m 0755 "$build/bin/$target" "$out/bin/$target"
  libraries=$(ldd "$out/bin/$target" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
  names=()
  for library in $libraries; do
    if [[ -n $bundle && $(realpath "$library") == "$bundle"/* ]]; then
      cp -n "$(realpath "$library")" "$out/lib/$(basename "$library")"
    else
      mapfile -t more < <(candidates "$library")
      names+=("${more[@]}")
    fi
  done
  if [[ ${#names[@]} -gt 0 ]]; then
    # "package[, package]: path" per registered name; unregistered names are
    # skipped (dpkg-query then exits 1, hence `|| true`).
    while IFS= read -r line; do
      owner_of[${line#*: }]=${line%%: *}
    done < <(printf '%s\n' "${names[@]}" | sort -u | xargs dpkg-query -S 2>/dev/null || true)
  fi
  for library in $libraries; do
    [[ -n $bundle && $(realpath "$library") == "$bundle"/* ]] && continue
    found=""
    while IFS= read -r name; do
      if [[ -n ${owner_of[$name]:-} ]]; then
        found=${owner_of[$name]%%,*}
        break
      fi
    done < <(candidates "$library")
    [[ -n $found ]] || { echo "build.sh: no Debian package owns $library ($(realpath "$library"))" >&2; exit 1; }
    echo "${found%%:*}"
  done | sort -u >"$out/packages/$target.txt"
  echo "build.sh: $target needs $(wc -l <"$out/packages/$target.txt") packages at run time"
done
