#!/usr/bin/env bash
# Installs the Debian packages attn needs that are missing, and nothing else:
# every package comes from Debian's archive through apt, nothing from anywhere else.
#   scripts/setup.sh build   compiler, CMake and the libraries the tool links
#   scripts/setup.sh test    the above, plus cmocka, PyTorch, clang's fuzzer, Chromium
#                            (the interactive attention page's test) and Open MPI
#                            (data-parallel attn train under mpirun)
#   scripts/setup.sh bench   the test packages, plus OpenBLAS for PyTorch: the
#                            benchmarks' baseline is PyTorch on OpenBLAS, not on
#                            Debian's default reference BLAS
#   scripts/setup.sh ci      what .ci/run needs on the host: mmdebstrap, to build the
#                            fresh Debian root the README's commands run in, and git
# As root, or through sudo.
set -euo pipefail

build_packages=(gcc make cmake pkg-config libdnnl-dev libcjson-dev libcairo2-dev)
test_packages=(libcmocka-dev python3 python3-numpy python3-torch python3-pytest clang libclang-rt-dev chromium
               libopenmpi-dev openmpi-bin)
bench_packages=(libopenblas0-openmp)
ci_packages=(mmdebstrap git)

case "${1:-build}" in
  build) wanted=("${build_packages[@]}") ;;
  test) wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
  bench) wanted=("${build_packages[@]}" "${test_packages[@]}" "${bench_packages[@]}") ;;
  ci) wanted=("${ci_packages[@]}") ;;
  *) echo "usage: scripts/setup.sh [build|test|bench|ci]" >&2; exit 2 ;;
esac

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for package in "${wanted[@]}"; do
  installed "$package" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get update -q; then
  echo "setup: apt-get update failed, so none of these could be installed: ${missing[*]}" >&2
  exit 1
fi
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  # apt installs all or nothing: try each alone to name the ones that fail.
  failed=()
  for package in "${missing[@]}"; do
    installed "$package" && continue
    $sudo apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1 ||
      failed+=("$package")
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "setup: could not install these Debian packages: ${failed[*]}" >&2
    echo "setup: (apt-get install ${failed[*]} shows why)" >&2
    exit 1
  fi
fi
